"""The classification metrics of DESIGN's contract, one implementation for every use case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    f1_score,
    precision_recall_fscore_support,
)

from earthops.logs import get_logger

log = get_logger(__name__)

HEADLINE_KEYS = ("overall_accuracy", "macro_f1", "kappa")


def classification_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    classes: Sequence[Any],
    names: Mapping[Any, str] | Sequence[str] | None = None,
) -> dict[str, Any]:
    """``overall_accuracy``, ``macro_f1``, ``kappa``, ``per_class`` and ``n_samples``.

    ``per_class`` covers the ``classes`` present in ``y``, keyed by ``names[c]`` (default:
    the class itself); macro F1 averages over those classes only.
    """
    labels = [c for c in classes if np.any(y == c)]
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {
        "overall_accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "kappa": float(cohen_kappa_score(y, pred)),
        "per_class": {
            (c if names is None else names[c]): {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(labels)
        },
        "n_samples": len(y),
    }


def headline_figures(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The three headline figures, rounded to 4 decimals (for logs and comparisons)."""
    return {k: round(float(metrics[k]), 4) for k in HEADLINE_KEYS}


def holdout_fields(share_key: str, share: float | None, hint: str) -> dict[str, Any]:
    """How honest an evaluation is: ``{share_key: share, "holdout": share == 0}``.

    ``share`` is the part of the scored data the model was trained on (or next to); ``None``
    when unknown. A warning with ``hint`` is logged when it is above 0.
    """
    if share is None:
        return {share_key: None, "holdout": None}
    shown = round(float(share), 4)
    if share > 0:  # the exact share: an overlap too small to show still is one
        log.warning("evaluate.overlaps_training", **{share_key: shown}, hint=hint)
    return {share_key: shown, "holdout": bool(share == 0)}
