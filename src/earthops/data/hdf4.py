"""HDF4-EOS MODIS grids (e.g. MCD12C1, MOD13Q1 tiles) via ``pyhdf.SD``.

One scientific dataset (SDS) is read as a ``(band, y, x)`` DataArray with its fill value, scale
and offset applied and the grid georeferenced from the file's HDF-EOS ``StructMetadata.0``
(``GCTP_GEO`` or ``GCTP_SNSOID``). Without that metadata a global 2:1 grid is taken as the
lat/lon Climate Modelling Grid: origin (−180, 90), cell 360/ncols degrees, EPSG:4326
(MCD12C1: 3600×7200, 0.05°).

Scaling conventions differ between MODIS products: ``scaling="hdf4"`` (default, the HDF4
``SDsetcal`` rule) gives ``scale_factor * (stored - add_offset)``; ``"divide"`` gives
``(stored - add_offset) / scale_factor`` (MOD13 vegetation indices, whose scale_factor is
10000); ``"none"`` keeps the stored integers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from affine import Affine
from pyhdf.error import HDF4Error
from pyhdf.SD import SD, SDC
from rasterio.crs import CRS
from rasterio.transform import from_bounds

from earthops.data.identity import attach_ref, file_sha256
from earthops.data.rasters import raster_array, require_file
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

Scaling = Literal["hdf4", "divide", "none"]
#: the MODIS sinusoidal sphere radius (m), used when ProjParams do not give one.
MODIS_SPHERE_RADIUS = 6371007.181
_GRID = re.compile(r"GROUP=(GRID_\d+)(.*?)END_GROUP=\1", re.DOTALL)


def _open(path: Path) -> SD:
    try:
        return SD(str(path), SDC.READ)
    except HDF4Error as exc:
        raise DataError(
            path, f"not a readable HDF4 file ({exc}); expected HDF4-EOS (e.g. MODIS MCD12C1 .hdf)"
        ) from exc


def list_sds(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``{SDS name: shape}`` of every scientific dataset in an HDF4 file."""
    local = require_file(path)
    sd = _open(local)
    try:
        return {
            name: tuple(np.atleast_1d(info[1]).tolist()) for name, info in sd.datasets().items()
        }
    finally:
        sd.end()


def _dms_to_degrees(value: float) -> float:
    """GCTP packed DMS (``DDDMMMSSS.SS``) to decimal degrees."""
    sign, v = (-1.0 if value < 0 else 1.0), abs(value)
    degrees, minutes, seconds = v // 1_000_000, (v % 1_000_000) // 1000, v % 1000
    return sign * (degrees + minutes / 60 + seconds / 3600)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _eos_grid(struct: str, height: int, width: int, source: Path) -> tuple[Affine, CRS] | None:
    """Transform and CRS of the HDF-EOS grid of size ``height × width``, if the metadata has it."""
    for _, body in _GRID.findall(struct):
        fields = dict(re.findall(r"^\s*(\w+)=(.*?)\s*$", body, re.MULTILINE))
        try:
            if int(fields.get("XDim", -1)) != width or int(fields.get("YDim", -1)) != height:
                continue
            ulx, uly = _floats(fields["UpperLeftPointMtrs"].strip("()"))
            lrx, lry = _floats(fields["LowerRightMtrs"].strip("()"))
        except (KeyError, ValueError) as exc:
            raise DataError(
                source,
                f"unreadable grid corners in StructMetadata.0 ({exc})",
                field="StructMetadata.0",
            ) from exc
        projection = fields.get("Projection", "").strip()
        if projection == "GCTP_GEO":
            ulx, uly, lrx, lry = map(_dms_to_degrees, (ulx, uly, lrx, lry))
            crs = CRS.from_epsg(4326)
        elif projection == "GCTP_SNSOID":
            params = _floats(fields.get("ProjParams", "()").strip("()"))
            radius = params[0] if params and params[0] > 0 else MODIS_SPHERE_RADIUS
            crs = CRS.from_proj4(f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={radius} +units=m +no_defs")
        else:
            raise DataError(
                source,
                f"unsupported HDF-EOS projection '{projection}'; expected GCTP_GEO or GCTP_SNSOID",
                field="StructMetadata.0",
            )
        return from_bounds(ulx, lry, lrx, uly, width, height), crs
    return None


def _global_grid(height: int, width: int, source: Path, sds: str) -> tuple[Affine, CRS]:
    res = 360.0 / width
    if abs(180.0 / height - res) > 1e-9 * res:
        raise DataError(
            source,
            f"no HDF-EOS grid metadata and {height}×{width} is not a global 2:1 lat/lon grid; "
            "cannot georeference",
            field=sds,
        )
    return Affine(res, 0.0, -180.0, 0.0, -res, 90.0), CRS.from_epsg(4326)


def _scaled(
    raw: np.ndarray, attrs: dict[str, Any], scaling: Scaling
) -> tuple[np.ndarray, float | None]:
    """Apply fill, valid range and scale: float32 with NaN, or the raw integers and their fill."""
    fill = attrs.get("_FillValue")
    scale = float(attrs.get("scale_factor", 1.0))
    offset = float(attrs.get("add_offset", 0.0))
    has_scale = scaling != "none" and (scale != 1.0 or offset != 0.0)
    if not has_scale and not np.issubdtype(raw.dtype, np.floating):
        return raw, None if fill is None else float(fill)
    valid = np.ones(raw.shape, dtype=bool)
    if fill is not None:
        valid &= raw != fill
    valid_range = attrs.get("valid_range")
    if valid_range is not None and len(np.atleast_1d(valid_range)) == 2:
        lo, hi = np.atleast_1d(valid_range)
        valid &= (raw >= lo) & (raw <= hi)
    values = raw.astype(np.float32)
    if has_scale:
        values = (
            np.float32(scale) * (values - np.float32(offset))
            if scaling == "hdf4"
            else (values - np.float32(offset)) / np.float32(scale)
        )
    values[~valid] = np.nan
    return values, None


def read_hdf4_sds(
    path: str | Path,
    sds: str = "Majority_Land_Cover_Type_1",
    *,
    scaling: Scaling = "hdf4",
    name: str | None = None,
) -> xr.DataArray:
    """One SDS of an HDF4-EOS file as a georeferenced ``(band, y, x)`` DataArray.

    A 2-D SDS gives ``band=[sds]``; a 3-D ``(y, x, n)`` SDS (e.g. ``Land_Cover_Type_1_Percent``)
    gives ``n`` bands ``<sds>_0 … <sds>_{n-1}``. Integer data without scale keep their dtype and
    declare ``_FillValue``; scaled or float data are float32 with NaN for fill / out-of-range.
    A missing SDS is a DataError listing the SDS names in the file.
    """
    local = require_file(path)
    sd = _open(local)
    try:
        available = sd.datasets()
        if sds not in available:
            names = ", ".join(sorted(available)) or "none"
            raise DataError(local, f"no SDS '{sds}'; available SDS: {names}", field=sds)
        obj = sd.select(sds)
        try:
            raw = np.asarray(obj.get())
            attrs = obj.attributes()
        except HDF4Error as exc:
            raise DataError(local, f"cannot read the SDS data ({exc})", field=sds) from exc
        finally:
            obj.endaccess()
        struct = str(sd.attributes().get("StructMetadata.0", ""))
    finally:
        sd.end()
    if raw.ndim == 2:
        raw = raw[np.newaxis]
        bands = [sds]
    elif raw.ndim == 3:
        if raw.shape[2] < min(raw.shape[:2]):  # (y, x, n) as MODIS writes layered SDS
            raw = np.moveaxis(raw, 2, 0)
        bands = [f"{sds}_{i}" for i in range(raw.shape[0])]
    else:
        raise DataError(local, f"SDS has rank {raw.ndim}; expected a 2-D or 3-D grid", field=sds)
    height, width = raw.shape[1:]
    grid = _eos_grid(struct, height, width, local) if struct else None
    transform, crs = grid or _global_grid(height, width, local, sds)
    values, nodata = _scaled(raw, attrs, scaling)
    keep = {k: attrs[k] for k in ("long_name", "units") if k in attrs}
    da = raster_array(
        values,
        transform=transform,
        crs=crs,
        nodata=nodata,
        band_names=bands,
        attrs=keep,
        source=local,
    )
    empty = (
        np.isnan(values).all()
        if np.issubdtype(values.dtype, np.floating)
        else (nodata is not None and bool((values == nodata).all()))
    )
    if empty:
        raise DataError(local, "all pixels are fill / out of the valid range", field=sds)
    log.debug("read HDF4 SDS", path=str(local), sds=sds, shape=da.shape)
    attach_ref(da, name or f"{local.stem}:{sds}", str(local), file_sha256(local))
    return da
