"""Drift and data-quality report of a current window against a :class:`ReferenceProfile`.

Rules as implemented (``DriftConfig`` holds every threshold):

* **Tests.** Numerical features: two-sample KS (statistic and asymptotic p-value, the same
  formula as :func:`earthops.monitoring.stats.ks_2samp`) of the current values against the
  profile's sorted subsample, PSI and Jensen–Shannon distance on the profile's quantile bins,
  Wasserstein-1 normalised by the subsample's standard deviation. Categorical features:
  chi-square test of homogeneity on the category counts, PSI and JS on the category shares.
  The values equal ``monitoring.stats`` on the same subsample; they are computed from one sort
  of each current column, one column at a time (no copy of the frame).
* **Effective sample size.** ``n_eff="none"``: the KS p-value uses ``m·n/(m+n)`` with ``m`` the
  subsample size and ``n`` the current count; chi-square the raw counts. ``n_eff="clusters"``
  (dependent rows: repeat surveys of a site, pixels of a spatial block): each side counts as
  many independent draws as it has distinct cluster ids among its rows with a value (the
  reference's are recorded by ``build_profile(clusters=…)``, capped by the subsample size);
  KS uses ``m'·n'/(m'+n')`` of those and chi-square rescales both count vectors to them.
* **Multiple testing.** The feature p-values form one family: Benjamini–Hochberg adjusted
  p-values (``p_adjusted`` ≥ ``p_value``); a test is *significant* when
  ``p_adjusted <= fdr_alpha`` (exactly the BH discoveries at FDR ``fdr_alpha``). The region
  table is one family over every (region, feature). The single prediction and label tests use
  the raw p-value against ``ks_alpha``.
* **Drift.** ``rule="both"`` (default): a feature drifts when it is significant AND its PSI
  exceeds ``psi_threshold`` (statistically real and large enough to matter); ``rule="either"``:
  significant OR PSI above the threshold. Dataset drift: the share of drifted features among the
  tested ones is greater than ``drift_share``.
* **Data quality** (per feature): a missing column (schema); unexpected extra columns; fill
  values (``fill_values``, when outside the reference range) — excluded from the statistics;
  out-of-range values (beyond the reference min/max by more than ``range_margin`` of the range)
  or unseen categories in more than ``max_out_of_range_share`` of the rows; a missing rate above
  the reference's by more than ``missing_tolerance``. A feature with any of these raises a
  ``"data_quality"`` alert, otherwise a drifted feature raises a ``"shift"`` alert.
* **Seasons.** With ``season`` and a profile built with ``season``, each numerical feature is
  compared with the reference months present in the current window, pooled with the current
  window's month shares as weights (a window of July–September meets July–September of the
  reference), so a change of season alone is not drift.
* **Status** (exit code): 2 with any data-quality alert, else 1 with dataset drift, prediction
  drift or label shift, else 0.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, computed_field
from scipy import stats as sps

from earthops.errors import DataError, EarthOpsError
from earthops.logs import get_logger
from earthops.monitoring import stats
from earthops.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    check_labels,
    stratum_key,
)

log = get_logger(__name__)

SOURCE = "current frame"
Kind = Literal["numeric", "categorical"]
AlertCategory = Literal["data_quality", "shift"]


class DriftConfig(BaseModel):
    """Thresholds of :func:`drift_report` (see the module doc for the rules)."""

    psi_threshold: float = Field(0.2, gt=0)
    ks_alpha: float = Field(0.05, gt=0, lt=1)
    fdr_alpha: float = Field(0.05, gt=0, lt=1)
    drift_share: float = Field(0.3, ge=0, lt=1)
    rule: Literal["both", "either"] = "both"
    n_eff: Literal["none", "clusters"] = "none"
    fill_values: list[float] = [-9999.0, 9999.0, 32767.0]
    range_margin: float = Field(0.1, ge=0)
    max_out_of_range_share: float = Field(0.01, ge=0, lt=1)
    missing_tolerance: float = Field(0.1, ge=0, le=1)
    allow_extra_columns: bool = False


class FeatureDrift(BaseModel):
    """One feature's tests, data-quality counts and verdict."""

    feature: str
    kind: Kind
    n_ref: int = 0
    n_cur: int = 0
    statistic: float | None = Field(None, description="KS D (numeric) or chi-square")
    p_value: float | None = None
    p_adjusted: float | None = None
    n_eff: float | None = None
    psi: float | None = None
    js: float | None = None
    wasserstein: float | None = None
    missing_ref: float = 0.0
    missing_cur: float = 0.0
    fill_count: int = 0
    out_of_range: int = 0
    unseen: list[str] = []
    issues: list[str] = []
    drifted: bool = False
    alert: AlertCategory | None = None


class QualityIssue(BaseModel):
    feature: str
    kind: Literal[
        "missing_column",
        "extra_column",
        "fill_values",
        "out_of_range",
        "unseen_category",
        "missing_rate",
    ]
    count: int = 0
    share: float = 0.0
    detail: str


class Alert(BaseModel):
    feature: str
    category: AlertCategory
    reason: str


class DistributionShift(BaseModel):
    """Prediction drift (scores or classes) or label shift (class shares)."""

    kind: Literal["score", "class"]
    n_ref: int
    n_cur: int
    statistic: float | None
    p_value: float | None
    psi: float | None
    js: float | None
    ref_shares: dict[str, float] = {}
    cur_shares: dict[str, float] = {}
    drifted: bool


class RegionRow(BaseModel):
    region: str
    feature: str
    kind: Kind
    n_ref: int
    n_cur: int
    statistic: float
    p_value: float
    p_adjusted: float = 1.0
    psi: float
    js: float
    wasserstein: float | None = None
    drifted: bool = False


class DriftReport(BaseModel):
    """The report: per-feature rows, dataset verdict, quality issues, alerts, region table."""

    config: DriftConfig
    n_rows: int
    reference: Literal["whole-year", "seasonal"] = "whole-year"
    season_months: list[str] = []
    features: list[FeatureDrift]
    n_tested: int
    n_drifted: int
    drifted_share: float
    dataset_drift: bool
    predictions: DistributionShift | None = None
    labels: DistributionShift | None = None
    regions: list[RegionRow] = []
    quality: list[QualityIssue] = []
    alerts: list[Alert] = []
    notes: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> int:
        """0 no drift, 1 drift, 2 data-quality problem (the CLI's exit code)."""
        if any(a.category == "data_quality" for a in self.alerts):
            return 2
        shifted = [s.drifted for s in (self.predictions, self.labels) if s is not None]
        return 1 if self.dataset_drift or any(shifted) else 0

    def feature(self, name: str) -> FeatureDrift:
        for row in self.features:
            if row.feature == name:
                return row
        raise EarthOpsError(f"no feature {name!r} in the report")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> DriftReport:
        data = json.loads(text)
        data.pop("status", None)
        return cls.model_validate(data)

    def to_frame(
        self, table: Literal["features", "regions", "quality", "alerts"] = "features"
    ) -> pd.DataFrame:
        rows = getattr(self, table)
        fields = {
            "features": FeatureDrift,
            "regions": RegionRow,
            "quality": QualityIssue,
            "alerts": Alert,
        }[table].model_fields
        return pd.DataFrame([r.model_dump() for r in rows], columns=list(fields))

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (inline CSS, no external assets)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(self), encoding="utf-8")
        return path


# ------------------------------------------------------------------------------ statistics
def bh_adjust(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: ``q <= alpha`` ⇔ a BH discovery at ``alpha``."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def ks_statistic(ref: np.ndarray, cur: np.ndarray) -> float:
    """KS D of two sorted finite samples, evaluated at the reference points only.

    Between two reference points the reference CDF is flat and the current one rises, so the
    largest gap is at a reference point or just left of one: searching the sorted current
    sample for the ``m`` reference points gives stats.ks_2samp's D without scanning ``n``."""
    m, n = ref.size, cur.size
    ref_le = np.searchsorted(ref, ref, side="right") / m
    ref_lt = np.searchsorted(ref, ref, side="left") / m
    cur_le = np.searchsorted(cur, ref, side="right") / n
    cur_lt = np.searchsorted(cur, ref, side="left") / n
    return float(max(np.max(np.abs(ref_le - cur_le)), np.max(np.abs(ref_lt - cur_lt))))


def wasserstein_sorted(ref: np.ndarray, cur: np.ndarray) -> float:
    """Wasserstein-1 of two sorted samples normalised by ``std(ref)`` (stats.wasserstein):
    ``∫|F_ref − F_cur|`` over the merged grid, built by inserting the ``m`` reference points
    into the sorted current sample (one linear pass, no second sort)."""
    at = np.searchsorted(cur, ref, side="right")
    grid = np.insert(cur, at, ref)
    from_ref = np.zeros(grid.size, dtype=bool)
    from_ref[at + np.arange(ref.size)] = True
    cum_ref = np.cumsum(from_ref[:-1])
    cum_cur = np.arange(1, grid.size) - cum_ref
    gap = np.abs(cum_ref / ref.size - cum_cur / cur.size)
    distance = float(np.dot(gap, np.diff(grid)))
    scale = float(np.std(ref))
    return distance / scale if scale > 0 else distance


def ks_pvalue(statistic: float, m: float, n: float) -> float:
    """Asymptotic two-sided KS p-value on ``m·n/(m+n)`` (stats.ks_2samp's formula)."""
    m, n = sorted((float(m), float(n)), reverse=True)
    effective = max(m * n / (m + n), 1.0)
    return float(np.clip(sps.kstwo.sf(statistic, np.round(effective)), 0.0, 1.0))


def sorted_bin_counts(cur: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """stats.bin_counts of a sorted sample, from ``len(edges)`` binary searches."""
    cumulative = np.searchsorted(cur, edges, side="right")
    return np.diff(np.concatenate([[0], cumulative, [cur.size]])).astype(np.float64)


@dataclass
class _Reference:
    """What one numerical comparison needs of the reference (whole-year, seasonal, group)."""

    sample: np.ndarray
    counts: np.ndarray
    edges: np.ndarray
    n_eff: float


def compare_numeric(ref: _Reference, cur: np.ndarray, cur_eff: float | None) -> dict:
    """KS, PSI, JS and Wasserstein of the sorted ``cur`` against ``ref``."""
    d = ks_statistic(ref.sample, cur)
    n = float(cur.size) if cur_eff is None else min(float(cur.size), cur_eff)
    counts = sorted_bin_counts(cur, ref.edges)
    return {
        "statistic": d,
        "p_value": ks_pvalue(d, ref.n_eff, n),
        "n_eff": _harmonic(ref.n_eff, n),
        "psi": stats.psi(ref.counts, counts),
        "js": stats.jensen_shannon(ref.counts, counts),
        "wasserstein": wasserstein_sorted(ref.sample, cur),
    }


def compare_categorical(
    ref: CategoricalProfile, cur: pd.Series, *, use_clusters: bool, cur_clusters: int | None
) -> tuple[dict, list[str], int]:
    """Chi-square, PSI and JS of the category counts; also the unseen categories and rows."""
    present = cur[cur.notna()].astype(str).value_counts(sort=False)
    names = list(ref.counts) + [k for k in present.index if k not in ref.counts]
    rc = np.array([ref.counts.get(k, 0.0) for k in names])
    cc = present.reindex(names, fill_value=0).to_numpy(np.float64)
    unseen = [k for k in present.index if k not in ref.counts]
    if cc.sum() == 0:
        return {}, unseen, 0
    ref_n, cur_n = float(rc.sum()), float(cc.sum())
    if use_clusters:  # each side counts as many draws as it has clusters
        ref_n, cur_n = min(ref_n, ref.n_clusters or ref_n), min(cur_n, cur_clusters or cur_n)
        rc_test, cc_test = rc / rc.sum() * ref_n, cc / cc.sum() * cur_n
    else:
        rc_test, cc_test = rc, cc
    if ((rc > 0) | (cc > 0)).sum() < 2:  # one category on both sides: identical
        chi, p = 0.0, 1.0
    else:
        chi, p = stats.chi_square(rc_test, cc_test)
    out = {
        "statistic": chi,
        "p_value": p,
        "n_eff": _harmonic(ref_n, cur_n),
        "psi": stats.psi(rc, cc),
        "js": stats.jensen_shannon(rc, cc),
    }
    return out, unseen, int(present[unseen].sum()) if unseen else 0


def _harmonic(m: float, n: float) -> float:
    return float(m * n / (m + n)) if m + n > 0 else 0.0


# ------------------------------------------------------------------------------ current columns
@dataclass
class _Column:
    """One current numerical column: its sorted finite non-fill values and the counts."""

    values: np.ndarray
    keep: np.ndarray
    missing: int
    fills: int


@dataclass
class _Context:
    profile: ReferenceProfile
    config: DriftConfig
    clusters: np.ndarray | None
    weights: dict[str, float] | None = None

    @property
    def use_clusters(self) -> bool:
        return self.config.n_eff == "clusters"


def _values(frame: pd.DataFrame | pd.Series, name: str) -> np.ndarray:
    """A column as float64 (a view when it already is: no copy of the frame)."""
    series = frame if isinstance(frame, pd.Series) else frame[name]
    try:
        return series.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(SOURCE, "expected a numerical column", field=name) from None


def _prepare(column: np.ndarray, fills: list[float], *, mask: bool = False) -> _Column:
    """Sort the finite values once; fill values are counted and cut from the sorted run (they
    are contiguous there), so the whole column is scanned only for ``isfinite``. ``keep``
    excludes the fill rows only when ``mask`` (clusters need it)."""
    keep = np.isfinite(column)
    missing = int(column.size - np.count_nonzero(keep))
    values = column[keep]
    values.sort()
    runs = [
        (
            int(np.searchsorted(values, f, side="left")),
            int(np.searchsorted(values, f, side="right")),
        )
        for f in sorted(set(fills))
    ]
    runs = [(a, b) for a, b in runs if b > a]
    n_fill = sum(b - a for a, b in runs)
    if runs:
        cuts = [0, *(i for run in runs for i in run), values.size]
        values = np.concatenate([values[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=True)])
        if mask:
            keep &= ~np.isin(column, [values.dtype.type(f) for f in fills])
    return _Column(values, keep, missing, n_fill)


def _n_clusters(codes: np.ndarray | None, keep: np.ndarray) -> int | None:
    """Distinct cluster ids among the rows kept (``None`` without clusters)."""
    if codes is None:
        return None
    kept = codes[keep]
    kept = kept[kept >= 0]
    return int(np.count_nonzero(np.bincount(kept))) if kept.size else 0


def _range(ref: NumericProfile, margin: float) -> tuple[float, float]:
    pad = margin * (ref.max - ref.min) if ref.max > ref.min else margin * max(abs(ref.max), 1.0)
    return ref.min - pad, ref.max + pad


def _codes(series: pd.Series | None) -> np.ndarray | None:
    return None if series is None else pd.factorize(series, use_na_sentinel=True)[0]


# ------------------------------------------------------------------------------ references
def _whole_reference(ref: NumericProfile, use_clusters: bool) -> _Reference:
    sample = np.asarray(ref.sample, dtype=np.float64)
    m = float(sample.size)
    if use_clusters and ref.n_clusters:
        m = min(m, float(ref.n_clusters))
    return _Reference(sample, np.asarray(ref.counts), np.asarray(ref.edges), m)


def _seasonal_reference(ctx: _Context, name: str) -> _Reference:
    """The reference months of the current window pooled with the current month shares.

    Each month contributes evenly spaced order statistics of its sorted subsample in
    proportion to its weight (never more than it holds), and its bin shares likewise."""
    whole = ctx.profile.numeric[name]
    parts = [
        (ctx.profile.seasons[key].numeric[name], weight)
        for key, weight in (ctx.weights or {}).items()
        if name in ctx.profile.seasons[key].numeric
    ]
    if not parts:
        raise DataError(SOURCE, "no reference values in the current window's seasons", field=name)
    total = sum(weight for _, weight in parts)
    size = min(len(p.sample) / (w / total) for p, w in parts)
    size = min(size, sum(len(p.sample) for p, _ in parts))
    picks, shares = [], np.zeros(len(whole.counts))
    for part, weight in parts:
        sample, share = np.asarray(part.sample), weight / total
        k = int(min(max(round(share * size), 1), sample.size))
        picks.append(sample[((np.arange(k) + 0.5) * sample.size / k).astype(int)])
        counts = np.asarray(part.counts)
        shares += share * counts / counts.sum()
    pooled = np.sort(np.concatenate(picks))
    m = float(pooled.size)
    if ctx.use_clusters and whole.n_clusters:
        m = min(m, float(whole.n_clusters))
    return _Reference(pooled, shares, np.asarray(whole.edges), m)


def _season_weights(
    profile: ReferenceProfile, season: pd.Series
) -> tuple[dict[str, float], list[str]]:
    """Share of the current rows in each season the reference knows (and a note on the rest)."""
    if not profile.seasons:
        raise EarthOpsError(
            "season given but the reference profile has no seasonal references; "
            "expected a profile built with build_profile(season=…)"
        )
    counts = season.dropna().map(stratum_key).value_counts()
    if counts.empty:
        raise DataError("season", "no season value; expected e.g. a month 1..12 per row")
    known = counts[counts.index.isin(list(profile.seasons))]
    notes = []
    unknown = sorted(set(counts.index) - set(known.index))
    if unknown:
        notes.append(f"seasons {unknown} are not in the reference; compared with the others")
    if known.empty:
        raise DataError("season", f"seasons {unknown}: none in the reference profile")
    return {str(k): float(v / known.sum()) for k, v in known.items()}, notes


# ------------------------------------------------------------------------------ feature rows
def _numeric_row(name: str, column: np.ndarray, ctx: _Context) -> FeatureDrift:
    """Tests and data-quality counts of one numerical feature."""
    ref, cfg = ctx.profile.numeric[name], ctx.config
    lo, hi = _range(ref, cfg.range_margin)
    fills = [f for f in cfg.fill_values if not lo <= f <= hi]
    prepared = _prepare(column, fills, mask=ctx.use_clusters)
    values = prepared.values
    reference = (
        _seasonal_reference(ctx, name) if ctx.weights else _whole_reference(ref, ctx.use_clusters)
    )
    row = FeatureDrift(
        feature=name,
        kind="numeric",
        n_ref=int(reference.sample.size),
        n_cur=int(values.size),
        missing_ref=ref.missing_rate,
        missing_cur=prepared.missing / max(column.size, 1),
        fill_count=prepared.fills,
        out_of_range=int(
            np.searchsorted(values, lo, side="left")
            + values.size
            - np.searchsorted(values, hi, side="right")
        ),
    )
    if values.size:
        cur_eff = _n_clusters(ctx.clusters, prepared.keep) if ctx.use_clusters else None
        row = row.model_copy(update=compare_numeric(reference, values, cur_eff))
    return row


def _categorical_row(name: str, series: pd.Series, ctx: _Context) -> FeatureDrift:
    """Tests and data-quality counts of one categorical feature."""
    ref = ctx.profile.categorical[name]
    present = series.notna().to_numpy()
    cur_clusters = _n_clusters(ctx.clusters, present)
    tests, unseen, n_unseen = compare_categorical(
        ref, series, use_clusters=ctx.use_clusters, cur_clusters=cur_clusters
    )
    return FeatureDrift(
        feature=name,
        kind="categorical",
        n_ref=ref.count,
        n_cur=int(present.sum()),
        missing_ref=ref.missing_rate,
        missing_cur=float((~present).mean()) if present.size else 0.0,
        out_of_range=n_unseen,
        unseen=unseen,
        **tests,
    )


def _quality(row: FeatureDrift, cfg: DriftConfig) -> list[QualityIssue]:
    """The data-quality issues of one feature row (also recorded in ``row.issues``)."""
    issues: list[QualityIssue] = []
    name, seen = row.feature, max(row.n_cur, 1)
    if row.fill_count:
        issues.append(
            QualityIssue(
                feature=name,
                kind="fill_values",
                count=row.fill_count,
                share=row.fill_count / (row.fill_count + seen),
                detail=f"fill values {cfg.fill_values} (outside the reference range)",
            )
        )
    if row.out_of_range / seen > cfg.max_out_of_range_share:
        kind = "out_of_range" if row.kind == "numeric" else "unseen_category"
        what = (
            f"beyond the reference min/max by > {cfg.range_margin:g} of its range"
            if row.kind == "numeric"
            else f"categories never seen: {row.unseen[:10]}"
        )
        issues.append(
            QualityIssue(
                feature=name,
                kind=kind,
                count=row.out_of_range,
                share=row.out_of_range / seen,
                detail=what,
            )
        )
    if row.missing_cur > row.missing_ref + cfg.missing_tolerance or row.n_cur == 0:
        issues.append(
            QualityIssue(
                feature=name,
                kind="missing_rate",
                share=row.missing_cur,
                detail=f"missing rate {row.missing_cur:.3f}, reference {row.missing_ref:.3f}",
            )
        )
    row.issues = [i.kind for i in issues]
    return issues


def _drifts(significant: bool, psi: float | None, cfg: DriftConfig) -> bool:
    large = psi is not None and psi > cfg.psi_threshold
    return (significant and large) if cfg.rule == "both" else (significant or large)


def _decide(rows: list, cfg: DriftConfig) -> None:
    """One Benjamini–Hochberg family over ``rows``' p-values; set p_adjusted and drifted."""
    tested = [r for r in rows if r.p_value is not None]
    adjusted = bh_adjust(np.array([r.p_value for r in tested]))
    for row, q in zip(tested, adjusted, strict=True):
        row.p_adjusted = float(q)
        row.drifted = _drifts(bool(q <= cfg.fdr_alpha), row.psi, cfg)


# ------------------------------------------------------------------------------ predictions, labels
def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def _distribution_shift(
    ref: NumericProfile | CategoricalProfile, series: pd.Series, ctx: _Context, name: str
) -> DistributionShift:
    """Prediction drift (score distribution or class counts) or label shift (class shares)."""
    cfg = ctx.config
    if isinstance(ref, NumericProfile):
        prepared = _prepare(_values(series, name), [], mask=ctx.use_clusters)
        if prepared.values.size == 0:
            raise DataError(name, "no finite value; expected model scores")
        cur_eff = _n_clusters(ctx.clusters, prepared.keep) if ctx.use_clusters else None
        tests = compare_numeric(_whole_reference(ref, ctx.use_clusters), prepared.values, cur_eff)
        kind, ref_shares, cur_shares, n_cur = "score", {}, {}, int(prepared.values.size)
    else:
        cur_clusters = _n_clusters(ctx.clusters, series.notna().to_numpy())
        tests, _, _ = compare_categorical(
            ref, series, use_clusters=ctx.use_clusters, cur_clusters=cur_clusters
        )
        if not tests:
            raise DataError(name, "no value; expected classes")
        counts = series.dropna().astype(str).value_counts()
        kind, n_cur = "class", int(counts.sum())
        ref_shares, cur_shares = ref.shares, _shares({str(k): float(v) for k, v in counts.items()})
    return DistributionShift(
        kind=kind,
        n_ref=ref.count,
        n_cur=n_cur,
        statistic=tests["statistic"],
        p_value=tests["p_value"],
        psi=tests["psi"],
        js=tests["js"],
        ref_shares=ref_shares,
        cur_shares=cur_shares,
        drifted=_drifts(tests["p_value"] < cfg.ks_alpha, tests["psi"], cfg),
    )


# ------------------------------------------------------------------------------ regions
@dataclass
class _Groups:
    """Current rows ordered by group once; ``segment(key)`` gives a group's positions."""

    order: np.ndarray
    bounds: np.ndarray
    keys: list[str]

    @classmethod
    def of(cls, groups: pd.Series) -> _Groups:
        codes, uniques = pd.factorize(groups, use_na_sentinel=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        return cls(order, bounds, [stratum_key(u) for u in uniques])

    def segments(self) -> list[tuple[str, slice]]:
        return [
            (key, slice(int(self.bounds[i]), int(self.bounds[i + 1])))
            for i, key in enumerate(self.keys)
        ]


def _numeric_regions(
    name: str, column: np.ndarray, groups: _Groups, ctx: _Context
) -> list[RegionRow]:
    ordered = column[groups.order]
    clusters = None if ctx.clusters is None else ctx.clusters[groups.order]
    lo, hi = _range(ctx.profile.numeric[name], ctx.config.range_margin)
    fills = [f for f in ctx.config.fill_values if not lo <= f <= hi]
    rows = []
    for key, part in groups.segments():
        stratum = ctx.profile.groups.get(key)
        if stratum is None or name not in stratum.numeric:
            continue
        prepared = _prepare(ordered[part], fills, mask=ctx.use_clusters)
        if prepared.values.size == 0:
            continue
        cur_eff = None
        if ctx.use_clusters and clusters is not None:
            cur_eff = _n_clusters(clusters[part], prepared.keep)
        reference = _whole_reference(stratum.numeric[name], ctx.use_clusters)
        tests = compare_numeric(reference, prepared.values, cur_eff)
        tests.pop("n_eff")
        rows.append(
            RegionRow(
                region=key,
                feature=name,
                kind="numeric",
                n_ref=int(reference.sample.size),
                n_cur=int(prepared.values.size),
                **tests,
            )
        )
    return rows


def _categorical_regions(
    name: str, series: pd.Series, groups: _Groups, ctx: _Context
) -> list[RegionRow]:
    ordered = series.iloc[groups.order]
    clusters = None if ctx.clusters is None else ctx.clusters[groups.order]
    rows = []
    for key, part in groups.segments():
        stratum = ctx.profile.groups.get(key)
        if stratum is None or name not in stratum.categorical:
            continue
        values = ordered.iloc[part]
        present = values.notna().to_numpy()
        cur_clusters = None if clusters is None else _n_clusters(clusters[part], present)
        ref = stratum.categorical[name]
        tests, _, _ = compare_categorical(
            ref, values, use_clusters=ctx.use_clusters, cur_clusters=cur_clusters
        )
        if tests and ref.count:
            tests.pop("n_eff")
            rows.append(
                RegionRow(
                    region=key,
                    feature=name,
                    kind="categorical",
                    n_ref=ref.count,
                    n_cur=int(present.sum()),
                    **tests,
                )
            )
    return rows


def _regions(
    frame: pd.DataFrame, groups: pd.Series, ctx: _Context
) -> tuple[list[RegionRow], list[str]]:
    """Every (region, feature) test, one BH family over all of them."""
    if not ctx.profile.groups:
        raise EarthOpsError(
            "groups given but the reference profile has no per-group profiles; "
            "expected a profile built with build_profile(groups=…)"
        )
    by = _Groups.of(groups)
    notes = []
    unknown = sorted(set(by.keys) - set(ctx.profile.groups))
    if unknown:
        notes.append(f"groups {unknown[:10]} are not in the reference profile; not tested")
    rows: list[RegionRow] = []
    for name in ctx.profile.numeric:
        if name in frame.columns:
            rows += _numeric_regions(name, _values(frame, name), by, ctx)
    for name in ctx.profile.categorical:
        if name in frame.columns:
            rows += _categorical_regions(name, frame[name], by, ctx)
    _decide(rows, ctx.config)
    return rows, notes


# ------------------------------------------------------------------------------ the report
def _check_current(
    current: pd.DataFrame, config: DriftConfig, aligned: dict[str, pd.Series | None]
) -> None:
    if not isinstance(current, pd.DataFrame) or current.empty:
        raise DataError(SOURCE, "empty frame; expected current rows to compare")
    for name, series in aligned.items():
        if series is not None and len(series) != len(current):
            raise DataError(
                name, f"{len(series)} values for {len(current)} rows; expected one per row"
            )
    if config.n_eff == "clusters" and aligned.get("clusters") is None:
        raise EarthOpsError("n_eff='clusters' needs clusters= (e.g. site ids, spatial blocks)")


def _schema(
    profile: ReferenceProfile, current: pd.DataFrame, cfg: DriftConfig
) -> tuple[list[FeatureDrift], list[QualityIssue]]:
    rows, issues = [], []
    for kind, features in (("numeric", profile.numeric), ("categorical", profile.categorical)):
        for name in features:
            if name not in current.columns:
                rows.append(FeatureDrift(feature=name, kind=kind, issues=["missing_column"]))
                issues.append(
                    QualityIssue(
                        feature=name,
                        kind="missing_column",
                        detail="column missing from the current data",
                    )
                )
    if not cfg.allow_extra_columns:
        known = set(profile.columns)
        for name in (str(c) for c in current.columns if str(c) not in known):
            issues.append(
                QualityIssue(
                    feature=name, kind="extra_column", detail="column not in the reference schema"
                )
            )
    return rows, issues


def _alerts(rows: list[FeatureDrift], issues: list[QualityIssue], shifts: dict) -> list[Alert]:
    alerts = []
    for row in rows:
        if row.issues:
            row.alert = "data_quality"
            alerts.append(
                Alert(feature=row.feature, category="data_quality", reason=", ".join(row.issues))
            )
        elif row.drifted:
            row.alert = "shift"
            reason = f"p_adjusted={row.p_adjusted:.3g}, PSI={row.psi:.3f}"
            alerts.append(Alert(feature=row.feature, category="shift", reason=reason))
    for issue in issues:
        if issue.kind == "extra_column":
            alerts.append(Alert(feature=issue.feature, category="data_quality", reason=issue.kind))
    for name, shift in shifts.items():
        if shift is not None and shift.drifted:
            reason = f"p={shift.p_value:.3g}, PSI={shift.psi:.3f}"
            alerts.append(Alert(feature=name, category="shift", reason=reason))
    return alerts


def _feature_rows(
    current: pd.DataFrame, ctx: _Context
) -> tuple[list[FeatureDrift], list[QualityIssue]]:
    """Schema, per-feature tests and quality issues, and the one BH family of the features."""
    profile, cfg = ctx.profile, ctx.config
    rows, issues = _schema(profile, current, cfg)
    for name in profile.numeric:
        if name in current.columns:
            rows.append(_numeric_row(name, _values(current, name), ctx))
    for name in profile.categorical:
        if name in current.columns:
            rows.append(_categorical_row(name, current[name], ctx))
    for row in rows:
        if "missing_column" not in row.issues:
            issues += _quality(row, cfg)
    _decide(rows, cfg)
    return rows, issues


def _shift_of(
    ref: NumericProfile | CategoricalProfile | None,
    series: pd.Series | None,
    ctx: _Context,
    name: str,
) -> DistributionShift | None:
    if series is None:
        return None
    if ref is None:
        raise EarthOpsError(
            f"{name} given but the reference profile has none; rebuild it with them"
        )
    if name == "labels":
        series = check_labels(series)
    return _distribution_shift(ref, series, ctx, name)


def _assemble(
    n_rows: int,
    ctx: _Context,
    rows: list[FeatureDrift],
    issues: list[QualityIssue],
    shifts: dict[str, DistributionShift | None],
    regions: list[RegionRow],
    notes: list[str],
) -> DriftReport:
    """The dataset verdict (share of drifted features) and the report."""
    cfg = ctx.config
    tested = [r for r in rows if r.p_value is not None]
    n_drifted = sum(r.drifted for r in tested)
    share = n_drifted / len(tested) if tested else 0.0
    report = DriftReport(
        config=cfg,
        n_rows=n_rows,
        reference="seasonal" if ctx.weights else "whole-year",
        season_months=sorted(ctx.weights or {}, key=_natural),
        features=rows,
        n_tested=len(tested),
        n_drifted=n_drifted,
        drifted_share=share,
        dataset_drift=bool(tested) and share > cfg.drift_share,
        predictions=shifts["predictions"],
        labels=shifts["labels"],
        regions=regions,
        quality=issues,
        alerts=_alerts(rows, issues, shifts),
        notes=notes,
    )
    return report


def drift_report(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    *,
    config: DriftConfig | None = None,
    predictions: pd.Series | None = None,
    labels: pd.Series | None = None,
    groups: pd.Series | None = None,
    clusters: pd.Series | None = None,
    season: pd.Series | None = None,
) -> DriftReport:
    """Drift and data quality of ``current`` against ``profile`` (rules: the module doc).

    The series hold one value per row of ``current`` (positionally): model ``predictions``,
    ``labels``, ``groups`` (e.g. region: the per-region table), ``clusters`` (e.g. site ids,
    for ``n_eff="clusters"``), ``season`` (e.g. month: the seasonal reference)."""
    cfg = config or DriftConfig()
    aligned = {
        "predictions": predictions,
        "labels": labels,
        "groups": groups,
        "clusters": clusters,
        "season": season,
    }
    _check_current(current, cfg, aligned)
    ctx = _Context(profile, cfg, _codes(clusters))
    notes: list[str] = []
    if season is not None:
        ctx.weights, season_notes = _season_weights(profile, season)
        notes += season_notes
    rows, issues = _feature_rows(current, ctx)
    shifts = {
        "predictions": _shift_of(profile.predictions, predictions, ctx, "predictions"),
        "labels": _shift_of(profile.labels, labels, ctx, "labels"),
    }
    regions: list[RegionRow] = []
    if groups is not None:
        regions, group_notes = _regions(current, groups, ctx)
        notes += group_notes
    report = _assemble(len(current), ctx, rows, issues, shifts, regions, notes)
    log.info("drift report", rows=len(current), drifted=report.n_drifted, status=report.status)
    return report


def _natural(key: str) -> tuple[int, float | str]:
    try:
        return 0, float(key)
    except ValueError:
        return 1, key


# ------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f2f2f2;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.shift td{background:#fff3cd}tr.data_quality td{background:#f8d7da}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.s0{background:#2e7d32}.s1{background:#e69500}.s2{background:#c62828}
"""
_STATUS = {0: "no drift", 1: "drift", 2: "data-quality problem"}
_MAX_HTML_ROWS = 5000


def _cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else ''}</td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return f"<td>{html.escape(str(value))}</td>"


def _table(frame: pd.DataFrame, row_class: pd.Series | None = None) -> str:
    if frame.empty:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, record in enumerate(frame.head(_MAX_HTML_ROWS).itertuples(index=False)):
        css = row_class.iloc[i] if row_class is not None else None
        attr = f' class="{html.escape(str(css))}"' if isinstance(css, str) else ""
        body.append(f"<tr{attr}>" + "".join(_cell(v) for v in record) + "</tr>")
    more = len(frame) - _MAX_HTML_ROWS
    tail = f"<p>… {more} more rows in the JSON report</p>" if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{tail}"


def _shift_table(report: DriftReport) -> pd.DataFrame:
    rows = [
        {"target": name, **shift.model_dump(exclude={"ref_shares", "cur_shares"})}
        for name, shift in (("predictions", report.predictions), ("labels", report.labels))
        if shift is not None
    ]
    return pd.DataFrame(rows)


def render_html(report: DriftReport) -> str:
    """The report as one self-contained HTML page."""
    features = report.to_frame("features").drop(columns=["unseen"])
    regions = report.to_frame("regions")
    summary = (
        f'<p><span class="badge s{report.status}">status {report.status}: '
        f"{_STATUS[report.status]}</span></p><p>{report.n_rows} current rows; reference "
        f"{html.escape(report.reference)}"
        + (f" (seasons {', '.join(report.season_months)})" if report.season_months else "")
        + f"; {report.n_drifted} of {report.n_tested} features drifted "
        f"({report.drifted_share:.0%}; dataset drift above {report.config.drift_share:.0%}): "
        f"<b>{'dataset drift' if report.dataset_drift else 'no dataset drift'}</b>. Rule: "
        f"{html.escape(report.config.rule)} of BH-adjusted p ≤ {report.config.fdr_alpha:g} "
        f"and PSI &gt; {report.config.psi_threshold:g}.</p>"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Drift report</title>",
        f"<style>{_CSS}</style></head><body><h1>Drift report</h1>{summary}",
        f"<ul>{notes}</ul>" if notes else "",
        "<h2>Alerts</h2>",
        _table(report.to_frame("alerts")),
        "<h2>Features</h2>",
        _table(features, features["alert"]),
        "<h2>Data quality</h2>",
        _table(report.to_frame("quality")),
        "<h2>Predictions and labels</h2>",
        _table(_shift_table(report)),
    ]
    if not regions.empty:
        css = regions["drifted"].map({True: "shift", False: None})
        parts += ["<h2>Regions</h2>", _table(regions, css)]
    return "".join(parts) + "</body></html>"
