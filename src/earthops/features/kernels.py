"""Numba kernels: spectral indices and NaN-aware neighbourhood statistics (float32 outputs).

Every kernel is a serial, GIL-free *span* function plus a ``parallel=True`` entry point that
runs spans in a numba ``prange``. Whole numpy arrays use the parallel entry point
(``parallel=True``); dask blocks use the serial span (``parallel=False``) so that dask's threads
provide the parallelism and numba threads are never nested inside dask threads.

Neighbourhood statistics use square odd windows. Missing values (NaN) and pixels outside the
array are treated alike: a statistic is computed from the valid pixels of the (truncated)
window and is NaN only when the window holds no valid pixel. The arithmetic for a pixel depends
only on its window content (separable passes with a fixed summation order, no running sums), so
a tiled computation whose tiles carry NaN halos is bit-identical to the whole-array one.
``std`` is the population standard deviation (``ddof=0``) from float64 sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask.array as dsa
import numpy as np
import xarray as xr
from numba import get_num_threads, njit, prange

_BLOCK = 1 << 16

# ----------------------------------------------------------------------------- spectral indices
#: index name -> input band names, in the order the kernel reads them (a, b, c).
INDEX_BANDS: dict[str, tuple[str, ...]] = {
    "ndvi": ("nir", "red"),  # (a - b) / (a + b)
    "evi": ("nir", "red", "blue"),  # 2.5 (a - b) / (a + 6 b - 7.5 c + 1), reflectance
    "savi": ("nir", "red"),  # 1.5 (a - b) / (a + b + 0.5), reflectance
    "ndwi": ("green", "nir"),  # McFeeters: (a - b) / (a + b)
    "ndmi": ("nir", "mir"),  # Gao's NDWI / NDMI: (a - b) / (a + b)
    "sr": ("nir", "red"),  # simple ratio a / b
    "brightness": ("red", "green", "blue"),  # (a + b + c) / 3
    "vari": ("green", "red", "blue"),  # (a - b) / (a + b - c)
    "exg": ("green", "red", "blue"),  # normalised excess green (2a - b - c) / (a + b + c)
    "ratio_gr": ("green", "red"),  # a / b
    "ratio_br": ("blue", "red"),  # a / b
}
#: indices that add constants to reflectances, so they need the reflectance scale.
SCALE_DEPENDENT = frozenset({"evi", "savi"})
_CODE = {name: code for code, name in enumerate(INDEX_BANDS)}


@njit(cache=True, nogil=True, fastmath=False)
def _index_value(code: int, a: float, b: float, c: float, s: float) -> float:  # pragma: no cover
    num = 0.0
    den = 1.0
    if code == 0 or code == 3 or code == 4:  # normalised differences
        num = a - b
        den = a + b
    elif code == 1:  # EVI
        num = 2.5 * (a - b) * s
        den = (a + 6.0 * b - 7.5 * c) * s + 1.0
    elif code == 2:  # SAVI
        num = 1.5 * (a - b) * s
        den = (a + b) * s + 0.5
    elif code == 6:  # brightness
        return (a + b + c) / 3.0
    elif code == 7:  # VARI
        num = a - b
        den = a + b - c
    elif code == 8:  # excess green
        num = 2.0 * a - b - c
        den = a + b + c
    else:  # simple ratios (5, 9, 10)
        num = a
        den = b
    if den == 0.0:
        return np.nan
    return num / den


@njit(cache=True, nogil=True, fastmath=False)
def _index_span(code, a, b, c, s, out, lo, hi):  # pragma: no cover
    for k in range(lo, hi):
        out[k] = np.float32(
            _index_value(code, np.float64(a[k]), np.float64(b[k]), np.float64(c[k]), s)
        )


@njit(parallel=True, cache=True, fastmath=False)
def _index_par(code, a, b, c, s, out):  # pragma: no cover
    n = out.size
    nblk = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblk):
        _index_span(code, a, b, c, s, out, blk * _BLOCK, min(n, (blk + 1) * _BLOCK))


def available_indices(band_names: Sequence[str]) -> list[str]:
    """The indices computable from ``band_names`` (case-insensitive), in registry order."""
    have = {str(b).lower() for b in band_names}
    return [name for name, need in INDEX_BANDS.items() if set(need) <= have]


def index_array(
    name: str,
    bands: Mapping[str, np.ndarray],
    *,
    scale: float = 1.0,
    parallel: bool = True,
) -> np.ndarray:
    """One spectral index from same-shaped band arrays keyed by (lower-case) band name.

    ``scale`` converts stored values to reflectance (e.g. 1e-4 for MODIS int16); it only
    matters for :data:`SCALE_DEPENDENT` indices. Zero denominators give NaN.
    """
    if name not in INDEX_BANDS:
        raise ValueError(f"unknown index '{name}'; known: {', '.join(INDEX_BANDS)}")
    keyed = {str(k).lower(): v for k, v in bands.items()}
    missing = [b for b in INDEX_BANDS[name] if b not in keyed]
    if missing:
        raise ValueError(f"index '{name}' needs bands {missing}")
    arrays = [np.ascontiguousarray(keyed[b], dtype=np.float32) for b in INDEX_BANDS[name]]
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    while len(flat) < 3:
        flat.append(flat[0])
    out = np.empty(flat[0].size, dtype=np.float32)
    if parallel:
        _index_par(_CODE[name], flat[0], flat[1], flat[2], float(scale), out)
    else:
        _index_span(_CODE[name], flat[0], flat[1], flat[2], float(scale), out, 0, out.size)
    return out.reshape(shape)


def _indices_block(
    block: np.ndarray,
    band_names: tuple[str, ...],
    names: tuple[str, ...],
    scale: float,
    parallel: bool,
) -> np.ndarray:
    bands = {b: block[i] for i, b in enumerate(band_names)}
    out = np.empty((len(names), *block.shape[1:]), dtype=np.float32)
    for k, name in enumerate(names):
        out[k] = index_array(name, bands, scale=scale, parallel=parallel)
    return out


def spectral_indices(
    da: xr.DataArray, names: Sequence[str] | None = None, *, scale: float | None = None
) -> xr.DataArray:
    """Spectral indices of a ``(band, y, x)`` raster chosen by its band names.

    ``names`` defaults to every index the bands allow (:func:`available_indices`). ``scale``
    defaults to the raster's ``scale_factor`` attribute (1.0 when absent). Dask-backed input
    stays lazy. Returns ``(band=index names, y, x)`` float32.
    """
    if tuple(da.dims) != ("band", "y", "x"):
        raise ValueError(f"expected dims (band, y, x), got {da.dims}")
    band_names = tuple(str(b).lower() for b in da["band"].values)
    chosen = tuple(names) if names is not None else tuple(available_indices(band_names))
    for name in chosen:
        if name not in INDEX_BANDS:
            raise ValueError(f"unknown index '{name}'; known: {', '.join(INDEX_BANDS)}")
        if not set(INDEX_BANDS[name]) <= set(band_names):
            raise ValueError(f"index '{name}' needs bands {INDEX_BANDS[name]}, have {band_names}")
    factor = float(scale if scale is not None else da.attrs.get("scale_factor", 1.0) or 1.0)
    data = da.data
    if isinstance(data, dsa.Array):
        data = data.astype(np.float32).rechunk({0: -1})
        out = data.map_blocks(
            _indices_block,
            band_names,
            chosen,
            factor,
            False,
            chunks=((len(chosen),), *data.chunks[1:]),
            dtype=np.float32,
        )
    else:
        out = _indices_block(np.asarray(data, dtype=np.float32), band_names, chosen, factor, True)
    coords = {k: v for k, v in da.coords.items() if "band" not in v.dims}
    return xr.DataArray(out, dims=("band", "y", "x"), coords={**coords, "band": list(chosen)})


# ------------------------------------------------------------------------- neighbourhood stats
STATS: tuple[str, ...] = ("mean", "std", "min", "max")
_STAT_CODE = {name: code for code, name in enumerate(STATS)}


@njit(cache=True, nogil=True, fastmath=False)
def _row_pass(img, r, m, ext0, y0, y1, rc, rs, rss, rmn, rmx):  # pragma: no cover
    """Horizontal window pass for image rows [y0, y1): count, sum, sum of squares, min, max."""
    w = img.shape[1]
    wo = w - 2 * m
    buf = np.full(w + 2 * r, np.nan, dtype=np.float32)
    for y in range(y0, y1):
        buf[r : r + w] = img[y]
        yi = y - ext0
        for x in range(wo):
            n = 0
            s = 0.0
            ss = 0.0
            mn = np.inf
            mx = -np.inf
            for dx in range(2 * r + 1):
                v = buf[x + m + dx]
                if v == v:
                    fv = np.float64(v)
                    n += 1
                    s += fv
                    ss += fv * fv
                    if fv < mn:
                        mn = fv
                    if fv > mx:
                        mx = fv
            rc[yi, x] = n
            rs[yi, x] = s
            rss[yi, x] = ss
            rmn[yi, x] = mn
            rmx[yi, x] = mx


@njit(cache=True, nogil=True, fastmath=False)
def _col_pass(rc, rs, rss, rmn, rmx, h, r, m, ext0, codes, y0, y1, out):  # pragma: no cover
    """Vertical window pass for output rows [y0, y1) (image coordinates)."""
    wo = rc.shape[1]
    an = np.zeros(wo, dtype=np.int64)
    a_s = np.zeros(wo, dtype=np.float64)
    ass = np.zeros(wo, dtype=np.float64)
    amn = np.zeros(wo, dtype=np.float64)
    amx = np.zeros(wo, dtype=np.float64)
    for y in range(y0, y1):
        an[:] = 0
        a_s[:] = 0.0
        ass[:] = 0.0
        amn[:] = np.inf
        amx[:] = -np.inf
        for dy in range(-r, r + 1):
            yy = y + dy
            if yy < 0 or yy >= h:
                continue
            yi = yy - ext0
            for x in range(wo):
                an[x] += rc[yi, x]
                a_s[x] += rs[yi, x]
                ass[x] += rss[yi, x]
                if rmn[yi, x] < amn[x]:
                    amn[x] = rmn[yi, x]
                if rmx[yi, x] > amx[x]:
                    amx[x] = rmx[yi, x]
        yo = y - m
        for x in range(wo):
            n = an[x]
            for k in range(codes.size):
                code = codes[k]
                if n == 0:
                    out[k, yo, x] = np.nan
                elif code == 0:
                    out[k, yo, x] = np.float32(a_s[x] / n)
                elif code == 1:
                    mean = a_s[x] / n
                    var = ass[x] / n - mean * mean
                    out[k, yo, x] = np.float32(np.sqrt(var) if var > 0.0 else 0.0)
                elif code == 2:
                    out[k, yo, x] = np.float32(amn[x])
                else:
                    out[k, yo, x] = np.float32(amx[x])


@njit(cache=True, nogil=True)
def _row_buffers(h, w, r, m):  # pragma: no cover
    """Rows ``ext0..ext1`` the row pass covers, and its count/sum/sum²/min/max buffers."""
    ext0 = max(0, m - r)
    ext1 = min(h, h - m + r)
    shape = (ext1 - ext0, w - 2 * m)
    rc = np.empty(shape, dtype=np.int32)
    rs = np.empty(shape, dtype=np.float64)
    rss = np.empty(shape, dtype=np.float64)
    rmn = np.empty(shape, dtype=np.float64)
    rmx = np.empty(shape, dtype=np.float64)
    return ext0, ext1, rc, rs, rss, rmn, rmx


@njit(cache=True, nogil=True, fastmath=False)
def _stats_serial(img, r, m, codes, out):  # pragma: no cover
    h, w = img.shape
    ext0, ext1, rc, rs, rss, rmn, rmx = _row_buffers(h, w, r, m)
    _row_pass(img, r, m, ext0, ext0, ext1, rc, rs, rss, rmn, rmx)
    _col_pass(rc, rs, rss, rmn, rmx, h, r, m, ext0, codes, m, h - m, out)


@njit(parallel=True, cache=True, fastmath=False)
def _stats_par(img, r, m, codes, nblk0, out):  # pragma: no cover
    h, w = img.shape
    ext0, ext1, rc, rs, rss, rmn, rmx = _row_buffers(h, w, r, m)
    nblk = max(1, min(ext1 - ext0, nblk0))
    step = (ext1 - ext0 + nblk - 1) // max(nblk, 1)
    for b in prange(nblk):
        lo = ext0 + b * step
        _row_pass(img, r, m, ext0, lo, min(ext1, lo + step), rc, rs, rss, rmn, rmx)
    rows = h - 2 * m
    nblk = max(1, min(rows, nblk0))
    step = (rows + nblk - 1) // max(nblk, 1)
    for b in prange(nblk):
        lo = m + b * step
        _col_pass(rc, rs, rss, rmn, rmx, h, r, m, ext0, codes, lo, min(h - m, lo + step), out)


def window_input(img: np.ndarray, window: int, margin: int, dtype: type) -> np.ndarray:
    """``img`` as a C-contiguous 2-D ``dtype`` array, checked for a ``window`` kernel that
    leaves ``margin`` context pixels on every side (ValueError naming what is wrong)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    arr = np.ascontiguousarray(img, dtype=dtype)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {arr.shape}")
    if margin < 0 or 2 * margin >= min(arr.shape):
        raise ValueError(f"margin {margin} too large for shape {arr.shape}")
    return arr


def window_stats(
    img: np.ndarray,
    window: int,
    stats: Sequence[str] = STATS,
    *,
    margin: int = 0,
    parallel: bool = True,
) -> np.ndarray:
    """NaN-aware moving-window statistics of a 2-D image.

    ``window`` is the odd side length; ``stats`` any of ``mean``, ``std``, ``min``, ``max``.
    ``margin`` pixels on every side are used as context only (no output there), so the result
    has shape ``(len(stats), H - 2 margin, W - 2 margin)``, float32.
    """
    unknown = [s for s in stats if s not in _STAT_CODE]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; known: {', '.join(STATS)}")
    arr = window_input(img, window, margin, np.float32)
    codes = np.array([_STAT_CODE[s] for s in stats], dtype=np.int64)
    out = np.empty((len(stats), arr.shape[0] - 2 * margin, arr.shape[1] - 2 * margin), np.float32)
    if parallel:
        _stats_par(arr, window // 2, margin, codes, 8 * get_num_threads(), out)
    else:
        _stats_serial(arr, window // 2, margin, codes, out)
    return out
