"""The logged model (:class:`TimeSeriesLandCoverModel`) and its metadata helpers."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from earthops.features.timeseries import TimeSeriesFeatures
from earthops.models.selection import log_probs


class TimeSeriesLandCoverModel(ClassifierMixin, BaseEstimator):
    """The logged model: flat time-major rows ``(n, n_dates × n_bands)`` → class labels.

    Columns follow :func:`earthops.features.timeseries.input_columns` (``ndvi_t00, evi_t00, …``).
    ``members`` are fitted on the features of ``featurizer``; with a ``stacker`` their
    log-probabilities (in ``members`` order) feed it, else the single member answers.
    With ``vote`` their probabilities are averaged (soft voting). ``map_model`` (optional) is
    the NDVI-only model used by ``predict_raster``.
    """

    #: pickles (logged models) name the package, so the module layout can change under them
    __module__ = "earthops.usecases.landcover_timeseries"

    def __init__(
        self,
        featurizer: TimeSeriesFeatures | None = None,
        members: dict[str, Any] | None = None,
        stacker: Any = None,
        map_model: TimeSeriesLandCoverModel | None = None,
        vote: bool = False,
    ) -> None:
        self.featurizer = featurizer
        self.members = members
        self.stacker = stacker
        self.map_model = map_model
        self.vote = vote

    @property
    def classes_(self) -> np.ndarray:
        first = next(iter((self.members or {}).values()))
        return np.asarray(first.classes_)

    def fit(self, X: Any, y: Any) -> TimeSeriesLandCoverModel:  # pragma: no cover
        raise NotImplementedError("built by TimeSeriesLandCover.train")

    def predict_proba(self, X: Any) -> np.ndarray:
        assert self.featurizer is not None and self.members
        feats = self.featurizer.transform(X)
        probas = [np.asarray(m.predict_proba(feats)) for m in self.members.values()]
        if self.vote:
            return np.mean(probas, axis=0)
        if self.stacker is None:
            return probas[0]
        return np.asarray(self.stacker.predict_proba(log_probs(probas)))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def encode_keys(keys: np.ndarray) -> str:
    """Sample keys (uint64) as compact text for the model metadata (sorted, base64)."""
    return base64.b64encode(np.unique(keys).astype("<u8").tobytes()).decode("ascii")


def decode_keys(text: str) -> np.ndarray:
    """Inverse of :func:`encode_keys`."""
    return np.frombuffer(base64.b64decode(text), dtype="<u8")
