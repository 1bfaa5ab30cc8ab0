"""The generic reader: any rasterio/GDAL raster (GeoTIFF, COG, JPEG, JPEG 2000) as ``(band, y, x)``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetReader
from rasterio.windows import Window

from earthops.data.identity import attach_ref, file_sha256
from earthops.data.rasters.arrays import _check_not_empty, raster_array
from earthops.data.rasters.sources import require_file
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

#: GDAL block cache (MB) while reading: decimating a large raster streams it instead of caching it.
GDAL_CACHE_MB = 64

Bbox = tuple[float, float, float, float]
_RGB = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}


@contextmanager
def _open(path: Path) -> Iterator[DatasetReader]:
    """Open with rasterio under a bounded GDAL cache; open failures become DataError."""
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            src = rasterio.open(path)
        except Exception as exc:
            raise DataError(
                path,
                f"not a readable raster ({exc}); expected a GeoTIFF/COG, JPEG or JPEG 2000 file",
            ) from exc
        with src:
            if src.count == 0:
                subs = ", ".join(src.subdatasets[:5]) or "none"
                raise DataError(
                    path,
                    f"no raster bands (subdatasets: {subs}); HDF4 needs read_hdf4_sds, "
                    "NetCDF read_crw_dhw",
                )
            yield src


def _band_names(src: DatasetReader) -> list[str]:
    descriptions = [d.strip().lower() if d else "" for d in src.descriptions]
    if all(descriptions) and len(set(descriptions)) == len(descriptions):
        return descriptions
    interp = [_RGB.get(ci) for ci in src.colorinterp]
    if src.count in (3, 4) and interp[:3] == ["red", "green", "blue"]:
        return ["red", "green", "blue", "alpha"][: src.count]
    return [f"b{i}" for i in range(1, src.count + 1)]


def _resampling(resampling: str | Resampling) -> Resampling:
    if isinstance(resampling, Resampling):
        return resampling
    try:
        return Resampling[resampling]
    except KeyError:
        known = ", ".join(r.name for r in Resampling)
        raise ValueError(f"unknown resampling '{resampling}'; known: {known}") from None


def _bbox_window(src: DatasetReader, bbox: Bbox, path: Path) -> Window:
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    if not (minx < maxx and miny < maxy):
        raise DataError(
            path, f"bbox {bbox} is empty; expected minx < maxx, miny < maxy", field="bbox"
        )
    inv = ~src.transform
    cols, rows = zip(
        *(inv @ (x, y) for x, y in [(minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy)]),
        strict=True,
    )
    c0, c1 = max(0, math.floor(min(cols) + 1e-9)), min(src.width, math.ceil(max(cols) - 1e-9))
    r0, r1 = max(0, math.floor(min(rows) + 1e-9)), min(src.height, math.ceil(max(rows) - 1e-9))
    if c0 >= c1 or r0 >= r1:
        raise DataError(
            path,
            f"bbox {bbox} does not intersect the raster bounds {tuple(src.bounds)}",
            field="bbox",
        )
    return Window(c0, r0, c1 - c0, r1 - r0)


def _read_raster(
    path: Path,
    *,
    bbox: Bbox | None = None,
    out_shape: tuple[int, int] | None = None,
    resampling: str | Resampling = "nearest",
    chunks: int | dict[str, int] | None = None,
    require_crs: bool = False,
) -> xr.DataArray:
    """Read without a dataset reference (see :func:`read_raster`)."""
    path = require_file(path)
    with _open(path) as src:
        if require_crs and src.crs is None:
            raise DataError(
                path,
                "no CRS: the raster is not georeferenced; expected a CRS (e.g. EPSG:4326)",
                field="crs",
            )
        names = _band_names(src)
        if chunks is not None:
            if bbox is not None or out_shape is not None:
                raise ValueError("chunks (lazy read) cannot be combined with bbox/out_shape")
            return _read_lazy(path, src, names, chunks)
        window = (
            _bbox_window(src, bbox, path)
            if bbox is not None
            else Window(0, 0, src.width, src.height)
        )
        shape = out_shape or (int(window.height), int(window.width))
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"out_shape must be (height, width) >= 1, got {out_shape}")
        method = _resampling(resampling)
        try:
            values = src.read(out_shape=(src.count, *shape), window=window, resampling=method)
        except Exception as exc:
            cause = f": {exc.__cause__}" if exc.__cause__ else ""
            raise DataError(
                path, f"cannot read the pixel data ({exc}{cause}); file truncated or corrupt?"
            ) from exc
        transform = src.window_transform(window) @ Affine.scale(
            window.width / shape[1], window.height / shape[0]
        )
        nodata = src.nodata
        scales, offsets = src.scales, src.offsets
        crs = src.crs
    if any(s != 1 for s in scales) or any(o != 0 for o in offsets):
        values = values.astype(np.float32)
        if nodata is not None:
            values[values == nodata] = np.nan
        values = (
            values * np.asarray(scales, np.float32)[:, None, None]
            + np.asarray(offsets, np.float32)[:, None, None]
        )
        nodata = None
    da = raster_array(values, transform=transform, crs=crs, nodata=nodata, band_names=names)
    _check_not_empty(da, path, " in the requested window" if bbox is not None else "")
    return da


def _read_lazy(
    path: Path, src: DatasetReader, names: list[str], chunks: int | dict[str, int]
) -> xr.DataArray:
    float_data = all(np.issubdtype(np.dtype(t), np.floating) for t in src.dtypes)
    spec = {"band": 1, "y": chunks, "x": chunks} if isinstance(chunks, int) else chunks
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            da = rioxarray.open_rasterio(path, chunks=spec, masked=float_data, lock=False)
    except Exception as exc:
        raise DataError(path, f"not a readable raster ({exc})") from exc
    if not isinstance(da, xr.DataArray):
        raise DataError(path, "expected a single raster, found subdatasets")
    return da.assign_coords(band=names)


def read_raster(
    path: str | Path,
    *,
    name: str | None = None,
    bbox: Bbox | None = None,
    out_shape: tuple[int, int] | None = None,
    resampling: str | Resampling = "nearest",
    chunks: int | dict[str, int] | None = None,
    require_crs: bool = False,
) -> xr.DataArray:
    """Read any rasterio-readable raster (GeoTIFF, COG, JPEG, JPEG 2000) as ``(band, y, x)``.

    ``bbox`` (``minx, miny, maxx, maxy`` in the raster's CRS) reads a window; ``out_shape``
    ``(height, width)`` reads decimated with ``resampling`` (a ``rasterio.enums.Resampling``
    name); ``chunks`` opens lazily (dask) instead. Band names come from the band descriptions,
    else RGB colour interpretation, else ``b1..bn``. ``require_crs`` makes a raster without CRS
    a DataError.
    """
    local = require_file(path)
    da = _read_raster(
        local,
        bbox=bbox,
        out_shape=out_shape,
        resampling=resampling,
        chunks=chunks,
        require_crs=require_crs,
    )
    if da.rio.crs is None:
        log.warning("raster without CRS", path=str(local))
    attach_ref(da, name or local.stem, str(local), file_sha256(local))
    return da
