"""Phenology and time-series features on series whose statistics are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from earthops.features.timeseries import (
    PHENOLOGY_STATS,
    TimeSeriesFeatures,
    fill_gaps,
    input_columns,
    phenology_features,
    timeseries_features,
)

#: one season: 0.2 off season, a green-up from date 6 to the 0.8 peak at date 10, senescence
#: back to 0.2 at date 14 (23 dates)
ONE_SEASON = np.array(
    [0.2] * 6 + [0.3, 0.55, 0.65, 0.7, 0.8, 0.7, 0.45, 0.3] + [0.2] * 9, dtype=np.float32
)
#: double cropping: soy (peak 0.8 at date 6) then a second crop (peak 0.6 at date 15)
DOUBLE = np.array(
    [
        *(0.2, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.6, 0.4, 0.3, 0.3, 0.35),
        *(0.45, 0.5, 0.55, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.2, 0.25),
    ],
    dtype=np.float32,
)


def _stats(series: np.ndarray) -> dict[str, float]:
    values = phenology_features(series[None, :])[0]
    return dict(zip(PHENOLOGY_STATS, values.tolist(), strict=True))


def test_one_season_statistics() -> None:
    s = _stats(ONE_SEASON)
    assert s["min"] == pytest.approx(0.2) and s["max"] == pytest.approx(0.8)
    assert s["amplitude"] == pytest.approx(0.6) and s["peak_time"] == 10
    assert s["trough_time"] == 0  # the first of the off-season dates
    assert s["integral"] == pytest.approx(float(np.trapezoid(ONE_SEASON)), abs=1e-5)
    assert s["greenup_max"] == pytest.approx(0.25) and s["greenup_time"] == 6
    assert s["senescence_max"] == pytest.approx(0.25) and s["senescence_time"] == 11
    # half amplitude is 0.5: dates 7..11 lie above it
    assert (s["season_start"], s["season_end"], s["season_length"]) == (7, 11, 5)
    assert s["frac_above_half"] == pytest.approx(5 / 23)
    assert s["n_peaks"] == 1 and s["second_peak_time"] == -1
    assert s["second_peak"] == pytest.approx(0.2)  # no second peak: the minimum
    assert s["peak_to_end"] == pytest.approx(0.6)
    quarters = [ONE_SEASON[part].mean() for part in np.array_split(np.arange(23), 4)]
    got = [s[f"q{i}_mean"] for i in range(1, 5)]
    assert got == pytest.approx(quarters, abs=1e-6)


def test_double_cropping_shows_a_second_peak() -> None:
    s = _stats(DOUBLE)
    assert s["n_peaks"] == 2 and s["peak_time"] == 6
    assert s["second_peak"] == pytest.approx(0.6) and s["second_peak_time"] == 15
    assert _stats(DOUBLE[::-1])["second_peak_time"] == 22 - 15  # timing follows the series
    # an off-season bump counts once it rises 10 % of the amplitude (0.06) above its valleys
    small, large = ONE_SEASON.copy(), ONE_SEASON.copy()
    small[18], large[18] = 0.25, 0.3
    assert _stats(small)["n_peaks"] == 1
    assert (_stats(large)["n_peaks"], _stats(large)["second_peak_time"]) == (2, 18)


def test_gaps_are_filled_linearly_and_edges_take_the_nearest_value() -> None:
    series = np.array([[np.nan, 0.2, np.nan, np.nan, 0.5, np.nan]], np.float32)
    np.testing.assert_allclose(fill_gaps(series), [[0.2, 0.2, 0.3, 0.4, 0.5, 0.5]], rtol=1e-6)
    assert np.isnan(fill_gaps(np.full((1, 5), np.nan, np.float32))).all()


def test_feature_matrix_layout_and_derived_indices() -> None:
    rng = np.random.default_rng(0)
    bands = ("ndvi", "nir", "mir")
    cube = rng.uniform(0.1, 0.9, size=(4, 23, 3)).astype(np.float32)
    cube[1, 5, 0] = np.nan  # a cloud
    X, names = timeseries_features(cube, bands)
    ndmi = (cube[..., 1] - cube[..., 2]) / (cube[..., 1] + cube[..., 2])
    expected_raw = input_columns(["ndvi", "nir", "mir", "ndmi", "nirv"], 23)
    assert names[: len(expected_raw)] == expected_raw
    assert names[len(expected_raw) :] == [
        f"{band}_{stat}" for band in ("ndvi", "ndmi", "nirv") for stat in PHENOLOGY_STATS
    ]
    np.testing.assert_allclose(X[:, names.index("ndmi_t07")], ndmi[:, 7], rtol=1e-5)
    assert np.isfinite(X).all()  # the cloud was interpolated
    filled = (cube[1, 4, 0] + cube[1, 6, 0]) / 2
    assert X[1, names.index("ndvi_t05")] == pytest.approx(filled, rel=1e-6)
    assert X[1, names.index("nirv_t05")] == pytest.approx(filled * cube[1, 5, 1], rel=1e-5)


def test_transformer_takes_flat_rows_and_names_bad_shapes() -> None:
    rng = np.random.default_rng(1)
    bands = ("ndvi", "evi")
    cube = rng.uniform(0.1, 0.9, size=(3, 12, 2)).astype(np.float32)
    flat = cube.reshape(3, -1)  # time-major: ndvi_t00, evi_t00, ndvi_t01, …
    transformer = TimeSeriesFeatures(bands=bands, n_dates=12).fit(flat)
    expected, names = timeseries_features(cube, bands)
    np.testing.assert_array_equal(transformer.transform(flat), expected)
    assert list(transformer.get_feature_names_out()) == names
    with pytest.raises(ValueError, match=r"expected 24 columns \(12 dates"):
        TimeSeriesFeatures(bands=bands, n_dates=12).fit(flat[:, :-1])
    with pytest.raises(ValueError, match="at least 4 dates"):
        phenology_features(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"phenology bands \['red'\]"):
        timeseries_features(cube, bands, phenology_bands=["red"])
