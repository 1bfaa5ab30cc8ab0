"""The MOD13Q1 NDVI image cube: one dated single-band file per date, stacked as ``(time, y, x)``."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthops.data.catalog import resolve
from earthops.data.identity import attach_ref, files_digest
from earthops.data.rasters.reader import _read_raster
from earthops.data.rasters.sources import require_file
from earthops.errors import DataError

#: the MOD13Q1 NDVI valid range (stored integers) and scale.
NDVI_VALID_RANGE = (-2000, 10000)
NDVI_SCALE = 1e-4

_DATE_IN_NAME = re.compile(r"_(\d{4}-\d{2}-\d{2})$")


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
