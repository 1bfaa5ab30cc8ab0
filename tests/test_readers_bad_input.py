"""Bad input fails early with a DataError that names the file (and the field)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import rasterio
from pyhdf.SD import SD, SDC
from rasterio.transform import from_origin

from earthops.data.hdf4 import read_hdf4_sds
from earthops.data.rasters import (
    read_bmng,
    read_crw_dhw,
    read_koppen,
    read_mcd12c1,
    read_raster,
    read_sinop_cube,
)
from earthops.data.samples import read_mod13q1_samples
from earthops.data.tables import read_bleaching_surveys, read_coraltemp_csv, read_erddap_json
from earthops.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _raises(
    call, path: Path | str, field: str | None = None, *, match: str | None = None
) -> DataError:
    """Run ``call``; assert a DataError naming ``path`` (and ``field``) and return it."""
    with pytest.raises(DataError) as info:
        call()
    err = info.value
    assert str(path) in str(err), str(err)
    if field is not None:
        assert err.field == field and field in str(err), str(err)
    if match is not None:
        assert match in str(err), str(err)
    return err


def _tif(
    path: Path, data: np.ndarray, *, crs: str | None = "EPSG:4326", nodata: float | None = None
) -> Path:
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype,
        "nodata": nodata,
    }
    if crs is not None:
        profile.update(
            crs=crs, transform=from_origin(-180, 90, 360 / data.shape[2], 180 / data.shape[1])
        )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


# ------------------------------------------------------------------------------ rasters
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.tif"
    _raises(lambda: read_raster(path), path, match="not found")
    _raises(lambda: read_mcd12c1(path), path, match="not found")


def test_truncated_geotiff(tmp_path: Path) -> None:
    good = _tif(tmp_path / "good.tif", np.ones((1, 128, 256), dtype=np.uint8))
    path = tmp_path / "truncated.tif"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _raises(lambda: read_raster(path), path, match="truncated")


def test_corrupt_header_geotiff(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 64)
    _raises(lambda: read_raster(path), path, match="not a readable raster")


def test_text_file_named_tif(tmp_path: Path) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("this is not a raster\n")
    _raises(lambda: read_raster(path), path, match="not a readable raster")
    _raises(lambda: read_koppen(path), path)


def test_no_crs_where_required(tmp_path: Path) -> None:
    path = _tif(tmp_path / "nocrs.tif", np.ones((1, 36, 72), dtype=np.uint8), crs=None)
    _raises(lambda: read_raster(path, require_crs=True), path, "crs", match="no CRS")
    _raises(lambda: read_mcd12c1(path), path, "crs", match="no CRS")
    _raises(lambda: read_koppen(path, out_shape=None), path, "crs", match="no CRS")
    assert read_raster(path).rio.crs is None  # the generic reader accepts it when not required


def test_projected_crs_is_not_a_cmg_grid(tmp_path: Path) -> None:
    path = _tif(tmp_path / "utm.tif", np.ones((1, 8, 8), dtype=np.uint8), crs="EPSG:32633")
    _raises(lambda: read_mcd12c1(path), path, "crs", match="geographic")


def test_all_nodata_raster(tmp_path: Path) -> None:
    path = _tif(tmp_path / "empty.tif", np.full((1, 8, 16), 255, dtype=np.uint8), nodata=255)
    _raises(lambda: read_raster(path), path, match="all pixels are nodata")
    fpath = _tif(
        tmp_path / "empty_f.tif", np.full((1, 8, 16), -9999, dtype=np.float32), nodata=-9999
    )
    _raises(lambda: read_raster(fpath), fpath, match="all pixels are nodata")


def test_mcd12c1_values_outside_igbp(tmp_path: Path) -> None:
    data = np.zeros((1, 36, 72), dtype=np.uint8)
    data[0, 3, 3] = 42
    path = _tif(tmp_path / "bad_classes.tif", data, nodata=255)
    _raises(lambda: read_mcd12c1(path), path, "Majority_Land_Cover_Type_1", match="42")


def test_bmng_needs_three_bands(tmp_path: Path) -> None:
    path = _tif(tmp_path / "gray.tif", np.ones((1, 10, 20), dtype=np.uint8), crs=None)
    _raises(lambda: read_bmng(path), path, "band")


def test_bbox_outside_raster(tmp_path: Path) -> None:
    path = _tif(tmp_path / "global.tif", np.ones((1, 18, 36), dtype=np.uint8))
    _raises(
        lambda: read_raster(path, bbox=(200, 0, 210, 10)), path, "bbox", match="does not intersect"
    )
    _raises(lambda: read_raster(path, bbox=(10, 0, 5, 10)), path, "bbox", match="empty")


def test_sinop_bad_file_name_and_grid(tmp_path: Path) -> None:
    good = _tif(tmp_path / "X_NDVI_2014-01-01.tif", np.full((1, 6, 8), 5000, dtype=np.int16))
    undated = _tif(tmp_path / "X_NDVI_january.tif", np.full((1, 6, 8), 5000, dtype=np.int16))
    _raises(lambda: read_sinop_cube([good, undated]), undated, "date")
    other = _tif(tmp_path / "X_NDVI_2014-02-01.tif", np.full((1, 7, 8), 5000, dtype=np.int16))
    _raises(lambda: read_sinop_cube([good, other]), other, "grid")
    same_day = _tif(tmp_path / "Y_NDVI_2014-01-01.tif", np.full((1, 6, 8), 5000, dtype=np.int16))
    _raises(lambda: read_sinop_cube([good, same_day]), "2014-01-01", "date")
    cube = read_sinop_cube([good])
    assert cube.shape == (1, 6, 8) and float(cube.max()) == pytest.approx(0.5)


# ------------------------------------------------------------------------------ HDF4
def _hdf(path: Path) -> Path:
    sd = SD(str(path), SDC.WRITE | SDC.CREATE)
    for name in ("Majority_Land_Cover_Type_1", "Majority_Land_Cover_Type_2"):
        sds = sd.create(name, SDC.UINT8, (18, 36))
        sds.setfillvalue(255)
        sds[:] = np.full((18, 36), 255, dtype=np.uint8)
        sds.endaccess()
    odd = sd.create("Odd_Grid", SDC.UINT8, (10, 36))
    odd[:] = np.ones((10, 36), dtype=np.uint8)
    odd.endaccess()
    sd.end()
    return path


def test_missing_sds_lists_available(tmp_path: Path) -> None:
    path = _hdf(tmp_path / "MCD12C1.test.hdf")
    err = _raises(
        lambda: read_hdf4_sds(path, "Majority_Land_Cover_Type_3"),
        path,
        "Majority_Land_Cover_Type_3",
    )
    assert "Majority_Land_Cover_Type_1" in str(err) and "Majority_Land_Cover_Type_2" in str(err)


def test_hdf4_all_fill_and_ungeoreferenceable(tmp_path: Path) -> None:
    path = _hdf(tmp_path / "MCD12C1.fill.hdf")
    _raises(lambda: read_hdf4_sds(path), path, "Majority_Land_Cover_Type_1", match="fill")
    _raises(lambda: read_hdf4_sds(path, "Odd_Grid"), path, "Odd_Grid", match="not a global")


def test_not_an_hdf4_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.hdf"
    path.write_text("HDF? no.\n")
    _raises(lambda: read_hdf4_sds(path), path, match="not a readable HDF4")


# ------------------------------------------------------------------------------ NetCDF
def _nc(path: Path, *, var: str = "degree_heating_week", fill_all: bool = False) -> Path:
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 1)
        ds.createDimension("lat", 18)
        ds.createDimension("lon", 36)
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat[:] = np.linspace(85, -85, 18)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon[:] = np.linspace(-175, 175, 36)
        t = ds.createVariable("time", "i4", ("time",))
        t.units = "seconds since 1981-01-01 00:00:00"
        t[:] = [0]
        v = ds.createVariable(var, "i2", ("time", "lat", "lon"), fill_value=-32768)
        v.scale_factor = np.float32(0.01)
        values = np.full((1, 18, 36), 150, dtype=np.int16)
        v[:] = np.ma.masked_all((1, 18, 36), dtype=np.int16) if fill_all else values * 0.01
        m = ds.createVariable("mask", "i1", ("lat", "lon"))
        m.flag_values = np.array([0, 1, 2, 4], dtype=np.int8)
        m.flag_meanings = "valid-water land missing ice"
        mask = np.zeros((18, 36), dtype=np.int8)
        mask[:, :10] = 1
        m[:] = mask
    return path


def test_small_netcdf_reads_with_mask(tmp_path: Path) -> None:
    dhw = read_crw_dhw(_nc(tmp_path / "dhw.nc"))
    assert dhw.shape == (1, 18, 36)
    assert np.isnan(dhw.values[0, :, :10]).all() and np.allclose(dhw.values[0, :, 10:], 1.5)
    assert dhw.rio.transform().a == pytest.approx(10) and dhw.rio.transform().c == pytest.approx(
        -180
    )


def test_missing_netcdf_variable(tmp_path: Path) -> None:
    path = _nc(tmp_path / "sst.nc", var="analysed_sst")
    err = _raises(lambda: read_crw_dhw(path), path, "degree_heating_week", match="no variable")
    assert "analysed_sst" in str(err)


def test_all_masked_netcdf(tmp_path: Path) -> None:
    path = _nc(tmp_path / "empty.nc", fill_all=True)
    _raises(lambda: read_crw_dhw(path), path, "degree_heating_week", match="all pixels are nodata")


def test_not_a_netcdf_file(tmp_path: Path) -> None:
    path = tmp_path / "dhw.nc"
    path.write_text("not netcdf")
    _raises(lambda: read_crw_dhw(path), path, match="not a readable NetCDF")


# ------------------------------------------------------------------------------ surveys
def _survey_csv(mirror: Path, tmp_path: Path, edit=None, rows: int = 40) -> Path:
    source = mirror / "reef" / "global_bleaching_surveys_1980_2016.csv"
    lines = source.read_text().splitlines()[: rows + 1]
    if edit is not None:
        lines = edit(lines)
    path = tmp_path / "surveys.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(lines: list[str], row: int, column: str, value: str) -> list[str]:
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    return lines


def test_survey_subset_reads(mirror: Path, tmp_path: Path) -> None:
    assert len(read_bleaching_surveys(_survey_csv(mirror, tmp_path))) == 40


def test_survey_out_of_range_values(mirror: Path, tmp_path: Path) -> None:
    path = _survey_csv(mirror, tmp_path, lambda ls: _set(ls, 5, "avg.bleach", "150"))
    err = _raises(lambda: read_bleaching_surveys(path), path, "avg.bleach", match="in_range")
    assert "150" in str(err) and "line 7" in str(err)
    path = _survey_csv(mirror, tmp_path, lambda ls: _set(ls, 2, "Latitude_Degrees", "-95.5"))
    _raises(lambda: read_bleaching_surveys(path), path, "Latitude_Degrees", match="-95.5")
    path = _survey_csv(mirror, tmp_path, lambda ls: _set(ls, 2, "Date_Year", "1850"))
    _raises(lambda: read_bleaching_surveys(path), path, "Date_Year", match="1850")


def test_survey_non_integer_ids_and_missing_target(mirror: Path, tmp_path: Path) -> None:
    path = _survey_csv(mirror, tmp_path, lambda ls: _set(ls, 3, "Site_ID", "abc"))
    _raises(lambda: read_bleaching_surveys(path), path, "Site_ID", match="int64")
    path = _survey_csv(mirror, tmp_path, lambda ls: _set(ls, 3, "avg.bleach", "NA"))
    _raises(lambda: read_bleaching_surveys(path), path, "avg.bleach", match="not_nullable")


def test_survey_missing_required_columns(mirror: Path, tmp_path: Path) -> None:
    def drop(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        k = header.index("Turbidity")
        return [",".join(c for i, c in enumerate(line.split(",")) if i != k) for line in lines]

    path = _survey_csv(mirror, tmp_path, drop)
    _raises(
        lambda: read_bleaching_surveys(path), path, "Turbidity", match="missing required column"
    )


def test_survey_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    _raises(lambda: read_bleaching_surveys(path), path, match="empty")


# ------------------------------------------------------------------------------ SST series
def test_sst_bad_timestamp_and_value(tmp_path: Path) -> None:
    path = tmp_path / "sst.csv"
    path.write_text(
        "time,latitude,longitude,CRW_SST\n2021-06-01T12:00:00Z,19.7,-155.0,26.1\nyesterday,19.7,-155.0,26.2\n"
    )
    _raises(lambda: read_coraltemp_csv(path), path, "time", match="line 3")
    path.write_text("time,latitude,longitude,CRW_SST\n2021-06-01T12:00:00Z,19.7,-155.0,warm\n")
    _raises(lambda: read_coraltemp_csv(path), path, "CRW_SST", match="warm")
    path.write_text("time,latitude,longitude,CRW_SST\n2021-06-01T12:00:00Z,19.7,-155.0,99.0\n")
    _raises(lambda: read_coraltemp_csv(path), path, "sst", match="in_range")


def test_sst_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "sst.csv"
    path.write_text("time,latitude,longitude,analysed_sst\n2021-06-01T12:00:00Z,19.7,-155.0,26.1\n")
    _raises(lambda: read_coraltemp_csv(path), path, "CRW_SST", match="missing required column")


def test_erddap_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "sst.json"
    path.write_text(
        '{"table": {"columnNames": ["time", "CRW_SST"], "rows": [["2021-06-01T12:00:00Z", 26.1]'
    )
    _raises(lambda: read_erddap_json(path), path, match="malformed JSON")
    path.write_text(
        json.dumps(
            {"table": {"columnNames": ["time", "CRW_SST"], "rows": [["2021-06-01T12:00:00Z"]]}}
        )
    )
    _raises(lambda: read_erddap_json(path), path, "table.rows[0]")
    path.write_text(json.dumps({"rows": []}))
    _raises(lambda: read_erddap_json(path), path, "table")


# ------------------------------------------------------------------------------ samples
def _record(**change: object) -> dict:
    rec = {
        "longitude": -55.0,
        "latitude": -11.0,
        "label": "Forest",
        "time_series": [
            {"Index": f"2013-{9 + t:02d}-14", "ndvi": 0.5, "evi": 0.3} for t in range(3)
        ],
    }
    rec.update(change)
    return rec


def _samples(tmp_path: Path, records: object, *, gz: bool = False) -> Path:
    text = json.dumps(records).encode()
    path = tmp_path / ("s.json.gz" if gz else "s.json")
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def test_samples_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"longitude": -55.0, "latitude": ')
    _raises(lambda: read_mod13q1_samples(path), path, match="malformed JSON")
    gz = tmp_path / "broken.json.gz"
    gz.write_bytes(gzip.compress(b"[" * 10)[:-6])
    _raises(lambda: read_mod13q1_samples(gz), gz, match="gzip")
    _raises(
        lambda: read_mod13q1_samples(_samples(tmp_path, {"a": 1})),
        tmp_path / "s.json",
        match="JSON list",
    )


def test_samples_missing_key(tmp_path: Path) -> None:
    bad = _record()
    del bad["label"]
    path = _samples(tmp_path, [_record(), bad], gz=True)
    _raises(lambda: read_mod13q1_samples(path), path, "[1].label", match="record 1")


def test_samples_wrong_number_of_dates(tmp_path: Path) -> None:
    short = _record(time_series=_record()["time_series"][:2])
    path = _samples(tmp_path, [_record(), _record(), short])
    _raises(
        lambda: read_mod13q1_samples(path), path, "[2].time_series", match="2 dates; expected 3"
    )


def test_samples_non_numeric_values(tmp_path: Path) -> None:
    series = _record()["time_series"]
    series[1]["evi"] = "high"
    path = _samples(tmp_path, [_record(), _record(time_series=series)])
    _raises(lambda: read_mod13q1_samples(path), path, "[1].time_series[1].evi", match="'high'")
    series[1]["evi"] = None
    path = _samples(tmp_path, [_record(time_series=series)])
    _raises(lambda: read_mod13q1_samples(path), path, "[0].time_series[1].evi")
    path = _samples(tmp_path, [_record(longitude="west")])
    _raises(lambda: read_mod13q1_samples(path), path, "[0].longitude")


def test_samples_missing_band_and_bad_date(tmp_path: Path) -> None:
    series = _record()["time_series"]
    del series[2]["ndvi"]
    path = _samples(tmp_path, [_record(), _record(time_series=series)])
    _raises(
        lambda: read_mod13q1_samples(path), path, "[1].time_series[2].ndvi", match="missing band"
    )
    series = _record()["time_series"]
    series[0]["Index"] = "14/09/2013"
    path = _samples(tmp_path, [_record(), _record(time_series=series)])
    _raises(
        lambda: read_mod13q1_samples(path), path, "[1].time_series[0].Index", match="invalid date"
    )
    _raises(
        lambda: read_mod13q1_samples(_samples(tmp_path, [_record()]), bands=["nir"]),
        tmp_path / "s.json",
        "bands",
    )
