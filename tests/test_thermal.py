"""NOAA Coral Reef Watch heat stress (earthops.features.thermal): hand-computed CRW vectors,
no lookahead, gaps, input validation, grid == series, and the real Honoliʻi CoralTemp series."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pydantic import ValidationError

from earthops.errors import DataError
from earthops.features.thermal import (
    ALERT_LEVEL_NAMES,
    ThermalConfig,
    alert_level,
    alert_level_from_dhw,
    alert_level_names,
    degree_heating_weeks,
    hotspot,
    maximum_monthly_mean,
    monthly_climatology,
    rolling_means,
    sst_anomaly,
    thermal_features,
    thermal_features_grid,
    validate_sst_series,
)

NOON = pd.Timedelta(hours=12)
BASE = ThermalConfig(base_start=2000, base_end=2001, min_base_coverage=1.0)
MMM = 27.4  # base-period SST = 25 + 0.2 * month → monthly means 25.2 … 27.4 (December)
EVENT = pd.Timestamp("2002-01-01 12:00", tz="UTC")
# HotSpots from EVENT: 10 d at 1.5, 5 d at 0.5 (Watch, no DHW), 7 d at 2.0, 1 d at exactly 1.0,
# 1 d at 0.99 (below the DHW threshold), then SST 1 °C below the MMM (HotSpot 0).
EVENT_HS = [1.5] * 10 + [0.5] * 5 + [2.0] * 7 + [1.0, 0.99] + [0.0] * 341


def daily(start: str | pd.Timestamp, values: np.ndarray | list[float]) -> pd.Series:
    index = pd.date_range(pd.Timestamp(start), periods=len(values), freq="D")
    if index.tz is None:
        index = index.tz_localize("UTC") + NOON
    return pd.Series(np.asarray(values, dtype=float), index=index.rename("time"), name="sst")


def synthetic() -> pd.Series:
    """Base period 2000–2001 with known monthly means, then the heat event of EVENT_HS."""
    base_days = pd.date_range("2000-01-01", "2001-12-31", freq="D")
    base = 25.0 + 0.2 * base_days.month.to_numpy()
    event = [MMM + hs if hs > 0 else MMM - 1.0 for hs in EVENT_HS]
    return daily("2000-01-01", np.concatenate([base, event]))


def at(frame: pd.DataFrame | pd.Series, day: int) -> pd.Series | float:
    """Row ``day`` days after EVENT."""
    return frame.loc[EVENT + pd.Timedelta(days=day)]


def reference_dhw(hs: np.ndarray, window: int = 84, min_valid: int = 76) -> np.ndarray:
    """Brute-force CRW DHW on a daily array (NaN = missing, contributing 0)."""
    out = np.full(len(hs), np.nan)
    for t in range(len(hs)):
        win = hs[max(0, t - window + 1) : t + 1]
        if np.count_nonzero(~np.isnan(win)) >= min_valid:
            out[t] = np.where(win >= 1.0, win, 0.0).sum() / 7.0
    return out


# ------------------------------------------------------------------------ CRW definitions
def test_climatology_and_mmm_from_known_monthly_means() -> None:
    clim = monthly_climatology(synthetic(), BASE)
    assert list(clim.index) == list(range(1, 13))
    np.testing.assert_allclose(clim.to_numpy(), 25.0 + 0.2 * np.arange(1, 13), atol=1e-9)
    assert maximum_monthly_mean(clim) == pytest.approx(MMM)


def test_recentred_climatology_is_the_regression_at_the_recentre_year() -> None:
    days = pd.date_range("2000-01-01", "2009-12-31", freq="D")
    sst = daily("2000-01-01", 26.0 + 0.1 * (days.year.to_numpy() - 2000))  # +0.1 °C per year
    base = {"base_start": 2000, "base_end": 2009}
    plain = monthly_climatology(sst, ThermalConfig(**base))
    recentred = monthly_climatology(sst, ThermalConfig(**base, recentre=True, recentre_year=2002))
    np.testing.assert_allclose(plain.to_numpy(), 26.45, atol=1e-9)
    np.testing.assert_allclose(recentred.to_numpy(), 26.2, atol=1e-9)
    with pytest.raises(ValidationError):
        ThermalConfig(base_start=2000, base_end=2000, recentre=True)


def test_hotspot_is_positive_part_of_sst_minus_mmm() -> None:
    values = np.array([26.0, 27.4, 27.9, 28.4, np.nan])
    np.testing.assert_allclose(hotspot(values, MMM), [0.0, 0.0, 0.5, 1.0, np.nan], atol=1e-12)
    assert hotspot(28.4, MMM) == 1.0  # exactly 1: counts towards DHW despite binary rounding


def test_dhw_hand_computed_threshold_and_84_day_window() -> None:
    f = thermal_features(synthetic(), BASE)
    assert f.attrs["mmm"] == pytest.approx(MMM)
    expected = {  # days after EVENT → DHW in °C-days (÷ 7 below)
        0: 1.5,
        9: 15.0,
        14: 15.0,  # HotSpots of 0.5 do not accumulate
        21: 29.0,
        22: 30.0,  # HotSpot exactly 1.0 accumulates
        23: 30.0,  # 0.99 does not
        83: 30.0,  # the window day-83..day-0 still holds day 0
        84: 28.5,  # day 0 has left the 84-day window
        93: 15.0,
        99: 13.0,
        105: 1.0,
        106: 0.0,
        200: 0.0,
    }
    for day, degree_days in expected.items():
        assert at(f, day)["dhw"] == pytest.approx(degree_days / 7.0, abs=1e-9), day
    for day, level in {0: 2, 10: 1, 21: 3, 22: 3, 23: 1, 30: 0}.items():
        assert at(f, day)["alert_level"] == level, day
    assert at(f, 10)["hotspot"] == pytest.approx(0.5)
    assert at(f, 0)["anomaly"] == pytest.approx(MMM + 1.5 - 25.2)  # January climatology
    assert at(f, 0)["climatology"] == pytest.approx(25.2)
    assert list(f.columns) == [
        "sst",
        "climatology",
        "anomaly",
        "hotspot",
        "dhw",
        "alert_level",
        "sst_mean_7d",
        "sst_mean_30d",
        "sst_mean_90d",
    ]


def test_dhw_matches_brute_force_with_random_gaps() -> None:
    rng = np.random.default_rng(7)
    hs = np.clip(rng.normal(0.8, 0.9, 900), 0, None)
    hs[rng.choice(900, 60, replace=False)] = np.nan
    hs[300:315] = np.nan  # a 15-day outage: more than 10 % of some windows
    series = daily("2003-01-01", hs)
    dhw = degree_heating_weeks(series)
    np.testing.assert_allclose(dhw.to_numpy(), reference_dhw(hs), atol=1e-9)
    strict = degree_heating_weeks(series, ThermalConfig(dhw_max_missing=0.0))
    np.testing.assert_allclose(strict.to_numpy(), reference_dhw(hs, min_valid=84), atol=1e-9)


def test_alert_level_table_with_boundaries() -> None:
    table = [  # (HotSpot, DHW, level)
        (0.0, 0.0, 0),
        (0.0, 25.0, 0),
        (0.5, 10.0, 1),
        (0.999, 5.0, 1),
        (0.5, np.nan, 1),
        (1.0, 0.1, 2),
        (1.0, 3.999, 2),
        (1.0, 4.0, 3),
        (2.0, 7.999, 3),
        (1.0, 8.0, 4),
        (1.0, 11.99, 4),
        (1.0, 12.0, 5),
        (1.0, 16.0, 6),
        (1.0, 19.99, 6),
        (1.0, 20.0, 7),
        (3.0, 35.0, 7),
        (np.nan, 5.0, np.nan),
        (1.5, np.nan, np.nan),
    ]
    hs, dhw, want = (np.array(col, dtype=float) for col in zip(*table, strict=True))
    np.testing.assert_array_equal(alert_level(hs, dhw), want)
    levels = alert_level(pd.Series(hs), pd.Series(dhw))
    np.testing.assert_array_equal(levels.to_numpy(), want)
    names = alert_level_names(levels)
    assert names.iloc[0] == "No Stress" and names.iloc[7] == "Bleaching Alert Level 1"
    assert pd.isna(names.iloc[-1])
    assert len(ALERT_LEVEL_NAMES) == 8 and ALERT_LEVEL_NAMES[7] == "Bleaching Alert Level 5"


def test_alert_level_from_dhw_only() -> None:
    dhw = [0.0, 0.01, 3.99, 4.0, 7.99, 8.0, 12.0, 15.99, 16.0, 20.0, 30.0, np.nan]
    want = [0, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7, np.nan]
    np.testing.assert_array_equal(alert_level_from_dhw(np.array(dhw)), want)
    assert alert_level_from_dhw(4.0) == 3.0
    grid = xr.DataArray(np.array(dhw).reshape(3, 4), dims=("y", "x")).chunk(y=1)
    lazy = alert_level_from_dhw(grid)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values.ravel(), want)


def test_alert_levels_3_to_5_from_a_sustained_event() -> None:
    """HotSpot 3 °C every day from EVENT: DHW(d) = 3 (d + 1) / 7, so CRW v3.1 Alert Level 1 from
    day 9 (DHW 4.29), 2 from day 18 (8.14), 3 from day 27 (12.0 exactly), 4 from day 37 (16.29),
    5 from day 46 (20.14); Warning before day 9."""
    base_days = pd.date_range("2000-01-01", "2001-12-31", freq="D")
    base = 25.0 + 0.2 * base_days.month.to_numpy()
    sst = daily("2000-01-01", np.concatenate([base, np.full(120, MMM + 3.0)]))
    f = thermal_features(sst, BASE)
    for day in (0, 8, 9, 17, 18, 26, 27, 36, 37, 45, 46, 83):
        assert at(f, day)["dhw"] == pytest.approx(3.0 * (day + 1) / 7.0, abs=1e-9), day
    want = {0: 2, 8: 2, 9: 3, 17: 3, 18: 4, 26: 4, 27: 5, 36: 5, 37: 6, 45: 6, 46: 7, 100: 7}
    got = {day: at(f, day)["alert_level"] for day in want}
    assert got == want
    assert alert_level_names(f["alert_level"]).loc[EVENT + pd.Timedelta(days=27)] == (
        "Bleaching Alert Level 3"
    )


# ------------------------------------------------------------------------ causality & gaps
def test_no_lookahead() -> None:
    rng = np.random.default_rng(3)
    days = pd.date_range("2000-01-01", "2003-12-31", freq="D")
    seasonal = 26.0 + 1.5 * np.sin(2 * np.pi * days.dayofyear.to_numpy() / 365.25)
    sst = daily("2000-01-01", seasonal + rng.normal(0, 0.8, len(days)))
    cutoff = pd.Timestamp("2003-06-30 12:00", tz="UTC")
    future = sst.index > cutoff
    changed = sst.copy()
    changed[future] = changed[future] + 3.0
    changed = changed.drop(changed.index[future][10:30])
    a = thermal_features(sst, BASE)
    b = thermal_features(changed, BASE)
    pd.testing.assert_frame_equal(a.loc[:cutoff], b.loc[:cutoff])
    assert not a.loc[cutoff:, "dhw"].equals(b.loc[cutoff:, "dhw"])


def test_gaps_reindexed_counted_and_tolerated_up_to_the_limit() -> None:
    sst = synthetic()
    gappy = sst.drop(
        sst.index[sst.index.get_indexer([EVENT + pd.Timedelta(days=d) for d in (2, 3, 4)])]
    )
    f = thermal_features(gappy, BASE)
    assert f.attrs["gap_days"] == 3 and len(f) == len(sst)
    assert np.isnan(at(f, 3)["sst"]) and np.isnan(at(f, 3)["hotspot"])
    assert at(f, 9)["dhw"] == pytest.approx((15.0 - 4.5) / 7.0)  # missing days contribute 0
    strict = thermal_features(gappy, BASE.model_copy(update={"dhw_max_missing": 0.0}))
    assert np.isnan(at(strict, 2)["dhw"]) and np.isnan(at(strict, 87)["dhw"])
    assert at(strict, 88)["dhw"] == pytest.approx(at(f, 88)["dhw"])

    outage = sst.drop(
        sst.index[
            (sst.index >= EVENT + pd.Timedelta(days=30))
            & (sst.index < EVENT + pd.Timedelta(days=50))
        ]
    )
    dhw = thermal_features(outage, BASE)["dhw"]
    nan_days = [d for d in range(0, 200) if np.isnan(at(dhw, d))]
    assert nan_days == list(range(38, 125))  # > 8 of 84 days missing (10 %)
    assert validate_sst_series(outage).attrs["gap_days"] == 20


def test_rolling_means_are_trailing_with_min_periods() -> None:
    sst = synthetic()
    sst = sst.drop(sst.index[100:110])
    means = rolling_means(sst, ThermalConfig(rolling_windows=(7, 30), rolling_min_fraction=0.5))
    regular = validate_sst_series(sst)
    for w in (7, 30):
        ref = regular.rolling(w, min_periods=int(np.ceil(w / 2))).mean()
        np.testing.assert_allclose(means[f"sst_mean_{w}d"], ref, atol=1e-9)
    anomaly = sst_anomaly(sst, monthly_climatology(sst, BASE))
    assert anomaly.iloc[0] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------ input validation
def test_validation_errors_name_the_field() -> None:
    sst = synthetic()
    with pytest.raises(DataError) as err:
        thermal_features(sst.reset_index(drop=True), BASE)
    assert err.value.field == "time"

    conflict = pd.concat([sst, pd.Series([30.0], index=[sst.index[40]], name="sst")])
    with pytest.raises(DataError, match="2000-02-10") as err:
        thermal_features(conflict, BASE)
    assert err.value.field == "time"

    hot = sst.copy()
    hot.iloc[70] = 45.0
    with pytest.raises(DataError, match="2000-03-11") as err:
        thermal_features(hot, BASE)
    assert err.value.field == "sst"

    with pytest.raises(DataError, match="base period 1985") as err:
        thermal_features(sst)  # default base 1985–2012 is not in 2000–2002 data
    assert err.value.field == "time"

    with pytest.raises(DataError, match="1..12"):
        thermal_features(sst, BASE, climatology=pd.Series(26.0, index=range(1, 12)))


def test_repeats_and_disorder_are_normalised() -> None:
    sst = synthetic()
    reference = thermal_features(sst, BASE)
    repeated = pd.concat([sst, sst.iloc[[5, 400]]])
    shuffled = repeated.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(thermal_features(shuffled, BASE), reference)
    naive = sst.tz_localize(None)
    assert thermal_features(naive, BASE).index.tz is None
    np.testing.assert_array_equal(thermal_features(naive, BASE)["dhw"], reference["dhw"])


def test_given_climatology_scores_a_short_recent_stream() -> None:
    sst = synthetic()
    clim = monthly_climatology(sst, BASE)
    recent = sst[sst.index >= EVENT - pd.Timedelta(days=100)]
    f = thermal_features(recent, climatology=clim)
    assert at(f, 22)["dhw"] == pytest.approx(30.0 / 7.0)


# ------------------------------------------------------------------------ gridded cubes
def _cube(series: pd.Series, land: bool = False) -> xr.DataArray:
    values = np.repeat(series.to_numpy()[:, None], 6, axis=1).reshape(-1, 2, 3)
    if land:
        values[:, 0, 0] = np.nan
    return xr.DataArray(
        values,
        dims=("time", "y", "x"),
        coords={
            "time": series.index.tz_localize(None),
            "y": [20.0, 19.95],
            "x": [-155.1, -155.05, -155.0],
        },
        name="sst",
    ).chunk(time=200, y=1, x=3)


def test_grid_equals_series_and_stays_lazy() -> None:
    sst = synthetic()
    sst = sst.drop(sst.index[[3, 500, 501, 740]])
    series = thermal_features(sst, BASE)
    ds = thermal_features_grid(_cube(sst, land=True), BASE)
    assert all(ds[v].chunks is not None for v in ds.data_vars)  # nothing computed yet
    assert ds.attrs["gap_days"] == 4
    ds = ds.compute()
    for column in series.columns:
        np.testing.assert_allclose(
            ds[column].values[:, 1, 2], series[column], atol=1e-9, err_msg=column
        )
    assert float(ds["mmm"][1, 1]) == pytest.approx(MMM)
    assert np.isnan(ds["mmm"][0, 0]) and ds["dhw"][:, 0, 0].isnull().all()  # land pixel
    np.testing.assert_array_equal(ds["time"].values, series.index.tz_localize(None).values)


def test_grid_errors() -> None:
    sst = synthetic()
    hot = sst.copy()
    hot.iloc[70] = 45.0
    ds = thermal_features_grid(_cube(hot), BASE)  # lazy: the range check runs on compute
    with pytest.raises(DataError, match="2000-03-11"):
        ds["dhw"].compute()
    with pytest.raises(DataError, match="base period"):
        thermal_features_grid(_cube(sst))
    with pytest.raises(DataError) as err:
        thermal_features_grid(_cube(sst).isel(time=[0, 0, 1]), BASE)
    assert err.value.field == "time"


# ------------------------------------------------------------------------ real CoralTemp series
@pytest.fixture(scope="module")
def honolii() -> pd.Series:
    from earthops.data.tables import read_coraltemp_csv

    return read_coraltemp_csv()["sst"]


@pytest.mark.usefixtures("mirror")
def test_honolii_real_series(honolii: pd.Series) -> None:
    thermal_features(honolii)  # warm-up (imports, caches)
    start = time.perf_counter()
    f = thermal_features(honolii)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{len(f)} days took {elapsed:.2f} s"

    assert 26.0 <= f.attrs["mmm"] <= 28.0
    assert 26.0 <= thermal_features(honolii, ThermalConfig(recentre=True)).attrs["mmm"] <= 28.0
    assert f.attrs["gap_days"] == 1  # 2018-11-09 is absent from the file
    assert f["sst"].isna().sum() == 1
    assert f["dhw"].iloc[84:].notna().all() and (f["dhw"].dropna() >= 0).all()

    yearly = f["dhw"].groupby(f.index.year).max()
    assert set(yearly.nlargest(2).index) == {2015, 2019}  # the Hawaiʻi marine heatwaves
    events = f.index.year.isin([2014, 2015, 2019])
    quiet = f.loc[~events, "dhw"].median()
    assert f.loc[f.index.year.isin([2014, 2015]), "dhw"].max() > quiet + 2.0
    assert f.loc[f.index.year == 2019, "dhw"].max() > quiet + 2.0
    assert f.loc[f.index.year == 2015, "alert_level"].max() >= 4  # Alert Level 2 in 2015


@pytest.mark.usefixtures("mirror")
def test_honolii_rolling_7_30_90_and_no_lookahead(honolii: pd.Series) -> None:
    f = thermal_features(honolii)
    regular = validate_sst_series(honolii)
    for w in (7, 30, 90):
        ref = regular.rolling(w, min_periods=int(np.ceil(0.8 * w))).mean()
        np.testing.assert_allclose(f[f"sst_mean_{w}d"], ref, atol=1e-9, equal_nan=True)
    spread = [f[f"sst_mean_{w}d"].diff().abs().mean() for w in (7, 30, 90)]
    assert spread[0] > spread[1] > spread[2]  # longer windows are smoother
    # the missing day 2018-11-09: means stay defined (≥ 80 % of the window present)
    gap = pd.Timestamp("2018-11-09", tz="UTC")
    day = f.index[f.index.normalize() == gap][0]
    assert np.isnan(f.loc[day, "sst"]) and f.loc[day, ["sst_mean_7d", "sst_mean_90d"]].notna().all()

    # no lookahead: cutting the stream after the base period changes nothing up to the cut
    cut = pd.Timestamp("2015-10-15", tz="UTC")
    early = thermal_features(honolii.loc[: cut + pd.Timedelta(hours=23)])
    pd.testing.assert_frame_equal(early, f.loc[early.index], check_freq=False)
    assert early.index[-1].normalize() == cut and early["dhw"].iloc[-1] > 0


def test_alert_level_from_dhw_numpy_path_equals_the_xarray_path() -> None:
    """The server's numpy path gives the xarray path's levels, NaN and edges included."""
    import xarray as xr

    from earthops.features.thermal import alert_level_from_dhw

    dhw = np.array([np.nan, -1, 0, 0.1, 3.99, 4, 7.9, 8, 12, 16, 20, 25.0])
    fast = alert_level_from_dhw(dhw)
    np.testing.assert_array_equal(fast, alert_level_from_dhw(xr.DataArray(dhw)).values)
    assert fast[5] == 3 and fast[-1] == 7 and np.isnan(fast[0])
