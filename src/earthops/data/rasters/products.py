"""Catalog global rasters: MCD12C1 IGBP land cover, Blue Marble NG true colour, Köppen-Geiger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.enums import Resampling

from earthops.data.identity import attach_ref
from earthops.data.legends import IGBP, KOPPEN
from earthops.data.rasters.arrays import grid_coords
from earthops.data.rasters.reader import Bbox, _read_raster
from earthops.data.rasters.sources import resolve_input
from earthops.errors import DataError


# ------------------------------------------------------------------------------ catalog products
def read_mcd12c1(path: str | Path | None = None, *, name: str | None = None) -> xr.DataArray:
    """MODIS MCD12C1 IGBP majority land cover (default: catalog ``mcd12c1-2019``).

    Returns ``(band=["igbp"], y, x)`` uint8, values 0–16 and nodata 255, EPSG:4326 (the CMG
    lat/lon grid; the file's own geographic CRS is kept in ``attrs["source_crs"]``), with the
    IGBP legend (names, colours) in the attributes.
    """
    local, ref = resolve_input(path, "mcd12c1-2019", name=name)
    da = _read_raster(local, require_crs=True)
    if da.sizes["band"] != 1 or da.dtype != np.uint8:
        raise DataError(
            local,
            f"expected one uint8 band of IGBP classes, found {da.sizes['band']} band(s) of {da.dtype}",
            field="band",
        )
    if da.rio.nodata is None:
        da = da.rio.write_nodata(IGBP.nodata)
    nodata = int(da.rio.nodata)
    present = np.flatnonzero(np.bincount(da.values.ravel(), minlength=256))
    bad = [int(v) for v in present if v not in IGBP.values and v != nodata]
    if bad:
        raise DataError(
            local,
            f"values {bad[:8]} outside the IGBP classes 0–16 (nodata {nodata})",
            field="Majority_Land_Cover_Type_1",
        )
    da = _as_wgs84(da, local)
    da = da.assign_coords(band=["igbp"])
    da.attrs.update(
        IGBP.to_attrs(), long_name="IGBP land cover (MCD12C1 Majority_Land_Cover_Type_1)"
    )
    attach_ref(da, ref.name, ref.uri, ref.digest)
    return da


def _as_wgs84(da: xr.DataArray, source: Path) -> xr.DataArray:
    """Label a geographic lat/lon grid EPSG:4326 (datum differences are far below a CMG cell)."""
    crs = da.rio.crs
    if crs is None or not crs.is_geographic:
        raise DataError(source, f"expected a geographic (lat/lon) CRS, found {crs}", field="crs")
    if crs != CRS.from_epsg(4326):
        da = da.rio.write_crs("EPSG:4326")
        da.attrs["source_crs"] = crs.to_wkt()
    return da


def read_bmng(path: str | Path | None = None, *, name: str | None = None) -> xr.DataArray:
    """NASA Blue Marble NG true colour (default: catalog ``bmng-2004``) as ``(band=[red, green, blue], y, x)``.

    The JPEG carries no georeferencing: EPSG:4326 and the implied global extent (−180…180,
    90…−90) are attached; a georeferenced file keeps its own.
    """
    local, ref = resolve_input(path, "bmng-2004", name=name)
    da = _read_raster(local)
    if da.sizes["band"] != 3:
        raise DataError(local, f"expected 3 bands (RGB), found {da.sizes['band']}", field="band")
    if da.rio.crs is None:
        height, width = da.sizes["y"], da.sizes["x"]
        transform = rasterio.transform.from_bounds(-180, -90, 180, 90, width, height)
        ys, xs = grid_coords(transform, height, width)
        da = da.assign_coords(y=ys, x=xs).rio.write_crs("EPSG:4326").rio.write_transform(transform)
    da = da.assign_coords(band=["red", "green", "blue"])
    da.attrs["long_name"] = "Blue Marble Next Generation true colour"
    attach_ref(da, ref.name, ref.uri, ref.digest)
    return da


def read_koppen(
    path: str | Path | None = None,
    *,
    out_shape: tuple[int, int] | None = (3600, 7200),
    resampling: str | Resampling = "mode",
    bbox: Bbox | None = None,
    chunks: int | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """Köppen-Geiger main groups (default: catalog ``koppen-geiger``), ``(band=["koppen"], y, x)`` uint8.

    The 1 km original is 43200×21600 (933 MB as uint8), so it is read decimated by default:
    ``out_shape`` (of the whole raster, or of ``bbox`` when given) with ``mode`` resampling under
    a bounded GDAL cache. ``out_shape=None`` reads at native resolution (use ``bbox``), or lazily
    with ``chunks``. Values 1–5 (tropical … polar), nodata 0; the legend is in the attributes.
    """
    local, ref = resolve_input(path, "koppen-geiger", name=name)
    da = _read_raster(
        local,
        bbox=bbox,
        out_shape=out_shape,
        resampling=resampling,
        chunks=chunks,
        require_crs=True,
    )
    if da.sizes["band"] != 1:
        raise DataError(local, f"expected one band, found {da.sizes['band']}", field="band")
    if da.rio.nodata is None:
        da = da.rio.write_nodata(KOPPEN.nodata)
    da = da.assign_coords(band=["koppen"])
    da.attrs.update(KOPPEN.to_attrs(), long_name="Köppen-Geiger climate main group")
    attach_ref(da, ref.name, ref.uri, ref.digest)
    return da
