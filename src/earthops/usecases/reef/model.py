"""The logged estimators: calibration, stacking, the DHW grid model and :class:`ReefRiskModel`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from earthops.errors import EarthOpsError
from earthops.features.reef_features import (
    DHW_COLUMN,
    LAT_COLUMN,
    LON_COLUMN,
    YEAR_COLUMN,
    extract_chips,
    open_grid,
)
from earthops.models.estimators import N_JOBS, SEED
from earthops.registry.tracking import load_model

from .config import _EPS, CALIBRATIONS, NAME

#: pickles (logged models) name the package, so the module layout can change under them
PICKLE_MODULE = "earthops.usecases.reef"
#: batches up to this many rows score XGBoost members on one thread (the same trees and
#: answers: XGBoost splits prediction over rows, never within one): waking a thread team
#: costs more than a few rows' tree walk and stalls when the other core is busy
SMALL_BATCH = 256
#: per-process caches kept in a model's ``__dict__`` under these keys, never pickled
_CACHE_KEYS = ("_single_thread_boosters",)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class Calibrator(BaseEstimator):
    """Probability calibration of a score in [0, 1]: ``none``, ``platt`` or ``isotonic``."""

    __module__ = PICKLE_MODULE

    def __init__(self, method: str = "none") -> None:
        self.method = method

    def fit(self, score: np.ndarray, y: np.ndarray) -> Calibrator:
        if self.method == "platt":
            self.model_ = LogisticRegression(C=1e4).fit(_logit(score)[:, None], y)
        elif self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                score, y
            )
        elif self.method != "none":
            raise ValueError(f"unknown calibration '{self.method}'; expected one of {CALIBRATIONS}")
        return self

    def transform(self, score: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return self.model_.predict_proba(_logit(score)[:, None])[:, 1]
        if self.method == "isotonic":
            return np.asarray(self.model_.predict(score), dtype=np.float64)
        return np.asarray(score, dtype=np.float64)


class Stacker(BaseEstimator):
    """Logistic regression on the logits of member OOF probabilities (fitted on OOF only)."""

    __module__ = PICKLE_MODULE

    def __init__(self, members: tuple[str, ...] = ()) -> None:
        self.members = members

    def fit(self, probs: pd.DataFrame, y: np.ndarray) -> Stacker:
        self.model_ = LogisticRegression(C=1.0).fit(_logit(probs[list(self.members)].to_numpy()), y)
        return self

    def predict(self, probs: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(_logit(probs[list(self.members)].to_numpy()))[:, 1]


class DhwGridModel(ClassifierMixin, BaseEstimator):
    """Bleaching probability from what a DHW grid offers: DHW alone, monotone increasing.

    Input columns :data:`GRID_FEATURES`; used by the risk heat-map.
    """

    __module__ = PICKLE_MODULE

    def __init__(self, n_estimators: int = 150) -> None:
        self.n_estimators = n_estimators

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        return X[DHW_COLUMN].to_numpy(np.float32)[:, None]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> DhwGridModel:
        from xgboost import XGBClassifier

        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators,
            learning_rate=0.05,
            max_depth=3,
            min_child_weight=20.0,
            monotone_constraints="(1)",
            tree_method="hist",
            n_jobs=N_JOBS,
            random_state=SEED,
            verbosity=0,
        ).fit(self._matrix(X), np.asarray(y, dtype=int))
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._matrix(X)).astype(np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class ReefRiskModel(ClassifierMixin, BaseEstimator):
    """The logged reef model: raw survey rows → calibrated bleaching probability.

    Fitted parts (assembled by :class:`ReefBleaching`): ``featurizer_``, tabular ``members_``,
    optional ViT branch (``vit_``, ``chip_scaler_``, grid path), ``combiner_`` (a member name or
    ``"stack"`` with ``stacker_``), ``calibrator_``, ``threshold_`` (F1 decision threshold),
    ``severity_`` (avg.bleach regressor), ``grid_model_`` (:class:`DhwGridModel`).
    """

    __module__ = PICKLE_MODULE

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config

    # ---- chips -----------------------------------------------------------------------
    def chips_for(self, X: pd.DataFrame) -> np.ndarray:
        """Chips for ``X`` from the configured grid (survey year end: no later grid time)."""
        grid = open_grid(self.grid_path_, self.grid_variables_)
        return _chips(grid, X, self.chip_size_)

    # ---- scores ----------------------------------------------------------------------
    def member_probabilities(
        self, X: pd.DataFrame, chips: np.ndarray | None = None
    ) -> pd.DataFrame:
        feats = self.featurizer_.transform(X)
        out = {name: self._member_score(name, est, feats) for name, est in self.members_.items()}
        if getattr(self, "vit_", None) is not None:
            chips = self.chips_for(X) if chips is None else chips
            out["vit"] = self.vit_.predict_proba(self.chip_scaler_.transform(chips))[:, 1]
        return pd.DataFrame(out, index=X.index)

    def _member_score(self, name: str, est: Any, feats: pd.DataFrame) -> np.ndarray:
        """P(positive) of one member: ``est.predict_proba(feats)[:, 1]``; small batches go
        through a single-thread copy of an XGBoost member's booster and straight to a LightGBM
        member's compiled trees (the same values)."""
        if len(feats) > SMALL_BATCH:
            return est.predict_proba(feats)[:, 1]
        booster = self._single_thread_booster(name, est)
        if booster is None:
            compiled = est._compiled() if hasattr(est, "_compiled") else None
            if compiled is None:
                return est.predict_proba(feats)[:, 1]
            # a compiled LightGBM member: what est.predict_proba does, less its thread-count
            # look-up (one chunk of rows either way below 2 x 2048 rows)
            return compiled.predict_proba(est._checked(feats), 1)[:, 1]
        from earthops.models.estimators import as_matrix

        xgb = est.estimator_
        matrix = as_matrix(feats)
        if matrix.shape[1] != est.n_features_in_:
            return est.predict_proba(feats)[:, 1]  # the member's own error
        # what XGBClassifier.predict_proba does for binary:logistic (column 1 = the booster's
        # probability), with the booster's nthread at 1
        p = booster.inplace_predict(
            data=matrix,
            iteration_range=xgb._get_iteration_range(None),
            predict_type="value",
            missing=xgb.missing,
            validate_features=True,
        )
        return np.asarray(p, dtype=np.float64)

    def _single_thread_booster(self, name: str, est: Any) -> Any:
        """A one-thread copy of member ``name``'s XGBoost booster (built once per process),
        or ``None`` when the member is not a binary tree XGBoost classifier."""
        cache = self.__dict__.setdefault("_single_thread_boosters", {})
        if name not in cache:
            booster = None
            xgb = getattr(est, "estimator_", None)
            if (
                type(est).__name__ == "LabelEncodedClassifier"
                and type(xgb).__name__ == "XGBClassifier"
                and xgb.objective == "binary:logistic"
                and getattr(xgb, "n_classes_", None) == 2
                and xgb.booster in (None, "gbtree")
                and len(getattr(est, "classes_", ())) == 2
            ):
                booster = xgb.get_booster().copy()
                booster.set_param({"nthread": 1})
            cache[name] = booster
        return cache[name]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: the live model keeps its caches
        for key in _CACHE_KEYS:
            state.pop(key, None)
        return state

    def combine(self, probs: pd.DataFrame) -> np.ndarray:
        """The chosen combiner (one member or the stack) over member probabilities."""
        if self.combiner_ == "stack":
            return self.stacker_.predict(probs)
        return probs[self.combiner_].to_numpy(dtype=np.float64)

    def raw_score(self, X: pd.DataFrame, chips: np.ndarray | None = None) -> np.ndarray:
        return self.combine(self.member_probabilities(X, chips))

    def predict_proba(self, X: pd.DataFrame, chips: np.ndarray | None = None) -> np.ndarray:
        p = np.clip(self.calibrator_.transform(self.raw_score(X, chips)), 0.0, 1.0)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame, chips: np.ndarray | None = None) -> np.ndarray:
        return (self.predict_proba(X, chips)[:, 1] >= self.threshold_).astype(np.int64)

    def predict_severity(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted % of corals bleached (0–100)."""
        return np.clip(self.severity_.predict(self.featurizer_.transform(X).to_numpy()), 0, 100)


def _chips(grid: Any, rows: pd.DataFrame, size: int) -> np.ndarray:
    times = pd.to_datetime(rows[YEAR_COLUMN].astype(int).astype(str) + "-12-31").to_numpy()
    return extract_chips(
        grid, rows[LAT_COLUMN].to_numpy(), rows[LON_COLUMN].to_numpy(), size=size, times=times
    )


def _load_reef_model(model_uri: str) -> ReefRiskModel:
    """A logged reef model from any MLflow URI or a local model dir (checked by its type, so a
    copied model dir works without the tracking store that logged it)."""
    model = load_model(model_uri)
    if not isinstance(model, ReefRiskModel):
        raise EarthOpsError(
            f"model '{model_uri}' is a {type(model).__name__}; expected a {NAME} model"
        )
    return model
