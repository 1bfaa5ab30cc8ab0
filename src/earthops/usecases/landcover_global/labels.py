"""IGBP labels (GeoTIFF, CSV), box masks, class-balanced sampling and spatial blocks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from earthops.data.rasters import read_mcd12c1
from earthops.errors import DataError, EarthOpsError
from earthops.features.global_grid import GRID_RES, GRID_SHAPE, lonlat_to_pixel, pixel_lonlat
from earthops.usecases.base import BBox
from earthops.usecases.landcover_global.config import BLOCK_DEG, NODATA


def read_labels(path: str | Path | None = None) -> np.ndarray:
    """IGBP labels ``(3600, 7200)`` uint8 (nodata 255): catalog MCD12C1 2019 or a GeoTIFF on
    the CMG grid (checked: shape and extent)."""
    da = read_mcd12c1(path)
    source = path or "mcd12c1-2019"
    if da.shape[1:] != GRID_SHAPE:
        raise DataError(
            source,
            f"expected a {GRID_SHAPE[1]}x{GRID_SHAPE[0]} label raster on the "
            f"0.05° CMG grid, got {da.shape[2]}x{da.shape[1]}",
        )
    left, bottom, right, top = da.rio.bounds()
    if max(abs(left + 180), abs(right - 180), abs(top - 90), abs(bottom + 90)) > GRID_RES / 2:
        raise DataError(
            source, f"expected global extent -180,-90,180,90; got {left},{bottom},{right},{top}"
        )
    values = np.asarray(da.values[0], dtype=np.uint8)
    nodata = int(da.rio.nodata) if da.rio.nodata is not None else NODATA
    if nodata != NODATA:
        values = np.where(values == nodata, NODATA, values).astype(np.uint8)
    return values


def in_bboxes(rows: np.ndarray, cols: np.ndarray, bboxes: Sequence[BBox]) -> np.ndarray:
    """Pixels (by centre) inside any of ``bboxes``."""
    lon, lat = pixel_lonlat(rows, cols)
    mask = np.zeros(np.shape(rows), dtype=bool)
    for box in bboxes:
        mask |= box.contains(lon, lat)
    return mask


def _box_mask(shape: tuple[int, ...], bboxes: Sequence[BBox]) -> np.ndarray:
    """``shape`` boolean grid: pixels whose centre lies in any of ``bboxes`` (cf. in_bboxes)."""
    mask = np.zeros(shape, dtype=bool)
    lon, _ = pixel_lonlat(np.zeros(shape[1]), np.arange(shape[1]))
    _, lat = pixel_lonlat(np.arange(shape[0]), np.zeros(shape[0]))
    for box in bboxes:
        rows = np.flatnonzero((lat >= box.miny) & (lat <= box.maxy))
        cols = np.flatnonzero((lon >= box.minx) & (lon <= box.maxx))
        if rows.size and cols.size:
            mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    return mask


def drawable_mask(
    shape: tuple[int, ...],
    *,
    exclude: Sequence[BBox] = (),
    include: Sequence[BBox] = (),
    within: np.ndarray | None = None,
) -> np.ndarray | None:
    """Where pixels may be drawn: outside every ``exclude`` box, inside some ``include`` box
    (when any) and where ``within`` holds (when given); ``None`` when nothing restricts."""
    allowed = None
    if exclude or include:
        allowed = _box_mask(shape, include) if include else np.ones(shape, bool)
        if exclude:
            allowed &= ~_box_mask(shape, exclude)
    if within is not None:
        allowed = within.copy() if allowed is None else allowed & within
    return allowed


def sample_pixels(
    labels: np.ndarray,
    classes: Sequence[int],
    n_per_class: int,
    *,
    seed: int = 42,
    exclude: Sequence[BBox] = (),
    include: Sequence[BBox] = (),
    within: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced stratified sample: up to ``n_per_class`` random pixels of each class.

    Pixels whose centre lies in an ``exclude`` box are never drawn; with ``include`` only
    pixels inside those boxes are, and with ``within`` (a mask of the labels' shape) only
    pixels where it holds. Returns ``(rows, cols)`` sorted by class then draw order.
    """
    rng = np.random.default_rng(seed)
    width = labels.shape[1]
    flat = labels.ravel()
    allowed = drawable_mask(labels.shape, exclude=exclude, include=include, within=within)
    rows_out, cols_out = [], []
    for cls in classes:
        hit = flat == cls
        if allowed is not None:
            hit &= allowed.ravel()
        idx = np.flatnonzero(hit)
        if idx.size > n_per_class:
            idx = rng.choice(idx, n_per_class, replace=False)
        r, c = np.divmod(idx, width)
        rows_out.append(r)
        cols_out.append(c)
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(cols_out).astype(np.int64)


def random_pixels(mask: np.ndarray, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Simple random sample of up to ``n`` pixels where ``mask`` holds: ``(rows, cols)`` in
    raster order."""
    idx = np.flatnonzero(mask)
    if idx.size > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    rows, cols = np.divmod(idx, mask.shape[1])
    return rows.astype(np.int64), cols.astype(np.int64)


def block_ids(rows: np.ndarray, cols: np.ndarray, block_deg: float = BLOCK_DEG) -> np.ndarray:
    """Id of the ``block_deg``×``block_deg`` block (aligned at −180°, 90°) holding each pixel."""
    per_block = round(block_deg / GRID_RES)
    n_x = -(-GRID_SHAPE[1] // per_block)
    return (np.asarray(rows) // per_block) * n_x + np.asarray(cols) // per_block


def block_folds(y: np.ndarray, blocks: np.ndarray, n_folds: int = 5, seed: int = 42) -> np.ndarray:
    """Fold index (0..n_folds-1) of every sample; a block is never split across folds."""
    if np.unique(blocks).size < n_folds:
        raise EarthOpsError(
            f"spatial block CV needs at least {n_folds} blocks with samples, got "
            f"{np.unique(blocks).size}"
        )
    folds = np.full(len(y), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, blocks)):
        folds[test] = k
    return folds


def block_fold_table(
    rows: np.ndarray, cols: np.ndarray, folds: np.ndarray, block_deg: float = BLOCK_DEG
) -> np.ndarray:
    """Fold of every block of the CMG grid (by :func:`block_ids`) from sampled pixels and
    their folds; -1 for a block with no sampled pixel."""
    last = block_ids(np.asarray(GRID_SHAPE[0] - 1), np.asarray(GRID_SHAPE[1] - 1), block_deg)
    table = np.full(int(last) + 1, -1, dtype=np.int64)
    table[block_ids(rows, cols, block_deg)] = folds  # a block's samples share one fold
    return table


def _pixels_in_bboxes(
    labels: np.ndarray, bboxes: Sequence[BBox], classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled pixel of ``classes`` whose centre is inside one of the boxes."""
    rows_all, cols_all = [], []
    for box in bboxes:
        r0, c0 = lonlat_to_pixel(np.array([box.minx]), np.array([box.maxy]))
        r1, c1 = lonlat_to_pixel(np.array([box.maxx]), np.array([box.miny]))
        rr, cc = np.mgrid[int(r0[0]) : int(r1[0]) + 1, int(c0[0]) : int(c1[0]) + 1]
        rr, cc = rr.ravel(), cc.ravel()
        keep = in_bboxes(rr, cc, [box]) & np.isin(labels[rr, cc], classes)
        rows_all.append(rr[keep])
        cols_all.append(cc[keep])
    flat = np.unique(np.concatenate(rows_all) * GRID_SHAPE[1] + np.concatenate(cols_all))
    return np.divmod(flat, GRID_SHAPE[1])


def read_label_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lon,lat,label`` CSV -> grid rows, cols, labels (clear errors for bad content)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "labelled dataset not found")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise DataError(path, f"cannot read CSV ({type(exc).__name__}: {exc})") from exc
    cols = {c.lower().strip(): c for c in frame.columns}
    missing = [c for c in ("lon", "lat", "label") if c not in cols]
    if missing:
        raise DataError(
            path, f"missing columns {missing}; expected lon,lat,label", field=",".join(missing)
        )
    lon = pd.to_numeric(frame[cols["lon"]], errors="coerce").to_numpy()
    lat = pd.to_numeric(frame[cols["lat"]], errors="coerce").to_numpy()
    label = pd.to_numeric(frame[cols["label"]], errors="coerce").to_numpy()
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | ~np.isfinite(label)
    bad |= (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            path,
            f"{int(bad.sum())} row(s) with non-numeric or out-of-range "
            f"lon/lat/label (first: data row {first + 1})",
        )
    rows, cols_ = lonlat_to_pixel(lon, lat)
    return rows, cols_, label.astype(np.int64)
