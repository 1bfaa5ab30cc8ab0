"""Tabular readers: coral-bleaching surveys and NOAA CRW SST series served by ERDDAP.

Tables are validated with pandera; a failure becomes a :class:`~earthops.errors.DataError` that
names the file, the column and what was expected (with the first offending rows), never a raw
pandera traceback.

SST series policy: rows are sorted by time (a non-monotonic input is logged); a timestamp
repeated with identical values is dropped with a logged warning; a timestamp repeated with
different values is a DataError listing the conflicts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from earthops.data.identity import attach_ref
from earthops.data.rasters import require_file, resolve_input
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

_NA = ["NA", "NaN", "nan", ""]


def _num(*checks: pa.Check, nullable: bool = True) -> pa.Column:
    return pa.Column(float, checks=list(checks), nullable=nullable, coerce=True)


#: Global coral-bleaching surveys 1980–2016 (van Woesik et al. 2023); extra columns are allowed.
SURVEY_SCHEMA = pa.DataFrameSchema(
    {
        "Site_ID": pa.Column("int64", pa.Check.ge(0), coerce=True),
        "Sample_ID": pa.Column("int64", pa.Check.ge(0), coerce=True),
        "Latitude_Degrees": _num(pa.Check.in_range(-90, 90), nullable=False),
        "Longitude_Degrees": _num(pa.Check.in_range(-180, 180), nullable=False),
        "Ocean_Name": pa.Column(str, pa.Check.str_length(min_value=1), coerce=True),
        "Realm_Name": pa.Column(str, pa.Check.str_length(min_value=1), coerce=True),
        "Distance_to_Shore": _num(pa.Check.ge(0)),
        "Turbidity": _num(pa.Check.ge(0)),
        "Date_Year": pa.Column("int64", pa.Check.in_range(1960, 2100), coerce=True),
        "Depth_m": _num(pa.Check.in_range(0, 500)),
        "avg.bleach": _num(pa.Check.in_range(0, 100), nullable=False),
        "Coral": _num(pa.Check.in_range(0, 100)),
        "Temp": _num(pa.Check.in_range(-5, 45)),
        "Temperature_Kelvin_Standard_Deviation": _num(pa.Check.ge(0)),
        "SSTA_Frequency_Standard_Deviation": _num(pa.Check.ge(0)),
        "SSTA_DHW": _num(pa.Check.ge(0)),
        "TSA_DHW_Standard_Deviation": _num(pa.Check.ge(0)),
    },
    strict=False,
    name="bleaching_surveys",
)

#: A tidy single-pixel SST series (after renaming the ERDDAP value column to ``sst``).
SST_SCHEMA = pa.DataFrameSchema(
    {
        "sst": _num(pa.Check.in_range(-5, 45)),
        "latitude": pa.Column(float, pa.Check.in_range(-90, 90), nullable=True, required=False),
        "longitude": pa.Column(float, pa.Check.in_range(-180, 360), nullable=True, required=False),
    },
    strict=False,
    name="sst_series",
)


# ------------------------------------------------------------------------------ validation
def require_columns(frame: pd.DataFrame, required: list[str], source: str | Path) -> None:
    """DataError naming every missing column (and the expected set)."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            source,
            f"missing required column(s) {', '.join(missing)}; expected columns: {', '.join(required)}",
            field=missing[0],
        )


def validate_frame(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    source: str | Path,
    *,
    line_offset: int | None = 2,
) -> pd.DataFrame:
    """Validate (and coerce) ``frame`` with ``schema``; failures become one DataError.

    The message names each failing column, the check (what was expected), the number of
    failing values and the first rows (``line_offset``: file line of row 0, e.g. 2 for a CSV
    with a header; None to report row positions).
    """
    try:
        return schema.validate(frame, lazy=True)
    except (SchemaErrors, SchemaError) as exc:
        cases = exc.failure_cases
        if not isinstance(cases, pd.DataFrame) or cases.empty:
            raise DataError(source, f"table fails validation: {exc}") from None
        problems: list[str] = []
        fields: list[str] = []
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            col = str(column) if column is not None and column == column else "<table>"
            if (
                col in fields
            ):  # one problem per column: the first (e.g. the dtype) explains the rest
                continue
            fields.append(col)
            examples = []
            for _, row in group.head(3).iterrows():
                where = row.get("index")
                if where is not None and where == where and line_offset is not None:
                    where = f"line {int(where) + line_offset}"
                elif where is not None and where == where:
                    where = f"row {where}"
                else:
                    where = "column"
                examples.append(f"{where}: {row['failure_case']!r}")
            problems.append(
                f"column '{col}': {len(group)} value(s) fail, expected {check} "
                f"(e.g. {'; '.join(examples)})"
            )
        raise DataError(source, "; ".join(problems), field=fields[0]) from None


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataError(path, "empty file; expected a CSV table with a header") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(path, f"not a readable CSV table ({exc})") from exc


# ------------------------------------------------------------------------------ surveys
def read_bleaching_surveys(
    path: str | Path | None = None, *, name: str | None = None
) -> pd.DataFrame:
    """Coral-bleaching surveys (default: catalog ``bleaching-surveys``), validated by :data:`SURVEY_SCHEMA`.

    ``NA`` strings are missing values; ``Site_ID``/``Sample_ID``/``Date_Year`` are int64,
    ``avg.bleach`` (the target) 0–100 and never missing, coordinates within their ranges.
    """
    local, ref = resolve_input(path, "bleaching-surveys", name=name)
    frame = _read_csv(local, na_values=_NA, keep_default_na=True, low_memory=False)
    require_columns(frame, list(SURVEY_SCHEMA.columns), local)
    frame = validate_frame(frame, SURVEY_SCHEMA, local)
    duplicated = int(frame["Sample_ID"].duplicated().sum())
    if duplicated:
        log.info("repeated Sample_ID values kept", path=str(local), count=duplicated)
    attach_ref(frame, ref.name, ref.uri, ref.digest)
    return frame


# ------------------------------------------------------------------------------ SST series
def _at(position: int, line_offset: int | None) -> str:
    return f"row {position}" if line_offset is None else f"line {position + line_offset}"


def _tidy_sst(
    frame: pd.DataFrame,
    source: str | Path,
    value_column: str,
    units: dict[str, str],
    line_offset: int | None,
) -> pd.DataFrame:
    """ERDDAP ``time, latitude, longitude, <value>`` rows → UTC-indexed ``sst, latitude, longitude``."""
    require_columns(frame, ["time", value_column], source)
    times = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    bad = times.isna() & frame["time"].notna()
    if frame["time"].isna().any() or bad.any():
        first = int(np.flatnonzero(bad | frame["time"].isna())[0])
        raise DataError(
            source,
            f"{int((bad | frame['time'].isna()).sum())} missing or unparseable timestamp(s), e.g. "
            f"{_at(first, line_offset)}: {frame['time'].iloc[first]!r}; expected ISO 8601 UTC",
            field="time",
        )
    out = pd.DataFrame({"sst": frame[value_column].to_numpy()})
    for col in ("latitude", "longitude"):
        if col in frame.columns:
            out[col] = frame[col].to_numpy()
    for col in out.columns:
        numeric = pd.to_numeric(out[col], errors="coerce")
        wrong = numeric.isna() & out[col].notna() & ~out[col].isin(_NA)
        if wrong.any():
            first = int(np.flatnonzero(wrong.to_numpy())[0])
            name = value_column if col == "sst" else col
            raise DataError(
                source,
                f"non-numeric value {out[col].iloc[first]!r} at {_at(first, line_offset)}; "
                "expected a number",
                field=name,
            )
        out[col] = numeric.astype(float)
    out = validate_frame(out.reset_index(drop=True), SST_SCHEMA, source, line_offset=line_offset)
    out.index = pd.DatetimeIndex(times, name="time")
    for col in ("latitude", "longitude"):
        if col in out.columns and out[col].nunique() > 1:
            raise DataError(
                source,
                f"{out[col].nunique()} distinct {col}s; expected a single-pixel series",
                field=col,
            )
    out = _order_and_dedupe(out, source)
    out.attrs["units"] = {"sst": units.get(value_column, "degree_C")}
    out.attrs["variable"] = value_column
    return out


def _order_and_dedupe(frame: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    if not frame.index.is_monotonic_increasing:
        log.warning("timestamps out of order; sorted", source=str(source))
        frame = frame.sort_index(kind="stable")
    repeated = frame.index.duplicated(keep=False)
    if not repeated.any():
        return frame
    dupes = frame[repeated]
    conflicts = [
        str(ts)
        for ts, group in dupes.groupby(level=0)
        if len(group.drop_duplicates()) > 1  # NaN equals NaN here
    ]
    if conflicts:
        raise DataError(
            source,
            f"{len(conflicts)} timestamp(s) repeated with different values, e.g. "
            f"{', '.join(conflicts[:3])}; expected one value per time",
            field="time",
        )
    dropped = int(frame.index.duplicated().sum())
    log.warning("identical duplicate timestamps dropped", source=str(source), count=dropped)
    return frame[~frame.index.duplicated(keep="first")]


def _has_units_row(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as fh:
        fh.readline()
        second = fh.readline().strip()
    if not second:
        return False
    first_field = second.split(",")[0].strip().strip('"')
    return first_field == "UTC" or pd.isna(pd.to_datetime(first_field, utc=True, errors="coerce"))


def read_coraltemp_csv(
    path: str | Path | None = None, *, value_column: str = "CRW_SST", name: str | None = None
) -> pd.DataFrame:
    """ERDDAP CSV SST series (default: catalog ``coraltemp-honolii``).

    Columns ``time,latitude,longitude,<value_column>``, with or without ERDDAP's units row
    (``UTC,degrees_north,degrees_east,degree_C``). Returns a frame indexed by UTC ``time`` with
    columns ``sst`` (°C), ``latitude``, ``longitude`` (see the module doc for duplicates).
    """
    local, ref = resolve_input(path, "coraltemp-honolii", name=name)
    units_row = _has_units_row(local)
    frame = _read_csv(local, skiprows=[1] if units_row else None, na_values=_NA, dtype=str)
    units: dict[str, str] = {}
    if units_row:
        header = _read_csv(local, nrows=1, dtype=str, keep_default_na=False)
        units = {str(k): str(v) for k, v in header.iloc[0].items()}
    out = _tidy_sst(frame, local, value_column, units, line_offset=3 if units_row else 2)
    attach_ref(out, ref.name, ref.uri, ref.digest)
    return out


def read_erddap_json(
    path_or_text: str | Path, *, value_column: str = "CRW_SST", name: str | None = None
) -> pd.DataFrame:
    """An ERDDAP ``.json`` table (``{"table": {"columnNames", "columnUnits", "rows"}}``), from a
    file or the JSON text itself, as the same frame as :func:`read_coraltemp_csv`."""
    is_text = isinstance(path_or_text, str) and path_or_text.lstrip().startswith("{")
    if is_text:
        text, source = str(path_or_text), "<erddap json>"
    else:
        local = require_file(path_or_text)
        text, source = local.read_text(encoding="utf-8", errors="replace"), str(local)
    digest = hashlib.sha256(text.encode()).hexdigest()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            source, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    table = doc.get("table") if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise DataError(source, "expected an ERDDAP table object {'table': {...}}", field="table")
    names, rows = table.get("columnNames"), table.get("rows")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(source, "expected a list of column names", field="table.columnNames")
    if not isinstance(rows, list):
        raise DataError(source, "expected a list of rows", field="table.rows")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise DataError(
                source,
                f"row has {len(row) if isinstance(row, list) else 'no'} values; expected "
                f"{len(names)} ({', '.join(names)})",
                field=f"table.rows[{i}]",
            )
    units_list = table.get("columnUnits") or []
    units = {n: str(u) for n, u in zip(names, units_list, strict=False) if u}
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    out = _tidy_sst(frame, source, value_column, units, line_offset=None)
    ref_name = name or ("erddap-json" if is_text else Path(source).stem)
    attach_ref(out, ref_name, source, digest)
    return out
