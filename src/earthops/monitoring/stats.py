"""Two-sample drift statistics on numpy arrays, each equal to scipy's on the same data.

Numerical features: two-sample Kolmogorov–Smirnov (statistic and asymptotic p-value),
population stability index (PSI) on the reference's quantile bins, Jensen–Shannon distance of
the binned distributions and the Wasserstein-1 distance (normalised by the reference's
standard deviation). Categorical features: chi-square test of homogeneity, PSI and JS on the
category shares. :func:`benjamini_hochberg` controls the false-discovery rate over many tests.

Spatial and repeat-survey samples are not independent: every p-value here takes an optional
effective sample size (``n_eff``) that replaces the count of rows in the test's null
distribution, so that a caller who knows the autocorrelation (or runs a block bootstrap)
does not report thousands of neighbouring pixels as thousands of independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from earthops.errors import EarthOpsError

#: added to empty bins before PSI / JS so that a bin seen on one side only stays finite
EPS = 1e-6


@dataclass(frozen=True)
class KSResult:
    """Two-sample KS: the largest gap between the empirical CDFs and its p-value."""

    statistic: float
    pvalue: float


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise EarthOpsError(f"{name}: no finite values (empty, or all NaN / inf)")
    return array


def _sorted_pair(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sort(_finite(reference, "reference")), np.sort(_finite(current, "current"))


def _cdf_gap(ref: np.ndarray, cur: np.ndarray, at: np.ndarray) -> np.ndarray:
    """|F_ref − F_cur| of the two sorted samples' empirical CDFs at the points ``at``."""
    cdf_ref = np.searchsorted(ref, at, side="right") / ref.size
    cdf_cur = np.searchsorted(cur, at, side="right") / cur.size
    return np.abs(cdf_ref - cdf_cur)


def ks_2samp(reference: np.ndarray, current: np.ndarray, *, n_eff: float | None = None) -> KSResult:
    """Two-sided two-sample KS; the p-value is scipy's asymptotic one (``method='asymp'``),
    on ``n_eff`` instead of ``m·n/(m+n)`` when given. NaN/inf values are dropped."""
    ref, cur = _sorted_pair(reference, current)
    statistic = float(np.max(_cdf_gap(ref, cur, np.concatenate([ref, cur]))))
    m, n = sorted((float(ref.size), float(cur.size)), reverse=True)
    effective = m * n / (m + n) if n_eff is None else float(n_eff)
    if effective < 1:
        raise EarthOpsError(f"n_eff: expected an effective sample size >= 1, got {effective}")
    pvalue = float(np.clip(stats.kstwo.sf(statistic, np.round(effective)), 0.0, 1.0))
    return KSResult(statistic, pvalue)


def quantile_edges(reference: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (ties merged), for :func:`bin_counts`."""
    if n_bins < 2:
        raise EarthOpsError(f"n_bins: expected at least 2 bins, got {n_bins}")
    ref = _finite(reference, "reference")
    inner = np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(inner)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` in the bins ``(-inf, e0], (e0, e1], …, (e_last, inf)``."""
    finite = _finite(values, "values")
    index = np.searchsorted(edges, finite, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.float64)


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise EarthOpsError("counts: expected at least one counted value")
    return np.maximum(counts / total, EPS)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index ``Σ (c − r) · ln(c / r)`` over the shares of common bins."""
    ref, cur = _shares(reference_counts), _shares(current_counts)
    _same_bins(ref, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensen_shannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log; scipy's ``jensenshannon``) of two binnings."""
    ref, cur = _shares(reference_counts), _shares(current_counts)
    _same_bins(ref, cur)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    mid = (ref + cur) / 2
    divergence = (np.sum(ref * np.log(ref / mid)) + np.sum(cur * np.log(cur / mid))) / 2
    return float(np.sqrt(max(divergence, 0.0)))


def wasserstein(reference: np.ndarray, current: np.ndarray, *, normalise: bool = True) -> float:
    """Wasserstein-1 distance of the samples, divided by the reference's standard deviation
    when ``normalise`` (so that one threshold serves features of any unit)."""
    ref, cur = _sorted_pair(reference, current)
    grid = np.sort(np.concatenate([ref, cur]))
    distance = float(np.sum(_cdf_gap(ref, cur, grid[:-1]) * np.diff(grid)))
    if not normalise:
        return distance
    scale = float(np.std(ref))
    return distance / scale if scale > 0 else distance


def chi_square(
    reference_counts: np.ndarray, current_counts: np.ndarray, *, n_eff: float | None = None
) -> tuple[float, float]:
    """Chi-square test of homogeneity of two category count vectors (no continuity
    correction); ``n_eff`` rescales the current counts' total for dependent samples.
    Categories empty on both sides are dropped. Returns (statistic, p-value)."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    _same_bins(ref, cur)
    if n_eff is not None:
        if n_eff < 1:
            raise EarthOpsError(f"n_eff: expected an effective sample size >= 1, got {n_eff}")
        cur = cur / cur.sum() * float(n_eff)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) <= 0).any():
        raise EarthOpsError(
            "chi_square: expected counts on both sides over at least two categories"
        )
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof))


def benjamini_hochberg(pvalues: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Which of ``pvalues`` are discoveries at false-discovery rate ``alpha`` (BH step-up)."""
    if not 0 < alpha < 1:
        raise EarthOpsError(f"alpha: expected a rate in (0, 1), got {alpha}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise EarthOpsError("pvalues: expected values in [0, 1] without NaN")
    order = np.argsort(p)
    ranked = p[order] <= alpha * np.arange(1, p.size + 1) / max(p.size, 1)
    discoveries = np.zeros(p.size, dtype=bool)
    if ranked.any():
        discoveries[order[: np.flatnonzero(ranked).max() + 1]] = True
    return discoveries


def _same_bins(reference: np.ndarray, current: np.ndarray) -> None:
    if reference.shape != current.shape:
        raise EarthOpsError(
            f"counts: reference has {reference.shape[0]} bins, current {current.shape[0]}; "
            "expected the same binning (the reference profile's)"
        )
