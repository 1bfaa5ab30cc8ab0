"""The offline store: Parquet tables under ``<feature_repo>/data``, appended idempotently.

Every table carries ``site_id`` (int64), ``event_timestamp`` (UTC) and ``created`` (UTC, when the
row was written). :func:`append_rows` deduplicates on ``(site_id, event_timestamp)``: a key that
is already stored is never rewritten (an identical repeat is a *duplicate*, a repeat with other
values a *conflict*; both are counted and the stored row wins, so nothing stored is ever lost),
and the file is replaced atomically (write to a temporary file, then ``os.replace``) so a crash
mid-write leaves the previous table intact.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from earthops.errors import DataError
from earthops.settings import get_settings

KEY = ["site_id", "event_timestamp"]

#: Column schemas of the offline tables (besides the key and ``created``).
SITE_COLUMNS: dict[str, pa.DataType] = {
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "distance_to_shore_km": pa.float64(),
    "turbidity": pa.float64(),
    "ocean": pa.string(),
    "realm": pa.string(),
}
SURVEY_COLUMNS: dict[str, pa.DataType] = {
    "survey_sst": pa.float64(),
    "survey_dhw": pa.float64(),
    "survey_dhw_sd": pa.float64(),
    "survey_sst_sd": pa.float64(),
    "survey_ssta_freq_sd": pa.float64(),
    "survey_depth_m": pa.float64(),
    "survey_coral_cover": pa.float64(),
    "survey_samples": pa.int64(),
}
SST_RAW_COLUMNS: dict[str, pa.DataType] = {
    "sst": pa.float64(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
}
SST_FEATURE_COLUMNS: dict[str, pa.DataType] = {
    "sst": pa.float64(),
    "sst_mean_7d": pa.float64(),
    "sst_mean_30d": pa.float64(),
    "sst_mean_90d": pa.float64(),
    "anomaly": pa.float64(),
    "hotspot": pa.float64(),
    "dhw": pa.float64(),
    "alert_level": pa.float64(),
}

TABLES: dict[str, dict[str, pa.DataType]] = {
    "site_covariates": SITE_COLUMNS,
    "survey_features": SURVEY_COLUMNS,
    "sst_daily": SST_RAW_COLUMNS,
    "sst_features": SST_FEATURE_COLUMNS,
}


def data_dir(repo_dir: Path | None = None) -> Path:
    """Directory of the offline Parquet tables (``<feature_repo>/data``)."""
    path = (repo_dir or get_settings().feature_repo_dir) / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def table_path(name: str, repo_dir: Path | None = None) -> Path:
    if name not in TABLES:
        raise DataError("offline store", f"unknown table {name!r}; expected one of {list(TABLES)}")
    return data_dir(repo_dir) / f"{name}.parquet"


def arrow_schema(name: str) -> pa.Schema:
    fields = [
        pa.field("site_id", pa.int64()),
        pa.field("event_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("created", pa.timestamp("us", tz="UTC")),
    ]
    fields += [pa.field(col, dtype) for col, dtype in TABLES[name].items()]
    return pa.schema(fields)


def _conform(frame: pd.DataFrame, name: str, source: str) -> pd.DataFrame:
    """Columns in schema order with schema dtypes; a DataError names any missing column."""
    schema = arrow_schema(name)
    missing = [f.name for f in schema if f.name not in frame.columns and f.name != "created"]
    if missing:
        raise DataError(source, f"missing column(s) {missing} for table {name!r}", field=missing[0])
    frame = frame.copy()
    if "created" not in frame.columns:
        frame["created"] = pd.Timestamp.now(tz="UTC")
    for col in ("event_timestamp", "created"):
        frame[col] = pd.to_datetime(frame[col], utc=True).dt.as_unit("us")
    frame["site_id"] = frame["site_id"].astype("int64")
    return frame[[f.name for f in schema]]


def read_table(name: str, repo_dir: Path | None = None) -> pd.DataFrame:
    """The whole table (empty, with the right columns, when it does not exist yet)."""
    path = table_path(name, repo_dir)
    if not path.exists():
        return arrow_schema(name).empty_table().to_pandas()
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(path, f"unreadable Parquet table ({exc})") from exc


def write_table(frame: pd.DataFrame, name: str, repo_dir: Path | None = None) -> Path:
    """Replace the table atomically with ``frame`` (sorted by key)."""
    path = table_path(name, repo_dir)
    frame = _conform(frame, name, str(path)).sort_values(KEY, kind="stable")
    table = pa.Table.from_pandas(frame, schema=arrow_schema(name), preserve_index=False)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def ensure_table(name: str, repo_dir: Path | None = None) -> Path:
    """Create an empty table file if absent (Feast file sources need the file to exist)."""
    path = table_path(name, repo_dir)
    if not path.exists():
        pq.write_table(arrow_schema(name).empty_table(), path)
    return path


@dataclass
class AppendResult:
    """What :func:`append_rows` did: rows added, identical repeats, conflicting repeats."""

    added: int = 0
    duplicates: int = 0
    conflicts: int = 0
    added_keys: pd.DataFrame | None = None


def _same(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> np.ndarray:
    equal = np.ones(len(a), dtype=bool)
    for col in columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        both_na = pd.isna(x) & pd.isna(y)
        equal &= both_na | (x == y)
    return equal


def append_rows(
    frame: pd.DataFrame, name: str, repo_dir: Path | None = None, *, replace: bool = False
) -> AppendResult:
    """Append rows keyed by ``(site_id, event_timestamp)``; idempotent.

    Keys repeated inside ``frame`` keep their first row. Keys already stored are left as they are
    (counted as duplicates or conflicts) unless ``replace`` (used for derived tables whose values
    are recomputed from the raw data).
    """
    path = table_path(name, repo_dir)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time per table (read-modify-write)
        return _append_locked(frame, name, path, repo_dir, replace)


def _append_locked(
    frame: pd.DataFrame, name: str, path: Path, repo_dir: Path | None, replace: bool
) -> AppendResult:
    new = _conform(frame, name, str(path))
    inner = new.duplicated(KEY, keep="first")
    result = AppendResult(duplicates=int(inner.sum()))
    new = new[~inner]
    stored = read_table(name, repo_dir)
    values = [c for c in TABLES[name]]
    if len(stored):
        merged = new.merge(
            stored[KEY + values], on=KEY, how="left", indicator=True, suffixes=("", "_stored")
        )
        seen = (merged["_merge"] == "both").to_numpy()
        if seen.any() and not replace:
            old = merged.loc[seen, [f"{c}_stored" for c in values]]
            old.columns = values
            same = _same(
                merged.loc[seen, values].reset_index(drop=True), old.reset_index(drop=True), values
            )
            result.duplicates += int(same.sum())
            result.conflicts += int((~same).sum())
            new = new[~seen]
        elif seen.any():
            keys = pd.MultiIndex.from_frame(new.loc[seen, KEY])
            stored_keys = pd.MultiIndex.from_frame(stored[KEY])
            stored = stored[~stored_keys.isin(keys)]
    result.added = len(new)
    result.added_keys = new[KEY].reset_index(drop=True)
    if len(new) or replace:
        combined = pd.concat([stored, new], ignore_index=True) if len(stored) else new
        write_table(combined, name, repo_dir)
    return result
