"""Raster readers: headline reads of the real rasters, and round trips of small written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyhdf.SD import SD, SDC
from rasterio.transform import from_origin

from earthops.data.catalog import entry
from earthops.data.hdf4 import list_sds, read_hdf4_sds
from earthops.data.identity import file_sha256, ref_of
from earthops.data.legends import CRW_ALERT, IGBP, KOPPEN, Legend, crw_alert_level, legend_of
from earthops.data.rasters import (
    read_bmng,
    read_crw_dhw,
    read_koppen,
    read_mcd12c1,
    read_raster,
    read_sinop_cube,
)


def _transform_close(actual: Affine, expected: Affine) -> bool:
    return actual.almost_equals(expected, precision=1e-9)


# ------------------------------------------------------------------------------ real data
def test_mcd12c1_headline(mirror: Path) -> None:
    da = read_mcd12c1()
    assert da.dims == ("band", "y", "x")
    assert da.shape == (1, 3600, 7200)
    assert da.dtype == np.uint8
    values = set(np.unique(da.values).tolist())
    assert values <= set(range(17)) | {255}
    assert {0, 2, 12, 16} <= values
    assert da.rio.nodata == 255
    assert da.rio.crs.to_epsg() == 4326
    assert _transform_close(da.rio.transform(), Affine(0.05, 0, -180, 0, -0.05, 90))
    assert da.x.values[0] == pytest.approx(-179.975) and da.y.values[0] == pytest.approx(89.975)
    assert legend_of(da) == IGBP and len(da.attrs["class_names"]) == 17
    ref = ref_of(da)
    assert ref is not None and ref.name == "mcd12c1-2019"
    assert ref.digest == entry("mcd12c1-2019").files[0].sha256


def test_bmng_gets_global_extent(mirror: Path) -> None:
    da = read_bmng()
    assert da.shape == (3, 2700, 5400) and da.dtype == np.uint8
    assert list(da.band.values) == ["red", "green", "blue"]
    assert da.rio.crs.to_epsg() == 4326
    assert da.rio.bounds() == pytest.approx((-180, -90, 180, 90))
    assert da.x.values[0] == pytest.approx(-180 + 360 / 5400 / 2)
    assert ref_of(da).digest == entry("bmng-2004").files[0].sha256


def test_koppen_decimated_global(mirror: Path) -> None:
    da = read_koppen(out_shape=(360, 720), resampling="nearest")
    assert da.shape == (1, 360, 720) and da.dtype == np.uint8
    assert _transform_close(da.rio.transform(), Affine(0.5, 0, -180, 0, -0.5, 90))
    assert set(np.unique(da.values).tolist()) == {0, 1, 2, 3, 4, 5}
    assert da.rio.nodata == 0 and legend_of(da) == KOPPEN


def test_koppen_mode_window(mirror: Path) -> None:
    # 10° x 10° over Europe: a 1000 x 1000 native window, mode-aggregated to 100 x 100 (0.1°)
    da = read_koppen(bbox=(0, 40, 10, 50), out_shape=(100, 100), resampling="mode")
    assert da.shape == (1, 100, 100)
    assert da.rio.bounds() == pytest.approx((0, 40, 10, 50))
    assert set(np.unique(da.values).tolist()) <= {0, 2, 3, 4, 5}
    assert (da.values == 3).mean() > 0.3  # temperate Europe


def test_koppen_lazy_full_resolution(mirror: Path) -> None:
    da = read_koppen(out_shape=None, chunks=2048)
    assert da.shape == (1, 21600, 43200)
    assert da.chunks is not None  # dask-backed: nothing read yet
    corner = da.isel(y=slice(10800, 10810), x=slice(21600, 21610)).values
    assert corner.shape == (1, 10, 10)


def test_sinop_cube(mirror: Path) -> None:
    cube = read_sinop_cube()
    assert cube.dims == ("time", "y", "x")
    assert cube.shape == (12, 147, 255) and cube.dtype == np.float32
    finite = cube.values[np.isfinite(cube.values)]
    assert finite.min() >= -1 and finite.max() <= 1
    assert 0.3 < float(np.nanmean(cube.values)) < 0.9
    times = cube.time.values
    assert str(times[0])[:10] == "2013-09-14" and str(times[-1])[:10] == "2014-08-29"
    assert np.all(np.diff(times) > np.timedelta64(0))
    assert cube.rio.crs is not None and "Sinusoidal" in cube.rio.crs.to_wkt()
    assert cube.rio.transform().a == pytest.approx(231.656, abs=1e-3)
    assert ref_of(cube).name == "sinop-mod13q1-ndvi"


def test_crw_dhw(mirror: Path) -> None:
    dhw = read_crw_dhw()
    assert dhw.dims == ("band", "y", "x") and dhw.shape == (1, 3600, 7200)
    assert dhw.dtype == np.float32
    assert float(dhw.max()) == pytest.approx(59.46, abs=0.01)
    assert float(dhw.min()) >= 0
    assert dhw.rio.crs.to_epsg() == 4326
    assert _transform_close(dhw.rio.transform(), Affine(0.05, 0, -180, 0, -0.05, 90))
    assert np.isnan(dhw.sel(y=23.0, x=10.0, method="nearest").values).all()  # Sahara: land
    assert np.isfinite(dhw.sel(y=0.0, x=-140.0, method="nearest").values).all()  # open Pacific
    assert str(dhw.time.values)[:10] == "2021-06-19"
    assert ref_of(dhw).digest == entry("crw-dhw-20210619").files[0].sha256


# ------------------------------------------------------------------------------ generic GeoTIFF
def _write_tif(path: Path, data: np.ndarray, **profile: object) -> Path:
    base = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype,
        "crs": "EPSG:4326",
        "transform": from_origin(10, 50, 0.5, 0.5),
    }
    base.update(profile)
    with rasterio.open(path, "w", **base) as dst:
        dst.write(data)
    return path


def test_read_raster_float_nodata_becomes_nan(tmp_path: Path) -> None:
    data = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    data[0, 0, 0] = -9999
    path = _write_tif(tmp_path / "f.tif", data, nodata=-9999)
    da = read_raster(path)
    assert da.dims == ("band", "y", "x") and da.shape == (2, 4, 6)
    assert np.isnan(da.values[0, 0, 0]) and da.values[1, 0, 0] == 24
    assert da.rio.encoded_nodata == -9999
    assert list(da.band.values) == ["b1", "b2"]
    assert da.rio.bounds() == pytest.approx((10, 48, 13, 50))
    assert ref_of(da).digest == file_sha256(path)


def test_read_raster_integer_nodata_kept_and_descriptions(tmp_path: Path) -> None:
    data = np.ones((1, 4, 4), dtype=np.int16)
    data[0, 0] = -1
    path = tmp_path / "i.tif"
    _write_tif(path, data, nodata=-1)
    with rasterio.open(path, "r+") as dst:
        dst.set_band_description(1, "NDVI")
    da = read_raster(path, name="my-raster")
    assert da.dtype == np.int16 and da.values[0, 0, 0] == -1
    assert da.rio.nodata == -1 and da.attrs["_FillValue"] == -1
    assert list(da.band.values) == ["ndvi"]
    assert ref_of(da).name == "my-raster"


def test_read_raster_scale_offset_applied(tmp_path: Path) -> None:
    data = np.full((1, 3, 3), 250, dtype=np.int16)
    path = _write_tif(tmp_path / "s.tif", data, nodata=-1)
    with rasterio.open(path, "r+") as dst:
        dst.scales, dst.offsets = (0.01,), (1.0,)
    da = read_raster(path)
    assert da.dtype == np.float32
    assert np.allclose(da.values, 3.5)


def test_read_raster_bbox_and_decimation(tmp_path: Path) -> None:
    data = np.arange(40 * 40, dtype=np.uint16).reshape(1, 40, 40)
    path = _write_tif(tmp_path / "w.tif", data)
    win = read_raster(path, bbox=(12, 40, 15, 45))
    assert win.shape == (1, 10, 6)
    assert win.rio.bounds() == pytest.approx((12, 40, 15, 45))
    assert int(win.values[0, 0, 0]) == data[0, 10, 4]
    small = read_raster(path, out_shape=(10, 10), resampling="nearest")
    assert small.shape == (1, 10, 10) and small.rio.resolution() == pytest.approx((2.0, -2.0))
    with pytest.raises(ValueError, match="unknown resampling"):
        read_raster(path, out_shape=(10, 10), resampling="fancy")


def test_read_raster_lazy(tmp_path: Path) -> None:
    data = np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64)
    path = _write_tif(tmp_path / "lazy.tif", data)
    da = read_raster(path, chunks=32)
    assert da.chunks is not None
    assert float(da.sum()) == pytest.approx(float(data.sum()))


# ------------------------------------------------------------------------------ HDF4
MCD12C1_SDS = (
    "Majority_Land_Cover_Type_1",
    "Majority_Land_Cover_Type_2",
    "Land_Cover_Type_1_Percent",
)


def _write_mcd12c1_hdf(path: Path, igbp: np.ndarray, *, with_percent: bool = True) -> Path:
    """A small MCD12C1-like HDF4 file: same SDS names, fill values and attributes."""
    height, width = igbp.shape
    sd = SD(str(path), SDC.WRITE | SDC.CREATE)
    for name in MCD12C1_SDS[:2]:
        sds = sd.create(name, SDC.UINT8, (height, width))
        sds.setfillvalue(255)
        sds.long_name = f"{name} (IGBP)"
        sds.valid_range = [0, 16]
        sds.setcompress(SDC.COMP_DEFLATE, 1)
        sds[:] = igbp
        sds.endaccess()
    if with_percent:
        pct = sd.create(MCD12C1_SDS[2], SDC.UINT8, (height, width, 17))
        pct.setfillvalue(255)
        cube = np.zeros((height, width, 17), dtype=np.uint8)
        cube[..., 0] = 100
        pct[:] = cube
        pct.endaccess()
    lst = sd.create("Scaled_Temperature", SDC.INT16, (height, width))
    lst.setfillvalue(-32768)
    lst.setcal(0.02, 0.0, 10.0, 0.0, SDC.INT16)  # HDF4: value = 0.02 * (stored - 10)
    raw = np.full((height, width), 15010, dtype=np.int16)
    raw[0, 0] = -32768
    lst[:] = raw
    lst.endaccess()
    sd.end()
    return path


def test_hdf4_small_grid_roundtrip(tmp_path: Path) -> None:
    igbp = (np.arange(36 * 72) % 17).astype(np.uint8).reshape(36, 72)
    igbp[0, :4] = 255
    path = _write_mcd12c1_hdf(tmp_path / "MCD12C1.small.hdf", igbp)
    assert set(list_sds(path)) == {*MCD12C1_SDS, "Scaled_Temperature"}
    da = read_hdf4_sds(path)
    assert da.dims == ("band", "y", "x") and da.shape == (1, 36, 72)
    assert list(da.band.values) == ["Majority_Land_Cover_Type_1"]
    assert da.dtype == np.uint8 and np.array_equal(da.values[0], igbp)
    assert da.rio.nodata == 255 and da.attrs["_FillValue"] == 255
    assert da.rio.crs.to_epsg() == 4326
    assert _transform_close(da.rio.transform(), Affine(5, 0, -180, 0, -5, 90))  # 360 / 72
    assert ref_of(da).digest == file_sha256(path)

    pct = read_hdf4_sds(path, "Land_Cover_Type_1_Percent")
    assert pct.shape == (17, 36, 72) and int(pct.values[0].min()) == 100

    temp = read_hdf4_sds(path, "Scaled_Temperature")
    assert temp.dtype == np.float32 and np.isnan(temp.values[0, 0, 0])
    assert float(temp.values[0, 1, 1]) == pytest.approx(0.02 * (15010 - 10))
    divided = read_hdf4_sds(path, "Scaled_Temperature", scaling="divide")
    assert float(divided.values[0, 1, 1]) == pytest.approx((15010 - 10) / 0.02)
    raw = read_hdf4_sds(path, "Scaled_Temperature", scaling="none")
    assert raw.dtype == np.int16 and raw.rio.nodata == -32768


def test_hdf4_full_cmg_matches_geotiff(tmp_path: Path, mirror: Path) -> None:
    tif = read_mcd12c1()
    path = _write_mcd12c1_hdf(tmp_path / "MCD12C1.A2019001.hdf", tif.values[0], with_percent=False)
    da = read_hdf4_sds(path, "Majority_Land_Cover_Type_1")
    assert da.shape == (1, 3600, 7200)
    assert _transform_close(da.rio.transform(), Affine(0.05, 0, -180, 0, -0.05, 90))
    assert np.array_equal(da.values, tif.values)
    assert np.allclose(da.x.values, tif.x.values) and np.allclose(da.y.values, tif.y.values)


def test_hdf4_eos_sinusoidal_metadata(tmp_path: Path) -> None:
    path = tmp_path / "MOD13Q1.h12v10.hdf"
    sd = SD(str(path), SDC.WRITE | SDC.CREATE)
    sds = sd.create("250m 16 days NDVI", SDC.INT16, (48, 48))
    sds.setfillvalue(-3000)
    sds.valid_range = [-2000, 10000]
    sds.setcal(10000.0, 0.0, 0.0, 0.0, SDC.INT16)
    sds[:] = np.full((48, 48), 5000, dtype=np.int16)
    sds.endaccess()
    sd.attr("StructMetadata.0").set(
        SDC.CHAR,
        'GROUP=GridStructure\n\tGROUP=GRID_1\n\t\tGridName="MODIS_Grid_16DAY_250m_500m_VI"\n'
        "\t\tXDim=48\n\t\tYDim=48\n"
        "\t\tUpperLeftPointMtrs=(-6671703.118000,-1111950.519667)\n"
        "\t\tLowerRightMtrs=(-5559752.598333,-2223901.039333)\n"
        "\t\tProjection=GCTP_SNSOID\n"
        "\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)\n"
        "\tEND_GROUP=GRID_1\nEND_GROUP=GridStructure\n",
    )
    sd.end()
    da = read_hdf4_sds(path, "250m 16 days NDVI", scaling="divide")
    assert np.allclose(da.values, 0.5)
    assert "Sinusoidal" in da.rio.crs.to_wkt() or "sinu" in da.rio.crs.to_proj4()
    assert da.rio.bounds() == pytest.approx(
        (-6671703.118, -2223901.039333, -5559752.598333, -1111950.519667)
    )


# ------------------------------------------------------------------------------ legends
def test_legends() -> None:
    assert IGBP.values == tuple(range(17)) and IGBP.nodata == 255
    assert IGBP.name_of(12) == "croplands"
    assert IGBP.colormap()[0] == (0x1C, 0x0D, 0xFF)
    assert KOPPEN.names()[5] == "polar"
    restored = Legend.from_attrs(IGBP.to_attrs())
    assert restored is not None and restored.classes == IGBP.classes
    da = xr.DataArray(np.zeros((1, 1, 1)), attrs=KOPPEN.to_attrs())
    assert legend_of(da) == KOPPEN
    levels = crw_alert_level(
        [-0.5, 0.5, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, np.nan], [0, 0, 2, 4, 8, 12, 16, 20, 1]
    )
    assert levels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 255]
    assert [CRW_ALERT.name_of(v) for v in (1, 4)] == ["Bleaching Watch", "Alert Level 2"]
