"""NOAA Coral Reef Watch 5 km products from NetCDF/CF (degree heating weeks) as ``(band, y, x)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from earthops.data.identity import attach_ref
from earthops.data.rasters.arrays import grid_coords
from earthops.data.rasters.sources import resolve_input
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

_LAT = ("lat", "latitude", "y")
_LON = ("lon", "longitude", "x")


def _axis(coord: np.ndarray, source: Path, dim: str) -> tuple[float, float]:
    """Edge origin and step of a regular axis of cell centres (float32 noise snapped)."""
    v = np.asarray(coord, dtype=np.float64)
    if v.size < 2:
        raise DataError(source, f"axis '{dim}' has {v.size} value(s); expected a grid", field=dim)
    step = (v[-1] - v[0]) / (v.size - 1)
    if step == 0 or not np.allclose(np.diff(v), step, rtol=1e-3, atol=0):
        raise DataError(
            source, f"axis '{dim}' is not regularly spaced; expected a regular grid", field=dim
        )
    if np.asarray(coord).dtype == np.float32:
        step = float(f"{step:.7g}")
        origin = v[0] - step / 2
        quantum = abs(step) / 1000
        origin = round(origin / quantum) * quantum
    else:
        origin = v[0] - step / 2
    return float(origin), float(step)


def _netcdf_crs(ds: xr.Dataset, var: xr.DataArray) -> CRS:
    mapping = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    if mapping and mapping in ds.variables:
        attrs = ds[mapping].attrs
        for key in ("crs_wkt", "spatial_ref", "epsg_code"):
            if attrs.get(key):
                return CRS.from_user_input(attrs[key])
        if attrs.get("grid_mapping_name") == "latitude_longitude":
            return CRS.from_epsg(4326)
    log.info("no grid mapping; lat/lon grid taken as EPSG:4326", variable=var.name)
    return CRS.from_epsg(4326)


def _water_value(mask: xr.DataArray) -> int:
    values = np.atleast_1d(mask.attrs.get("flag_values", [0]))
    meanings = str(mask.attrs.get("flag_meanings", "valid-water")).split()
    for value, meaning in zip(values, meanings, strict=False):
        if "water" in meaning:
            return int(value)
    return 0


def read_crw_dhw(
    path: str | Path | None = None,
    *,
    variable: str = "degree_heating_week",
    mask: str | None = "mask",
    name: str | None = None,
) -> xr.DataArray:
    """NOAA CRW 5 km product from NetCDF/CF (default: catalog ``crw-dhw-20210619``).

    Returns ``(band=[variable], y, x)`` float32 (``(time, band, y, x)`` for several times; a
    single time is kept as the scalar ``time`` coordinate): fill values and scale applied, and
    every pixel the ``mask`` variable flags other than valid water (land, missing, ice) is NaN.
    """
    local, ref = resolve_input(path, "crw-dhw-20210619", name=name)
    try:
        ds = xr.open_dataset(local, engine="netcdf4", mask_and_scale=True)
    except Exception as exc:
        raise DataError(local, f"not a readable NetCDF file ({exc})") from exc
    with ds:
        if variable not in ds.data_vars:
            available = ", ".join(map(str, ds.data_vars)) or "none"
            raise DataError(
                local, f"no variable '{variable}'; available: {available}", field=variable
            )
        var = ds[variable]
        ydim = next((d for d in var.dims if str(d).lower() in _LAT), None)
        xdim = next((d for d in var.dims if str(d).lower() in _LON), None)
        extra = [d for d in var.dims if d not in (ydim, xdim)]
        if ydim is None or xdim is None or any(d != "time" for d in extra):
            raise DataError(
                local, f"dims {var.dims}; expected (lat, lon) or (time, lat, lon)", field=variable
            )
        crs = _netcdf_crs(ds, var)
        try:
            data = var.load()
        except Exception as exc:
            raise DataError(local, f"cannot read the data ({exc})", field=variable) from exc
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        if mask and mask in ds.variables:
            flags = ds[mask].load()
            data = data.where(flags == _water_value(flags))
        elif mask:
            log.warning("no mask variable; only fill values masked", path=str(local), mask=mask)
        units, long_name = var.attrs.get("units"), var.attrs.get("long_name", variable)
    data = data.rename({ydim: "y", xdim: "x"})
    if "time" in data.dims and data.sizes["time"] == 1:
        data = data.isel(time=0)
    if data["y"].values[0] < data["y"].values[-1]:
        data = data.isel(y=slice(None, None, -1))
    y0, dy = _axis(data["y"].values, local, str(ydim))
    x0, dx = _axis(data["x"].values, local, str(xdim))
    transform = Affine(dx, 0.0, x0, 0.0, dy, y0)
    ys, xs = grid_coords(transform, data.sizes["y"], data.sizes["x"])
    data = data.assign_coords(y=ys, x=xs).expand_dims(
        band=np.array([variable]), axis=data.dims.index("y")
    )
    data = data.drop_vars([c for c in data.coords if c not in ("time", "band", "y", "x")])
    data.attrs = {"long_name": long_name, **({"units": units} if units else {})}
    data.encoding = {}
    data = data.astype(np.float32, copy=False)
    data = data.rio.write_crs(crs).rio.write_transform(transform).rio.write_nodata(np.nan)
    if bool(np.isnan(data.values).all()):
        raise DataError(
            local, "all pixels are nodata (fill or masked); expected valid data", field=variable
        )
    attach_ref(data, ref.name, ref.uri, ref.digest)
    return data
