"""Coral heat stress after NOAA Coral Reef Watch (CRW 5 km v3.1 methodology).

Definitions (coralreefwatch.noaa.gov/product/5km/methodology.php), for a daily SST series
(``pd.Series`` on a DatetimeIndex) or a gridded cube (``xr.DataArray`` with a ``time`` dim,
numpy- or dask-backed; every step stays lazy on dask):

* **Monthly-mean climatology (MM)**: for each calendar month, the mean of that month's yearly
  means over the base period (CRW: 1985–2012). With ``recentre=True``, CRW's variant: a
  least-squares line through the yearly means (x = year) evaluated at ``recentre_year``
  (1988.2857). A yearly monthly mean needs ``min_month_coverage`` of its days; a calendar
  month needs valid means in ``min_base_coverage`` of the base years.
* **MMM**: the maximum of the 12 monthly means.
* **HotSpot** = max(SST − MMM, 0) (rounded to 1e-6 °C so that ``≥ 1`` is not decided by binary
  representation error).
* **DHW** (°C-weeks) = Σ HotSpot over the trailing ``dhw_window_days`` (84) days, counting only
  HotSpots ≥ 1 °C, ÷ 7. The window ends on (includes) the current day and never looks ahead.
  Gaps: a missing day contributes 0; if more than ``dhw_max_missing`` of the window is missing
  (days before the series start count as missing) DHW is NaN.
* **Bleaching Alert Area** (v3.1; :data:`ALERT_LEVEL_NAMES`): 0 No Stress (HS ≤ 0), 1 Watch
  (0 < HS < 1), 2 Warning (HS ≥ 1, DHW < 4), 3–7 Alert Level 1–5 (HS ≥ 1 and DHW ≥ 4, 8, 12,
  16, 20). Levels are floats; NaN where the inputs do not decide the level.
* **SST anomaly** = SST − MM of the day's calendar month; trailing rolling means of SST.

Series input is normalised by :func:`validate_sst_series` (see there); a cube by the same rules,
except that repeated timestamps are always an error and a dask cube's SST range is checked
when it is computed. Outputs are daily-regular: gaps come back as NaN rows, counted in
``attrs["gap_days"]``. Everything is vectorised: running sums are cumulative-sum differences
(float64), monthly means come from the same cumulative sums.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from earthops.data.identity import ref_of
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

#: HotSpots at or above this (°C) accumulate into DHW and separate Watch from Warning.
HOTSPOT_THRESHOLD = 1.0
#: DHW (°C-weeks) at which Alert Levels 1..5 start (CRW v3.1).
DHW_ALERT_THRESHOLDS = (4.0, 8.0, 12.0, 16.0, 20.0)
#: CRW v3.1 Bleaching Alert Area level → name.
ALERT_LEVEL_NAMES: dict[int, str] = {
    0: "No Stress",
    1: "Bleaching Watch",
    2: "Bleaching Warning",
    3: "Bleaching Alert Level 1",
    4: "Bleaching Alert Level 2",
    5: "Bleaching Alert Level 3",
    6: "Bleaching Alert Level 4",
    7: "Bleaching Alert Level 5",
}
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAY = np.timedelta64(1, "D")
_ROUND = 6  # decimals for HotSpot (°C) and the DHW window sum (°C-days)

SSTLike = pd.Series | xr.DataArray
ArrayLike = float | np.ndarray | pd.Series | xr.DataArray


class ThermalConfig(BaseModel):
    """Settings of the CRW heat-stress computation (defaults: CRW 5 km v3.1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_start: int = Field(default=1985, description="First year of the climatology base period.")
    base_end: int = Field(default=2012, description="Last year (inclusive) of the base period.")
    recentre: bool = Field(default=False, description="CRW linear-regression re-centring of MMs.")
    recentre_year: float = Field(
        default=1988.2857, description="Year the regression is evaluated at."
    )
    min_month_coverage: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Fraction of a month's days a yearly monthly mean needs.",
    )
    min_base_coverage: float = Field(
        default=0.8, gt=0, le=1, description="Fraction of base years each calendar month needs."
    )
    dhw_window_days: int = Field(default=84, ge=1, description="DHW accumulation window (days).")
    dhw_max_missing: float = Field(
        default=0.1, ge=0, lt=1, description="Max missing fraction of the DHW window, else NaN."
    )
    rolling_windows: tuple[int, ...] = Field(
        default=(7, 30, 90), description="Trailing means (days)."
    )
    rolling_min_fraction: float = Field(
        default=0.8, gt=0, le=1, description="min_periods of a rolling mean, as a window fraction."
    )
    sst_range: tuple[float, float] = Field(default=(-2.0, 40.0), description="Plausible SST (°C).")

    @model_validator(mode="after")
    def _consistent(self) -> ThermalConfig:
        if self.base_end < self.base_start:
            raise ValueError(f"base_end {self.base_end} is before base_start {self.base_start}")
        if self.recentre and self.base_end == self.base_start:
            raise ValueError("recentre needs a base period of at least two years")
        if self.sst_range[0] >= self.sst_range[1]:
            raise ValueError(f"sst_range {self.sst_range} must be (low, high) with low < high")
        if any(w < 1 for w in self.rolling_windows) or len(set(self.rolling_windows)) != len(
            self.rolling_windows
        ):
            raise ValueError(
                f"rolling_windows must be distinct positive days, got {self.rolling_windows}"
            )
        return self

    @property
    def base_years(self) -> np.ndarray:
        return np.arange(self.base_start, self.base_end + 1)

    @property
    def dhw_min_valid(self) -> int:
        """Days of the DHW window that must have data."""
        return self.dhw_window_days - math.floor(self.dhw_window_days * self.dhw_max_missing)

    def rolling_min_periods(self, window: int) -> int:
        return max(1, math.ceil(window * self.rolling_min_fraction))


# ------------------------------------------------------------------------------ daily time axis
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


# ------------------------------------------------------------------------------ generic helpers
def _trailing_sum(x: xr.DataArray, window: int) -> xr.DataArray:
    """Sum over the trailing ``window`` steps (current one included; before the start = 0)."""
    csum = x.cumsum("time")
    return csum - csum.shift(time=window, fill_value=0)


def _as_dataarray(x: ArrayLike) -> tuple[xr.DataArray, Callable[[xr.DataArray], Any]]:
    """Wrap scalars, arrays and Series as DataArrays; the callable converts a result back."""
    if isinstance(x, xr.DataArray):
        return x, lambda d: d
    if isinstance(x, pd.Series):
        return (
            xr.DataArray(x.to_numpy(dtype=np.float64, na_value=np.nan), dims="index"),
            lambda d: pd.Series(d.values, index=x.index, name=x.name),
        )
    arr = np.asarray(x, dtype=np.float64)
    return xr.DataArray(arr), (lambda d: d.values) if arr.ndim else (lambda d: float(d.values))


# ------------------------------------------------------------------------------ climatology
def _month_slots(days: pd.DatetimeIndex, config: ThermalConfig) -> tuple[np.ndarray, ...]:
    """Per (base year, month): first and end position on the daily axis, days in month."""
    years = config.base_years
    edges = pd.date_range(f"{years[0]}-01-01", periods=12 * len(years) + 1, freq="MS")
    pos = np.clip((edges - days[0]) // pd.Timedelta(days=1), 0, len(days)).to_numpy()
    shape = (len(years), 12)
    ndays = np.diff(edges.to_numpy()) // _DAY
    return pos[:-1].reshape(shape), pos[1:].reshape(shape), ndays.reshape(shape)


def _climatology_core(x: xr.DataArray, config: ThermalConfig) -> tuple[xr.DataArray, xr.DataArray]:
    """(monthly-mean climatology (month, ...), valid base years per month) from a daily cube."""
    p0, p1, ndays = _month_slots(pd.DatetimeIndex(x["time"].values), config)
    years = config.base_years
    dims = ("year", "month")
    coords = {"year": years, "month": np.arange(1, 13)}
    start = xr.DataArray(p0, dims=dims, coords=coords)
    end = xr.DataArray(p1, dims=dims, coords=coords)
    lo, hi = int(p0.min()), int(p1.max())  # only the base period is summed
    start, end = start - lo, end - lo
    bare = x.drop_vars([c for c in x.coords if "time" in x[c].dims]).isel(time=slice(lo, hi))

    def slot_sums(values: xr.DataArray) -> xr.DataArray:
        csum = values.cumsum("time").pad(time=(1, 0), constant_values=0)
        return csum.isel(time=end) - csum.isel(time=start)

    sums = slot_sums(bare.fillna(0.0))
    counts = slot_sums(bare.notnull().astype(np.int64))
    need_days = np.maximum(1, np.ceil(config.min_month_coverage * ndays))
    means = sums / counts.where(counts >= xr.DataArray(need_days, dims=dims, coords=coords))
    valid = means.notnull()
    n_years = valid.sum("year")
    need_years = max(2 if config.recentre else 1, math.ceil(config.min_base_coverage * len(years)))
    n = n_years.where(n_years >= need_years)
    total = means.sum("year")
    if config.recentre:
        xc = xr.DataArray(years - config.recentre_year, dims="year", coords={"year": years})
        xm = xc.where(valid)
        sx, sxx, sxy = xm.sum("year"), (xm * xm).sum("year"), (xm * means).sum("year")
        denom = n * sxx - sx * sx
        slope = (n * sxy - sx * total) / denom.where(denom > 0)
        clim = (total - slope * sx) / n
    else:
        clim = total / n
    clim = clim.rename("climatology")
    clim.attrs.update(
        units="degree_C",
        base_period=f"{config.base_start}-{config.base_end}",
        recentred_to=config.recentre_year if config.recentre else "none",
    )
    return clim, n_years


def _coverage_error(
    source: str, n_years: np.ndarray, config: ThermalConfig, span: pd.DatetimeIndex, what: str
) -> None:
    """DataError if a calendar month lacks enough base years (``n_years``: shape (12,))."""
    need = max(
        2 if config.recentre else 1, math.ceil(config.min_base_coverage * len(config.base_years))
    )
    short = [f"{MONTH_NAMES[m]} {int(n_years[m])}" for m in range(12) if n_years[m] < need]
    if short:
        raise DataError(
            source,
            f"base period {config.base_start}–{config.base_end} not covered by {what} "
            f"{span[0]:%Y-%m-%d}..{span[-1]:%Y-%m-%d}: valid years per month {', '.join(short)}; "
            f"expected >= {need} of {len(config.base_years)} years per calendar month",
            field="time",
        )


def _series_climatology(x: xr.DataArray, config: ThermalConfig, source: str) -> xr.DataArray:
    clim, n_years = _climatology_core(x, config)
    _coverage_error(source, n_years.values, config, pd.DatetimeIndex(x["time"].values), "data")
    return clim


def _cube_climatology(x: xr.DataArray, config: ThermalConfig, source: str) -> xr.DataArray:
    """Checks that the time axis covers the base period (pixels without data get NaN)."""
    days = pd.DatetimeIndex(x["time"].values)
    p0, p1, ndays = _month_slots(days, config)
    enough = (p1 - p0) >= np.maximum(1, np.ceil(config.min_month_coverage * ndays))
    _coverage_error(source, enough.sum(axis=0), config, days, "time axis")
    return _climatology_core(x, config)[0]


def _given_climatology(climatology: pd.Series | xr.DataArray) -> xr.DataArray:
    source = "climatology"
    if isinstance(climatology, pd.Series):
        climatology = xr.DataArray(
            climatology.to_numpy(dtype=np.float64),
            dims="month",
            coords={"month": np.asarray(climatology.index)},
        )
    if not isinstance(climatology, xr.DataArray) or "month" not in climatology.dims:
        raise DataError(
            source,
            "expected a Series indexed by month or a DataArray with dim 'month'",
            field="month",
        )
    months = climatology["month"].values if "month" in climatology.coords else None
    if months is None or sorted(np.asarray(months).tolist()) != list(range(1, 13)):
        raise DataError(
            source, f"months {months}; expected exactly the months 1..12", field="month"
        )
    return climatology.sortby("month").astype(np.float64).rename("climatology")


def monthly_climatology(sst: SSTLike, config: ThermalConfig | None = None) -> SSTLike:
    """Monthly-mean SST climatology over the base period (12 values; see the module doc).

    Series → Series indexed by month 1..12 (DataError if any month lacks base-period data);
    DataArray → DataArray ``(month, ...)`` (DataError if the time axis does not cover the base
    period; pixels without enough data get NaN).
    """
    config = config or ThermalConfig()
    if isinstance(sst, xr.DataArray):
        x, _ = _regularise_cube(sst, config, check_range=True)
        return _cube_climatology(x, config, _source(sst, "SST cube"))
    values, daily = _regularise_series(sst, config, check_range=True)
    clim = _series_climatology(_series_dataarray(values, daily), config, _source(sst, "SST series"))
    out = clim.to_series()
    out.attrs = dict(clim.attrs)
    return out


def maximum_monthly_mean(climatology: pd.Series | xr.DataArray) -> float | xr.DataArray:
    """MMM: the maximum of the monthly means (NaN if any month is NaN)."""
    clim = _given_climatology(climatology)
    mmm = clim.max("month", skipna=False).rename("mmm")
    return float(mmm) if mmm.ndim == 0 else mmm


def _daily_climatology(clim: xr.DataArray, x: xr.DataArray) -> xr.DataArray:
    """Each day of ``x``'s monthly mean; a chain of ``where`` keeps ``x``'s dask time chunks."""
    month = x["time"].dt.month.drop_vars("time")
    if x.chunks is not None:
        month = month.chunk(time=x.chunksizes["time"])
    out = xr.zeros_like(month, dtype=np.float64) + clim.sel(month=1, drop=True)
    for m in range(2, 13):
        out = xr.where(month == m, clim.sel(month=m, drop=True), out)
    return out.transpose("time", ...).assign_coords(time=x["time"]).rename("climatology")


# ------------------------------------------------------------------------------ CRW products
def _hotspot(sst: xr.DataArray, mmm: xr.DataArray | float) -> xr.DataArray:
    return ((sst - mmm).round(_ROUND).clip(min=0.0) + 0.0).rename("hotspot")  # + 0.0: no -0.0


def hotspot(sst: ArrayLike, mmm: float | xr.DataArray) -> ArrayLike:
    """CRW HotSpot = max(SST − MMM, 0) in °C (NaN stays NaN), same type as ``sst``."""
    x, back = _as_dataarray(sst)
    return back(_hotspot(x, mmm))


def _dhw(hs: xr.DataArray, config: ThermalConfig) -> xr.DataArray:
    window = config.dhw_window_days
    stress = hs.where(hs >= HOTSPOT_THRESHOLD, 0.0)  # missing days contribute 0
    total = _trailing_sum(stress, window).round(_ROUND).clip(min=0.0)
    have = _trailing_sum(hs.notnull().astype(np.int64), window)
    dhw = (total / 7.0).where(have >= config.dhw_min_valid).rename("dhw")
    dhw.attrs.update(
        units="degree_C_weeks", window_days=window, min_valid_days=config.dhw_min_valid
    )
    return dhw


def degree_heating_weeks(hotspots: SSTLike, config: ThermalConfig | None = None) -> SSTLike:
    """DHW (°C-weeks) from daily HotSpots: trailing 84-day sum of HotSpots ≥ 1 °C ÷ 7.

    No lookahead: DHW on day t uses days t−83..t only. Missing days count 0; DHW is NaN when
    more than ``config.dhw_max_missing`` of the window is missing (days before the first
    observation count as missing). The result is daily-regular (gaps inserted as NaN).
    """
    config = config or ThermalConfig()
    if isinstance(hotspots, xr.DataArray):
        x, daily = _regularise_cube(hotspots, config, check_range=False)
        return _dhw(x, config).assign_coords(time=daily.index)
    values, daily = _regularise_series(hotspots, config, check_range=False)
    dhw = _dhw(_series_dataarray(values, daily), config)
    return pd.Series(dhw.values, index=daily.index, name="dhw")


def _dhw_levels(dhw: xr.DataArray) -> xr.DataArray:
    """Number of DHW alert thresholds (4, 8, 12, 16, 20) reached: 0..5."""
    levels = xr.zeros_like(dhw, dtype=np.int8)
    for threshold in DHW_ALERT_THRESHOLDS:
        levels = levels + (dhw >= threshold)
    return levels


def _alert_level(hs: xr.DataArray, dhw: xr.DataArray) -> xr.DataArray:
    level = xr.where(hs <= 0, 0, xr.where(hs < HOTSPOT_THRESHOLD, 1, 2 + _dhw_levels(dhw)))
    decided = hs.notnull() & ~((hs >= HOTSPOT_THRESHOLD) & dhw.isnull())
    return level.where(decided).astype(np.float64).rename("alert_level")


def alert_level(hotspots: ArrayLike, dhw: ArrayLike) -> ArrayLike:
    """CRW v3.1 Bleaching Alert Area level 0..7 from HotSpot and DHW (see the module doc).

    HS ≥ 1 with DHW < 4 is a Warning (2) whatever the DHW (it is > 0 when the day is in its own
    window). NaN where HS is missing, or HS ≥ 1 and DHW is missing. Same type as ``hotspots``.
    """
    if isinstance(hotspots, pd.Series) and isinstance(dhw, pd.Series):
        hotspots, dhw = hotspots.align(dhw)
    hs, back = _as_dataarray(hotspots)
    d, _ = _as_dataarray(dhw)
    if not isinstance(hotspots, xr.DataArray) and not isinstance(dhw, xr.DataArray):
        d = d.rename({old: new for old, new in zip(d.dims, hs.dims, strict=False) if old != new})
    return back(_alert_level(hs, d))


def alert_level_from_dhw(dhw: ArrayLike) -> ArrayLike:
    """Alert level from DHW alone (e.g. the CRW DHW product, where HotSpot is not at hand).

    DHW ≤ 0 → 0 (No Stress or Watch: indistinguishable without HotSpot); 0 < DHW < 4 → 2
    (Warning); then 3..7 at DHW ≥ 4, 8, 12, 16, 20; NaN stays NaN. This is the level of the
    accumulated stress: it equals CRW's Bleaching Alert Area whenever today's HotSpot is ≥ 1 °C
    and is an upper bound otherwise. Same type as ``dhw``.
    """
    d, back = _as_dataarray(dhw)
    level = xr.where(d <= 0, 0, 2 + _dhw_levels(d)).where(d.notnull()).astype(np.float64)
    return back(level.rename("alert_level"))


def alert_level_names(levels: ArrayLike) -> pd.Series | pd.Categorical:
    """Ordered categorical of :data:`ALERT_LEVEL_NAMES` (NaN → missing); Series keep their index."""
    values = np.asarray(
        levels.values if isinstance(levels, pd.Series | xr.DataArray) else levels, dtype=np.float64
    ).ravel()
    codes = np.where(np.isnan(values), -1, values).astype(int)
    cat = pd.Categorical.from_codes(
        codes, categories=list(ALERT_LEVEL_NAMES.values()), ordered=True
    )
    return (
        pd.Series(cat, index=levels.index, name=levels.name)
        if isinstance(levels, pd.Series)
        else cat
    )


def sst_anomaly(sst: SSTLike, climatology: pd.Series | xr.DataArray) -> SSTLike:
    """SST − the monthly mean of each day's calendar month (daily-regular output)."""
    clim = _given_climatology(climatology)
    config = ThermalConfig()
    if isinstance(sst, xr.DataArray):
        x, daily = _regularise_cube(sst, config, check_range=False)
        return (x - _daily_climatology(clim, x)).rename("anomaly").assign_coords(time=daily.index)
    values, daily = _regularise_series(sst, config, check_range=False)
    x = _series_dataarray(values, daily)
    return pd.Series((x - _daily_climatology(clim, x)).values, index=daily.index, name="anomaly")


def _rolling_means(x: xr.DataArray, config: ThermalConfig) -> dict[str, xr.DataArray]:
    filled, have = x.fillna(0.0), x.notnull().astype(np.int64)
    out = {}
    for w in config.rolling_windows:
        count = _trailing_sum(have, w)
        name = f"sst_mean_{w}d"
        out[name] = (
            _trailing_sum(filled, w) / count.where(count >= config.rolling_min_periods(w))
        ).rename(name)
    return out


def rolling_means(sst: SSTLike, config: ThermalConfig | None = None) -> pd.DataFrame | xr.Dataset:
    """Trailing means ``sst_mean_{w}d`` for ``config.rolling_windows`` (current day included).

    NaN where fewer than ``ceil(w * rolling_min_fraction)`` days of the window have data.
    """
    config = config or ThermalConfig()
    if isinstance(sst, xr.DataArray):
        x, daily = _regularise_cube(sst, config, check_range=True)
        return xr.Dataset(_rolling_means(x, config)).assign_coords(time=daily.index)
    values, daily = _regularise_series(sst, config, check_range=True)
    means = _rolling_means(_series_dataarray(values, daily), config)
    return pd.DataFrame({k: v.values for k, v in means.items()}, index=daily.index)


# ------------------------------------------------------------------------------ feature tables
def _features(
    x: xr.DataArray, config: ThermalConfig, clim: xr.DataArray
) -> dict[str, xr.DataArray]:
    mmm = clim.max("month", skipna=False)
    daily_clim = _daily_climatology(clim, x)
    hs = _hotspot(x, mmm)
    dhw = _dhw(hs, config)
    return {
        "sst": x.rename("sst"),
        "climatology": daily_clim,
        "anomaly": (x - daily_clim).rename("anomaly"),
        "hotspot": hs,
        "dhw": dhw,
        "alert_level": _alert_level(hs, dhw),
        **_rolling_means(x, config),
    }


def _config_attrs(config: ThermalConfig) -> str:
    return json.dumps(config.model_dump(), sort_keys=True)


def thermal_features(
    sst: pd.Series,
    config: ThermalConfig | None = None,
    *,
    climatology: pd.Series | xr.DataArray | None = None,
) -> pd.DataFrame:
    """Daily CRW heat-stress features of one SST series (°C).

    Columns: sst, climatology, anomaly, hotspot, dhw, alert_level, sst_mean_{w}d. The index is
    daily (see :func:`validate_sst_series`). ``climatology`` (12 monthly means) replaces the
    base-period computation, e.g. to score a recent stream with a stored climatology.
    ``attrs``: mmm, monthly_climatology {month: °C}, gap_days, config, and the input's
    dataset_ref when it has one.
    """
    config = config or ThermalConfig()
    source = _source(sst, "SST series")
    values, daily = _regularise_series(sst, config, check_range=True)
    x = _series_dataarray(values, daily)
    clim = (
        _series_climatology(x, config, source)
        if climatology is None
        else _given_climatology(climatology)
    )
    if clim.ndim != 1 or bool(clim.isnull().any()):
        raise DataError("climatology", "expected 12 finite monthly means", field="month")
    frame = pd.DataFrame(
        {k: v.values for k, v in _features(x, config, clim).items()}, index=daily.index
    )
    frame.attrs = {
        "mmm": float(clim.max()),
        "monthly_climatology": {
            int(m): float(v) for m, v in zip(clim["month"].values, clim.values, strict=True)
        },
        "gap_days": daily.gap_days,
        "config": config.model_dump(),
    }
    if "dataset_ref" in sst.attrs:
        frame.attrs["dataset_ref"] = sst.attrs["dataset_ref"]
    return frame


def thermal_features_grid(
    cube: xr.DataArray,
    config: ThermalConfig | None = None,
    *,
    climatology: xr.DataArray | pd.Series | None = None,
) -> xr.Dataset:
    """The gridded counterpart of :func:`thermal_features` for an SST cube ``(time, y, x)``.

    Lazy on dask (nothing is computed here; an out-of-range SST raises a DataError at compute
    time). Daily variables share the cube's dims; adds ``mmm`` and ``monthly_climatology``
    ``(month, ...)``. Pixels without enough base-period data (land) get NaN throughout.
    ``attrs``: gap_days, thermal_config (JSON).
    """
    config = config or ThermalConfig()
    x, daily = _regularise_cube(cube, config, check_range=True)
    if climatology is None:
        clim = _cube_climatology(x, config, _source(cube, "SST cube"))
    else:
        clim = _given_climatology(climatology)
    ds = xr.Dataset(_features(x, config, clim))
    ds["mmm"] = clim.max("month", skipna=False)
    ds["monthly_climatology"] = clim
    ds = ds.assign_coords(time=daily.index)
    for name, units in (
        ("sst", "degree_C"),
        ("anomaly", "degree_C"),
        ("hotspot", "degree_C"),
        ("mmm", "degree_C"),
        ("alert_level", "1"),
    ):
        ds[name].attrs["units"] = units
    ds["alert_level"].attrs["flag_meanings"] = " ".join(
        n.replace(" ", "_") for n in ALERT_LEVEL_NAMES.values()
    )
    ds.attrs.update(
        gap_days=daily.gap_days,
        thermal_config=_config_attrs(config),
        source="NOAA Coral Reef Watch 5 km v3.1 methodology",
    )
    return ds
