"""Parameters that LightGBM and XGBoost would silently ignore.

Both libraries' sklearn estimators accept any keyword: a misspelt ``num_leave`` is stored,
passed to the booster and dropped there (LightGBM says nothing at ``verbose=-1``; XGBoost
warns only once training starts). :func:`ignored_params` finds such keys up front.
"""

from __future__ import annotations

import inspect
import re
import warnings
from functools import cache
from typing import Any

import numpy as np

_XGB_UNUSED = re.compile(r"Parameters: \{ (.*?) \} (?:are|is) not used", re.DOTALL)


def ignored_params(estimator: Any) -> list[str]:
    """Sorted keyword arguments of a LightGBM or XGBoost estimator (bare or inside a wrapper
    with an ``estimator`` attribute) that the library does not know; ``[]`` for any other."""
    inner = getattr(estimator, "estimator", estimator)
    module = type(inner).__module__
    if module.startswith("lightgbm"):
        known = _lightgbm_names()
        if known is None:  # a LightGBM without its alias table: nothing to check against
            return []
        return sorted(set(getattr(inner, "_other_params", {})) - known)
    if module.startswith("xgboost") and getattr(inner, "kwargs", None):
        return _xgboost_unused(inner)
    return []


@cache
def _lightgbm_names() -> frozenset[str] | None:
    """Every parameter LightGBM knows: its sklearn arguments, core names and aliases (``None``
    if its alias table, a private API, is gone)."""
    from lightgbm import LGBMModel

    try:
        from lightgbm.basic import _ConfigAliases

        table = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):
        return None
    names = set(inspect.signature(LGBMModel.__init__).parameters)
    for name, aliases in table.items():
        names.update({name, *aliases})
    return frozenset(names)


def _xgboost_unused(model: Any) -> list[str]:
    """XGBoost names the parameters it drops only when it trains: train one tree on four
    rows and read its warning."""
    from sklearn.base import clone

    probe = clone(model).set_params(n_estimators=1, n_jobs=1, verbosity=1)
    X = np.array([[0.0], [1.0], [0.0], [1.0]])
    y = np.array([0, 1, 0, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe.fit(X, y)
    unused: set[str] = set()
    for warning in caught:
        match = _XGB_UNUSED.search(str(warning.message))
        if match:
            unused.update(n.strip().strip('"') for n in match.group(1).split(","))
    return sorted(unused)
