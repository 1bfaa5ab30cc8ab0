"""Write ``(band, y, x)`` DataArrays as Cloud-Optimized GeoTIFFs and validate them (rio-cogeo).

Writing is two-step and memory-bounded: the (possibly lazy, dask-backed) array is stored chunk
by chunk into a tiled intermediate GeoTIFF beside the output (band descriptions, palette, tags),
which GDAL's COG driver copies in one multithreaded pass into the COG (internal tiles,
compression, overviews). Compression profiles are named as in rio-cogeo.
"""

from __future__ import annotations

import json
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import dask.array as dsa
import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from dask.callbacks import Callback
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.shutil import copy as gdal_copy
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate
from rio_cogeo.profiles import cog_profiles

from earthops.logs import get_logger, progress

log = get_logger(__name__)

#: dataset tag holding ``{value: class name}`` as JSON when class names are given.
CLASS_NAMES_TAG = "CLASS_NAMES"
#: profiles whose codec takes a compression level (GDAL's LEVEL creation option)
_LEVELLED = {"deflate", "zstd", "lerc_deflate", "lerc_zstd"}
_FLOAT_PREDICTOR = {"deflate", "zstd", "lzw", "lzma"}


class CogValidation(NamedTuple):
    """Result of :func:`validate_cog` (unpacks like ``rio_cogeo.cogeo.cog_validate``)."""

    is_valid: bool
    errors: list[str]
    warnings: list[str]


def validate_cog(path: str | Path) -> CogValidation:
    """Validate a COG with rio-cogeo: ``(is_valid, errors, warnings)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        valid, errors, warns = cog_validate(str(path), quiet=True)
    return CogValidation(bool(valid), list(errors), list(warns))


def read_class_names(path: str | Path) -> dict[int, str]:
    """Class names stored by :func:`write_cog` (empty when none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            raw = src.tags().get(CLASS_NAMES_TAG)
    return {int(k): v for k, v in json.loads(raw).items()} if raw else {}


class _Writer:
    """``dask.array.store`` target writing (band, y, x) slices into a rasterio dataset."""

    def __init__(self, dst: rasterio.io.DatasetWriter) -> None:
        self.dst = dst

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        bands, rows, cols = key
        indexes = list(range(bands.start + 1, bands.stop + 1))
        window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        self.dst.write(value, indexes=indexes, window=window)


class _RichProgress(Callback):
    """Rich progress over dask tasks (stderr, transient)."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        self._bar = progress()
        self._bar.start()
        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self._task = self._bar.add_task(self.description, total=total)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self._bar.advance(self._task)

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        self._bar.stop()


def _as_bands(data: xr.DataArray) -> xr.DataArray:
    if data.ndim == 2 and set(data.dims) == {"y", "x"}:
        data = data.expand_dims("band")
    if tuple(data.dims) != ("band", "y", "x"):
        raise ValueError(f"expected dims (band, y, x) or (y, x), got {data.dims}")
    return data


def _transform(data: xr.DataArray) -> Affine:
    """The stored GeoTransform when it agrees with the coordinates (exact), else recomputed."""
    try:
        stored = data.rio.transform()
    except Exception:  # no coordinates and no GeoTransform: pixel grid
        return Affine.identity()
    if "x" in data.coords and "y" in data.coords and data.sizes["x"] > 1 and data.sizes["y"] > 1:
        fitted = data.rio.transform(recalc=True)
        tolerance = 1e-6 * max(abs(fitted.a), abs(fitted.e))
        return stored if stored.almost_equals(fitted, precision=tolerance) else fitted
    return stored


def _descriptions(data: xr.DataArray, given: list[str] | None) -> list[str | None]:
    if given is not None:
        if len(given) != data.sizes["band"]:
            raise ValueError(f"{len(given)} descriptions for {data.sizes['band']} bands")
        return list(given)
    names = data["band"].values if "band" in data.coords else []
    if len(names) and all(isinstance(n, str) for n in names.tolist()):
        return [str(n) for n in names.tolist()]
    long_name = data.attrs.get("long_name")
    if isinstance(long_name, list | tuple) and len(long_name) == data.sizes["band"]:
        return [str(n) for n in long_name]
    return [None] * data.sizes["band"]


def _rgba(colormap: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, int, int, int]]:
    out: dict[int, tuple[int, int, int, int]] = {}
    for value, colour in colormap.items():
        if len(colour) not in (3, 4):
            raise ValueError(f"colour for {value} must be RGB or RGBA, got {colour}")
        rgba = (*colour, 255) if len(colour) == 3 else tuple(colour)
        out[int(value)] = tuple(int(c) for c in rgba)  # type: ignore[assignment]
    return out


def write_cog(
    data: xr.DataArray,
    path: str | Path,
    *,
    profile: str = "deflate",
    nodata: float | None = None,
    descriptions: list[str] | None = None,
    colormap: dict[int, tuple[int, ...]] | None = None,
    class_names: dict[int, str] | None = None,
    tags: dict[str, str] | None = None,
    overview_resampling: str | None = None,
    overview_level: int | None = None,
    blocksize: int = 512,
    level: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Write ``data`` ((band, y, x) or (y, x)) as a COG and return the path.

    * band descriptions: ``descriptions``, else string band coordinates, else ``long_name``;
    * ``colormap`` ({value: RGB(A)}, single integer band only) is written as the palette and
      ``class_names`` ({value: name}) as the JSON dataset tag :data:`CLASS_NAMES_TAG`;
    * ``nodata`` defaults to the array's rioxarray nodata, else NaN for float data;
    * overviews (``overview_resampling`` default: ``nearest`` for categorical — colormap or
      class names — else ``average``) down to one block; ``profile`` is a rio-cogeo profile
      and ``level`` its compression level (deflate/zstd/lerc; None = GDAL's default).

    Dask-backed data is computed and written chunk by chunk (memory bounded).
    """
    data = _as_bands(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(data.dtype)
    if dtype == np.bool_:
        data, dtype = data.astype(np.uint8), np.dtype(np.uint8)
    categorical = colormap is not None or class_names is not None
    if colormap is not None and (data.sizes["band"] != 1 or dtype not in (np.uint8, np.uint16)):
        raise ValueError("a colormap needs a single uint8/uint16 band")
    if nodata is None:
        nodata = data.rio.nodata
        if nodata is None and np.issubdtype(dtype, np.floating):
            nodata = float("nan")
    if profile not in cog_profiles:
        raise ValueError(f"unknown COG profile '{profile}'; known: {', '.join(cog_profiles)}")
    options: dict[str, str] = {
        # item access, not ``cog_profiles.get``: that warns on every zstd write, a codec
        # chosen on purpose (any GDAL >= 2.3 reads it; see ``features.stack.write_stack``)
        "COMPRESS": str(cog_profiles[profile].get("compress", "NONE")).upper(),
        "BLOCKSIZE": str(blocksize),
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",
        "OVERVIEW_RESAMPLING": (
            overview_resampling or ("nearest" if categorical else "average")
        ).upper(),
    }
    if np.issubdtype(dtype, np.floating) and profile in _FLOAT_PREDICTOR:
        options["PREDICTOR"] = "YES"  # floating-point predictor (3) for float data
    if level is not None:
        if profile not in _LEVELLED:
            raise ValueError(f"profile '{profile}' has no compression level")
        options["LEVEL"] = str(level)
    if overview_level is not None:
        options["OVERVIEW_COUNT"] = str(overview_level)
    meta_tags = {**(tags or {}), "OVERVIEW_RESAMPLING": options["OVERVIEW_RESAMPLING"]}
    if class_names:
        meta_tags[CLASS_NAMES_TAG] = json.dumps({str(k): v for k, v in sorted(class_names.items())})
    crs = data.rio.crs
    band_desc = _descriptions(data, descriptions)
    count, height, width = data.shape
    inter = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype.name,
        "crs": crs,
        "transform": _transform(data),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }
    arr = data.data
    with (
        tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as tmp,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        tmp_path = Path(tmp) / "intermediate.tif"
        with rasterio.open(tmp_path, "w", **inter) as dst:
            for i, desc in enumerate(band_desc, start=1):
                if desc:
                    dst.set_band_description(i, desc)
            if meta_tags:
                dst.update_tags(**meta_tags)
            if colormap:
                dst.colorinterp = [ColorInterp.palette]
                dst.write_colormap(1, _rgba(colormap))
            if isinstance(arr, dsa.Array):
                arr = arr.astype(dtype)
                if show_progress:
                    with _RichProgress(f"computing {path.name}"):
                        dsa.store(arr, _Writer(dst), lock=threading.Lock())
                else:
                    dsa.store(arr, _Writer(dst), lock=threading.Lock())
            else:
                dst.write(np.asarray(arr, dtype=dtype))
        log.debug("cog.translate", path=str(path), bands=count, height=height, width=width)
        gdal_copy(str(tmp_path), str(path), driver="COG", **options)
    log.info("cog.written", path=str(path), bands=count, height=height, width=width)
    return path
