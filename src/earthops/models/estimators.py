"""Tabular estimators with sklearn contracts: Random Forest (the baseline), LightGBM, XGBoost.

Every classifier is a :class:`LabelEncodedClassifier` around the library estimator, so string
labels work everywhere (XGBoost needs ``0..k-1``), ``classes_`` holds the original labels and
``predict_proba`` columns follow ``classes_``. Defaults are CPU friendly (``n_jobs=2``).
Fitted LightGBM classifiers predict through :mod:`earthops.models.compiled_trees` (bitwise
equal raw scores, many times faster; models it cannot compile keep LightGBM's own).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

N_JOBS = 2
SEED = 42

#: classifier kinds known to :func:`make_classifier`
CLASSIFIER_KINDS = ("rf", "lightgbm", "xgboost")

RF_DEFAULTS: dict[str, Any] = {
    "n_estimators": 500,
    "max_features": "sqrt",
    "min_samples_leaf": 1,
    "n_jobs": N_JOBS,
    "random_state": SEED,
}
LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 10,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "n_jobs": N_JOBS,
    "random_state": SEED,
    "verbose": -1,
}
XGB_DEFAULTS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "tree_method": "hist",
    "n_jobs": N_JOBS,
    "random_state": SEED,
    "verbosity": 0,
}


def as_matrix(X: Any) -> np.ndarray:
    """Features as a C-contiguous float32 matrix (DataFrames lose their column names here)."""
    values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    return np.ascontiguousarray(values, dtype=np.float32)


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Wrap any sklearn-style classifier so that arbitrary (e.g. string) labels work.

    Parameters
    ----------
    estimator:
        An unfitted classifier; it is cloned and fitted on integer-encoded labels.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(
        self, X: Any, y: Any, sample_weight: np.ndarray | None = None
    ) -> LabelEncodedClassifier:
        if self.estimator is None:
            raise ValueError("LabelEncodedClassifier needs an estimator")
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        matrix = as_matrix(X)
        self.encoder_ = LabelEncoder().fit(np.asarray(y))
        self.classes_ = self.encoder_.classes_
        self.n_features_in_ = matrix.shape[1]
        codes = self.encoder_.transform(np.asarray(y))
        self.estimator_ = clone(self.estimator)
        self.__dict__.pop("_compiled_trees", None)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.estimator_.fit(matrix, codes, **kwargs)
        return self

    def _checked(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        matrix = as_matrix(X)
        if matrix.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {matrix.shape[1]} features, the model expects {self.n_features_in_}"
            )
        return matrix

    def _compiled(self) -> Any:
        """The LightGBM member as :class:`~earthops.models.compiled_trees.CompiledTrees`
        (built once per loaded model, never pickled), or ``None``."""
        check_is_fitted(self, "estimator_")
        if "_compiled_trees" not in self.__dict__:
            compiled = None
            if type(self.estimator_).__name__ == "LGBMClassifier":
                from earthops.models.compiled_trees import compile_lightgbm

                compiled = compile_lightgbm(self.estimator_.booster_)
            self.__dict__["_compiled_trees"] = compiled
        return self.__dict__["_compiled_trees"]

    def _n_threads(self) -> int:
        n_jobs = self.estimator_.get_params().get("n_jobs")
        if n_jobs is None or n_jobs <= 0:
            return os.cpu_count() or 1
        return int(n_jobs)

    def predict_proba(self, X: Any) -> np.ndarray:
        matrix = self._checked(X)
        compiled = self._compiled()
        if compiled is not None:  # bitwise equal to LightGBM's own predict_proba
            return compiled.predict_proba(matrix, self._n_threads())
        return np.asarray(self.estimator_.predict_proba(matrix), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        compiled = self._compiled()
        if compiled is not None:  # argmax of predict_proba, settled rows stop early
            return self.classes_[compiled.predict_index(self._checked(X), self._n_threads())]
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_weighted(self, X: Any, class_weight: Any) -> np.ndarray:
        """Labels by ``argmax(predict_proba(X) * class_weight)`` (weights in ``classes_``
        order): a prior-corrected decision, through the early-stopping path when compiled."""
        weight = np.asarray(class_weight, dtype=np.float64)
        if weight.shape != self.classes_.shape:
            raise ValueError(
                f"class_weight has {weight.size} values, the model {self.classes_.size} classes"
            )
        compiled = self._compiled()
        if compiled is not None:
            index = compiled.predict_index(self._checked(X), self._n_threads(), weight)
            return self.classes_[index]
        return self.classes_[np.argmax(self.predict_proba(X) * weight, axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: the live model keeps its compiled trees
        state.pop("_compiled_trees", None)
        return state

    @property
    def feature_importances_(self) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.feature_importances_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def random_forest(**params: Any) -> LabelEncodedClassifier:
    """Random Forest classifier: the reference pipeline's model and every use case's baseline."""
    return LabelEncodedClassifier(RandomForestClassifier(**{**RF_DEFAULTS, **params}))


def lightgbm_classifier(**params: Any) -> LabelEncodedClassifier:
    """LightGBM gradient-boosted trees classifier."""
    from lightgbm import LGBMClassifier

    return LabelEncodedClassifier(LGBMClassifier(**{**LGBM_DEFAULTS, **params}))


def xgboost_classifier(**params: Any) -> LabelEncodedClassifier:
    """XGBoost (hist) gradient-boosted trees classifier."""
    from xgboost import XGBClassifier

    return LabelEncodedClassifier(XGBClassifier(**{**XGB_DEFAULTS, **params}))


def make_classifier(kind: str, **params: Any) -> Any:
    """Unfitted classifier of ``kind`` (``rf``, ``lightgbm``, ``xgboost``, ``vit``) with overrides."""
    if kind == "rf":
        return random_forest(**params)
    if kind == "lightgbm":
        return lightgbm_classifier(**params)
    if kind == "xgboost":
        return xgboost_classifier(**params)
    if kind == "vit":
        from earthops.models.vit import ViTClassifier

        return ViTClassifier(**params)
    raise ValueError(
        f"unknown classifier kind '{kind}'; expected one of {(*CLASSIFIER_KINDS, 'vit')}"
    )


def make_regressor(kind: str, **params: Any) -> Any:
    """Unfitted regressor of ``kind`` (``rf``, ``lightgbm``, ``xgboost``) with overrides."""
    if kind == "rf":
        return RandomForestRegressor(**{**RF_DEFAULTS, "max_features": 1.0 / 3.0, **params})
    if kind == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**{**LGBM_DEFAULTS, **params})
    if kind == "xgboost":
        from xgboost import XGBRegressor

        return XGBRegressor(**{**XGB_DEFAULTS, **params})
    raise ValueError(f"unknown regressor kind '{kind}'; expected one of {CLASSIFIER_KINDS}")
