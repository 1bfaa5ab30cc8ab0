"""Build georeferenced ``(band, y, x)`` DataArrays from pixel values and check them for data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from earthops.errors import DataError


def grid_coords(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre ``(y, x)`` coordinates of a north-up grid."""
    ys = transform.f + transform.e * (np.arange(height, dtype=np.float64) + 0.5)
    xs = transform.c + transform.a * (np.arange(width, dtype=np.float64) + 0.5)
    return ys, xs


def raster_array(
    values: np.ndarray,
    *,
    transform: Affine,
    crs: CRS | str | None,
    nodata: float | None,
    band_names: Sequence[str],
    attrs: dict[str, Any] | None = None,
    source: str | Path = "<array>",
) -> xr.DataArray:
    """A ``(band, y, x)`` DataArray with coordinates, CRS, transform and nodata attached.

    Float values equal to ``nodata`` become NaN (``nodata`` kept as the encoded fill value);
    integer values are kept and ``nodata`` declared as ``_FillValue``.
    """
    if values.ndim != 3:
        raise ValueError(f"expected (band, y, x) values, got shape {values.shape}")
    if transform.b != 0 or transform.d != 0:
        raise DataError(
            source, "rotated or sheared geotransform is not supported", field="transform"
        )
    ys, xs = grid_coords(transform, values.shape[1], values.shape[2])
    is_float = np.issubdtype(values.dtype, np.floating)
    if is_float and nodata is not None and not math.isnan(nodata):
        values = np.where(values == nodata, np.nan, values).astype(values.dtype, copy=False)
    da = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={"band": [str(b) for b in band_names], "y": ys, "x": xs},
        attrs=dict(attrs or {}),
    )
    if crs is not None:
        da = da.rio.write_crs(crs)
    da = da.rio.write_transform(transform)
    if is_float:
        da = da.rio.write_nodata(
            np.nan if nodata is None else nodata,
            encoded=nodata is not None and not math.isnan(nodata),
        )
    elif nodata is not None:
        da = da.rio.write_nodata(np.asarray(nodata).astype(values.dtype).item())
    return da


def _check_not_empty(da: xr.DataArray, source: str | Path, where: str = "") -> None:
    values = da.values
    if np.issubdtype(values.dtype, np.floating):
        empty = bool(np.isnan(values).all())
    else:
        nodata = da.rio.nodata
        empty = nodata is not None and bool((values == nodata).all())
    if empty:
        raise DataError(
            source,
            f"all pixels are nodata{where} (nodata={da.rio.encoded_nodata or da.rio.nodata}); "
            "expected at least one valid pixel",
        )
