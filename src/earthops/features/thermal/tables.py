"""Feature tables: all CRW heat-stress features of an SST series or cube."""

from __future__ import annotations

import json

import pandas as pd
import xarray as xr

from earthops.errors import DataError
from earthops.features.thermal.climatology import (
    _cube_climatology,
    _daily_climatology,
    _given_climatology,
    _series_climatology,
)
from earthops.features.thermal.config import ALERT_LEVEL_NAMES, ThermalConfig
from earthops.features.thermal.crw import _alert_level, _dhw, _hotspot, _rolling_means
from earthops.features.thermal.daily import (
    _regularise_cube,
    _regularise_series,
    _series_dataarray,
    _source,
)


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
