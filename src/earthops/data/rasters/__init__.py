"""Raster readers: any GeoTIFF/COG/JPEG/JPEG 2000 (rasterio) and the catalog's raster products.

Every reader returns an ``xarray.DataArray`` with dims ``(band, y, x)`` (the NDVI cube:
``(time, y, x)``), coordinates at pixel centres, CRS and transform attached with rioxarray, and
the dataset's :class:`~earthops.data.identity.DatasetRef` in ``attrs["dataset_ref"]`` (catalog
files: the catalog checksum; other files: their SHA-256). Nodata: float rasters carry NaN (the
file's nodata kept as the encoded ``_FillValue``); integer rasters keep their values and declare
the nodata value as ``_FillValue`` / ``.rio.nodata``.

Bad input raises :class:`~earthops.errors.DataError` naming the file (and the field): missing or
unreadable files, truncated pixel data, a missing CRS where one is required, an all-nodata raster.
"""

from earthops.data.rasters.arrays import grid_coords, raster_array
from earthops.data.rasters.ndvi import NDVI_SCALE, NDVI_VALID_RANGE, date_from_name, read_sinop_cube
from earthops.data.rasters.netcdf import read_crw_dhw
from earthops.data.rasters.products import read_bmng, read_koppen, read_mcd12c1
from earthops.data.rasters.reader import GDAL_CACHE_MB, Bbox, read_raster
from earthops.data.rasters.sources import require_file, resolve_input

__all__ = [
    "GDAL_CACHE_MB",
    "NDVI_SCALE",
    "NDVI_VALID_RANGE",
    "Bbox",
    "date_from_name",
    "grid_coords",
    "raster_array",
    "read_bmng",
    "read_crw_dhw",
    "read_koppen",
    "read_mcd12c1",
    "read_raster",
    "read_sinop_cube",
    "require_file",
    "resolve_input",
]
