"""Which labelled pixels ``evaluate`` scores, and how it scores a model's outside gate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from earthops.errors import EarthOpsError
from earthops.features.global_grid import FeatureGrid
from earthops.usecases.base import BBox
from earthops.usecases.landcover_global.labels import (
    _box_mask,
    _pixels_in_bboxes,
    in_bboxes,
    random_pixels,
    read_label_csv,
    read_labels,
    sample_pixels,
)
from earthops.usecases.landcover_global.model import GlobalLandCoverModel
from earthops.usecases.landcover_global.outside import map_accuracy


class EvalPixels(NamedTuple):
    """Labelled grid pixels to score and what they stand for.

    ``total``: how many pixels of ``population`` the sample represents, one for one (every
    labelled pixel in the boxes, every point of a dataset, or the land pixels a simple random
    sample is drawn from); ``None`` for a class-balanced sample, which stands for no area.
    """

    rows: np.ndarray
    cols: np.ndarray
    y: np.ndarray
    source: str
    population: str
    total: int | None


@dataclass(frozen=True)
class LabelSource:
    """A labelled dataset, read once: ``points`` ``(rows, cols, labels)`` of a CSV, or the
    ``raster`` of IGBP labels on the CMG grid."""

    name: str
    points: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    raster: np.ndarray | None = None


def read_label_source(dataset: Path | None) -> LabelSource:
    """A ``lon,lat,label`` CSV, a GeoTIFF label raster, or (``None``) the catalog MCD12C1."""
    if dataset is not None and Path(dataset).suffix.lower() == ".csv":
        return LabelSource(str(dataset), points=read_label_csv(dataset))
    name = str(dataset) if dataset is not None else "mcd12c1-2019"
    return LabelSource(name, raster=read_labels(dataset))


def eval_pixels(
    labelled: LabelSource,
    classes: Sequence[int],
    bboxes: Sequence[BBox] = (),
    region: BBox | None = None,
    *,
    land: np.ndarray | None = None,
    area: bool = False,
    max_pixels: int = 50_000,
    seed: int = 7,
) -> EvalPixels:
    """Labelled pixels of ``classes`` to score (inside ``bboxes`` when any) and a description
    of their population.

    ``land`` (a CMG land mask, given for ``decision="area"`` and ``land_only`` models)
    keeps raster labels to land pixels. With no boxes a raster is sampled globally:
    class-balanced, or with ``area`` a simple random sample of the land pixels, the map's own
    class mix. ``region`` (the model's feature-grid region, when it has one) limits them
    further. More than ``max_pixels`` are thinned by a seeded random draw.
    """
    source = labelled.name
    total: int | None = None
    balanced = False
    if labelled.points is not None:
        rows, cols, y = labelled.points
        keep = np.isin(y, classes)
        if bboxes:
            keep &= in_bboxes(rows, cols, bboxes)
        rows, cols, y = rows[keep], cols[keep], y[keep]
        population = "the dataset's labelled points"
    else:
        labels = labelled.raster
        assert labels is not None  # a source is points or a raster
        include = [region] if region is not None else []
        on_land = "" if land is None else " on land"
        if bboxes:
            rows, cols = _pixels_in_bboxes(labels, bboxes, classes)
            if land is not None:
                keep = land[rows, cols]
                rows, cols = rows[keep], cols[keep]
            population = f"every labelled pixel{on_land} in the boxes"
        elif area and land is not None:  # global, a seed different from training
            mask = land & np.isin(labels, classes)
            if include:
                mask &= _box_mask(labels.shape, include)
            total = int(mask.sum())
            rows, cols = random_pixels(mask, max_pixels, seed=seed)
            population = (
                "area-proportional: a simple random sample of the land pixels "
                "(Köppen-Geiger) of the protocol's classes"
            )
        else:
            balanced = True
            rows, cols = sample_pixels(
                labels,
                classes,
                max_pixels // len(classes),
                seed=seed,
                include=include,
                within=land,
            )
            population = f"class-balanced{on_land}: up to the same number of pixels per class"
        y = labels[rows, cols].astype(np.int64)
    if region is not None:
        keep = in_bboxes(rows, cols, [region])
        rows, cols, y = rows[keep], cols[keep], y[keep]
    if y.size == 0:
        boxes = [*bboxes, *([region] if region is not None else [])]
        where = f" inside {' and '.join(map(str, boxes))}" if boxes else ""
        raise EarthOpsError(f"no labelled pixels of classes {list(classes)}{where} in {source}")
    if total is None and not balanced:
        total = int(y.size)
    if y.size > max_pixels:
        pick = np.sort(np.random.default_rng(seed).choice(y.size, max_pixels, replace=False))
        rows, cols, y = rows[pick], cols[pick], y[pick]
    return EvalPixels(rows, cols, y, source, population, total)


def score_gate(
    model: GlobalLandCoverModel,
    scored: EvalPixels,
    features: np.ndarray,
    pred: np.ndarray,
    others: EvalPixels | None,
    other_classes: Sequence[int],
    land: np.ndarray,
    grid: FeatureGrid,
) -> dict[str, Any]:
    """The outside gate of ``model`` where ``evaluate`` scores it.

    ``inside_kept``: the share of the ``scored`` pixels it keeps; ``outside_caught``: the
    share of ``others`` (the land pixels of the other classes, drawn by the same rule; ``None``
    when there are none) it flags. When both samples stand for an area, ``map`` adds the
    accuracy of the map over all their land, with and without the gate
    (:func:`~earthops.usecases.landcover_global.outside.map_accuracy`).
    """
    kept = ~model.outside_arrays(features)
    out: dict[str, Any] = {
        "population": "the scored pixels, and the land pixels of the other classes "
        "drawn by the same rule",
        "classes": list(other_classes),
        "n_inside": int(kept.size),
        "inside_kept": round(float(kept.mean()), 4),
        "n_outside": 0,
    }
    caught = np.zeros(0, dtype=bool)
    if others is not None:
        caught = model.outside_arrays(grid.values(others.rows, others.cols))
        out.update(n_outside=int(caught.size), outside_caught=round(float(caught.mean()), 4))
    inside_total = scored.total
    outside_total = 0 if others is None else others.total
    inside_land = land[scored.rows, scored.cols]
    if inside_total is None or outside_total is None or not inside_land.any():
        return out  # a class-balanced sample stands for no area
    n_inside = round(inside_total * float(inside_land.mean()))
    n_outside = 0
    if others is not None:
        outside_land = land[others.rows, others.cols]
        n_outside = round(outside_total * float(outside_land.mean()))
        caught = caught[outside_land]
    figures = map_accuracy(
        kept[inside_land], (pred == scored.y)[inside_land], caught, n_inside, n_outside
    )
    figures["population"] = (
        "every land pixel (Köppen-Geiger) the scored pixels and the other classes' pixels "
        "stand for; a pixel of a class outside the protocol is right only as 'other land'"
    )
    return {**out, "map": figures}
