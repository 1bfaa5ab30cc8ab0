"""Reference profiles: what drift monitoring keeps of a training set (never the set itself).

A :class:`ReferenceProfile` holds, per numerical feature, the reference's quantile bin edges and
bin counts (for PSI / Jensen–Shannon), missing rate, min / max, mean / std and a sorted random
subsample of at most ``sample_size`` values (for KS and Wasserstein); per categorical feature
the category counts. Optional parts: the prediction distribution (score bins + subsample, or
class counts), the label class shares, per-group profiles (e.g. one per region) and per-season
profiles of the numerical features (e.g. one per month, binned on the whole-year edges so that
months pool by adding counts).

Its size is bounded by ``sample_size`` per (stratum, feature) whatever the training-set size,
and each feature's subsample is drawn and sorted on its own, so rows cannot be reassembled.
KS p-values against a profile are computed on the subsample's size (or on the effective sample
size of :class:`earthops.monitoring.drift.DriftConfig`'s ``n_eff="clusters"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from earthops.errors import DataError, EarthOpsError
from earthops.logs import get_logger
from earthops.monitoring import stats

log = get_logger(__name__)

SOURCE = "reference frame"


class NumericProfile(BaseModel):
    """One numerical feature (or score) of the reference, binned on ``edges``."""

    count: int = Field(description="finite values")
    missing: int = Field(description="NaN / inf values")
    min: float
    max: float
    mean: float
    std: float
    edges: list[float] = Field(description="inner quantile edges (stats.quantile_edges)")
    counts: list[float] = Field(description="stats.bin_counts on edges")
    sample: list[float] = Field(description="sorted random subsample of the finite values")
    n_clusters: int | None = Field(None, description="distinct cluster ids among finite rows")

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0


class CategoricalProfile(BaseModel):
    """One categorical feature (or class prediction / label): counts per category."""

    count: int
    missing: int
    counts: dict[str, float]
    n_clusters: int | None = None

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    @property
    def shares(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.counts.items()} if self.count else {}


class StratumProfile(BaseModel):
    """Profiles of the rows of one group (region) or one season (month)."""

    n_rows: int
    numeric: dict[str, NumericProfile] = {}
    categorical: dict[str, CategoricalProfile] = {}


class ReferenceProfile(BaseModel):
    """Everything drift monitoring compares a current window with; JSON round-trips."""

    version: int = 1
    n_rows: int
    columns: list[str] = Field(description="all columns of the reference frame (schema)")
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    predictions_kind: Literal["score", "class"] | None = None
    predictions: NumericProfile | CategoricalProfile | None = None
    labels: CategoricalProfile | None = None
    groups: dict[str, StratumProfile] = {}
    seasons: dict[str, StratumProfile] = {}
    n_bins: int
    sample_size: int
    seed: int

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        return cls.model_validate_json(text)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "no such reference profile; expected a JSON file")
        try:
            return cls.from_json(path.read_text())
        except ValueError as exc:
            raise DataError(path, f"not a reference profile ({exc})") from None


def stratum_key(value: object) -> str:
    """JSON key of a group / season value: integral numbers without a decimal point."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _as_float(values: object, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(SOURCE, "expected a numerical column", field=name) from None


def numeric_profile(
    values: np.ndarray,
    *,
    edges: np.ndarray | None = None,
    n_bins: int = 10,
    sample_size: int = 5000,
    rng: np.random.Generator | None = None,
    cluster_codes: np.ndarray | None = None,
) -> NumericProfile | None:
    """Profile of one numerical array (``None`` when it has no finite value)."""
    finite_mask = np.isfinite(values)
    finite = values[finite_mask]
    if finite.size == 0:
        return None
    rng = rng if rng is not None else np.random.default_rng(0)
    edges = stats.quantile_edges(finite, n_bins) if edges is None else edges
    k = min(sample_size, finite.size)
    sample = np.sort(finite[rng.choice(finite.size, size=k, replace=False)])
    clusters = None
    if cluster_codes is not None:
        codes = cluster_codes[finite_mask]
        clusters = int(np.unique(codes[codes >= 0]).size)
    return NumericProfile(
        count=int(finite.size),
        missing=int(values.size - finite.size),
        min=float(finite.min()),
        max=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std()),
        edges=[float(e) for e in edges],
        counts=stats.bin_counts(finite, edges).tolist(),
        sample=sample.tolist(),
        n_clusters=clusters,
    )


def categorical_profile(
    values: pd.Series, cluster_codes: np.ndarray | None = None
) -> CategoricalProfile:
    """Counts per category (as strings) of one column; missing values counted apart."""
    present = values.notna().to_numpy()
    counts = values[present].astype(str).value_counts(sort=False)
    clusters = None
    if cluster_codes is not None:
        codes = cluster_codes[present]
        clusters = int(np.unique(codes[codes >= 0]).size)
    return CategoricalProfile(
        count=int(present.sum()),
        missing=int((~present).sum()),
        counts={str(k): float(v) for k, v in counts.items()},
        n_clusters=clusters,
    )


def _check_frame(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> None:
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise DataError(SOURCE, "empty frame; expected reference rows to profile")
    if not numeric and not categorical:
        raise EarthOpsError("build_profile: expected at least one numerical or categorical column")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise EarthOpsError(f"build_profile: columns {both} are both numerical and categorical")
    unknown = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if unknown:
        raise DataError(SOURCE, f"unknown column(s) {unknown}; the frame has {list(frame.columns)}")


def _check_aligned(frame: pd.DataFrame, series: pd.Series | None, name: str) -> None:
    if series is not None and len(series) != len(frame):
        raise DataError(
            name, f"{len(series)} values for {len(frame)} rows; expected one value per row"
        )


def _codes(series: pd.Series | None) -> np.ndarray | None:
    return None if series is None else pd.factorize(series, use_na_sentinel=True)[0]


def _numeric_all(
    frame: pd.DataFrame,
    numeric: list[str],
    rng: np.random.Generator,
    *,
    n_bins: int,
    sample_size: int,
    clusters: np.ndarray | None,
) -> dict[str, NumericProfile]:
    out: dict[str, NumericProfile] = {}
    for name in numeric:
        values = _as_float(frame[name].to_numpy(), name)
        profile = numeric_profile(
            values, n_bins=n_bins, sample_size=sample_size, rng=rng, cluster_codes=clusters
        )
        if profile is None:
            raise DataError(SOURCE, "no finite value (all NaN / inf); cannot profile", field=name)
        out[name] = profile
    return out


def _strata(
    frame: pd.DataFrame,
    by: pd.Series,
    numeric: list[str],
    categorical: list[str],
    *,
    shared_edges: dict[str, NumericProfile] | None,
    n_bins: int,
    sample_size: int,
    rng: np.random.Generator,
    clusters: np.ndarray | None,
) -> dict[str, StratumProfile]:
    """Per-stratum profiles; ``shared_edges`` bins every stratum on the whole-set edges."""
    codes, uniques = pd.factorize(by, use_na_sentinel=True)
    out: dict[str, StratumProfile] = {}
    for code, value in enumerate(uniques):
        rows = np.flatnonzero(codes == code)
        part = frame.iloc[rows]
        sub_clusters = None if clusters is None else clusters[rows]
        stratum = StratumProfile(n_rows=int(rows.size))
        for name in numeric:
            edges = None if shared_edges is None else np.asarray(shared_edges[name].edges)
            profile = numeric_profile(
                _as_float(part[name].to_numpy(), name),
                edges=edges,
                n_bins=n_bins,
                sample_size=sample_size,
                rng=rng,
                cluster_codes=sub_clusters,
            )
            if profile is not None:
                stratum.numeric[name] = profile
        for name in categorical:
            stratum.categorical[name] = categorical_profile(part[name], sub_clusters)
        out[stratum_key(value)] = stratum
    return out


def _predictions_profile(
    predictions: pd.Series, *, n_bins: int, sample_size: int, rng: np.random.Generator
) -> tuple[Literal["score", "class"], NumericProfile | CategoricalProfile]:
    if pd.api.types.is_float_dtype(predictions.dtype):
        profile = numeric_profile(
            predictions.to_numpy(np.float64), n_bins=n_bins, sample_size=sample_size, rng=rng
        )
        if profile is None:
            raise DataError("predictions", "no finite score; expected model scores")
        return "score", profile
    return "class", categorical_profile(predictions)


def check_labels(labels: pd.Series, source: str = "labels") -> pd.Series:
    """Labels are classes: a float label must hold integral values (e.g. 0/1)."""
    if pd.api.types.is_float_dtype(labels.dtype):
        finite = labels.dropna().to_numpy()
        if not np.all(np.mod(finite, 1) == 0):
            raise DataError(source, "continuous values; expected class labels (e.g. 0/1 or names)")
        return labels.astype("Int64")
    return labels


def _check_inputs(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    sample_size: int,
    stratum_sample_size: int,
    **aligned: pd.Series | None,
) -> None:
    _check_frame(frame, numeric, categorical)
    for name, series in aligned.items():
        _check_aligned(frame, series, name)
    if sample_size < 2 or stratum_sample_size < 2:
        raise EarthOpsError("build_profile: expected sample sizes of at least 2")


def build_profile(
    frame: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    predictions: pd.Series | None = None,
    labels: pd.Series | None = None,
    groups: pd.Series | None = None,
    season: pd.Series | None = None,
    clusters: pd.Series | None = None,
    n_bins: int = 10,
    sample_size: int = 5000,
    stratum_sample_size: int = 1000,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile ``frame``'s ``numeric`` and ``categorical`` columns (see the module doc).

    ``groups`` / ``season`` / ``clusters`` / ``predictions`` / ``labels`` hold one value per row
    of ``frame`` (positionally). Per-group and per-season subsamples hold at most
    ``stratum_sample_size`` values; ``clusters`` (e.g. site ids) records the number of distinct
    clusters per feature for the ``n_eff="clusters"`` p-values.
    """
    series = {"predictions": predictions, "labels": labels, "groups": groups, "season": season}
    _check_inputs(frame, numeric, categorical, sample_size, stratum_sample_size, **series)
    _check_aligned(frame, clusters, "clusters")
    rng = np.random.default_rng(seed)
    cluster_codes = _codes(clusters)
    whole = _numeric_all(
        frame, numeric, rng, n_bins=n_bins, sample_size=sample_size, clusters=cluster_codes
    )
    cats = {name: categorical_profile(frame[name], cluster_codes) for name in categorical}
    if empty := [name for name, part in cats.items() if part.count == 0]:
        raise DataError(SOURCE, "no value (all missing); cannot profile", field=empty[0])
    profile = ReferenceProfile(
        n_rows=len(frame),
        columns=[str(c) for c in frame.columns],
        numeric=whole,
        categorical=cats,
        n_bins=n_bins,
        sample_size=sample_size,
        seed=seed,
    )
    if predictions is not None:
        profile.predictions_kind, profile.predictions = _predictions_profile(
            predictions, n_bins=n_bins, sample_size=sample_size, rng=rng
        )
    if labels is not None:
        profile.labels = categorical_profile(check_labels(labels))
    strata = {"n_bins": n_bins, "sample_size": stratum_sample_size, "rng": rng}
    if groups is not None:
        profile.groups = _strata(
            frame, groups, numeric, categorical, shared_edges=None, clusters=cluster_codes, **strata
        )
    if season is not None:
        profile.seasons = _strata(
            frame, season, numeric, [], shared_edges=whole, clusters=cluster_codes, **strata
        )
    log.info("reference profile", rows=len(frame), groups=len(profile.groups))
    return profile
