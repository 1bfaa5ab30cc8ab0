"""Per-sample time-series features from ``(n, time, band)`` arrays (vectorised numpy).

Features: the raw band values per date, and per band (by default the vegetation indices)
phenology statistics: min/max/mean/std/percentiles, amplitude, peak and trough timing
(date index), trapezoid integral, seasonal quarter means, and first-derivative statistics
(max green-up / senescence rates and their timing), the season from half-amplitude crossings
(start, end, length, fraction above half), the number of peaks and the second (off-season
crop) peak's height and timing, the drop from peak to the series end and mean curvature.
Derived index series (NDMI from nir/mir, NIRv = NDVI×nir) join the bands. :class:`TimeSeriesFeatures` is the same
computation as a stateless sklearn transformer on flat ``(n, time*band)`` rows, so a logged
model pipeline takes raw pixels or samples and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

#: bands that get phenology statistics by default when present
VEGETATION_INDICES = ("ndvi", "evi", "ndmi", "nirv")
PHENOLOGY_STATS = (
    "min",
    "max",
    "mean",
    "std",
    "p10",
    "median",
    "p90",
    "amplitude",
    "peak_time",
    "trough_time",
    "integral",
    "q1_mean",
    "q2_mean",
    "q3_mean",
    "q4_mean",
    "greenup_max",
    "senescence_max",
    "greenup_time",
    "senescence_time",
    "abs_diff_mean",
    "season_start",
    "season_end",
    "season_length",
    "frac_above_half",
    "n_peaks",
    "second_peak",
    "second_peak_time",
    "peak_to_end",
    "curvature_mean",
)


def input_columns(bands: Sequence[str], n_dates: int) -> list[str]:
    """Names of the flat input columns, time-major: ``ndvi_t00, evi_t00, …, ndvi_t01, …``."""
    return [f"{band}_t{t:02d}" for t in range(n_dates) for band in bands]


def fill_gaps(array: np.ndarray) -> np.ndarray:
    """Linear interpolation of NaNs along axis 1 of ``(n, time[, band])``; edges take the nearest
    valid value; all-NaN series stay NaN."""
    values = np.asarray(array, dtype=np.float32)
    if not np.isnan(values).any():
        return values
    squeeze = values.ndim == 2
    data = values[..., None] if squeeze else values
    n, t, b = data.shape
    series = np.moveaxis(data, 1, 2).reshape(n * b, t)
    valid = ~np.isnan(series)
    idx = np.arange(t)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(valid, idx, t)[:, ::-1], axis=1)[:, ::-1]
    has_prev, has_next = prev >= 0, nxt < t
    prev_c, next_c = np.clip(prev, 0, t - 1), np.clip(nxt, 0, t - 1)
    rows = np.arange(n * b)[:, None]
    v_prev, v_next = series[rows, prev_c], series[rows, next_c]
    span = np.where(nxt > prev, nxt - prev, 1)
    w = np.where(has_prev & has_next, (idx - prev) / span, 0.0)
    filled = np.where(has_prev, v_prev, v_next) * (1 - w) + np.where(has_next, v_next, v_prev) * w
    filled = np.where(valid, series, filled).astype(np.float32)
    out = np.moveaxis(filled.reshape(n, b, t), 1, 2)
    return out[..., 0] if squeeze else out


def phenology_features(series: np.ndarray) -> np.ndarray:
    """Phenology statistics (columns in :data:`PHENOLOGY_STATS` order) of ``(n, time)`` series."""
    x = np.asarray(series, dtype=np.float32)
    n, t = x.shape
    if t < 4:
        raise ValueError(f"phenology features need at least 4 dates, got {t}")
    diff = np.diff(x, axis=1)
    p10, median, p90 = np.percentile(x, [10, 50, 90], axis=1)
    lo, hi = x.min(axis=1), x.max(axis=1)
    quarters = [x[:, part].mean(axis=1) for part in np.array_split(np.arange(t), 4)]
    columns = [
        *_basic(x, diff, lo, hi, p10, median, p90, quarters),
        *_season(x, lo, hi),
        *_peaks(x, hi),
        (np.abs(np.diff(diff, axis=1)).mean(axis=1) if t > 2 else np.zeros(n, np.float32)),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _basic(
    x: np.ndarray,
    diff: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    p10: np.ndarray,
    median: np.ndarray,
    p90: np.ndarray,
    quarters: list[np.ndarray],
) -> list[np.ndarray]:
    return [
        lo,
        hi,
        x.mean(axis=1),
        x.std(axis=1),
        p10,
        median,
        p90,
        hi - lo,
        np.argmax(x, axis=1),
        np.argmin(x, axis=1),
        np.trapezoid(x, axis=1),
        *quarters,
        diff.max(axis=1),
        -diff.min(axis=1),
        np.argmax(diff, axis=1),
        np.argmin(diff, axis=1),
        np.abs(diff).mean(axis=1),
    ]


def _season(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Season start/end (first/last date above half amplitude), length, fraction above half."""
    t = x.shape[1]
    above = x >= ((lo + hi) / 2)[:, None]
    start = np.argmax(above, axis=1)
    end = t - 1 - np.argmax(above[:, ::-1], axis=1)
    return [start, end, end - start + 1, above.mean(axis=1)]


def _peaks(x: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Number of prominent local maxima, the second highest one and its date, peak-to-end drop.

    A local maximum counts when it rises at least 10 % of the series amplitude above the lowest
    value between it and the previous counted peak (double cropping shows two).
    """
    n = x.shape[0]
    amp = np.maximum(hi - x.min(axis=1), 1e-6)
    local = np.zeros_like(x, dtype=bool)
    local[:, 1:-1] = (x[:, 1:-1] >= x[:, :-2]) & (x[:, 1:-1] > x[:, 2:])
    # prominence on each side: rise above the minimum between the peak and the series ends
    left_min = np.minimum.accumulate(x, axis=1)
    right_min = np.minimum.accumulate(x[:, ::-1], axis=1)[:, ::-1]
    prominent = local & (x - np.maximum(left_min, right_min) >= 0.1 * amp[:, None])
    n_peaks = prominent.sum(axis=1)
    main = np.argmax(x, axis=1)
    masked = np.where(prominent, x, -np.inf)
    masked[np.arange(n), main] = -np.inf
    second_t = np.argmax(masked, axis=1)
    has_second = np.isfinite(masked[np.arange(n), second_t])
    second = np.where(has_second, x[np.arange(n), second_t], x.min(axis=1))  # none: the minimum
    second_t = np.where(has_second, second_t, -1)
    return [n_peaks, second, second_t, hi - x[:, -1]]


def derived_indices(array: np.ndarray, bands: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Extra index series the bands allow, shaped ``(n, time, k)``: NDMI from nir and mir,
    NIRv (NDVI × nir) from ndvi and nir."""
    names, series = [], []
    band_list = list(bands)
    if {"nir", "mir"} <= set(bands) and "ndmi" not in bands:
        nir, mir = array[..., band_list.index("nir")], array[..., band_list.index("mir")]
        with np.errstate(divide="ignore", invalid="ignore"):
            series.append((nir - mir) / (nir + mir))
        names.append("ndmi")
    if {"ndvi", "nir"} <= set(bands) and "nirv" not in bands:
        series.append(array[..., band_list.index("ndvi")] * array[..., band_list.index("nir")])
        names.append("nirv")
    if not series:
        return np.empty((*array.shape[:2], 0), np.float32), []
    return np.stack(series, axis=-1).astype(np.float32), names


def timeseries_features(
    array: np.ndarray,
    bands: Sequence[str],
    *,
    raw: bool = True,
    phenology_bands: Sequence[str] | None = None,
    derived: bool = True,
    fill: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix ``(n, f)`` float32 and feature names from a ``(n, time, band)`` array.

    ``phenology_bands`` defaults to the vegetation indices present (``ndvi``, ``evi``, derived
    ``ndmi``), or every band when there is none.
    """
    data = np.asarray(array, dtype=np.float32)
    if data.ndim != 3 or data.shape[2] != len(bands):
        raise ValueError(
            f"expected (n, time, {len(bands)}) for bands {list(bands)}, got {data.shape}"
        )
    if fill:
        data = fill_gaps(data)
    names = list(bands)
    if derived:
        extra, extra_names = derived_indices(data, names)
        data = np.concatenate([data, extra], axis=2)
        names += extra_names
    if phenology_bands is None:
        phenology_bands = [b for b in names if b in VEGETATION_INDICES] or names
    unknown = sorted(set(phenology_bands) - set(names))
    if unknown:
        raise ValueError(f"phenology bands {unknown} not among {names}")
    n, t, _ = data.shape
    blocks: list[np.ndarray] = []
    feature_names: list[str] = []
    if raw:
        blocks.append(data.reshape(n, -1))
        feature_names += input_columns(names, t)
    for band in phenology_bands:
        blocks.append(phenology_features(data[:, :, names.index(band)]))
        feature_names += [f"{band}_{stat}" for stat in PHENOLOGY_STATS]
    return np.concatenate(blocks, axis=1).astype(np.float32), feature_names


class TimeSeriesFeatures(TransformerMixin, BaseEstimator):
    """Stateless transformer: flat time-major rows ``(n, time*band)`` → time-series features."""

    def __init__(
        self,
        bands: Sequence[str] = ("ndvi",),
        n_dates: int = 23,
        raw: bool = True,
        phenology_bands: Sequence[str] | None = None,
        derived: bool = True,
    ) -> None:
        self.bands = bands
        self.n_dates = n_dates
        self.raw = raw
        self.phenology_bands = phenology_bands
        self.derived = derived

    def fit(self, X: Any, y: Any = None) -> TimeSeriesFeatures:
        width = np.asarray(X).shape[1]
        expected = self.n_dates * len(self.bands)
        if width != expected:
            raise ValueError(
                f"expected {expected} columns ({self.n_dates} dates × {list(self.bands)})"
            )
        self.n_features_in_ = expected
        self.feature_names_out_ = self._transform(np.zeros((1, expected), np.float32))[1]
        return self

    def _transform(self, X: Any) -> tuple[np.ndarray, list[str]]:
        values = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
        values = np.asarray(values, dtype=np.float32)
        expected = self.n_dates * len(self.bands)
        if values.ndim != 2 or values.shape[1] != expected:
            raise ValueError(
                f"expected {expected} columns ({self.n_dates} dates × bands {list(self.bands)}), "
                f"got shape {values.shape}"
            )
        cube = values.reshape(len(values), self.n_dates, len(self.bands))
        return timeseries_features(
            cube,
            self.bands,
            raw=self.raw,
            phenology_bands=self.phenology_bands,
            derived=self.derived,
        )

    def transform(self, X: Any) -> np.ndarray:
        return self._transform(X)[0]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        if not hasattr(self, "feature_names_out_"):
            self.fit(np.zeros((1, self.n_dates * len(self.bands)), np.float32))
        return np.asarray(self.feature_names_out_, dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.requires_fit = False
        return tags
