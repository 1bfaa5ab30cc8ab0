"""Map inputs check and the global IGBP map (COG) of a logged model."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from rasterio.transform import from_origin

from earthops.data import catalog
from earthops.data.legends import IGBP
from earthops.errors import DataError, EarthOpsError, SignatureError
from earthops.features.global_grid import (
    GRID_CRS,
    GRID_RES,
    GridSpec,
    extract_chips,
    load_feature_grid,
    read_bmng_rgb,
)
from earthops.logs import get_logger, progress
from earthops.usecases.landcover_global.config import MAP_INPUTS, NAME, NODATA
from earthops.usecases.landcover_global.outside import (
    OUTSIDE,
    OUTSIDE_COLOUR,
    outside_name,
)

log = get_logger(__name__)


def check_map_inputs(inputs: Sequence[str | Path]) -> dict[str, Path]:
    """Match raster inputs to the model's map inputs (:data:`MAP_INPUTS`) by layout.

    Returns ``{role: path}`` (roles not given come from the catalog). A raster whose band
    count, size or CRS matches no role raises :class:`SignatureError` naming the mismatch.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    roles: dict[str, Path] = {}
    by_bands = {spec["bands"]: role for role, spec in MAP_INPUTS.items()}
    for raw in inputs:
        path = Path(raw)
        if not path.is_file():
            raise DataError(path, "input raster not found")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    count, height, width, crs = src.count, src.height, src.width, src.crs
        except RasterioIOError as exc:
            raise DataError(path, f"cannot open as a raster ({exc})") from None
        role = by_bands.get(count)
        if role is None:
            expected = " or ".join(f"{v['bands']} ({k})" for k, v in MAP_INPUTS.items())
            raise SignatureError(f"{path}: {count} band(s); the model expects {expected}")
        want = MAP_INPUTS[role]
        if (height, width) != (want["height"], want["width"]):
            raise SignatureError(
                f"{path} ({role}): shape {width}x{height} px; the model expects "
                f"{want['width']}x{want['height']} (global, north up)"
            )
        if crs is not None and crs.to_string() != want["crs"]:
            raise SignatureError(f"{path} ({role}): CRS {crs}; the model expects {want['crs']}")
        if role in roles:
            raise SignatureError(f"{path}: a second {role} input (first: {roles[role]})")
        roles[role] = path
    return roles


def _catalog_sources(roles: dict[str, Path]) -> dict[str, Path]:
    """Drop inputs that are the catalog's own files (same content) so the cached grid is used."""
    from earthops.data.identity import file_sha256

    return {
        role: path
        for role, path in roles.items()
        if file_sha256(path) != catalog.dataset_ref(role).digest
    }


def predict_global_map(
    model_uri: str,
    output: str | Path,
    *,
    decimate: int = 4,
    with_probability: bool = False,
    rows_per_chunk: int = 128,
    sources: dict[str, Path] | None = None,
) -> Path:
    """Classify the grid (every ``decimate``-th pixel) into an IGBP COG with palette.

    A model with an outside gate writes the land pixels it calls outside its protocol's
    classes as :data:`~.outside.OUTSIDE` ("other land", grey) instead of forcing a class.

    The map covers the model's feature grid (global, or its region). Features come from the
    cached grid (built on first use; ``sources`` replace catalog inputs), chunk by chunk
    (bounded memory). ``with_probability`` adds a second band: the max class probability
    × 100 (uint8). Returns the map's path.
    """
    from earthops.raster.cog import write_cog
    from earthops.registry.inference import load

    if decimate < 1:
        raise EarthOpsError(f"decimate must be >= 1, got {decimate}")
    loaded = load(model_uri, usecase=NAME)
    meta, model = loaded.meta, loaded.model
    spec = GridSpec.from_metadata(meta["grid_spec"])
    if list(meta.get("feature_names", [])) != spec.feature_names():
        raise SignatureError(f"model '{model_uri}': feature names do not match its grid spec")
    grid = load_feature_grid(spec, sources=sources)
    needs_chips = bool(meta.get("needs_chips"))
    chip_size = int(meta.get("chip_size", 16))
    bmng = read_bmng_rgb(path=(sources or {}).get("bmng-2004")) if needs_chips else None

    r0, r1, c0, c1 = spec.window()
    rows = np.arange(r0 + decimate // 2, r1, decimate)
    cols = np.arange(c0 + decimate // 2, c1, decimate)
    classes = [int(c) for c in model.classes_]
    gated = model.has_outside_gate
    n_bands = 2 if with_probability else 1
    out = np.full((n_bands, rows.size, cols.size), NODATA, dtype=np.uint8)
    with progress() as bar:
        task = bar.add_task(f"IGBP map 1/{decimate}", total=rows.size)
        for i0 in range(0, rows.size, rows_per_chunk):
            r = rows[i0 : i0 + rows_per_chunk]
            feats = grid.block(r, cols)
            chips = None
            if needs_chips:
                rr, cc = np.meshgrid(r, cols, indexing="ij")
                chips = extract_chips(rr.ravel(), cc.ravel(), chip_size, rgb=bmng)
            valid = np.isfinite(feats).any(axis=1)  # all-nodata pixels stay nodata
            labels = np.full(feats.shape[0], NODATA, dtype=np.uint8)
            prob = np.zeros(feats.shape[0], dtype=np.uint8)
            if valid.all():  # no copy
                labels[:], prob[:] = _classify(model, feats, chips, with_probability)
            elif valid.any():
                chips_valid = None if chips is None else chips[valid]
                labels[valid], prob[valid] = _classify(
                    model, feats[valid], chips_valid, with_probability
                )
            out[0, i0 : i0 + r.size] = labels.reshape(r.size, cols.size)
            if with_probability:
                out[1, i0 : i0 + r.size] = prob.reshape(r.size, cols.size)
            bar.advance(task, r.size)

    res = GRID_RES * decimate
    x0, y0 = -180.0 + GRID_RES * c0, 90.0 - GRID_RES * r0
    ys = y0 - res * (np.arange(rows.size) + 0.5)
    xs = x0 + res * (np.arange(cols.size) + 0.5)
    da = xr.DataArray(
        out, dims=("band", "y", "x"), coords={"band": list(range(1, n_bands + 1)), "y": ys, "x": xs}
    )
    da = da.rio.write_crs(GRID_CRS).rio.write_transform(from_origin(x0, y0, res, res))
    output = Path(output)
    tags = {"EARTHOPS_MODEL": model_uri, "EARTHOPS_DECIMATE": str(decimate)}
    names = {c: IGBP.names()[c] for c in classes}
    colormap = {c: IGBP.colormap()[c] for c in classes}
    if gated:
        names[OUTSIDE] = outside_name(str(meta.get("protocol", "model")))
        colormap[OUTSIDE] = OUTSIDE_COLOUR
    write_cog(
        da,
        output,
        nodata=NODATA,
        descriptions=["igbp", "max_probability_pct"][:n_bands],
        # a palette needs a single band: a probability map carries the names in its tags
        colormap=None if with_probability else colormap,
        class_names=names,
        tags=tags,
        overview_resampling="nearest" if with_probability else None,
        blocksize=256,
        show_progress=False,
    )
    log.info("landcover_global.map", path=str(output), shape=list(out.shape), outside_gate=gated)
    return output


def _classify(
    model: Any, feats: np.ndarray, chips: np.ndarray | None, with_probability: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Map values and max probabilities × 100 (zeros unless ``with_probability``) of pixels.

    With an outside gate, the pixels it flags are :data:`OUTSIDE` (their probability: the
    gate's own) and only the others are classified.
    """
    values = np.full(len(feats), OUTSIDE, dtype=np.uint8)
    prob = np.zeros(len(feats), dtype=np.uint8)
    p_outside = model.outside_proba(feats)
    outside = p_outside > model.gate_threshold
    if with_probability:
        prob[outside] = np.rint(100 * p_outside[outside])
    keep = slice(None) if not outside.any() else ~outside  # no copy when nothing is flagged
    if not outside.all():
        kept_chips = None if chips is None else chips[keep]
        if with_probability:
            proba = model.proba_arrays(feats[keep], kept_chips)
            best = np.argmax(proba, axis=1)
            values[keep] = model.classes_[best]
            prob[keep] = np.rint(100 * proba[np.arange(best.size), best])
        else:
            values[keep] = model.predict_arrays(feats[keep], kept_chips)
    return values, prob
