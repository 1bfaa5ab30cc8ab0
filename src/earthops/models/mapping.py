"""Raster maps from logged models: generic dispatch and a chunked, memory-bounded classifier.

* :func:`predict_raster` — what ``earthops predict-raster`` calls: reads the model's metadata
  (``usecase``) and hands over to that use case's ``predict_raster``.
* :func:`classify_blocks` — the reusable engine use cases call: a ``(band|time, y, x)`` cube
  (numpy- or dask-backed, with CRS/transform) is classified window by window through a
  ``featurize`` callable and a fitted model, into a Cloud-Optimized GeoTIFF with a palette and
  class names (and optionally a max-probability band).
* :func:`raster_signature` / :func:`check_signature` — what a model expects of its raster input
  (layer count and names, CRS, optionally shape), stored in the model's metadata at training
  time and checked before mapping (:class:`~earthops.errors.SignatureError` on mismatch).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import xarray as xr
from rasterio.crs import CRS

from earthops.data.legends import Legend
from earthops.errors import EarthOpsError, SignatureError
from earthops.logs import get_logger, progress

log = get_logger(__name__)

Featurize = Callable[[np.ndarray], np.ndarray]

#: distinct colours for classes without a legend colour (cycled beyond 20 classes)
_PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip


# ----------------------------------------------------------------------------- dispatch
def predict_raster(
    model_uri: str,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    with_probability: bool = False,
) -> Path:
    """Map ``inputs`` with the logged model ``model_uri`` via its use case; return the COG path."""
    from earthops.registry.tracking import model_metadata
    from earthops.usecases import get_usecase

    meta = model_metadata(model_uri)
    name = meta.get("usecase")
    if not name:
        raise EarthOpsError(
            f"model '{model_uri}' has no 'usecase' in its metadata; cannot tell how to map rasters"
        )
    if not inputs:
        raise EarthOpsError("predict-raster needs at least one --input raster")
    return get_usecase(str(name)).predict_raster(
        model_uri, [Path(p) for p in inputs], Path(output), with_probability=with_probability
    )


# ---------------------------------------------------------------------------- signature
def _layer_dim(cube: xr.DataArray) -> str:
    if cube.ndim != 3 or tuple(cube.dims[1:]) != ("y", "x") or cube.dims[0] not in ("band", "time"):
        raise SignatureError(
            f"expected a cube with dims (band, y, x) or (time, y, x), got {tuple(cube.dims)}"
        )
    return str(cube.dims[0])


def raster_signature(
    cube: xr.DataArray,
    *,
    layer_names: Sequence[str] | None = None,
    with_shape: bool = False,
) -> dict[str, Any]:
    """The JSON-able signature of ``cube`` for a model's metadata.

    ``{"dim": "band"|"time", "count": k, "names": [...] | None, "crs": WKT | None,
    "shape": [h, w] | None}``; ``names`` default to the layer coordinate as strings.
    """
    dim = _layer_dim(cube)
    if layer_names is None and dim in cube.coords:
        layer_names = [str(v) for v in cube[dim].values.tolist()]
    crs = cube.rio.crs
    return {
        "dim": dim,
        "count": int(cube.sizes[dim]),
        "names": list(layer_names) if layer_names is not None else None,
        "crs": crs.to_wkt() if crs is not None else None,
        "shape": [int(cube.sizes["y"]), int(cube.sizes["x"])] if with_shape else None,
    }


def check_signature(
    cube: xr.DataArray,
    signature: Mapping[str, Any],
    *,
    source: str = "input raster",
    layer_names: Sequence[str] | None = None,
) -> None:
    """Raise :class:`SignatureError` naming the first mismatch between ``cube`` and ``signature``.

    Checked (when the signature sets them): layer count, layer names (``layer_names`` given,
    else the cube's layer coordinate as strings), CRS, and ``(height, width)``.
    """
    dim = _layer_dim(cube)
    count = int(cube.sizes[dim])
    want_count = signature.get("count")
    if want_count is not None and count != int(want_count):
        raise SignatureError(
            f"{source}: {count} {dim} layer(s); the model expects {want_count}"
            + (f" ({', '.join(signature['names'])})" if signature.get("names") else "")
        )
    want_names = signature.get("names")
    if want_names is not None:
        names = (
            list(layer_names)
            if layer_names is not None
            else [str(v) for v in cube[dim].values.tolist()]
        )
        if [str(n) for n in names] != [str(n) for n in want_names]:
            diff = [(a, b) for a, b in zip(names, want_names, strict=False) if str(a) != str(b)]
            raise SignatureError(
                f"{source}: {dim} layers {names} do not match the model's {list(want_names)}"
                f" (first difference: {diff[0][0]!r} vs {diff[0][1]!r})"
                if diff
                else f"{source}: {dim} layers {names}; the model expects {list(want_names)}"
            )
    want_crs = signature.get("crs")
    if want_crs is not None:
        crs = cube.rio.crs
        if crs is None or CRS.from_user_input(crs) != CRS.from_user_input(want_crs):
            expected = CRS.from_user_input(want_crs)
            raise SignatureError(
                f"{source}: CRS {crs.to_string() if crs is not None else 'none'}; the model "
                f"expects {expected.to_string() or expected.to_wkt()[:80]}"
            )
    want_shape = signature.get("shape")
    if want_shape is not None:
        shape = (int(cube.sizes["y"]), int(cube.sizes["x"]))
        if shape != tuple(int(s) for s in want_shape):
            raise SignatureError(
                f"{source}: shape {shape[1]}x{shape[0]} px (width x height); the model expects "
                f"{want_shape[1]}x{want_shape[0]}"
            )


# ------------------------------------------------------------------------------ encoding
def class_encoding(
    classes: Sequence[Any],
    legend: Legend | Mapping[Any, str] | None = None,
) -> tuple[np.ndarray, dict[int, str], dict[int, tuple[int, int, int]], int]:
    """How model classes are written: ``(values, names, colormap, nodata)``.

    Integer classes within 0…254 are written as themselves (nodata 255); anything else
    (e.g. string labels) as codes 1…k in ``classes`` order (nodata 0). Names come from
    ``legend`` ({class: name} or a :class:`Legend`), else the class itself; colours from a
    :class:`Legend` where it has the value, else a fixed qualitative palette.
    """
    cls = list(classes)
    ints = all(isinstance(c, int | np.integer) and 0 <= int(c) <= 254 for c in cls)
    if ints:
        values = np.asarray([int(c) for c in cls], dtype=np.uint8)
        nodata = 255
    else:
        values = np.arange(1, len(cls) + 1, dtype=np.uint8)
        nodata = 0
    if len(cls) > 254:
        raise EarthOpsError(f"{len(cls)} classes; a uint8 map holds at most 254")
    given = legend.names() if isinstance(legend, Legend) else dict(legend or {})
    lookup = {str(k): v for k, v in given.items()}
    names = {int(v): str(lookup.get(str(c), c)) for v, c in zip(values, cls, strict=True)}
    legend_colours = legend.colormap() if isinstance(legend, Legend) else {}
    colormap = {
        int(v): tuple(legend_colours.get(int(v), _PALETTE[i % len(_PALETTE)]))
        if ints
        else _PALETTE[i % len(_PALETTE)]
        for i, v in enumerate(values)
    }
    return values, names, colormap, nodata  # type: ignore[return-value]


# ------------------------------------------------------------------------------ engine
def classify_blocks(
    cube: xr.DataArray,
    featurize: Featurize,
    model: Any,
    output: str | Path,
    *,
    legend: Legend | Mapping[Any, str] | None = None,
    with_probability: bool = False,
    signature: Mapping[str, Any] | None = None,
    layer_names: Sequence[str] | None = None,
    source: str = "input raster",
    block_size: int = 512,
    min_valid_layers: int = 1,
    description: str = "class",
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Classify ``cube`` window by window into a Cloud-Optimized GeoTIFF; return its path.

    Parameters
    ----------
    cube:
        ``(band, y, x)`` or ``(time, y, x)`` DataArray with a CRS and transform (rioxarray);
        numpy- or dask-backed (lazy cubes are read one window at a time).
    featurize:
        ``featurize(block) -> (h*w, n_features)`` where ``block`` is the float32 window
        ``(layers, h, w)`` (NaN = nodata); rows are the window's pixels in row-major order.
    model:
        A fitted classifier with ``predict_proba`` and ``classes_``.
    output:
        The COG path. Band 1 is the class (uint8; see :func:`class_encoding`: integer classes
        as themselves with nodata 255, other labels as codes 1…k with nodata 0), written with an
        internal palette and the class names (tag ``CLASS_NAMES``, JSON ``{value: name}``).
    legend:
        Class names (``{class: name}``) or a :class:`~earthops.data.legends.Legend` (names and
        colours) for the palette.
    with_probability:
        Add band 2, the max class probability × 100 (uint8, same nodata). A TIFF palette needs a
        single band, so this map carries the class names in its tags but no palette.
    signature, layer_names, source:
        When ``signature`` (see :func:`raster_signature`) is given, the cube is checked first
        (:class:`~earthops.errors.SignatureError` naming the mismatch); ``layer_names`` replace
        the cube's layer coordinate in that check; ``source`` names the input in messages.
    block_size:
        Window side in pixels (memory ≈ block² × layers × features, independent of the raster).
    min_valid_layers:
        A pixel is classified when at least this many of its layers are finite; other pixels,
        and windows with no such pixel, are written as nodata without calling the model.
    description, tags:
        Band-1 description and extra dataset tags.

    The class raster is assembled in a temporary memory map next to ``output`` (bounded RAM)
    and written by :func:`earthops.raster.cog.write_cog` (tiled, overviews, palette).
    """
    from earthops.raster.cog import write_cog

    _layer_dim(cube)
    if signature is not None:
        check_signature(cube, signature, source=source, layer_names=layer_names)
    if cube.rio.crs is None:
        raise SignatureError(f"{source}: no CRS; expected a georeferenced raster")
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise EarthOpsError("classify_blocks needs a fitted model with predict_proba and classes_")
    values, names, colormap, nodata = class_encoding(list(model.classes_), legend)
    height, width = int(cube.sizes["y"]), int(cube.sizes["x"])
    n_bands = 2 if with_probability else 1
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    windows = [(r, c) for r in range(0, height, block_size) for c in range(0, width, block_size)]
    skipped = classified = 0
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.map.") as tmp:
        out = np.lib.format.open_memmap(
            Path(tmp) / "classes.npy", mode="w+", dtype=np.uint8, shape=(n_bands, height, width)
        )
        out[0] = nodata
        if with_probability:
            out[1] = nodata
        with progress() as bar:
            task = bar.add_task(f"classifying {output.name}", total=len(windows))
            for r0, c0 in windows:
                r1, c1 = min(r0 + block_size, height), min(c0 + block_size, width)
                block = np.asarray(
                    cube.isel(y=slice(r0, r1), x=slice(c0, c1)).values, dtype=np.float32
                )
                valid = (np.isfinite(block).sum(axis=0) >= min_valid_layers).ravel()
                if valid.any():
                    feats = np.asarray(featurize(block))
                    if feats.ndim != 2 or feats.shape[0] != valid.size:
                        raise EarthOpsError(
                            f"featurize returned shape {feats.shape}; expected "
                            f"({valid.size}, n_features) for a {r1 - r0}x{c1 - c0} window"
                        )
                    proba = np.asarray(model.predict_proba(feats[valid]))
                    best = np.argmax(proba, axis=1)
                    labels = np.full(valid.size, nodata, dtype=np.uint8)
                    labels[valid] = values[best]
                    out[0, r0:r1, c0:c1] = labels.reshape(r1 - r0, c1 - c0)
                    if with_probability:
                        prob = np.full(valid.size, nodata, dtype=np.uint8)
                        prob[valid] = np.rint(100 * proba[np.arange(best.size), best])
                        out[1, r0:r1, c0:c1] = prob.reshape(r1 - r0, c1 - c0)
                    classified += 1
                else:
                    skipped += 1
                bar.advance(task)
            out.flush()
        data = xr.DataArray(
            dsa.from_array(out, chunks=(n_bands, 1024, 1024)),
            dims=("band", "y", "x"),
            coords={"band": np.arange(1, n_bands + 1), "y": cube["y"], "x": cube["x"]},
        )
        data = data.rio.write_crs(cube.rio.crs).rio.write_transform(cube.rio.transform())
        all_tags = {**(tags or {}), "CLASS_NODATA": str(nodata)}
        descriptions = [description, "max_probability_pct"][:n_bands]
        tile = 512  # smaller tiles for small maps, so they still get overviews
        while tile > 64 and max(height, width) <= tile:
            tile //= 2
        if with_probability:
            write_cog(
                data,
                output,
                nodata=nodata,
                descriptions=descriptions,
                class_names=names,
                tags=all_tags,
                overview_resampling="nearest",
                blocksize=tile,
                show_progress=False,
            )
        else:
            write_cog(
                data,
                output,
                nodata=nodata,
                descriptions=descriptions,
                colormap=colormap,
                class_names=names,
                tags=all_tags,
                blocksize=tile,
                show_progress=False,
            )
        del data, out
    log.info(
        "mapping.written",
        path=str(output),
        height=height,
        width=width,
        windows=len(windows),
        classified=classified,
        skipped=skipped,
    )
    return output
