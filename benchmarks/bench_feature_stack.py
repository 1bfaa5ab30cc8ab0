"""Full default feature stack on the real global MCD12C1 grid (7200 x 3600), written as a COG.

Measured in a fresh subprocess (so peak RSS is the stack's own): wall time from opening the
raster to a validated COG on disk, and ``ru_maxrss``. Baseline, measured in the same run: the
same features computed with numpy/scipy.ndimage ``generic_filter`` (nan-aware reducers) and the
per-window scikit-image GLCM loop on a small sub-tile of the same raster, extrapolated per pixel.
Goals: >= 1 Mpx/s on 2 cores and peak RSS < 4 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scipy import ndimage
from skimage.feature import graycomatrix, graycoprops

from earthops.data.catalog import resolve_one
from earthops.features.stack import default_spec_for, open_input
from earthops.raster.cog import validate_cog

GOAL_PX_S = 1e6
GOAL_RSS = 4e9

_RUN = r"""
import json, resource, sys, time
import dask.array as dsa
from earthops.data.catalog import resolve_one
from earthops.features.stack import compute_stack, default_spec_for, open_input, write_stack
from earthops.logs import configure_logging

configure_logging("WARNING")


class Sink:
    def __setitem__(self, key, value):
        pass


path = resolve_one("mcd12c1-2019")
t0 = time.perf_counter()
da = open_input(path)
spec = default_spec_for(da)
compute_stack(da.isel(y=slice(1000, 1100), x=slice(3600, 3700)), spec).values  # JIT / cache
warm = time.perf_counter() - t0
t0 = time.perf_counter()
stack = compute_stack(da, spec)
dsa.store(stack.data, Sink(), lock=False)
compute_only = time.perf_counter() - t0
t0 = time.perf_counter()
stack = compute_stack(da, spec)
write_stack(stack, sys.argv[1])
total = time.perf_counter() - t0
print(json.dumps({
    "warm_s": warm, "compute_s": compute_only, "total_s": total,
    "features": int(stack.sizes["band"]), "height": int(da.sizes["y"]), "width": int(da.sizes["x"]),
    "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def _baseline_px_s(path: Path) -> tuple[float, dict[str, float]]:
    """Per-pixel cost of the same default features with scipy generic filters + skimage GLCM."""
    da = open_input(path)
    spec = default_spec_for(da)
    glcm = spec.glcm
    assert glcm is not None
    with rasterio.open(path) as src:  # a land sub-tile (Europe) with many classes
        tile = src.read(1, window=Window(3600, 800, 48, 48)).astype(np.float64)
    tile[tile == 255] = np.nan
    reducers = {"mean": np.nanmean, "std": np.nanstd, "min": np.nanmin, "max": np.nanmax}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for window in spec.windows:
            for stat in spec.stats:
                ndimage.generic_filter(
                    tile, reducers[stat], size=window, mode="constant", cval=np.nan
                )
    stats_s = (time.perf_counter() - start) / tile.size
    q = np.where(np.isnan(tile), 0, tile).astype(np.uint8)  # classes are their own levels
    half = glcm.window // 2
    start = time.perf_counter()
    n = 0
    for y in range(half, 48 - half, 3):
        for x in range(half, 48 - half, 3):
            window = q[y - half : y + half + 1, x - half : x + half + 1]
            matrix = graycomatrix(
                window, glcm.distances, glcm.angles, levels=glcm.levels, symmetric=True, normed=True
            )
            for prop in glcm.props:
                graycoprops(matrix, prop).mean()
            n += 1
    glcm_s = (time.perf_counter() - start) / n
    return 1.0 / (stats_s + glcm_s), {"stats_us_px": stats_s * 1e6, "glcm_us_px": glcm_s * 1e6}


@pytest.mark.slow
def test_default_stack_on_global_mcd12c1(tmp_path: Path) -> None:
    path = resolve_one("mcd12c1-2019")
    out = tmp_path / "mcd12c1_features.tif"
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    pixels = result["height"] * result["width"]
    rate = pixels / result["total_s"]
    rate_compute = pixels / result["compute_s"]
    report = validate_cog(out)
    assert report.is_valid, report.errors
    with rasterio.open(out) as ds:
        assert ds.count == result["features"] and ds.overviews(1)
        assert all(ds.descriptions)

    baseline, parts = _baseline_px_s(path)
    print(
        f"\nMCD12C1 default stack: {result['width']}x{result['height']} px, "
        f"{result['features']} features, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}\n"
        f"  compute only        : {result['compute_s']:.1f} s  {rate_compute / 1e6:.2f} Mpx/s\n"
        f"  compute + COG write : {result['total_s']:.1f} s  {rate / 1e6:.2f} Mpx/s  "
        f"(goal >= {GOAL_PX_S / 1e6:.0f} Mpx/s)\n"
        f"  peak RSS            : {result['maxrss'] / 1e9:.2f} GB (goal < {GOAL_RSS / 1e9:.0f} GB)\n"
        f"  COG size            : {out.stat().st_size / 1e6:.0f} MB\n"
        f"  baseline (scipy generic_filter + skimage GLCM loop, 48x48 sub-tile): "
        f"{baseline:.0f} px/s ({parts['stats_us_px']:.0f} + {parts['glcm_us_px']:.0f} us/px)\n"
        f"  ratio: {rate / baseline:.0f}x end to end, {rate_compute / baseline:.0f}x compute"
    )
    assert rate >= GOAL_PX_S, f"{rate / 1e6:.2f} Mpx/s, goal {GOAL_PX_S / 1e6:.0f} Mpx/s"
    assert result["maxrss"] < GOAL_RSS, f"peak RSS {result['maxrss'] / 1e9:.2f} GB"


_GRID_RUN = r"""
import json, resource, time
from earthops.features.global_grid import GridSpec, load_feature_grid
from earthops.logs import configure_logging

configure_logging("WARNING")
t0 = time.perf_counter()
grid = load_feature_grid(GridSpec())
total = time.perf_counter() - t0
print(json.dumps({
    "total_s": total, "layers": int(grid.data.shape[0]), "height": int(grid.data.shape[1]),
    "width": int(grid.data.shape[2]),
    "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def _grid_baseline_px_s() -> float:
    """Per-pixel cost of the grid's neighbourhood statistics (scipy ``generic_filter``) and
    GLCM (scikit-image per-window loop) on a 32x32 Blue Marble brightness tile."""
    from earthops.features.global_grid import KOPPEN_GROUPS, GridSpec

    spec = GridSpec()
    with rasterio.open(resolve_one("bmng-2004")) as src:
        rgb = src.read(window=Window(2800, 900, 32, 32)).astype(np.float64) / 255.0
    bright = rgb.mean(axis=0)
    reducers = {"mean": np.mean, "std": np.std}

    def filter_s(window: int, reducer: Callable[[np.ndarray], Any]) -> float:
        start = time.perf_counter()
        ndimage.generic_filter(bright, reducer, size=window, mode="nearest")
        return (time.perf_counter() - start) / bright.size

    # one source timed per window; the grid has len(stats_bands) sources of the statistics,
    # one ocean fraction and len(KOPPEN_GROUPS) group fractions
    stats_s = len(spec.stats_bands) * sum(
        filter_s(w, reducers[stat]) for w in spec.windows for stat in spec.stats
    )
    stats_s += sum(filter_s(w, np.mean) for w in spec.water_windows)
    stats_s += len(KOPPEN_GROUPS) * sum(filter_s(w, np.mean) for w in spec.koppen_windows)
    q = np.clip((bright * spec.glcm_levels).astype(np.uint8), 0, spec.glcm_levels - 1)
    half = spec.glcm_window // 2
    start = time.perf_counter()
    n = 0
    for y in range(half, 32 - half, 2):
        for x in range(half, 32 - half, 2):
            win = q[y - half : y + half + 1, x - half : x + half + 1]
            matrix = graycomatrix(win, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                                  levels=spec.glcm_levels, symmetric=True, normed=True)  # fmt: skip
            for prop in spec.glcm_props:
                graycoprops(matrix, prop).mean()
            n += 1
    glcm_s = (time.perf_counter() - start) / n
    return 1.0 / (stats_s + glcm_s)


@pytest.mark.slow
def test_landcover_global_grid_build() -> None:
    """The ``landcover-global`` input grid: Blue Marble resampling, Köppen aggregation from
    1 km and the 37+3+20-layer feature stack on 7200 x 3600, streamed to the cache."""
    proc = subprocess.run(
        [sys.executable, "-c", _GRID_RUN], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    pixels = result["height"] * result["width"]
    rate = pixels / result["total_s"]
    baseline = _grid_baseline_px_s()
    print(
        f"\nlandcover-global feature grid: {result['width']}x{result['height']} px, "
        f"{result['layers']} stored layers, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}\n"
        f"  build (inputs -> cached grid): {result['total_s']:.1f} s  {rate / 1e6:.2f} Mpx/s\n"
        f"  peak RSS                     : {result['maxrss'] / 1e9:.2f} GB "
        f"(goal < {GOAL_RSS / 1e9:.0f} GB)\n"
        f"  baseline (scipy generic_filter + skimage GLCM loop, 32x32 tile): {baseline:.0f} px/s\n"
        f"  ratio: {rate / baseline:.0f}x"
    )
    assert result["maxrss"] < GOAL_RSS, f"peak RSS {result['maxrss'] / 1e9:.2f} GB"
