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

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetReader
from rasterio.windows import Window

from earthops.data.catalog import entry, resolve, resolve_one
from earthops.data.identity import DatasetRef, attach_ref, file_sha256, files_digest
from earthops.data.legends import IGBP, KOPPEN
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

#: GDAL block cache (MB) while reading: decimating a large raster streams it instead of caching it.
GDAL_CACHE_MB = 64
#: the MOD13Q1 NDVI valid range (stored integers) and scale.
NDVI_VALID_RANGE = (-2000, 10000)
NDVI_SCALE = 1e-4

Bbox = tuple[float, float, float, float]
_DATE_IN_NAME = re.compile(r"_(\d{4}-\d{2}-\d{2})$")
_RGB = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}


# ------------------------------------------------------------------------------ sources
def require_file(path: str | Path) -> Path:
    """``path`` as a Path; DataError when it does not name an existing file."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a file")
    return path


def resolve_input(
    path: str | Path | None, dataset: str, *, name: str | None = None
) -> tuple[Path, DatasetRef]:
    """Path and lineage reference of a reader's input.

    ``path=None``: the verified catalog file of ``dataset`` (digest = its catalog checksum).
    Otherwise the given file, named ``name`` or its stem, digest = its SHA-256.
    """
    if path is None:
        local = resolve_one(dataset)
        return local, DatasetRef(name or dataset, str(local), entry(dataset).files[0].sha256)
    local = require_file(path)
    return local, DatasetRef(name or local.stem, str(local), file_sha256(local))


# ------------------------------------------------------------------------------ building arrays
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


# ------------------------------------------------------------------------------ generic reader
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


def date_from_name(path: str | Path) -> date:
    """The acquisition date at the end of a file name, ``<anything>_YYYY-MM-DD.<ext>``."""
    match = _DATE_IN_NAME.search(Path(path).stem)
    problem = "cannot parse the date from the file name; expected <name>_YYYY-MM-DD.<ext>"
    if match is None:
        raise DataError(path, problem, field="date")
    try:
        return date.fromisoformat(match.group(1))
    except ValueError as exc:
        raise DataError(path, f"{problem} ({exc})", field="date") from exc


def read_sinop_cube(
    paths: Sequence[str | Path] | None = None,
    *,
    scale: float = NDVI_SCALE,
    valid_range: tuple[int, int] = NDVI_VALID_RANGE,
    name: str | None = None,
) -> xr.DataArray:
    """MOD13Q1 NDVI image cube (default: catalog ``sinop-mod13q1-ndvi``) as ``(time, y, x)`` float32.

    One single-band file per date, dated by its name (``…_NDVI_YYYY-MM-DD.jp2``), all on one
    grid. Stored integers outside ``valid_range`` (MOD13Q1: −2000…10000; fill −3000, blurred
    by the lossy JPEG 2000 coding) become NaN; the rest are multiplied by ``scale``.
    """
    if paths is None:
        files = resolve("sinop-mod13q1-ndvi")
        ref_name, uri = name or "sinop-mod13q1-ndvi", str(files[0].parent)
    else:
        files = [require_file(p) for p in paths]
        if not files:
            raise DataError("paths", "no files given; expected one raster per date")
        ref_name, uri = name or files[0].parent.name, str(files[0].parent)
    dated = sorted(((date_from_name(f), f) for f in files), key=lambda item: item[0])
    for (d0, f0), (d1, f1) in itertools.pairwise(dated):
        if d0 == d1:
            raise DataError(
                f1, f"date {d1} also given by {f0.name}; expected one file per date", field="date"
            )
    first: xr.DataArray | None = None
    layers: list[np.ndarray] = []
    for _, f in dated:
        da = _read_raster(f, require_crs=True)
        if da.sizes["band"] != 1:
            raise DataError(f, f"expected one band, found {da.sizes['band']}", field="band")
        if first is None:
            first = da
        else:
            _same_grid(first, da, dated[0][1], f)
        raw = da.values[0]
        valid = (raw >= valid_range[0]) & (raw <= valid_range[1])
        if da.rio.nodata is not None and not np.isnan(da.rio.nodata):
            valid &= raw != da.rio.nodata
        layers.append(
            np.where(valid, raw.astype(np.float32) * np.float32(scale), np.float32(np.nan))
        )
    assert first is not None
    cube = xr.DataArray(
        np.stack(layers).astype(np.float32, copy=False),
        dims=("time", "y", "x"),
        coords={"time": pd.to_datetime([d for d, _ in dated]), "y": first["y"], "x": first["x"]},
        attrs={"long_name": "NDVI", "units": "1", "scale_applied": scale},
    )
    cube = cube.rio.write_crs(first.rio.crs).rio.write_transform(first.rio.transform())
    cube = cube.rio.write_nodata(np.nan)
    if bool(np.isnan(cube.values).all()):
        raise DataError(uri, "all pixels are nodata; expected at least one valid NDVI value")
    attach_ref(cube, ref_name, uri, files_digest(files))
    return cube


def _same_grid(first: xr.DataArray, other: xr.DataArray, first_path: Path, path: Path) -> None:
    if first.shape[-2:] != other.shape[-2:]:
        raise DataError(
            path,
            f"grid differs from {first_path.name}: shape {other.shape[-2:]} vs {first.shape[-2:]}",
            field="grid",
        )
    if first.rio.crs != other.rio.crs or not first.rio.transform().almost_equals(
        other.rio.transform(), precision=1e-6
    ):
        raise DataError(
            path, f"grid differs from {first_path.name}: CRS or transform", field="grid"
        )


# ------------------------------------------------------------------------------ NetCDF (CRW)
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
