"""Reference profiles and drift reports on the real surveys (<= 2010 vs 2011-16) and the real
Honoliʻi SST series (seasons); data quality, BH, regions, JSON and HTML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from earthops.errors import DataError, EarthOpsError
from earthops.monitoring import stats
from earthops.monitoring.drift import (
    DriftConfig,
    DriftReport,
    bh_adjust,
    drift_report,
    ks_statistic,
    wasserstein_sorted,
)
from earthops.monitoring.profile import ReferenceProfile, build_profile

NUMERIC = ["Temp", "SSTA_DHW", "Turbidity", "Depth_m"]
CATEGORICAL = ["Realm_Name"]


@pytest.fixture(scope="module")
def surveys(mirror: Path) -> pd.DataFrame:
    from earthops.data.tables import read_bleaching_surveys

    return read_bleaching_surveys()


@pytest.fixture(scope="module")
def periods(surveys: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    early = surveys["Date_Year"] <= 2010
    return surveys[early].reset_index(drop=True), surveys[~early].reset_index(drop=True)


@pytest.fixture(scope="module")
def profile(periods) -> ReferenceProfile:
    ref, _ = periods
    return build_profile(
        ref,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        groups=ref["Realm_Name"],
        clusters=ref["Site_ID"],
        labels=_bleached(ref),
        predictions=_dhw_score(ref),
    )


@pytest.fixture(scope="module")
def halves(periods) -> tuple[pd.DataFrame, pd.DataFrame, ReferenceProfile]:
    """Two random halves of the surveys <= 2010 and the profile of the first."""
    ref, _ = periods
    order = np.random.default_rng(0).permutation(len(ref))
    first = ref.iloc[order[::2]].reset_index(drop=True)
    second = ref.iloc[order[1::2]].reset_index(drop=True)
    return first, second, build_profile(first, numeric=NUMERIC, categorical=CATEGORICAL)


def _bleached(frame: pd.DataFrame) -> pd.Series:
    return (frame["avg.bleach"] > 10).astype(int)


def _dhw_score(frame: pd.DataFrame) -> pd.Series:
    """A model score: the NOAA degree-heating-week rule squashed to (0, 1)."""
    dhw = frame["SSTA_DHW"].fillna(0.0)
    return dhw / (dhw + 4.0)


def _finite(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(float)
    return values[np.isfinite(values)]


# ------------------------------------------------------------------------------ profile
def test_profile_holds_bounded_summaries_of_the_reference(periods, profile) -> None:
    ref, _ = periods
    assert profile.n_rows == len(ref)
    for name in NUMERIC:
        values, part = _finite(ref[name]), profile.numeric[name]
        assert part.count == values.size and part.missing == len(ref) - values.size
        assert part.min == values.min() and part.max == values.max()
        assert part.mean == pytest.approx(values.mean()) and part.std == pytest.approx(values.std())
        assert part.edges == pytest.approx(stats.quantile_edges(values, 10).tolist())
        assert sum(part.counts) == values.size
        sample = np.asarray(part.sample)
        assert sample.size == min(5000, values.size) < values.size
        assert np.all(np.diff(sample) >= 0) and np.isin(sample, values).all()
        assert part.n_clusters == ref.loc[np.isfinite(ref[name]), "Site_ID"].nunique()
    assert profile.categorical["Realm_Name"].counts == {
        str(k): float(v) for k, v in ref["Realm_Name"].value_counts().items()
    }
    assert set(profile.groups) == set(ref["Realm_Name"].unique())
    small = ref["Realm_Name"].value_counts().idxmin()
    assert profile.groups[small].n_rows == (ref["Realm_Name"] == small).sum()
    assert profile.labels.shares["1"] == pytest.approx(_bleached(ref).mean())
    assert profile.predictions_kind == "score"


def test_profile_json_round_trip(profile, tmp_path: Path) -> None:
    again = ReferenceProfile.from_json(profile.to_json())
    assert again == profile
    path = profile.save(tmp_path / "ref" / "profile.json")
    assert ReferenceProfile.load(path) == profile
    with pytest.raises(DataError, match="no such reference profile"):
        ReferenceProfile.load(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.iloc[:0], "empty frame"),
        (lambda f: f.drop(columns=["Turbidity"]), r"unknown column.*Turbidity"),
        (lambda f: f.assign(Depth_m=np.nan), r"Depth_m.*no finite value"),
    ],
)
def test_build_profile_rejects_bad_input(periods, change, match: str) -> None:
    ref, _ = periods
    with pytest.raises(DataError, match=match):
        build_profile(change(ref), numeric=NUMERIC, categorical=CATEGORICAL)


# ------------------------------------------------------------------------------ statistics
def test_report_values_equal_stats_and_scipy_on_the_reference_subsample(periods, profile) -> None:
    _, cur = periods
    report = drift_report(profile, cur)
    for name in NUMERIC:
        row, part = report.feature(name), profile.numeric[name]
        sample, values = np.asarray(part.sample), _finite(cur[name])
        ks = stats.ks_2samp(sample, values)
        theirs = sps.ks_2samp(sample, values, method="asymp")
        assert row.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        assert row.p_value == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
        assert row.p_value == pytest.approx(theirs.pvalue, rel=1e-6, abs=1e-300)
        counts = stats.bin_counts(values, np.asarray(part.edges))
        assert row.psi == pytest.approx(stats.psi(part.counts, counts), abs=1e-12)
        assert row.js == pytest.approx(stats.jensen_shannon(part.counts, counts), abs=1e-12)
        w1 = sps.wasserstein_distance(sample, values) / np.std(sample)
        assert row.wasserstein == pytest.approx(w1, rel=1e-9)
        assert row.n_ref == sample.size and row.n_cur == values.size
    realm = report.feature("Realm_Name")
    names = list(profile.categorical["Realm_Name"].counts)
    table = np.array(
        [
            [profile.categorical["Realm_Name"].counts[k] for k in names],
            cur["Realm_Name"].value_counts().reindex(names, fill_value=0).to_numpy(float),
        ]
    )
    chi = sps.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
    assert realm.statistic == pytest.approx(chi.statistic, rel=1e-9)
    assert realm.p_value == pytest.approx(chi.pvalue, rel=1e-6, abs=1e-300)


def test_fast_ks_and_wasserstein_equal_stats_with_ties(surveys) -> None:
    # Depth_m has many tied values (whole metres): the merge-based helpers must still agree
    values = np.sort(_finite(surveys["Depth_m"]))
    rng = np.random.default_rng(3)
    ref = np.sort(rng.choice(values, 700, replace=False))
    cur = np.sort(rng.choice(values, 3000) + rng.choice([0.0, 0.5], 3000))
    assert ks_statistic(ref, cur) == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-15)
    assert wasserstein_sorted(ref, cur) == pytest.approx(stats.wasserstein(ref, cur), rel=1e-12)


def test_bh_is_applied_across_features(periods, profile) -> None:
    _, cur = periods
    report = drift_report(profile, cur)
    rows = [r for r in report.features if r.p_value is not None]
    p = np.array([r.p_value for r in rows])
    q = np.array([r.p_adjusted for r in rows])
    assert np.all(q >= p - 1e-300)
    assert q == pytest.approx(sps.false_discovery_control(p, method="bh"), rel=1e-12)
    alpha = report.config.fdr_alpha
    assert np.array_equal(q <= alpha, stats.benjamini_hochberg(p, alpha))
    assert bh_adjust(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.04, 0.04])


# ------------------------------------------------------------------------------ verdicts
def test_random_halves_do_not_drift_and_a_warmer_sea_does(halves) -> None:
    _, second, half_profile = halves
    same = drift_report(half_profile, second)
    assert not same.dataset_drift and same.n_drifted == 0 and same.status == 0
    assert all(r.p_adjusted > 0.05 for r in same.features)
    warm = drift_report(half_profile, second.assign(Temp=second["Temp"] + 1.0))
    temp = warm.feature("Temp")
    assert temp.drifted and temp.alert == "shift" and not temp.issues
    assert temp.psi > warm.config.psi_threshold and temp.p_adjusted <= warm.config.fdr_alpha
    assert [r.feature for r in warm.features if r.drifted] == ["Temp"]
    # one of five features: dataset drift only when the share rule says so
    assert warm.dataset_drift == (warm.config.drift_share < 1 / 5)
    strict = drift_report(
        half_profile, second.assign(Temp=second["Temp"] + 1.0), config=DriftConfig(drift_share=0.1)
    )
    assert strict.dataset_drift and strict.status == 1


def test_effective_sample_size_from_clusters_weakens_p_values(periods, profile) -> None:
    _, cur = periods
    plain = drift_report(profile, cur)
    config = DriftConfig(n_eff="clusters")
    clustered = drift_report(profile, cur, config=config, clusters=cur["Site_ID"])
    row, base = clustered.feature("Temp"), plain.feature("Temp")
    assert row.statistic == base.statistic and row.p_value > base.p_value
    m = min(5000, profile.numeric["Temp"].n_clusters)
    n = cur.loc[np.isfinite(cur["Temp"]), "Site_ID"].nunique()
    mm, nn = max(m, n), min(m, n)
    expected = sps.kstwo.sf(row.statistic, np.round(mm * nn / (mm + nn)))
    assert row.p_value == pytest.approx(expected, rel=1e-9)
    with pytest.raises(EarthOpsError, match="needs clusters"):
        drift_report(profile, cur, config=config)


def test_prediction_drift_and_label_shift(halves) -> None:
    first, second, _ = halves
    ref_profile = build_profile(
        first,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        predictions=_dhw_score(first),
        labels=_bleached(first),
    )
    same = drift_report(
        ref_profile, second, predictions=_dhw_score(second), labels=_bleached(second)
    )
    assert not same.predictions.drifted and not same.labels.drifted and same.status == 0
    assert same.labels.cur_shares["1"] == pytest.approx(_bleached(second).mean())
    labels = _bleached(second).to_numpy().copy()
    negatives = np.flatnonzero(labels == 0)
    labels[negatives[: len(negatives) // 2]] = 1  # prevalence up by about half the negatives
    scores = (_dhw_score(second) + 0.3).clip(upper=1.0)
    shifted = drift_report(ref_profile, second, predictions=scores, labels=pd.Series(labels))
    assert shifted.predictions.drifted and shifted.labels.drifted and shifted.status == 1
    assert {a.feature for a in shifted.alerts} == {"predictions", "labels"}
    with pytest.raises(DataError, match="continuous values"):
        drift_report(ref_profile, second, labels=second["avg.bleach"] + 0.5)


# ------------------------------------------------------------------------------ regions
def test_region_table_has_one_row_per_realm_and_feature_with_one_bh(periods, profile) -> None:
    ref, cur = periods
    report = drift_report(profile, cur, groups=cur["Realm_Name"])
    table = report.to_frame("regions")
    expected = {
        (realm, name)
        for name in [*NUMERIC, *CATEGORICAL]
        for realm in set(ref["Realm_Name"]) & set(cur["Realm_Name"])
        if ref.loc[ref["Realm_Name"] == realm, name].notna().any()
        and cur.loc[cur["Realm_Name"] == realm, name].notna().any()
    }
    assert set(zip(table["region"], table["feature"], strict=True)) == expected
    assert len(table) == len(expected)
    # one BH family across regions and features, not one per feature
    assert table["p_adjusted"].to_numpy() == pytest.approx(
        sps.false_discovery_control(table["p_value"].to_numpy(), method="bh"), rel=1e-12
    )
    assert (table["p_adjusted"] >= table["p_value"]).all()
    realm = "Red Sea"
    row = table[(table["region"] == realm) & (table["feature"] == "Temp")].iloc[0]
    part = profile.groups[realm].numeric["Temp"]
    values = _finite(cur.loc[cur["Realm_Name"] == realm, "Temp"])
    ks = stats.ks_2samp(np.asarray(part.sample), values)
    assert row["statistic"] == pytest.approx(ks.statistic) and row["p_value"] == pytest.approx(
        ks.pvalue, rel=1e-9
    )
    counts = stats.bin_counts(values, np.asarray(part.edges))
    assert row["psi"] == pytest.approx(stats.psi(part.counts, counts))


# ------------------------------------------------------------------------------ seasons
@pytest.fixture(scope="module")
def sst(mirror: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real daily SST at Honoliʻi: reference the even years 1986-2010 (all months), current
    July-September of the odd years of the same period."""
    from earthops.data.tables import read_coraltemp_csv

    series = read_coraltemp_csv().reset_index()
    series["year"], series["month"] = series["time"].dt.year, series["time"].dt.month
    series = series[series["year"].between(1986, 2010)]
    ref = series[series["year"] % 2 == 0].reset_index(drop=True)
    summer = series["month"].isin([7, 8, 9]) & (series["year"] % 2 == 1)
    return ref, series[summer].reset_index(drop=True)


def test_season_change_is_not_drift_under_a_seasonal_reference_but_a_heatwave_is(sst) -> None:
    ref, cur = sst
    profile = build_profile(ref, numeric=["sst"], categorical=[], season=ref["month"])
    assert sorted(profile.seasons, key=int) == [str(m) for m in range(1, 13)]
    seasonal = drift_report(profile, cur, season=cur["month"])
    whole = drift_report(profile, cur)
    assert seasonal.reference == "seasonal" and seasonal.season_months == ["7", "8", "9"]
    assert not seasonal.feature("sst").drifted and not seasonal.dataset_drift
    assert whole.feature("sst").drifted and whole.dataset_drift
    assert seasonal.feature("sst").psi < whole.feature("sst").psi
    # the pooled reference is the reference's July-September: the same KS as against those days
    summer = ref.loc[ref["month"].isin([7, 8, 9]), "sst"].to_numpy()
    pooled = stats.ks_2samp(summer, cur["sst"].to_numpy()).statistic
    assert seasonal.feature("sst").statistic == pytest.approx(pooled, abs=0.02)
    assert seasonal.feature("sst").wasserstein < whole.feature("sst").wasserstein
    hot = cur.assign(sst=cur["sst"] + 2.0)
    for report in (drift_report(profile, hot, season=hot["month"]), drift_report(profile, hot)):
        assert report.feature("sst").drifted and report.dataset_drift and report.status >= 1
    with pytest.raises(EarthOpsError, match="no seasonal references"):
        drift_report(build_profile(ref, numeric=["sst"], categorical=[]), cur, season=cur["month"])


# ------------------------------------------------------------------------------ data quality
def test_data_quality_problems_are_reported_per_feature(halves) -> None:
    _, second, half_profile = halves
    rng = np.random.default_rng(1)
    broken = second.drop(columns=["Depth_m"]).assign(Turbidity=-9999.0, extra=1.0)
    hot = rng.random(len(broken)) < 0.05
    broken.loc[hot, "Temp"] = 60.0  # beyond the reference max (37.3 °C) by far
    report = drift_report(half_profile, broken)
    assert report.status == 2
    kinds = {(q.feature, q.kind) for q in report.quality}
    assert {
        ("Depth_m", "missing_column"),
        ("Turbidity", "fill_values"),
        ("Temp", "out_of_range"),
        ("extra", "extra_column"),
    } <= kinds
    assert report.feature("Turbidity").fill_count == len(broken)
    assert report.feature("Turbidity").p_value is None  # fill values never enter the tests
    assert report.feature("Temp").out_of_range == hot.sum()
    dq = {a.feature for a in report.alerts if a.category == "data_quality"}
    assert dq == {"Depth_m", "Turbidity", "Temp", "extra"}
    assert report.feature("SSTA_DHW").alert is None
    # a few fill values are cut before the tests: the statistics equal those without them
    some = second.copy()
    some.loc[some.index[:50], "SSTA_DHW"] = 32767.0
    row = drift_report(half_profile, some).feature("SSTA_DHW")
    clean = _finite(some["SSTA_DHW"].iloc[50:])
    sample = np.asarray(half_profile.numeric["SSTA_DHW"].sample)
    assert row.fill_count == 50 and row.issues == ["fill_values"]
    assert row.statistic == pytest.approx(stats.ks_2samp(sample, clean).statistic)
    assert drift_report(half_profile, second).status == 0


def test_bad_current_input_is_named(halves, profile) -> None:
    _, second, half_profile = halves
    with pytest.raises(DataError, match="empty frame"):
        drift_report(half_profile, second.iloc[:0])
    with pytest.raises(DataError, match=r"groups.*one per row"):
        drift_report(profile, second, groups=second["Realm_Name"].iloc[:10])
    with pytest.raises(DataError, match=r"Temp.*numerical"):
        drift_report(half_profile, second.assign(Temp="warm"))


# ------------------------------------------------------------------------------ outputs
def test_report_json_round_trip_and_html(periods, profile, tmp_path: Path) -> None:
    _, cur = periods
    report = drift_report(profile, cur, groups=cur["Realm_Name"], labels=_bleached(cur))
    data = json.loads(report.to_json())
    assert data["status"] == report.status and len(data["features"]) == len(report.features)
    again = DriftReport.from_json(report.to_json())
    assert again == report and again.status == report.status
    path = report.to_html(tmp_path / "out" / "drift.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "http" not in page  # no external assets
    for name in [*NUMERIC, *CATEGORICAL]:
        assert f"<td>{name}</td>" in page
    drifted = [r.feature for r in report.features if r.drifted]
    assert page.count('<tr class="shift">') >= len(drifted)
    assert f"status {report.status}" in page
