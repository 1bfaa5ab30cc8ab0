"""The daily time axis: validation and regularisation of SST series and cubes."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from earthops.data.identity import ref_of
from earthops.errors import DataError
from earthops.features.thermal.config import ThermalConfig
from earthops.logs import get_logger

log = get_logger(__package__)  # the package's logger name, as before the split


class _Daily:
    """How an input's timestamps map onto the internal daily axis (naive UTC midnights)."""

    def __init__(self, days: pd.DatetimeIndex, offset: pd.Timedelta, tz: Any, gap_days: int):
        self.days, self.offset, self.tz, self.gap_days = days, offset, tz, gap_days

    @property
    def index(self) -> pd.DatetimeIndex:
        """The output index: each day at the input's common time of day, in the input's tz."""
        out = self.days + self.offset
        if self.tz is not None:
            out = out.tz_localize("UTC").tz_convert(self.tz)
        return out.rename("time")


def _source(obj: Any, default: str) -> str:
    ref = ref_of(obj)
    return ref.uri if ref else default


def _day_axis(
    times: pd.DatetimeIndex, source: str
) -> tuple[pd.DatetimeIndex, pd.Timedelta, pd.DatetimeIndex]:
    """(day of each timestamp, common time of day, full daily range)."""
    if len(times) == 0:
        raise DataError(source, "no timestamps; expected a daily series", field="time")
    if times.hasnans:
        raise DataError(
            source, f"{int(times.isna().sum())} missing timestamp(s) (NaT)", field="time"
        )
    day = times.floor("D")
    offsets = pd.unique(np.asarray(times - day))
    offset = pd.Timedelta(offsets[0]) if len(offsets) == 1 else pd.Timedelta(0)
    full = pd.date_range(day[0], day[-1], freq="D")
    return day, offset, full


def validate_sst_series(
    sst: pd.Series, config: ThermalConfig | None = None, *, check_range: bool = True
) -> pd.Series:
    """A clean daily SST series, or a :class:`DataError` naming the field and what was expected.

    * the index must be a DatetimeIndex (tz-naive = UTC); each timestamp is assigned to its UTC
      calendar day; out-of-order rows are sorted (logged);
    * a day given twice with the same value is kept once (logged); with different values (or
      two sub-daily samples) it is a DataError on ``time``;
    * values outside ``config.sst_range`` (−2..40 °C) are a DataError naming the timestamps;
    * missing days are inserted as NaN; ``attrs["gap_days"]`` counts them.

    The result is indexed by day at the input's common time of day (e.g. ERDDAP's 12:00Z), else
    midnight, in the input's timezone.
    """
    values, daily = _regularise_series(sst, config or ThermalConfig(), check_range=check_range)
    out = pd.Series(values, index=daily.index, name=sst.name)
    out.attrs = {**sst.attrs, "gap_days": daily.gap_days}
    return out


def _regularise_series(
    sst: pd.Series, config: ThermalConfig, *, check_range: bool
) -> tuple[np.ndarray, _Daily]:
    source = _source(sst, "SST series")
    field = str(sst.name) if sst.name is not None else "sst"
    if not isinstance(sst, pd.Series):
        raise DataError(source, f"got {type(sst).__name__}; expected a pandas Series of SST")
    if not isinstance(sst.index, pd.DatetimeIndex):
        raise DataError(
            source,
            f"index is {type(sst.index).__name__}; expected a DatetimeIndex of daily UTC timestamps",
            field="time",
        )
    try:
        values = sst.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(
            source, f"non-numeric values ({exc}); expected SST in °C", field=field
        ) from None
    tz = sst.index.tz
    times = sst.index.tz_convert("UTC").tz_localize(None) if tz is not None else sst.index
    if not times.is_monotonic_increasing:
        log.warning("SST timestamps out of order; sorted", source=source)
        order = np.argsort(times.to_numpy(), kind="stable")
        times, values = times[order], values[order]
    day, offset, full = _day_axis(times, source)
    repeated = day.duplicated(keep=False)
    if repeated.any():
        table = pd.DataFrame({"day": day[repeated], "value": values[repeated]})
        spread = table.groupby("day")["value"].nunique(dropna=False)
        conflicts = spread[spread > 1]
        if len(conflicts):
            examples = "; ".join(
                f"{d:%Y-%m-%d}: {table.loc[table['day'] == d, 'value'].tolist()}"
                for d in conflicts.index[:3]
            )
            raise DataError(
                source,
                f"{len(conflicts)} day(s) with several different values ({examples}); "
                "expected one value per day (resample sub-daily data first)",
                field="time",
            )
        keep = ~day.duplicated(keep="first")
        log.warning(
            "repeated identical SST timestamps dropped", source=source, count=int((~keep).sum())
        )
        day, values = day[keep], values[keep]
    if check_range:
        _check_range(values, day.to_numpy(), config.sst_range, source, field)
    gap_days = len(full) - len(day)
    if gap_days:
        filled = np.full(len(full), np.nan)
        filled[((day - full[0]) // pd.Timedelta(days=1)).to_numpy()] = values
        values = filled
    return values, _Daily(full, offset, tz, gap_days)


def _check_range(
    values: np.ndarray,
    times: np.ndarray,
    value_range: tuple[float, float],
    source: str,
    field: str,
    block_info: dict | None = None,
) -> np.ndarray:
    """Raise a DataError naming the timestamps (axis 0) of values outside ``value_range``."""
    lo, hi = value_range
    with np.errstate(invalid="ignore"):
        bad = (values < lo) | (values > hi)
    if bad.any():
        start = block_info[0]["array-location"][0][0] if block_info else 0
        flat, flat_bad = values.reshape(len(values), -1), bad.reshape(len(bad), -1)
        rows = np.flatnonzero(flat_bad.any(axis=1))
        examples = ", ".join(
            f"{pd.Timestamp(times[start + r]):%Y-%m-%d}: {flat[r][flat_bad[r]][0]:g}"
            for r in rows[:3]
        )
        raise DataError(
            source,
            f"{int(bad.sum())} value(s) outside the plausible SST range {lo:g}..{hi:g} °C "
            f"(e.g. {examples})",
            field=field,
        )
    return values


def _series_dataarray(values: np.ndarray, daily: _Daily) -> xr.DataArray:
    return xr.DataArray(values, dims="time", coords={"time": daily.days})


def _regularise_cube(
    cube: xr.DataArray, config: ThermalConfig, *, check_range: bool
) -> tuple[xr.DataArray, _Daily]:
    """Cube → float64, ``time`` first, one step per day (gaps NaN); lazy on dask."""
    source = _source(cube, f"SST cube {cube.name or ''}".strip())
    if not isinstance(cube, xr.DataArray) or "time" not in cube.dims:
        raise DataError(
            source, "expected an xarray DataArray with a 'time' dimension", field="time"
        )
    if not np.issubdtype(cube["time"].dtype, np.datetime64):
        raise DataError(
            source, f"time coordinate is {cube['time'].dtype}; expected datetime64", field="time"
        )
    cube = cube.transpose("time", ...).astype(np.float64)
    times = pd.DatetimeIndex(cube["time"].values)
    if not times.is_monotonic_increasing:
        log.warning("SST cube timestamps out of order; sorted", source=source)
        cube = cube.sortby("time")
        times = pd.DatetimeIndex(cube["time"].values)
    day, offset, full = _day_axis(times, source)
    if day.has_duplicates:
        dupes = day[day.duplicated()].unique()
        raise DataError(
            source,
            f"{len(dupes)} day(s) repeated, e.g. {', '.join(f'{d:%Y-%m-%d}' for d in dupes[:3])}; "
            "expected one time step per day",
            field="time",
        )
    cube = cube.assign_coords(time=day)
    gap_days = len(full) - len(day)
    if gap_days:
        cube = cube.reindex(time=full)
    if check_range:
        field = str(cube.name) if cube.name is not None else "sst"
        guard = partial(
            _check_range,
            times=full.to_numpy(),
            value_range=config.sst_range,
            source=source,
            field=field,
        )
        if cube.chunks is None:
            guard(cube.values)
        else:
            cube = cube.copy(data=cube.data.map_blocks(guard, dtype=cube.dtype))
    return cube, _Daily(full, offset, None, gap_days)
