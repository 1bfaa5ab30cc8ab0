"""Table and sample readers: the real surveys, SST series and MOD13Q1 samples; ERDDAP variants."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earthops.data.catalog import entry
from earthops.data.identity import file_sha256, ref_of
from earthops.data.samples import read_mod13q1_samples
from earthops.data.tables import read_bleaching_surveys, read_coraltemp_csv, read_erddap_json
from earthops.errors import DataError

SST_ROWS = [
    ("2021-06-01T12:00:00Z", 19.775, -155.075, 26.1),
    ("2021-06-02T12:00:00Z", 19.775, -155.075, 26.3),
    ("2021-06-03T12:00:00Z", 19.775, -155.075, None),
    ("2021-06-04T12:00:00Z", 19.775, -155.075, 26.0),
]


def _csv(path: Path, rows: list[tuple], *, units: bool) -> Path:
    lines = ["time,latitude,longitude,CRW_SST"]
    if units:
        lines.append("UTC,degrees_north,degrees_east,degree_C")
    lines += [",".join("NaN" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _erddap_json(rows: list[tuple]) -> str:
    return json.dumps(
        {
            "table": {
                "columnNames": ["time", "latitude", "longitude", "CRW_SST"],
                "columnTypes": ["String", "float", "float", "float"],
                "columnUnits": ["UTC", "degrees_north", "degrees_east", "degree_C"],
                "rows": [list(r) for r in rows],
            }
        }
    )


# ------------------------------------------------------------------------------ surveys
def test_bleaching_surveys_headline(mirror: Path) -> None:
    frame = read_bleaching_surveys()
    assert len(frame) == 21234
    assert frame["Site_ID"].dtype == np.int64 and frame["Sample_ID"].dtype == np.int64
    assert frame["Date_Year"].between(1980, 2016).all()
    assert frame["avg.bleach"].between(0, 100).all() and frame["avg.bleach"].notna().all()
    assert frame["Latitude_Degrees"].between(-90, 90).all()
    assert frame["Longitude_Degrees"].between(-180, 180).all()
    assert frame["Coral"].isna().sum() == 11845  # "NA" → NaN
    assert set(frame["Ocean_Name"]) == {"Pacific", "Atlantic", "Indian"}
    ref = ref_of(frame)
    assert ref is not None and ref.digest == entry("bleaching-surveys").files[0].sha256


# ------------------------------------------------------------------------------ SST series
def test_coraltemp_headline(mirror: Path) -> None:
    sst = read_coraltemp_csv()
    assert len(sst) == 13149
    assert list(sst.columns) == ["sst", "latitude", "longitude"]
    assert isinstance(sst.index, pd.DatetimeIndex) and str(sst.index.tz) == "UTC"
    assert sst.index.is_monotonic_increasing and sst.index.is_unique
    assert sst.index[0] == pd.Timestamp("1985-11-09T12:00:00Z")
    assert sst.index[-1] == pd.Timestamp("2021-11-09T12:00:00Z")
    assert sst["sst"].between(20, 30).all()
    assert sst["latitude"].iloc[0] == pytest.approx(19.775)
    assert sst["longitude"].iloc[0] == pytest.approx(-155.075)
    assert ref_of(sst).name == "coraltemp-honolii"


def test_coraltemp_with_and_without_units_row(tmp_path: Path) -> None:
    plain = read_coraltemp_csv(_csv(tmp_path / "plain.csv", SST_ROWS, units=False))
    with_units = read_coraltemp_csv(_csv(tmp_path / "units.csv", SST_ROWS, units=True))
    pd.testing.assert_frame_equal(plain, with_units)
    assert len(plain) == 4 and np.isnan(plain["sst"].iloc[2])
    assert with_units.attrs["units"] == {"sst": "degree_C"}
    assert ref_of(plain).digest == file_sha256(tmp_path / "plain.csv")


def test_erddap_json_text_and_file(tmp_path: Path) -> None:
    text = _erddap_json(SST_ROWS)
    from_text = read_erddap_json(text)
    path = tmp_path / "sst.json"
    path.write_text(text)
    from_file = read_erddap_json(path)
    csv = read_coraltemp_csv(_csv(tmp_path / "sst.csv", SST_ROWS, units=True))
    pd.testing.assert_frame_equal(from_text, csv)
    pd.testing.assert_frame_equal(from_file, csv)
    assert ref_of(from_text).name == "erddap-json"
    assert ref_of(from_file).uri == str(path)


def test_sst_unsorted_is_sorted_and_identical_duplicates_dropped(tmp_path: Path) -> None:
    rows = [SST_ROWS[2], SST_ROWS[0], SST_ROWS[1], SST_ROWS[0], SST_ROWS[3]]
    sst = read_coraltemp_csv(_csv(tmp_path / "dupes.csv", rows, units=False))
    assert sst.index.is_monotonic_increasing and sst.index.is_unique
    assert len(sst) == 4
    assert sst["sst"].iloc[0] == pytest.approx(26.1)


def test_sst_conflicting_duplicates_raise(tmp_path: Path) -> None:
    rows = [*SST_ROWS, ("2021-06-02T12:00:00Z", 19.775, -155.075, 27.9)]
    path = _csv(tmp_path / "conflict.csv", rows, units=True)
    with pytest.raises(DataError) as info:
        read_coraltemp_csv(path)
    assert str(path) in str(info.value) and info.value.field == "time"
    assert "2021-06-02" in str(info.value)
    with pytest.raises(DataError, match="different values"):
        read_erddap_json(_erddap_json(rows))


# ------------------------------------------------------------------------------ samples
def test_mod13q1_samples_headline(mirror: Path) -> None:
    samples = read_mod13q1_samples()
    assert samples.n_samples == 1690 and samples.n_times == 23
    assert samples.array.shape == (1690, 23, 6) and samples.array.dtype == np.float32
    assert samples.bands == ("ndvi", "evi", "nir", "mir", "blue", "red")
    assert len(samples.classes) == 9 and "Soy_Corn" in samples.classes
    assert samples.labels.shape == (1690,)
    assert samples.dates.shape == (1690, 23) and samples.dates.dtype == np.dtype("datetime64[D]")
    assert np.all(np.diff(samples.dates, axis=1) > np.timedelta64(0, "D"))
    assert np.isfinite(samples.array).all() and samples.array[..., 0].max() <= 1
    table = samples.table
    assert len(table) == 1690 * 23
    assert list(table.columns[:5]) == ["sample_id", "longitude", "latitude", "label", "date"]
    first = table[table["sample_id"] == 0]
    assert np.allclose(first["ndvi"].to_numpy(), samples.array[0, :, 0])
    assert samples.coords.shape == (1690, 2)
    assert samples.ref.digest == entry("mt-mod13q1-9classes").files[0].sha256


def _records(n: int = 3, times: int = 4) -> list[dict]:
    return [
        {
            "longitude": -55.0 + i,
            "latitude": -11.0,
            "label": ["Forest", "Pasture"][i % 2],
            "start_date": "2013-09-14",
            "end_date": "2014-08-29",
            "time_series": [
                {"Index": f"2013-{9 + t:02d}-14", "ndvi": 0.1 * t + i, "evi": 0.05 * t}
                for t in range(times)
            ],
        }
        for i in range(n)
    ]


def test_samples_plain_and_gzip_json(tmp_path: Path) -> None:
    plain = tmp_path / "samples.json"
    plain.write_text(json.dumps(_records()))
    packed = tmp_path / "samples.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_mod13q1_samples(plain), read_mod13q1_samples(packed)
    assert a.array.shape == (3, 4, 2) and a.bands == ("ndvi", "evi")
    assert np.array_equal(a.array, b.array)
    assert a.labels.tolist() == ["Forest", "Pasture", "Forest"]
    assert a.array[1, 2, 0] == pytest.approx(1.2)
    only_evi = read_mod13q1_samples(plain, bands=["evi"])
    assert only_evi.bands == ("evi",) and only_evi.array.shape == (3, 4, 1)
    assert list(only_evi.table.columns)[-1] == "evi"
