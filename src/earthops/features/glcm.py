"""Per-pixel grey-level co-occurrence (GLCM) texture with a sliding, incrementally updated histogram.

For every output pixel the window of side ``window`` centred on it is treated exactly like an
image passed to scikit-image's ``graycomatrix(window, distances, angles, levels, symmetric=True,
normed=True)``; the requested ``graycoprops`` are then averaged over all (distance, angle)
pairs (rotation- and distance-averaged texture). Pixels outside the array and missing pixels
(quantised to the sentinel :data:`MISSING`) never form pairs, as in scikit-image, which skips
values ``>= levels``; a (distance, angle) matrix without any pair is left out of the average
and a pixel whose matrices are all empty is NaN.

Speed: along each output row the window slides one column at a time; for every distinct pixel
offset the symmetric co-occurrence histogram is updated by the pairs whose anchor column
enters or leaves the window (``O(window)`` per pixel and offset instead of ``O(window²)``),
and all properties come in ``O(1)`` from running integer sums kept beside the histogram:
counts, sums of ``i``, ``i²``, ``ij``, ``|i-j|``, ``Σ h²`` and fixed-point (2⁻³²) sums of
``1/(1+(i-j)²)`` and ``h·ln h``. Integer sums make the result independent of where a row's
slide starts, so tiled (dask) and whole-array results are bit-identical. Rows run in parallel.

``entropy`` follows scikit-image 0.26: ``-Σ p ln p`` (natural logarithm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import get_num_threads, njit, prange

from earthops.features.kernels import window_input

#: properties, in the order of their integer codes (scikit-image names).
PROPS: tuple[str, ...] = (
    "contrast",
    "dissimilarity",
    "homogeneity",
    "ASM",
    "energy",
    "entropy",
    "correlation",
    "mean",
    "variance",
    "std",
)
DEFAULT_PROPS: tuple[str, ...] = PROPS[:7]
_PROP_CODE = {name: code for code, name in enumerate(PROPS)}
#: quantised value of a missing pixel (never a valid level: levels <= 255).
MISSING = 255
_FIX = float(2**32)


# ------------------------------------------------------------------------------ quantisation
@njit(cache=True, nogil=True, fastmath=False)
def _quantize_span(img, levels, vmin, vmax, direct, out, lo, hi):  # pragma: no cover
    span = vmax - vmin
    for k in range(lo, hi):
        v = np.float64(img[k])
        if v != v:
            out[k] = MISSING
        elif direct:
            if v >= 0.0 and v < levels and v == np.floor(v):
                out[k] = np.uint8(v)
            else:
                out[k] = MISSING
        elif span <= 0.0:
            out[k] = 0
        else:
            q = np.floor((v - vmin) / span * levels)
            if q < 0.0:
                q = 0.0
            elif q > levels - 1:
                q = levels - 1
            out[k] = np.uint8(q)


@njit(parallel=True, cache=True, fastmath=False)
def _quantize_par(img, levels, vmin, vmax, direct, out):  # pragma: no cover
    n = out.size
    step = 1 << 16
    for b in prange((n + step - 1) // step):
        _quantize_span(img, levels, vmin, vmax, direct, out, b * step, min(n, (b + 1) * step))


def quantize(
    img: np.ndarray,
    levels: int,
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    direct: bool = False,
    parallel: bool = True,
) -> np.ndarray:
    """Quantise an image to grey levels ``0 … levels-1`` (uint8; NaN -> :data:`MISSING`).

    Linear mode: ``floor((v - vmin) / (vmax - vmin) * levels)`` clipped to the level range,
    ``vmin``/``vmax`` defaulting to the image's NaN-min/max. Direct mode (categorical maps):
    integer values ``0 <= v < levels`` are their own level; anything else is missing.
    """
    if not 2 <= levels <= 255:
        raise ValueError(f"levels must be in 2..255, got {levels}")
    arr = np.ascontiguousarray(img, dtype=np.float32)
    if not direct and (vmin is None or vmax is None):
        finite = arr[np.isfinite(arr)]
        lo_hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        vmin = lo_hi[0] if vmin is None else vmin
        vmax = lo_hi[1] if vmax is None else vmax
    flat = arr.reshape(-1)
    out = np.empty(flat.size, dtype=np.uint8)
    args = (flat, levels, float(vmin or 0.0), float(vmax or 0.0), direct, out)
    if parallel:
        _quantize_par(*args)
    else:
        _quantize_span(*args, 0, flat.size)
    return out.reshape(arr.shape)


# ----------------------------------------------------------------------------------- offsets
def _c_round(x: float) -> int:
    """C ``round`` (half away from zero), as scikit-image's Cython loop uses."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def glcm_offsets(
    distances: Sequence[int], angles: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``(row, col)`` pixel offsets of the (distance, angle) pairs and their multiplicity.

    Offsets follow scikit-image (``row = round(sin(a) d)``, ``col = round(cos(a) d)``); ``o`` and
    ``-o`` give the same symmetric matrix, so they are merged.
    """
    counts: dict[tuple[int, int], int] = {}
    for angle in angles:
        for dist in distances:
            if dist < 0:
                raise ValueError(f"distances must be >= 0, got {dist}")
            dr, dc = _c_round(math.sin(angle) * dist), _c_round(math.cos(angle) * dist)
            if (dr, dc) < (0, 0):
                dr, dc = -dr, -dc
            counts[(dr, dc)] = counts.get((dr, dc), 0) + 1
    if not counts:
        raise ValueError("need at least one distance and one angle")
    offsets = np.array(sorted(counts), dtype=np.int64).reshape(-1, 2)
    weights = np.array([counts[tuple(o)] for o in offsets.tolist()], dtype=np.float64)
    return offsets, weights


# -------------------------------------------------------------------------------- the kernel
@njit(cache=True, nogil=True, fastmath=False)
def _swap_rows(q, agg, k, rout, rin, c0, c1, dr, dc, levels, hom):  # pragma: no cover
    """Replace the pairs anchored on row ``rout`` by those on ``rin`` (equal pairs: no-op)."""
    for c in range(c0, c1 + 1):
        i0 = np.int64(q[rout, c])
        j0 = np.int64(q[rout + dr, c + dc])
        i1 = np.int64(q[rin, c])
        j1 = np.int64(q[rin + dr, c + dc])
        if i0 == i1 and j0 == j1:
            continue
        if i0 < levels and j0 < levels:
            _agg_step(agg, k, c, i0, j0, -1, hom)
        if i1 < levels and j1 < levels:
            _agg_step(agg, k, c, i1, j1, 1, hom)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _agg_step(agg, k, c, i, j, sg, hom):  # pragma: no cover
    d = max(i, j) - min(i, j)
    agg[k, c, 0] += 2 * sg
    agg[k, c, 1] += sg * (i + j)
    agg[k, c, 2] += sg * (i * i + j * j)
    agg[k, c, 3] += 2 * sg * i * j
    agg[k, c, 4] += 2 * sg * d
    agg[k, c, 5] += 2 * sg * hom[d]


@njit(cache=True, nogil=True, fastmath=False)
def _pair_row(q, agg, k, r, c0, c1, dr, dc, levels, sg, hom):  # pragma: no cover
    """Add (sg=1) or remove (sg=-1) the pairs anchored on row r to column aggregates c0..c1."""
    for c in range(c0, c1 + 1):
        i = np.int64(q[r, c])
        j = np.int64(q[r + dr, c + dc])
        if i < levels and j < levels:
            _agg_step(agg, k, c, i, j, sg, hom)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _hist_step(hist, i, j, levels, sg, dent):  # pragma: no cover
    """Add (sg=1) / remove (sg=-1) pair (i, j); returns the changes of Σ h² and Σ h ln h."""
    eq = np.int64(i == j)  # diagonal bins store 2 C_ii and step by 2, once
    lo_ij = min(i, j)
    b = lo_ij * (levels + 1) + max(i, j) - lo_ij
    inc = 1 + eq
    old = np.int64(hist[b])
    if sg > 0:
        hist[b] = old + inc
        return (2 - eq) * inc * (2 * old + inc), dent[eq, old]
    hist[b] = old - inc
    return -(2 - eq) * inc * (2 * old - inc), -dent[eq, old - inc]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _props(nn, s1, s2, sx, sab, sho, sq, se, codes, lnt, vals):  # pragma: no cover
    """The requested properties of one normalised symmetric GLCM from its integer sums."""
    n = np.float64(nn)
    inv = 1.0 / n
    var_num = nn * s2 - s1 * s1  # N² · variance, exact
    for p in range(codes.size):
        code = codes[p]
        if code == 0:  # contrast: Σ (i-j)² h / N
            v = (2 * s2 - 2 * sx) * inv
        elif code == 1:
            v = sab * inv
        elif code == 2:
            v = sho / _FIX * inv
        elif code == 3:
            v = sq * inv * inv
        elif code == 4:
            v = np.sqrt(sq * inv * inv)
        elif code == 5:
            v = lnt[nn] - se / _FIX * inv
        elif code == 6:
            v = 1.0 if var_num == 0 else (nn * sx - s1 * s1) / var_num
        elif code == 7:
            v = s1 * inv
        elif code == 8:
            v = var_num * inv * inv
        else:
            v = np.sqrt(var_num * inv * inv)
        vals[p] = v


@njit(cache=True, nogil=True, fastmath=False)
def _glcm_span(
    q, levels, offs, wts, half, m, codes, dent, hom, lnt, y0, y1, out
):  # pragma: no cover
    """Texture for output rows [y0, y1) (image coordinates) of the quantised image ``q``.

    Per row and offset the window slides along x. ``hist`` holds the symmetric matrix as its
    upper triangle (diagonal bins store the symmetric count ``2 C_ii``); ``sq`` = Σ h² and
    ``se`` = Σ h ln h · 2³² follow it pair by pair. The sums that are linear in the pairs
    (``agg[k, c]``: N, Σ i h, Σ i² h, Σ ij h, Σ |i-j| h, Σ h/(1+(i-j)²) · 2³², per anchor
    column) slide down the rows and are added / removed a whole column at a time.
    """
    h, w = q.shape
    nk = offs.shape[0]
    npr = codes.size
    wo = w - 2 * m
    hist = np.zeros(levels * levels, dtype=np.int32)
    acc = np.zeros((npr, wo), dtype=np.float64)
    vals = np.zeros(npr, dtype=np.float64)
    wsum = np.zeros(wo, dtype=np.float64)
    agg = np.zeros((nk, w, 6), dtype=np.int64)
    arlo = np.zeros(nk, dtype=np.int64)
    arhi = np.full(nk, -1, dtype=np.int64)  # anchor rows currently in agg: none
    for y in range(y0, y1):
        acc[:] = 0.0
        wsum[:] = 0.0
        for k in range(nk):
            dr = offs[k, 0]
            dc = offs[k, 1]
            wk = wts[k]
            # anchor rows p with p and p + dr inside both the window and the image
            rlo = max(max(y - half, y - half - dr), max(0, -dr))
            rhi = min(min(y + half, y + half - dr), min(h - 1, h - 1 - dr))
            cmin = max(0, -dc)
            cmax = min(w - 1, w - 1 - dc)
            # slide the column aggregates down to anchor rows [rlo, rhi]
            if rlo == arlo[k] + 1 and rhi == arhi[k] + 1 and arhi[k] >= arlo[k]:
                _swap_rows(q, agg, k, arlo[k], rhi, cmin, cmax, dr, dc, levels, hom)
            else:
                for r in range(arlo[k], min(arhi[k], rlo - 1) + 1):
                    _pair_row(q, agg, k, r, cmin, cmax, dr, dc, levels, -1, hom)
                for r in range(max(arhi[k] + 1, rlo), rhi + 1):
                    _pair_row(q, agg, k, r, cmin, cmax, dr, dc, levels, 1, hom)
            arlo[k] = rlo
            arhi[k] = rhi  # rlo and rhi never decrease with y, so agg now holds [rlo, rhi]
            hist[:] = 0
            nn = 0
            s1 = 0
            s2 = 0
            sx = 0
            sab = 0
            sho = 0
            sq = 0
            se = 0
            lo = 0
            hi = -1  # empty set of anchor columns
            p_nn = -1  # no cached properties (N is never negative)
            p_s1 = p_s2 = p_sx = p_sab = p_sho = p_sq = p_se = 0
            for x in range(m, w - m):
                nlo = max(max(x - half, x - half - dc), cmin)
                nhi = min(min(x + half, x + half - dc), cmax)
                if nlo == lo + 1 and nhi == hi + 1 and hi >= lo:
                    # steady state: anchor column lo leaves, nhi enters. Row by row, a pair
                    # that equals the one it replaces leaves the histogram unchanged.
                    cout = lo
                    cin = nhi
                    nn += agg[k, cin, 0] - agg[k, cout, 0]
                    s1 += agg[k, cin, 1] - agg[k, cout, 1]
                    s2 += agg[k, cin, 2] - agg[k, cout, 2]
                    sx += agg[k, cin, 3] - agg[k, cout, 3]
                    sab += agg[k, cin, 4] - agg[k, cout, 4]
                    sho += agg[k, cin, 5] - agg[k, cout, 5]
                    for r in range(rlo, rhi + 1):
                        i0 = np.int64(q[r, cout])
                        j0 = np.int64(q[r + dr, cout + dc])
                        i1 = np.int64(q[r, cin])
                        j1 = np.int64(q[r + dr, cin + dc])
                        if i0 == i1 and j0 == j1:
                            continue
                        if i0 < levels and j0 < levels:
                            dq, de = _hist_step(hist, i0, j0, levels, -1, dent)
                            sq += dq
                            se += de
                        if i1 < levels and j1 < levels:
                            dq, de = _hist_step(hist, i1, j1, levels, 1, dent)
                            sq += dq
                            se += de
                else:
                    for step in range(2):
                        if step == 0:  # anchor columns leaving the window
                            sg = -1
                            c0 = lo
                            c1 = min(hi, nlo - 1)
                        else:  # anchor columns entering it
                            sg = 1
                            c0 = max(hi + 1, nlo)
                            c1 = nhi
                        for c in range(c0, c1 + 1):
                            nn += sg * agg[k, c, 0]
                            s1 += sg * agg[k, c, 1]
                            s2 += sg * agg[k, c, 2]
                            sx += sg * agg[k, c, 3]
                            sab += sg * agg[k, c, 4]
                            sho += sg * agg[k, c, 5]
                            for r in range(rlo, rhi + 1):
                                i = np.int64(q[r, c])
                                j = np.int64(q[r + dr, c + dc])
                                if i < levels and j < levels:
                                    dq, de = _hist_step(hist, i, j, levels, sg, dent)
                                    sq += dq
                                    se += de
                lo = nlo
                hi = nhi
                if nn == 0:
                    continue
                xo = x - m
                wsum[xo] += wk
                # properties are functions of these eight integers only: reuse when unchanged
                if (
                    nn != p_nn or s1 != p_s1 or s2 != p_s2 or sx != p_sx
                    or sab != p_sab or sho != p_sho or sq != p_sq or se != p_se
                ):  # fmt: skip
                    p_nn, p_s1, p_s2, p_sx, p_sab, p_sho, p_sq, p_se = (
                        nn, s1, s2, sx, sab, sho, sq, se
                    )  # fmt: skip
                    _props(nn, s1, s2, sx, sab, sho, sq, se, codes, lnt, vals)
                for p in range(npr):
                    acc[p, xo] += wk * vals[p]
        yo = y - m
        for xo in range(wo):
            ws = wsum[xo]
            for p in range(npr):
                out[p, yo, xo] = np.float32(acc[p, xo] / ws) if ws > 0.0 else np.nan


@njit(parallel=True, cache=True, fastmath=False)
def _glcm_par(q, levels, offs, wts, half, m, codes, dent, hom, lnt, nblk, out):  # pragma: no cover
    rows = q.shape[0] - 2 * m
    nblk = max(1, min(rows, nblk))
    step = (rows + nblk - 1) // max(nblk, 1)
    for b in prange(nblk):
        lo = m + b * step
        _glcm_span(
            q, levels, offs, wts, half, m, codes, dent, hom, lnt, lo, min(m + rows, lo + step), out
        )


def _tables(window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables: steps of Σ h ln h and 1/(1+d²) in 2⁻³² fixed point, ln N."""
    nmax = 2 * window * window + 2  # largest possible symmetric bin count / total count
    h = np.arange(nmax + 1, dtype=np.float64)
    lnt = np.zeros_like(h)
    lnt[1:] = np.log(h[1:])
    ent = np.rint(h * lnt * _FIX).astype(np.int64)
    # dent[0, h]: off-diagonal pair added to a bin holding h (two symmetric bins h -> h+1);
    # dent[1, h]: diagonal pair (one bin h -> h+2). Removal uses the entry below.
    dent = np.zeros((2, nmax + 1), dtype=np.int64)
    dent[0, :-1] = 2 * (ent[1:] - ent[:-1])
    dent[1, :-2] = ent[2:] - ent[:-2]
    d = np.arange(256, dtype=np.float64)
    hom = np.rint(_FIX / (1.0 + d * d)).astype(np.int64)
    return dent, hom, lnt


def glcm_texture(
    q: np.ndarray,
    levels: int,
    window: int = 7,
    distances: Sequence[int] = (1, 2),
    angles: Sequence[float] = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4),
    props: Sequence[str] = DEFAULT_PROPS,
    *,
    margin: int = 0,
    parallel: bool = True,
) -> np.ndarray:
    """Per-pixel GLCM properties of a quantised image (see :func:`quantize`).

    ``angles`` in radians (as scikit-image). ``margin`` pixels on every side are context only;
    the result is ``(len(props), H - 2 margin, W - 2 margin)`` float32.
    """
    arr = window_input(q, window, margin, np.uint8)
    if not 2 <= levels <= 255:
        raise ValueError(f"levels must be in 2..255, got {levels}")
    unknown = [p for p in props if p not in _PROP_CODE]
    if unknown:
        raise ValueError(f"unknown GLCM properties {unknown}; known: {', '.join(PROPS)}")
    offsets, weights = glcm_offsets(distances, angles)
    codes = np.array([_PROP_CODE[p] for p in props], dtype=np.int64)
    dent, hom, lnt = _tables(window)
    out = np.empty((len(props), arr.shape[0] - 2 * margin, arr.shape[1] - 2 * margin), np.float32)
    args = (arr, levels, offsets, weights, window // 2, margin, codes, dent, hom, lnt)
    if parallel:
        _glcm_par(*args, 16 * get_num_threads(), out)
    else:
        _glcm_span(*args, margin, arr.shape[0] - margin, out)
    return out
