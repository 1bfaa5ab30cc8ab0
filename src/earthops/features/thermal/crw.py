"""NOAA CRW products: HotSpot, DHW, alert levels and names, SST anomaly, rolling means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from earthops.features.thermal._xr import _as_dataarray, _trailing_sum
from earthops.features.thermal.climatology import _daily_climatology, _given_climatology
from earthops.features.thermal.config import (
    _ROUND,
    ALERT_LEVEL_NAMES,
    DHW_ALERT_THRESHOLDS,
    HOTSPOT_THRESHOLD,
    ArrayLike,
    SSTLike,
    ThermalConfig,
)
from earthops.features.thermal.daily import (
    _regularise_cube,
    _regularise_series,
    _series_dataarray,
)


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
    if isinstance(dhw, np.ndarray):  # plain arrays (the server, per request): numpy only
        d = dhw.astype(np.float64, copy=False)
        levels = 2.0 + sum((d >= t).astype(np.float64) for t in DHW_ALERT_THRESHOLDS)
        return np.where(np.isnan(d), np.nan, np.where(d <= 0, 0.0, levels))
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
