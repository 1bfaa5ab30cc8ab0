"""COG writing: valid per rio-cogeo, band descriptions, overviews, palette and class names."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.enums import ColorInterp

from earthops.raster.cog import CLASS_NAMES_TAG, read_class_names, validate_cog, write_cog


def _grid(data: np.ndarray, bands: list[str] | None = None) -> xr.DataArray:
    _, h, w = data.shape
    coords = {"y": 10.0 - 0.05 * (np.arange(h) + 0.5), "x": -20.0 + 0.05 * (np.arange(w) + 0.5)}
    if bands is not None:
        coords["band"] = bands
    return xr.DataArray(data, dims=("band", "y", "x"), coords=coords).rio.write_crs(4326)


def test_float_stack_is_valid_cog_with_descriptions_and_overviews(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.random((3, 600, 520)).astype(np.float32)
    data[1, :50, :50] = np.nan
    da = _grid(data, ["ndvi", "ndvi_mean_w3", "glcm_contrast"])
    out = write_cog(da, tmp_path / "stack.tif", blocksize=128)
    report = validate_cog(out)
    assert report.is_valid, report.errors
    with rasterio.open(out) as ds:
        assert ds.descriptions == ("ndvi", "ndvi_mean_w3", "glcm_contrast")
        levels = ds.overviews(1)
        assert levels[:2] == [2, 4] and 600 / levels[-1] <= 128  # down to one block
        assert ds.block_shapes[0] == (128, 128)
        assert ds.crs.to_epsg() == 4326
        assert ds.transform.c == pytest.approx(-20.0) and ds.transform.f == pytest.approx(10.0)
        assert np.isnan(ds.nodata)
        assert ds.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"
        np.testing.assert_array_equal(ds.read(), data)


def test_dask_backed_input_is_written_chunk_by_chunk(tmp_path: Path) -> None:
    data = np.arange(2 * 300 * 260, dtype=np.float32).reshape(2, 300, 260)
    da = _grid(data, ["a", "b"]).chunk({"band": 1, "y": 70, "x": 90})
    out = write_cog(da, tmp_path / "lazy.tif", blocksize=64, show_progress=False)
    assert validate_cog(out).is_valid
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), data)
        assert ds.overviews(2)[:2] == [2, 4]


def test_zstd_profile_writes_quietly(tmp_path: Path) -> None:
    """The feature stacks' codec: no "non-standard compression" warning on every write."""
    data = np.linspace(0, 1, 2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = write_cog(_grid(data), tmp_path / "z.tif", profile="zstd", level=1, blocksize=64)
    assert validate_cog(out).is_valid
    with rasterio.open(out) as ds:
        assert ds.compression is not None and ds.compression.name == "zstd"
        np.testing.assert_array_equal(ds.read(), data)


def test_palette_and_class_names(tmp_path: Path) -> None:
    classes = np.zeros((1, 512, 512), dtype=np.uint8)
    classes[0, :, 256:] = 2
    classes[0, :10, :10] = 255
    da = _grid(classes).rio.write_nodata(255)
    palette = {0: (0, 0, 255), 1: (0, 128, 0), 2: (255, 255, 0, 255)}
    names = {0: "water", 1: "evergreen needleleaf forest", 2: "evergreen broadleaf forest"}
    out = write_cog(da, tmp_path / "map.tif", colormap=palette, class_names=names, blocksize=128)
    report = validate_cog(out)
    assert report.is_valid, report.errors
    with rasterio.open(out) as ds:
        assert ds.colorinterp[0] == ColorInterp.palette
        cmap = ds.colormap(1)
        assert cmap[0] == (0, 0, 255, 255) and cmap[2] == (255, 255, 0, 255)
        assert ds.nodata == 255
        assert ds.tags()["OVERVIEW_RESAMPLING"] == "NEAREST"  # categorical: no class mixing
        assert CLASS_NAMES_TAG in ds.tags()
        assert ds.overviews(1)[:2] == [2, 4]
        overview = ds.read(1, out_shape=(128, 128))
        assert set(np.unique(overview)) <= {0, 2, 255}
    assert read_class_names(out) == names


def test_colormap_needs_single_integer_band(tmp_path: Path) -> None:
    da = _grid(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="single uint8/uint16 band"):
        write_cog(da, tmp_path / "x.tif", colormap={0: (0, 0, 0)})
    with pytest.raises(ValueError, match="unknown COG profile"):
        write_cog(da, tmp_path / "x.tif", profile="gzip9")
