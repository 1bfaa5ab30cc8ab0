"""Labelled MOD13Q1 time-series samples (sits JSON export, gzip or plain).

The file is a JSON list of ``{longitude, latitude, label, start_date, end_date, time_series:
[{Index: "YYYY-MM-DD", ndvi, evi, …}, …]}`` records. Every record must carry the same bands and
the same number of dates; a malformed record is a DataError naming the file, the record index
and the field.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earthops.data.identity import DatasetRef, attach_ref
from earthops.data.rasters import resolve_input
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

_REQUIRED = ("longitude", "latitude", "label", "time_series")


@dataclass(frozen=True, eq=False)
class SampleSet:
    """Labelled time series in two shapes: a tidy table and a dense array.

    ``table``: one row per (sample, date) with ``sample_id, longitude, latitude, label, date``
    and one column per band; ``array``: float32 ``(n_samples, n_times, n_bands)``; ``labels``:
    ``(n_samples,)`` str; ``dates``: ``(n_samples, n_times)`` datetime64[D], the dates of each
    sample's time steps (samples come from different years, so step ``k`` is the ``k``-th
    date of each sample's own series); ``ref``: the dataset reference.
    """

    table: pd.DataFrame
    array: np.ndarray
    labels: np.ndarray
    bands: tuple[str, ...]
    dates: np.ndarray
    ref: DatasetRef

    @property
    def n_samples(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_times(self) -> int:
        return int(self.array.shape[1])

    @property
    def classes(self) -> tuple[str, ...]:
        """Sorted distinct labels."""
        return tuple(sorted(set(self.labels.tolist())))

    @property
    def coords(self) -> np.ndarray:
        """``(n_samples, 2)`` longitude, latitude per sample."""
        first = self.table.groupby("sample_id", sort=True)[["longitude", "latitude"]].first()
        return first.to_numpy(dtype=np.float64)

    @property
    def keys(self) -> np.ndarray:
        """``(n_samples,)`` uint64 identity of each sample: its place (to 1e-5°) and first date.

        The same sample in another file (another export, a subset) has the same key, so a
        model can tell which samples it was trained on.
        """
        lon, lat = np.round(self.coords, 5).T
        frame = pd.DataFrame({"lon": lon, "lat": lat, "start": self.dates[:, 0]})
        return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def _load(path: Path) -> Any:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(path, f"corrupt or truncated gzip data ({exc})") from exc
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 JSON text ({exc})") from exc


def _number(value: Any, path: Path, i: int, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(
            path,
            f"record {i}: non-numeric value {value!r}; expected a finite number",
            field=f"[{i}].{field}",
        )
    return float(value)


def _date(value: Any, path: Path, i: int, field: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise DataError(
            path, f"record {i}: invalid date {value!r}; expected YYYY-MM-DD", field=f"[{i}].{field}"
        ) from None


def _parse_record(
    rec: Any, i: int, path: Path, bands: tuple[str, ...], n_times: int, labelled: bool = True
) -> tuple[float, float, str, list[date], np.ndarray]:
    if not isinstance(rec, dict):
        raise DataError(
            path, f"record {i}: expected an object, found {type(rec).__name__}", field=f"[{i}]"
        )
    for key in _REQUIRED:
        if key not in rec and (labelled or key != "label"):
            raise DataError(path, f"record {i}: missing key '{key}'", field=f"[{i}].{key}")
    lon = _number(rec["longitude"], path, i, "longitude")
    lat = _number(rec["latitude"], path, i, "latitude")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise DataError(
            path, f"record {i}: coordinates ({lon}, {lat}) out of range", field=f"[{i}].longitude"
        )
    label = rec.get("label", "")
    if labelled and (not isinstance(label, str) or not label):
        raise DataError(
            path, f"record {i}: label {label!r}; expected a non-empty string", field=f"[{i}].label"
        )
    series = rec["time_series"]
    if not isinstance(series, list) or len(series) != n_times:
        found = len(series) if isinstance(series, list) else type(series).__name__
        raise DataError(
            path,
            f"record {i}: {found} dates; expected {n_times} (as record 0)",
            field=f"[{i}].time_series",
        )
    values = np.empty((n_times, len(bands)), dtype=np.float32)
    dates: list[date] = []
    for j, step in enumerate(series):
        where = f"time_series[{j}]"
        if not isinstance(step, dict):
            raise DataError(
                path, f"record {i}: time step {j} is not an object", field=f"[{i}].{where}"
            )
        if "Index" not in step:
            raise DataError(
                path, f"record {i}: missing key 'Index' (the date)", field=f"[{i}].{where}.Index"
            )
        dates.append(_date(step["Index"], path, i, f"{where}.Index"))
        row = [step.get(band) for band in bands]
        if all(type(v) is float or type(v) is int for v in row):  # fast path; NaN/inf below
            values[j] = row
            continue
        for k, band in enumerate(bands):
            if band not in step:
                raise DataError(
                    path, f"record {i}: missing band '{band}'", field=f"[{i}].{where}.{band}"
                )
            values[j, k] = _number(step[band], path, i, f"{where}.{band}")
    if not np.isfinite(values).all():
        j, k = (int(v[0]) for v in np.nonzero(~np.isfinite(values)))
        _number(float(series[j][bands[k]]), path, i, f"time_series[{j}].{bands[k]}")
    if any(b <= a for a, b in itertools.pairwise(dates)):
        raise DataError(
            path, f"record {i}: dates not strictly increasing", field=f"[{i}].time_series"
        )
    return lon, lat, label, dates, values


def read_mod13q1_samples(
    path: str | Path | None = None, *, bands: Sequence[str] | None = None, name: str | None = None
) -> SampleSet:
    """Labelled MOD13Q1 samples (default: catalog ``mt-mod13q1-9classes``) as a :class:`SampleSet`.

    ``bands`` selects (and orders) bands; by default all bands of the first record, in file
    order. The number of dates is that of the first record.
    """
    local, ref = resolve_input(path, "mt-mod13q1-9classes", name=name)
    samples = samples_from_records(_load(local), local, bands=bands)
    attach_ref(samples.table, ref.name, ref.uri, ref.digest)
    log.debug("read samples", path=str(local), samples=samples.n_samples, bands=samples.bands)
    return SampleSet(
        samples.table, samples.array, samples.labels, samples.bands, samples.dates, ref
    )


def samples_from_records(
    records: Any,
    source: str | Path,
    *,
    bands: Sequence[str] | None = None,
    labelled: bool = True,
) -> SampleSet:
    """:class:`SampleSet` of already parsed records in the file's shape; with
    ``labelled=False`` (predict requests) a missing ``label`` becomes ``""``."""
    local = Path(str(source))
    if not isinstance(records, list) or not records:
        raise DataError(local, "expected a non-empty JSON list of sample records")
    first = records[0]
    if (
        not isinstance(first, dict)
        or not isinstance(first.get("time_series"), list)
        or not first["time_series"]
    ):
        raise DataError(
            local, "record 0: expected a non-empty 'time_series' list", field="[0].time_series"
        )
    step0 = first["time_series"][0]
    if not isinstance(step0, dict):
        raise DataError(local, "record 0: time step 0 is not an object", field="[0].time_series[0]")
    file_bands = tuple(k for k in step0 if k != "Index")
    chosen = tuple(bands) if bands is not None else file_bands
    unknown = [b for b in chosen if b not in file_bands]
    if unknown or not chosen:
        raise DataError(
            local,
            f"bands {unknown or '[]'} not in the samples; available: {', '.join(file_bands)}",
            field="bands",
        )
    n_times = len(first["time_series"])
    parsed = [
        _parse_record(rec, i, local, chosen, n_times, labelled) for i, rec in enumerate(records)
    ]
    array = np.stack([p[4] for p in parsed])
    labels = np.array([p[2] for p in parsed], dtype=str)
    dates = np.array([p[3] for p in parsed], dtype="datetime64[D]")
    n = len(parsed)
    table = pd.DataFrame(
        {
            "sample_id": np.repeat(np.arange(n), n_times),
            "longitude": np.repeat([p[0] for p in parsed], n_times),
            "latitude": np.repeat([p[1] for p in parsed], n_times),
            "label": np.repeat(labels, n_times),
            "date": pd.to_datetime(dates.ravel()),
        }
    )
    for k, band in enumerate(chosen):
        table[band] = array[:, :, k].ravel()
    ref = DatasetRef(local.name, str(local), "")
    return SampleSet(table=table, array=array, labels=labels, bands=chosen, dates=dates, ref=ref)
