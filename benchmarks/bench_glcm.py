"""GLCM texture throughput: the sliding-histogram numba kernel vs the naive per-window loop.

Baseline, measured in the same run on the same tile: for each pixel, scikit-image
``graycomatrix(window, [1, 2], 4 angles, levels=16, symmetric=True, normed=True)`` and the
seven ``graycoprops`` averaged over (distance, angle). The baseline is timed on a random subset
of pixels and extrapolated per pixel; the subset's values are checked against the kernel.
"""

from __future__ import annotations

import os
import time

import numba
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from skimage.feature import graycomatrix, graycoprops

from earthops.data.catalog import resolve_one
from earthops.features.glcm import DEFAULT_PROPS, glcm_texture, quantize

TILE = 512
WINDOW = 7
LEVELS = 16
DISTANCES = [1, 2]
ANGLES = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
NAIVE_PIXELS = 400
GOAL = 1000.0


def _best_rate(fn, pixels: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return pixels / best


@pytest.mark.slow
def test_glcm_kernel_vs_naive_skimage_loop() -> None:
    # real imagery: Blue Marble NG green band, a 512 x 512 tile over Africa/Europe
    with rasterio.open(resolve_one("bmng-2004")) as src:
        green = src.read(2, window=Window(2000, 1000, TILE, TILE)).astype(np.float32)
    q = quantize(green, LEVELS)
    args = (q, LEVELS, WINDOW, DISTANCES, ANGLES, DEFAULT_PROPS)
    glcm_texture(q[:32, :32], *args[1:])  # load the compiled kernel (numba cache)
    glcm_texture(q[:32, :32], *args[1:], parallel=False)

    kernel = _best_rate(lambda: glcm_texture(*args), q.size)
    kernel_serial = _best_rate(lambda: glcm_texture(*args, parallel=False), q.size)
    texture = glcm_texture(*args)

    rng = np.random.default_rng(0)
    half = WINDOW // 2
    ys, xs = rng.integers(half, TILE - half, size=(2, NAIVE_PIXELS))
    naive = np.empty((len(DEFAULT_PROPS), NAIVE_PIXELS))
    start = time.perf_counter()
    for n, (y, x) in enumerate(zip(ys, xs, strict=True)):
        window = q[y - half : y + half + 1, x - half : x + half + 1]
        glcm = graycomatrix(window, DISTANCES, ANGLES, levels=LEVELS, symmetric=True, normed=True)
        for k, prop in enumerate(DEFAULT_PROPS):
            naive[k, n] = graycoprops(glcm, prop).mean()
    baseline = NAIVE_PIXELS / (time.perf_counter() - start)
    np.testing.assert_allclose(texture[:, ys, xs], naive, rtol=1e-5, atol=1e-5)

    ratio = kernel / baseline
    print(
        f"\nGLCM {TILE}x{TILE} px, window {WINDOW}, {LEVELS} levels, distances {DISTANCES}, "
        f"4 angles, {len(DEFAULT_PROPS)} props; numba threads {numba.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}\n"
        f"  kernel (parallel): {kernel / 1e6:.2f} Mpx/s\n"
        f"  kernel (1 thread): {kernel_serial / 1e6:.2f} Mpx/s\n"
        f"  naive skimage loop: {baseline:.0f} px/s (on {NAIVE_PIXELS} px)\n"
        f"  ratio: {ratio:.0f}x (1 thread: {kernel_serial / baseline:.0f}x), goal >= {GOAL:.0f}x"
    )
    assert ratio >= GOAL, f"GLCM kernel is {ratio:.0f}x the naive loop, goal {GOAL:.0f}x"
