"""Drift statistics equal scipy's to 1e-9 on real survey covariates; edge cases and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from earthops.errors import EarthOpsError
from earthops.monitoring import stats as drift

COLUMNS = ("Temp", "SSTA_DHW", "Turbidity", "Depth_m")


@pytest.fixture(scope="module")
def windows(mirror: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each covariate in the training years (<= 2010) and the later ones (2011-16)."""
    from earthops.data.tables import read_bleaching_surveys

    surveys = read_bleaching_surveys()
    early = surveys["Date_Year"] <= 2010
    return {
        col: (surveys.loc[early, col].to_numpy(float), surveys.loc[~early, col].to_numpy(float))
        for col in COLUMNS
    }


@pytest.mark.parametrize("column", COLUMNS)
def test_ks_and_wasserstein_equal_scipy_on_real_surveys(windows, column: str) -> None:
    ref, cur = windows[column]
    ref_f, cur_f = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    ours = drift.ks_2samp(ref, cur)
    theirs = stats.ks_2samp(ref_f, cur_f, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-9)
    assert ours.pvalue == pytest.approx(theirs.pvalue, abs=1e-9)
    raw = drift.wasserstein(ref, cur, normalise=False)
    assert raw == pytest.approx(stats.wasserstein_distance(ref_f, cur_f), abs=1e-9)
    assert drift.wasserstein(ref, cur) == pytest.approx(raw / np.std(ref_f), abs=1e-9)


@pytest.mark.parametrize("column", COLUMNS)
def test_binned_psi_and_js_on_reference_quantiles(windows, column: str) -> None:
    ref, cur = windows[column]
    edges = drift.quantile_edges(ref, 10)
    rc, cc = drift.bin_counts(ref, edges), drift.bin_counts(cur, edges)
    assert rc.sum() == np.isfinite(ref).sum() and cc.sum() == np.isfinite(cur).sum()
    # the plain numpy PSI loop a user would write over the same bins
    r = np.maximum(rc / rc.sum(), drift.EPS)
    c = np.maximum(cc / cc.sum(), drift.EPS)
    assert drift.psi(rc, cc) == pytest.approx(np.sum((c - r) * np.log(c / r)), abs=1e-9)
    assert drift.jensen_shannon(rc, cc) == pytest.approx(jensenshannon(r, c), abs=1e-9)
    assert drift.psi(rc, rc) == pytest.approx(0.0, abs=1e-12)


def test_sst_shift_is_detected_and_same_window_is_not(windows) -> None:
    ref = windows["Temp"][0]
    half = np.random.default_rng(0).permutation(ref[np.isfinite(ref)])
    same = drift.ks_2samp(half[::2], half[1::2])
    assert same.pvalue > 0.01
    heated = drift.ks_2samp(ref, ref + 1.0)  # a 1 °C marine heatwave on every survey
    assert heated.pvalue < 1e-6 and heated.statistic > same.statistic
    edges = drift.quantile_edges(ref)
    assert drift.psi(drift.bin_counts(ref, edges), drift.bin_counts(ref + 1.0, edges)) > 0.3


def test_effective_sample_size_weakens_the_p_value(windows) -> None:
    ref, cur = windows["Temp"]
    full = drift.ks_2samp(ref, cur)
    few = drift.ks_2samp(ref, cur, n_eff=30)
    assert few.statistic == full.statistic
    assert few.pvalue > full.pvalue
    assert few.pvalue == pytest.approx(stats.kstwo.sf(full.statistic, 30), abs=1e-12)


def test_chi_square_equals_scipy_contingency(mirror: Path) -> None:
    from earthops.data.tables import read_bleaching_surveys

    surveys = read_bleaching_surveys()
    early = surveys["Date_Year"] <= 2010
    realms = sorted(surveys["Realm_Name"].dropna().unique())
    counts = [
        surveys.loc[mask, "Realm_Name"].value_counts().reindex(realms, fill_value=0).to_numpy()
        for mask in (early, ~early)
    ]
    statistic, pvalue = drift.chi_square(*counts)
    expected = stats.chi2_contingency(np.vstack(counts), correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert pvalue == pytest.approx(expected.pvalue, abs=1e-9)


def test_benjamini_hochberg_equals_scipy() -> None:
    p = np.random.default_rng(3).uniform(size=200) ** 3
    for alpha in (0.01, 0.05, 0.2):
        adjusted = stats.false_discovery_control(p, method="bh")
        np.testing.assert_array_equal(drift.benjamini_hochberg(p, alpha), adjusted <= alpha)
    assert not drift.benjamini_hochberg(np.array([0.9, 0.5]), 0.05).any()


def test_bad_input_names_what_was_wrong() -> None:
    with pytest.raises(EarthOpsError, match="current: no finite values"):
        drift.ks_2samp(np.arange(5.0), np.full(4, np.nan))
    with pytest.raises(EarthOpsError, match="reference: no finite values"):
        drift.wasserstein(np.array([]), np.arange(3.0))
    with pytest.raises(EarthOpsError, match="same binning"):
        drift.psi(np.ones(10), np.ones(9))
    with pytest.raises(EarthOpsError, match="at least two categories"):
        drift.chi_square(np.array([5, 0]), np.array([3, 0]))
    with pytest.raises(EarthOpsError, match="n_eff"):
        drift.ks_2samp(np.arange(5.0), np.arange(5.0), n_eff=0.5)
    with pytest.raises(EarthOpsError, match=r"values in \[0, 1\]"):
        drift.benjamini_hochberg(np.array([0.1, np.nan]))
    with pytest.raises(EarthOpsError, match="at least 2 bins"):
        drift.quantile_edges(np.arange(10.0), 1)


def test_constant_reference_keeps_finite_figures() -> None:
    ref = np.zeros(100)
    edges = drift.quantile_edges(ref)
    assert edges.size == 1  # ties merged into one edge
    cur = np.linspace(-1, 1, 50)
    assert np.isfinite(drift.psi(drift.bin_counts(ref, edges), drift.bin_counts(cur, edges)))
    assert drift.wasserstein(ref, cur) == pytest.approx(
        stats.wasserstein_distance(ref, cur), abs=1e-12
    )
