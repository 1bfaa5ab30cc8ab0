"""Feature stacks: tiling exactness, specs, defaults, file inputs and the CLI library function."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.windows import Window

from earthops.errors import DataError
from earthops.features.glcm import glcm_texture, quantize
from earthops.features.kernels import window_stats
from earthops.features.stack import (
    SPEC_TAG,
    FeatureSpec,
    GlcmSpec,
    compute_stack,
    default_spec_for,
    features_raster,
    stack_inputs,
)
from earthops.raster.cog import validate_cog

MCD12C1 = "modis/MCD12C1.A2019001.006.2020220162300.tif"


def _rgb(h: int = 150, w: int = 131, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    data = (rng.random((3, h, w)) * 200).astype(np.float32)
    data[:, 40:52, 60:75] = np.nan  # a nodata hole crossing tile borders
    data[1, rng.random((h, w)) < 0.03] = np.nan
    coords = {
        "band": ["red", "green", "blue"],
        "y": 50.0 - 0.01 * np.arange(h),
        "x": 0.01 * np.arange(w),
    }
    return xr.DataArray(data, dims=("band", "y", "x"), coords=coords).rio.write_crs(4326)


SPEC = FeatureSpec(
    indices=["brightness", "vari", "exg"],
    stats_bands=["green", "brightness"],
    windows=[3, 7],
    glcm=GlcmSpec(bands=["green", "exg"], window=5, levels=8),
    chunk=64,
)


def test_tiled_stack_equals_single_chunk_exactly() -> None:
    da = _rgb()
    tiled = compute_stack(da, SPEC)
    assert isinstance(tiled.data, dsa.Array)
    assert len(tiled.data.chunks[1]) > 1 and len(tiled.data.chunks[2]) > 1
    whole = compute_stack(da, SPEC.model_copy(update={"chunk": 4096}))
    assert whole.data.numblocks == (1, 1, 1)
    a, b = tiled.values, whole.values
    assert a.dtype == np.float32 and a.shape == (
        len(SPEC.feature_names(["red", "green", "blue"])),
        150,
        131,
    )
    assert np.array_equal(a, b, equal_nan=True)
    # the stack is not trivially NaN and its texture bands vary
    assert np.isfinite(a).mean() > 0.9
    assert np.nanstd(tiled.sel(band="green_glcm_contrast_w5").values) > 0.1


def test_stack_bands_match_direct_kernels() -> None:
    da = _rgb()
    stack = compute_stack(da, SPEC)
    green = da.sel(band="green").values
    stats = window_stats(green, 7, ["mean", "std", "min", "max"])
    hole = np.isnan(green)
    stats[:, hole] = np.nan  # mask_nodata
    np.testing.assert_array_equal(stack.sel(band="green_std_w7").values, stats[1])
    np.testing.assert_array_equal(stack.sel(band="green_max_w7").values, stats[3])
    q = quantize(green, 8, float(np.nanmin(green)), float(np.nanmax(green)))
    tex = glcm_texture(q, 8, 5, [1, 2], SPEC.glcm.angles, ["homogeneity"])[0]
    tex[hole] = np.nan
    np.testing.assert_array_equal(stack.sel(band="green_glcm_homogeneity_w5").values, tex)
    # nodata stays nodata in every derived feature
    assert np.isnan(stack.values[:, 45, 65]).all()


def test_feature_names_and_halo() -> None:
    names = SPEC.feature_names(["red", "green", "blue"])
    assert names[:6] == ["red", "green", "blue", "brightness", "vari", "exg"]
    assert "brightness_mean_w7" in names and "exg_glcm_asm_w5" in names
    assert len(names) == 6 + 2 * 2 * 4 + 2 * 7
    assert SPEC.halo() == 3
    assert FeatureSpec(windows=[15], glcm=GlcmSpec(window=21)).halo() == 10
    assert FeatureSpec(stats=[], glcm=None).halo() == 0


def test_spec_files_round_trip_and_errors(tmp_path: Path) -> None:
    path = SPEC.to_file(tmp_path / "spec.yaml")
    assert FeatureSpec.from_file(path) == SPEC
    (tmp_path / "spec.json").write_text(json.dumps({"windows": [5], "glcm": {"levels": 32}}))
    loaded = FeatureSpec.from_file(tmp_path / "spec.json")
    assert loaded.windows == [5] and loaded.glcm is not None and loaded.glcm.levels == 32
    (tmp_path / "bad.yaml").write_text("glcm:\n  window: 4\n")
    with pytest.raises(DataError, match=r"bad\.yaml.*glcm\.window"):
        FeatureSpec.from_file(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("indexes: [ndvi]\n")
    with pytest.raises(DataError, match="indexes"):
        FeatureSpec.from_file(tmp_path / "typo.yaml")
    with pytest.raises(DataError, match="not found"):
        FeatureSpec.from_file(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("windows: [5, 7\n")
    with pytest.raises(DataError, match=r"broken\.yaml.*not valid YAML"):
        FeatureSpec.from_file(tmp_path / "broken.yaml")
    (tmp_path / "list.json").write_text("[5, 7]")
    with pytest.raises(DataError, match=r"list\.json.*expected a mapping.*got list"):
        FeatureSpec.from_file(tmp_path / "list.json")


def test_spec_check_names_what_is_missing() -> None:
    with pytest.raises(DataError, match=r"index 'ndvi' needs bands \['nir', 'red'\]"):
        FeatureSpec(indices=["ndvi"]).check(["red", "green", "blue"])
    with pytest.raises(DataError, match="'swir'"):
        FeatureSpec(stats_bands=["swir"]).check(["red", "green", "blue"])


def test_default_specs() -> None:
    rgb = default_spec_for(_rgb())
    assert rgb.indices == ["brightness", "vari", "exg", "ratio_gr", "ratio_br"]
    assert rgb.stats_bands == ["brightness"] and rgb.glcm.bands == ["brightness"]
    modis = xr.DataArray(
        np.zeros((4, 8, 8), np.float32),
        dims=("band", "y", "x"),
        coords={"band": ["nir", "red", "blue", "mir"]},
    )
    assert default_spec_for(modis).stats_bands == ["ndvi"]
    classes = xr.DataArray(
        np.zeros((1, 8, 8), np.uint8), dims=("band", "y", "x"), coords={"band": ["b1"]}
    )
    spec = default_spec_for(classes)
    assert spec.glcm.levels == 32 and spec.glcm.bands is None and spec.stats_bands is None
    assert spec.windows == [3, 7, 15]


def test_categorical_map_quantised_directly() -> None:
    """Integer classes 0..16 become GLCM levels as they are (auto mode), not a linear rescale."""
    data = np.full((1, 40, 40), 5, dtype=np.uint8)
    data[0, :, 20:] = 12
    data[0, 0, 0] = 255  # nodata
    da = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": ["igbp"]}).rio.write_nodata(
        255
    )
    spec = default_spec_for(da)
    spec.glcm.props.append("mean")  # GLCM mean = the mean level in the window
    stack = compute_stack(da, spec)
    mean = stack.sel(band="igbp_glcm_mean_w7").values
    assert mean[20, 5] == pytest.approx(5.0) and mean[20, 35] == pytest.approx(12.0)
    assert np.isnan(stack.values[:, 0, 0]).all()  # nodata 255 masked, not class 255
    assert stack.sel(band="igbp_max_w3").values[1, 1] == 5.0


@pytest.fixture
def mcd12c1_crop(mirror: Path, tmp_path: Path) -> Path:
    """A 200 x 260 crop of the real MCD12C1 2019 IGBP map (Europe/N. Africa), as GeoTIFF."""
    src_path = mirror / MCD12C1
    with rasterio.open(src_path) as src:
        window = Window(3560, 700, 260, 200)
        data = src.read(1, window=window)
        profile = src.profile | {
            "width": 260,
            "height": 200,
            "transform": src.window_transform(window),
            "tiled": False,
            "blockxsize": 260,
            "blockysize": 1,
        }
    data[:3, :3] = 255
    out = tmp_path / "mcd12c1_crop.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
    return out


def test_features_raster_on_real_mcd12c1_crop(mcd12c1_crop: Path, tmp_path: Path) -> None:
    with rasterio.open(mcd12c1_crop) as src:
        classes = src.read(1)
    assert len(np.unique(classes)) > 5  # the crop has real variety
    out = features_raster([mcd12c1_crop], tmp_path / "out" / "features.tif", None)
    assert validate_cog(out).is_valid
    with rasterio.open(out) as ds:
        names = list(ds.descriptions)
        assert names[0] == "b1" and "b1_glcm_entropy_w7" in names and "b1_std_w15" in names
        assert ds.count == 1 + 3 * 4 + 7 and ds.dtypes[0] == "float32"
        assert ds.compression is not None and ds.compression.name == "zstd"  # the fast codec
        assert json.loads(ds.tags()[SPEC_TAG])["glcm"]["levels"] == 32
        band = ds.read(1)
        assert np.isnan(band[:3, :3]).all()
        np.testing.assert_array_equal(band[3:, 3:], classes[3:, 3:].astype(np.float32))
        assert ds.crs is not None and ds.transform == rasterio.open(mcd12c1_crop).transform


def test_features_raster_with_spec_and_several_inputs(mcd12c1_crop: Path, tmp_path: Path) -> None:
    spec = FeatureSpec(windows=[3], stats=["mean"], glcm=None).to_file(tmp_path / "s.yaml")
    out = features_raster([mcd12c1_crop, mcd12c1_crop], tmp_path / "two.tif", spec)
    with rasterio.open(out) as ds:
        assert list(ds.descriptions) == ["in1_b1", "in2_b1", "in1_b1_mean_w3", "in2_b1_mean_w3"]


def test_grid_mismatch_names_the_file(mcd12c1_crop: Path, tmp_path: Path) -> None:
    other = tmp_path / "shifted.tif"
    with rasterio.open(mcd12c1_crop) as src:
        profile = src.profile
        data = src.read()
    original = profile["transform"]
    profile["transform"] = original @ rasterio.Affine.translation(1, 0)
    with rasterio.open(other, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(DataError, match=r"shifted\.tif.*grid mismatch.*transform"):
        stack_inputs([mcd12c1_crop, other])
    profile["transform"] = original
    for name, change in (
        ("cropped", {"width": profile["width"] - 1}),
        ("utm", {"crs": "EPSG:32633"}),
    ):
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", **{**profile, **change}) as dst:
            dst.write(data[:, :, : dst.width])
        what = "shape" if name == "cropped" else "CRS EPSG:32633"
        with pytest.raises(DataError, match=rf"{name}\.tif.*grid mismatch.*{what}"):
            stack_inputs([mcd12c1_crop, path])
    with pytest.raises(DataError, match=r"nope\.tif.*not found"):
        features_raster([tmp_path / "nope.tif"], tmp_path / "x.tif")
