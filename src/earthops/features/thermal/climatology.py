"""Monthly-mean climatology, MMM and the daily climatology of a time axis."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from earthops.errors import DataError
from earthops.features.thermal.config import _DAY, MONTH_NAMES, SSTLike, ThermalConfig
from earthops.features.thermal.daily import (
    _regularise_cube,
    _regularise_series,
    _series_dataarray,
    _source,
)


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
