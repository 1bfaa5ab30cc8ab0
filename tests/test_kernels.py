"""Numba kernels against reference implementations (scikit-image GLCM, scipy.ndimage filters)."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage
from skimage.feature import graycomatrix, graycoprops

from earthops.features.glcm import MISSING, PROPS, glcm_offsets, glcm_texture, quantize
from earthops.features.kernels import (
    available_indices,
    index_array,
    spectral_indices,
    window_stats,
)

DISTANCES = [1, 2]
ANGLES = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]


def _reference_glcm(q: np.ndarray, y: int, x: int, window: int, levels: int) -> dict[str, float]:
    """scikit-image on the window around (y, x), cropped at the image edge.

    Missing pixels hold MISSING (>= levels); scikit-image's loop skips such pairs, so count with
    256 levels and keep the first ``levels`` (normalisation happens in graycoprops). Matrices
    without any pair are left out of the average, as documented for the kernel.
    """
    h = window // 2
    crop = q[max(0, y - h) : y + h + 1, max(0, x - h) : x + h + 1]
    counts = graycomatrix(crop, DISTANCES, ANGLES, levels=256, symmetric=True, normed=False)
    counts = counts[:levels, :levels].astype(np.float64)
    nonempty = counts.sum(axis=(0, 1)) > 0
    return {p: float(graycoprops(counts, p)[nonempty].mean()) for p in PROPS}


@pytest.mark.parametrize(
    ("levels", "window", "missing"), [(8, 7, 0.0), (16, 5, 0.0), (16, 7, 0.06)]
)
def test_glcm_matches_skimage_on_random_windows(levels: int, window: int, missing: float) -> None:
    rng = np.random.default_rng(levels * window)
    # smooth-ish field so windows have structure (correlation far from 0), plus noise
    base = ndimage.gaussian_filter(rng.normal(size=(48, 61)), 2.0) + 0.3 * rng.normal(size=(48, 61))
    img = base.astype(np.float32)
    img[rng.random(img.shape) < missing] = np.nan
    q = quantize(img, levels)
    assert q.max() == (MISSING if missing else levels - 1)
    out = glcm_texture(q, levels, window, DISTANCES, ANGLES, PROPS)
    pixels = [(0, 0), (47, 60), (0, 60), (47, 0), (3, 2)]
    pixels += [tuple(p) for p in rng.integers(0, (48, 61), size=(35, 2))]
    for y, x in pixels:
        ref = _reference_glcm(q, y, x, window, levels)
        got = {p: float(out[k, y, x]) for k, p in enumerate(PROPS)}
        for prop in PROPS:
            assert got[prop] == pytest.approx(ref[prop], abs=1e-5, rel=1e-5), (y, x, prop)
    # the texture must actually vary (guards against a kernel returning constants)
    assert np.nanstd(out[PROPS.index("contrast")]) > 0.1


def test_glcm_entropy_uses_natural_log_like_skimage() -> None:
    q = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    got = glcm_texture(q, 4, 3, [1], [0.0], ["entropy"])[0, 0, 0]
    # window at (0, 0) holds two pairs (0,1) and (2,3): symmetric -> 4 equal bins
    assert got == pytest.approx(np.log(4), abs=1e-6)


def test_glcm_parallel_serial_and_margin_agree() -> None:
    rng = np.random.default_rng(3)
    q = rng.integers(0, 12, size=(40, 33)).astype(np.uint8)
    q[5:9, 10:14] = MISSING
    full = glcm_texture(q, 12, 7, DISTANCES, ANGLES, PROPS)
    serial = glcm_texture(q, 12, 7, DISTANCES, ANGLES, PROPS, parallel=False)
    assert np.array_equal(full, serial, equal_nan=True)
    inner = glcm_texture(q, 12, 7, DISTANCES, ANGLES, PROPS, margin=4)
    assert np.array_equal(full[:, 4:-4, 4:-4], inner, equal_nan=True)
    # a NaN/MISSING halo is the same as the array edge: tiles with missing halos are exact
    padded = np.pad(q, 3, constant_values=MISSING)
    assert np.array_equal(
        glcm_texture(padded, 12, 7, margin=3), glcm_texture(q, 12, 7), equal_nan=True
    )


def test_glcm_all_missing_window_is_nan() -> None:
    q = np.full((9, 9), MISSING, dtype=np.uint8)
    q[0, 0] = 1
    out = glcm_texture(q, 4, 3, [1], [0.0], ["contrast", "correlation"])
    assert np.isnan(out[:, 5, 5]).all()
    # a single valid pixel forms no pair either
    assert np.isnan(out[:, 0, 0]).all()


def test_glcm_offsets_follow_skimage_rounding_and_merge_duplicates() -> None:
    offsets, weights = glcm_offsets([1, 2], ANGLES)
    table = {tuple(o): w for o, w in zip(offsets.tolist(), weights.tolist(), strict=True)}
    # d=2 at 45°/135° rounds to (1, ±1) in scikit-image, the same offsets as d=1
    assert table == {(0, 1): 1, (0, 2): 1, (1, 0): 1, (2, 0): 1, (1, 1): 2, (1, -1): 2}
    # opposite directions give the same symmetric matrix
    offsets, weights = glcm_offsets([1], [0.0, np.pi])
    assert offsets.tolist() == [[0, 1]] and weights.tolist() == [2.0]


def test_quantize_linear_and_direct() -> None:
    img = np.array([[0.0, 0.49, 0.5, 1.0], [np.nan, -1.0, 2.0, 0.999]], dtype=np.float32)
    q = quantize(img, 4, 0.0, 1.0)
    assert q.tolist() == [[0, 1, 2, 3], [MISSING, 0, 3, 3]]
    auto = quantize(img, 4)  # per-image range -1..2
    expected = np.floor((img - (-1.0)) / 3.0 * 4).clip(0, 3)
    ok = ~np.isnan(img)
    assert np.array_equal(auto[ok], expected[ok].astype(np.uint8))
    classes = np.array([[0, 16, 17, 3.5]], dtype=np.float32)
    assert quantize(classes, 17, direct=True).tolist() == [[0, 16, MISSING, MISSING]]
    with pytest.raises(ValueError, match="levels"):
        quantize(img, 256)


def _generic(img: np.ndarray, func: object, size: int) -> np.ndarray:
    """The slow reference: a NaN-aware reducer over each window, outside = NaN."""
    return ndimage.generic_filter(
        img.astype(np.float64), func, size=size, mode="constant", cval=np.nan
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("window", [3, 7])
def test_window_stats_match_scipy_nan_filters(window: int) -> None:
    rng = np.random.default_rng(window)
    img = (rng.normal(size=(37, 29)) * 10 + 50).astype(np.float32)
    img[rng.random(img.shape) < 0.1] = np.nan
    img[10:20, 5:15] = np.nan  # a hole larger than the window -> all-NaN windows
    got = window_stats(img, window, ("mean", "std", "min", "max"))
    for k, func in enumerate((np.nanmean, np.nanstd, np.nanmin, np.nanmax)):
        ref = _generic(img, func, window)
        assert np.array_equal(np.isnan(got[k]), np.isnan(ref)), func.__name__
        np.testing.assert_allclose(got[k], ref, rtol=1e-5, atol=1e-4, equal_nan=True)
    assert np.isnan(got[:, 15, 10]).all()  # centre of the hole


def test_window_stats_tiling_is_bit_exact() -> None:
    rng = np.random.default_rng(7)
    img = rng.normal(size=(50, 45)).astype(np.float32) * 1e3
    img[rng.random(img.shape) < 0.05] = np.nan
    whole = window_stats(img, 7, ("mean", "std", "min", "max"))
    padded = np.pad(img, 5, constant_values=np.nan)
    assert np.array_equal(window_stats(padded, 7, margin=5), whole, equal_nan=True)
    tile = padded[10:40, 12:37]  # image rows 5..34, cols 7..31; with a halo of 5 ->
    assert np.array_equal(window_stats(tile, 7, margin=5), whole[:, 10:30, 12:27], equal_nan=True)
    assert np.array_equal(window_stats(img, 7, parallel=False), whole, equal_nan=True)


def test_window_stats_rejects_even_windows() -> None:
    with pytest.raises(ValueError, match="odd"):
        window_stats(np.zeros((5, 5), np.float32), 4)


def test_index_values_and_zero_denominators() -> None:
    nir = np.array([0.5, 0.2, 0.0, np.nan], dtype=np.float32)
    red = np.array([0.1, 0.2, 0.0, 0.1], dtype=np.float32)
    ndvi = index_array("ndvi", {"nir": nir, "red": red})
    assert ndvi.dtype == np.float32
    np.testing.assert_allclose(ndvi[:2], [0.4 / 0.6, 0.0], rtol=1e-6)
    assert np.isnan(ndvi[2]) and np.isnan(ndvi[3])
    blue = np.array([0.05, 0.1, 0.0, 0.0], dtype=np.float32)
    evi = index_array("evi", {"nir": nir * 1e4, "red": red * 1e4, "blue": blue * 1e4}, scale=1e-4)
    expected = 2.5 * (0.5 - 0.1) / (0.5 + 6 * 0.1 - 7.5 * 0.05 + 1)
    assert evi[0] == pytest.approx(expected, rel=1e-5)


def test_rgb_indices() -> None:
    r = np.array([10.0, 50.0], np.float32)
    g = np.array([30.0, 50.0], np.float32)
    b = np.array([20.0, 100.0], np.float32)
    bands = {"red": r, "green": g, "blue": b}
    np.testing.assert_allclose(index_array("brightness", bands), [20.0, 200.0 / 3], rtol=1e-6)
    np.testing.assert_allclose(index_array("vari", bands), [20.0 / 20.0, np.nan], rtol=1e-6)
    np.testing.assert_allclose(index_array("exg", bands), [30.0 / 60.0, -50.0 / 200.0], rtol=1e-6)
    np.testing.assert_allclose(index_array("ratio_gr", bands), [3.0, 1.0], rtol=1e-6)


def test_spectral_indices_choose_by_band_names_and_stay_lazy() -> None:
    assert available_indices(["red", "green", "blue"]) == [
        "brightness",
        "vari",
        "exg",
        "ratio_gr",
        "ratio_br",
    ]
    assert available_indices(["NIR", "red", "blue", "mir"]) == [
        "ndvi",
        "evi",
        "savi",
        "ndmi",
        "sr",
        "ratio_br",
    ]
    rng = np.random.default_rng(0)
    data = rng.random((4, 20, 30)).astype(np.float32)
    da = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": ["nir", "red", "blue", "mir"]})
    eager = spectral_indices(da)
    assert list(eager["band"].values) == ["ndvi", "evi", "savi", "ndmi", "sr", "ratio_br"]
    np.testing.assert_allclose(
        eager.sel(band="ndmi").values, (data[0] - data[3]) / (data[0] + data[3]), rtol=1e-5
    )
    lazy = spectral_indices(da.chunk({"y": 8, "x": 16}), ["ndvi", "sr"])
    assert isinstance(lazy.data, dsa.Array)
    np.testing.assert_array_equal(lazy.values, eager.sel(band=["ndvi", "sr"]).values)
    with pytest.raises(ValueError, match="needs bands"):
        spectral_indices(da, ["vari"])
