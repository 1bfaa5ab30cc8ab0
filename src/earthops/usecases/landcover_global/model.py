"""The logged estimator: fitted members, optional stacker and decision rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from earthops.errors import EarthOpsError
from earthops.features.global_grid import chip_columns, unflatten_chips
from earthops.models.selection import log_probs


def _align(proba: np.ndarray, model_classes: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Probability columns re-ordered to ``classes`` (zeros for classes unseen in training)."""
    out = np.zeros((proba.shape[0], len(classes)), dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(model_classes):
        out[:, index[int(c)]] = proba[:, j]
    return out


def _vit_input(chips: np.ndarray) -> np.ndarray:
    return np.asarray(chips, dtype=np.float32) / np.float32(255.0)


class GlobalLandCoverModel(ClassifierMixin, BaseEstimator):
    """The logged model: one or more fitted members, optionally stacked.

    Input: a table with the grid features (``feature_names``) and, when a ViT member is
    present, the flattened Blue Marble chip (``chip_0000``…, uint8 values). Output: IGBP values.
    A model trained on land pixels only has a ``sea_class`` (water): pixels with no
    Köppen-Geiger land (``koppen`` feature not > 0) get it from this land mask, as land-cover
    products mask the sea, instead of from members that never saw the open sea. A model whose
    protocol lacks some classes may carry an ``outside_gate`` (:mod:`.outside`): a binary
    classifier that says which land pixels belong to none of its classes, for maps: those
    whose P(outside) exceeds ``outside_threshold``.
    """

    #: pickles (logged models) name the package, so the module layout can change under them
    __module__ = "earthops.usecases.landcover_global"

    def __init__(
        self,
        members: dict[str, Any] | None = None,
        stacker: Any = None,
        feature_names: Sequence[str] = (),
        classes: Sequence[int] = (),
        chip_size: int | None = None,
        decision: str = "balanced",
        prior_shift: Sequence[float] | None = None,
        balance_shift: Sequence[float] | None = None,
        sea_class: int | None = None,
        outside_gate: Any = None,
        outside_threshold: float = 0.5,
    ) -> None:
        self.members = members
        self.stacker = stacker
        self.feature_names = feature_names
        self.classes = classes
        self.chip_size = chip_size
        self.decision = decision
        self.prior_shift = prior_shift
        self.balance_shift = balance_shift
        self.sea_class = sea_class
        self.outside_gate = outside_gate
        self.outside_threshold = outside_threshold

    def _with_sea(
        self,
        features: np.ndarray,
        chips: np.ndarray | None,
        on_land: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
        *,
        proba: bool,
    ) -> np.ndarray:
        """``on_land`` of the rows on land; the sea class (its label, or with ``proba`` a
        certain probability row) on the others, for a model with a sea class."""
        sea = self._sea(features)
        if sea is None or not sea.any():
            return on_land(features, chips)
        if proba:
            out = np.zeros((len(sea), len(self.classes)))
            out[sea, list(self.classes).index(self.sea_class)] = 1.0
        else:
            out = np.full(len(sea), self.sea_class, dtype=np.int64)
        land = ~sea
        if land.any():
            out[land] = on_land(features[land], None if chips is None else chips[land])
        return out

    def _sea(self, features: np.ndarray) -> np.ndarray | None:
        """Rows off land, or ``None`` when the model has no sea class (models logged before
        the option lack the attribute)."""
        if getattr(self, "sea_class", None) is None:
            return None
        return self._off_land(features)

    def _off_land(self, features: np.ndarray) -> np.ndarray | None:
        """Rows with no Köppen-Geiger land (``koppen`` not > 0), or ``None`` without that
        feature."""
        if "koppen" not in self.feature_names:
            return None
        koppen = np.asarray(features)[:, list(self.feature_names).index("koppen")]
        return ~(koppen > 0)

    @property
    def decision_shift(self) -> np.ndarray | None:
        """Per-class factor on the members' probabilities before the argmax, or ``None``.

        ``decision='area'``: ``prior_shift`` (population share / training share). Otherwise
        ``balance_shift`` (uniform share / training share), set when the training sample was
        not class-balanced. Models logged before either option lack the attributes.
        """
        if getattr(self, "decision", "balanced") == "area":
            shift = getattr(self, "prior_shift", None)
        else:
            shift = getattr(self, "balance_shift", None)
        return None if shift is None else np.asarray(shift, dtype=np.float64)

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=np.int64)

    @property
    def needs_chips(self) -> bool:
        return "vit" in (self.members or {})

    def fit(self, X: Any, y: Any) -> GlobalLandCoverModel:  # pragma: no cover - built by train
        raise NotImplementedError("built by GlobalLandCover.train")

    def proba_arrays(self, features: np.ndarray, chips: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities ``(n, classes)`` from a feature matrix and optional chips
        (the sea class with certainty off land, for a model with one)."""
        return self._with_sea(features, chips, self._land_proba, proba=True)

    def _land_proba(self, features: np.ndarray, chips: np.ndarray | None) -> np.ndarray:
        probas = []
        for kind, est in (self.members or {}).items():
            if kind == "vit":
                if chips is None:
                    raise EarthOpsError("this model has a ViT member: chips are required")
                raw = est.predict_proba(_vit_input(chips))
            else:
                raw = est.predict_proba(features)
            probas.append(_align(raw, est.classes_, self.classes))
        if self.stacker is None:
            proba = probas[0]
        else:
            proba = _align(
                self.stacker.predict_proba(log_probs(probas)), self.stacker.classes_, self.classes
            )
        shift = self.decision_shift
        if shift is not None:
            proba = proba * shift
            proba /= np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
        return proba

    def predict_arrays(self, features: np.ndarray, chips: np.ndarray | None = None) -> np.ndarray:
        """Class labels, the argmax of :meth:`proba_arrays`.

        A lone tabular member (no stacker, classes in the model's order) gives the same labels
        through its own ``predict`` (``predict_weighted`` with a decision shift), which may
        stop scoring a row early.
        """
        return self._with_sea(features, chips, self._land_labels, proba=False)

    def _land_labels(self, features: np.ndarray, chips: np.ndarray | None) -> np.ndarray:
        members = self.members or {}
        if len(members) == 1 and self.stacker is None:
            kind, est = next(iter(members.items()))
            order = [int(c) for c in est.classes_]
            if kind != "vit" and order == [c for c in self.classes if c in order]:
                shift = self.decision_shift
                if shift is None:
                    return np.asarray(est.predict(features))
                if hasattr(est, "predict_weighted"):
                    weight = shift[[list(self.classes).index(c) for c in order]]
                    return np.asarray(est.predict_weighted(features, weight))
        return self.classes_[np.argmax(self._land_proba(features, chips), axis=1)]

    @property
    def has_outside_gate(self) -> bool:
        return getattr(self, "outside_gate", None) is not None  # older models lack it

    @property
    def gate_threshold(self) -> float:
        """P(outside) above which the gate flags a pixel (0.5 for models logged before the
        threshold was stored)."""
        return float(getattr(self, "outside_threshold", 0.5))

    def outside_arrays(self, features: np.ndarray) -> np.ndarray:
        """Rows the outside gate puts in none of the model's classes (P(outside) above
        :attr:`gate_threshold`), on Köppen-Geiger land only (all ``False`` without a gate)."""
        return self.outside_proba(features) > self.gate_threshold

    def outside_proba(self, features: np.ndarray) -> np.ndarray:
        """P(outside the model's classes) per row: the gate's on land, 0 off land (the gate
        was trained on land: the open sea is never outside, whether or not the model has a
        sea class) and without a gate."""
        out = np.zeros(len(features))
        if not self.has_outside_gate:
            return out
        off_land = self._off_land(features)
        land = np.ones(len(features), dtype=bool) if off_land is None else ~off_land
        if land.any():
            out[land] = self.outside_gate.predict_proba(features[land])[:, 1]
        return out

    def _arrays(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The feature matrix and (when a ViT member needs them) the chips of a table."""
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise EarthOpsError(f"input lacks model features {missing[:5]}")
        features = X[list(self.feature_names)].to_numpy(dtype=np.float32)
        chips = None
        if self.needs_chips:
            cols = chip_columns(int(self.chip_size or 16))
            chips = unflatten_chips(X[cols].to_numpy(dtype=np.uint8), int(self.chip_size or 16))
        return features, chips

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba_arrays(*self._arrays(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_arrays(*self._arrays(X))
