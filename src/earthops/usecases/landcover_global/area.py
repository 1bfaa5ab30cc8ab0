"""Area-proportional probe, Bayes prior correction and the decision rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earthops.features.global_grid import GRID_SHAPE, FeatureGrid, extract_chips
from earthops.models.metrics import headline_figures
from earthops.usecases.landcover_global.config import PROTOCOLS
from earthops.usecases.landcover_global.labels import _box_mask, block_fold_table, block_ids
from earthops.usecases.landcover_global.metrics import classification_metrics
from earthops.usecases.landcover_global.samples import _Inputs, _Probe, _Sample


def land_mask(grid: FeatureGrid) -> np.ndarray:
    """CMG-grid mask of the pixels inside ``grid``'s window holding some Köppen-Geiger land."""
    layer = grid.spec.stored_names().index("koppen")
    r0, r1, c0, c1 = grid.spec.window()
    mask = np.zeros(GRID_SHAPE, dtype=bool)
    mask[r0:r1, c0:c1] = np.asarray(grid.data[layer]) > 0
    return mask


Population = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, cols, fold


def probe_sample(
    inputs: _Inputs, population: Population, data: _Sample, folds: np.ndarray
) -> _Probe:
    """Draw the :class:`_Probe` (``cfg.probe_pixels`` pixels of the :func:`map_population`,
    seeded) for the block folds of ``data``."""
    cfg, labels, grid = inputs.cfg, inputs.labels, inputs.grid
    rows, cols, fold = population
    classes = PROTOCOLS[cfg.protocol]
    y_all = labels[rows, cols].astype(np.int64)
    priors = np.stack(
        [prior_shift(y_all[fold != k], data.y[folds != k], classes) for k in range(cfg.n_folds)]
    )
    rng = np.random.default_rng(cfg.seed + 1)
    pick = np.sort(rng.choice(rows.size, min(cfg.probe_pixels, rows.size), replace=False))
    rows, cols = rows[pick], cols[pick]
    chips = extract_chips(rows, cols, cfg.chip_size) if data.chips is not None else None
    return _Probe(
        rows,
        cols,
        y_all[pick],
        grid.values(rows, cols),
        fold[pick],
        priors,
        int(y_all.size),
        prior_shift(y_all, data.y, classes),
        chips,
    )


def map_population(
    inputs: _Inputs,
    data: _Sample,
    folds: np.ndarray,
    classes: Sequence[int] | None = None,
) -> Population:
    """``(rows, cols, fold)`` of the map population: every land pixel (``inputs.land``, the
    :func:`land_mask`) of ``classes`` (default: the protocol's) outside the excluded boxes, in
    a block that has a fold."""
    cfg, labels = inputs.cfg, inputs.labels
    wanted = PROTOCOLS[cfg.protocol] if classes is None else classes
    population = inputs.land & np.isin(labels, wanted)
    if inputs.exclude:
        population &= ~_box_mask(labels.shape, inputs.exclude)
    rows, cols = np.nonzero(population)
    fold = block_fold_table(data.rows, data.cols, folds, cfg.block_deg)[
        block_ids(rows, cols, cfg.block_deg)
    ]
    keep = fold >= 0
    return rows[keep], cols[keep], fold[keep]


def add_area_extras(
    inputs: _Inputs, population: Population, data: _Sample, folds: np.ndarray
) -> tuple[_Sample, np.ndarray]:
    """The class-balanced ``data`` plus ``cfg.n_random`` pixels drawn uniformly from the
    :func:`map_population` of its folds (never a pixel already drawn), each in its block's
    fold.

    Drawing from the probe's population keeps that population — and so the area-proportional
    figures — the same with and without extras.
    """
    cfg, labels, grid = inputs.cfg, inputs.labels, inputs.grid
    rows, cols, fold = population
    width = GRID_SHAPE[1]
    candidates = np.flatnonzero(~np.isin(rows * width + cols, data.rows * width + data.cols))
    rng = np.random.default_rng(cfg.seed + 2)
    pick = np.sort(rng.choice(candidates, min(cfg.n_random, candidates.size), replace=False))
    r, c = rows[pick], cols[pick]
    chips = None
    if data.chips is not None:
        chips = np.concatenate([data.chips, extract_chips(r, c, cfg.chip_size)])
    extended = _Sample(
        np.concatenate([data.rows, r]),
        np.concatenate([data.cols, c]),
        np.concatenate([data.y, labels[r, c].astype(np.int64)]),
        np.concatenate([data.X, grid.values(r, c)]),
        chips,
        n_balanced=len(data.y),
    )
    return extended, np.concatenate([folds, fold[pick]])


def prior_shift(population: np.ndarray, sample: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Per-class factor population share / sample share (0 for classes never sampled)."""
    area = np.bincount(population, minlength=max(classes) + 1)[list(classes)]
    return _shift(area / max(area.sum(), 1), sample, classes)


def balance_shift(sample: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Per-class factor uniform share / sample share: a model fitted on ``sample`` decides as
    one fitted on a class-balanced sample (0 for classes never sampled)."""
    return _shift(np.full(len(classes), 1.0 / len(classes)), sample, classes)


def fold_balance_shifts(
    data: _Sample, folds: np.ndarray, n_folds: int, classes: Sequence[int]
) -> np.ndarray | None:
    """``(n_folds, classes)``: the :func:`balance_shift` of each fold's training rows, or
    ``None`` for a class-balanced sample (its balanced decision is the plain argmax)."""
    if not data.has_extras:
        return None
    return np.stack([balance_shift(data.y[folds != k], classes) for k in range(n_folds)])


def _shift(target: np.ndarray, sample: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    drawn = np.bincount(sample, minlength=max(classes) + 1)[list(classes)]
    return np.divide(
        target, drawn / max(drawn.sum(), 1), out=np.zeros(len(classes)), where=drawn > 0
    )


def decide(
    proba: np.ndarray, classes: Sequence[int], shift: np.ndarray | None = None
) -> np.ndarray:
    """Class labels: the argmax, prior-corrected by ``shift`` (per row or per class) if given."""
    weighted = proba if shift is None else proba * shift
    return np.asarray(classes)[np.argmax(weighted, axis=1)]


def area_proportional_metrics(
    probe: _Probe,
    proba: np.ndarray,
    classes: Sequence[int],
    decision: str,
    balance: np.ndarray | None = None,
) -> dict[str, Any]:
    """Scores on the probe: the balanced decision (shifted by ``balance[fold]``, see
    :func:`fold_balance_shifts`), the prior-corrected one, and which of the two the logged
    model uses (no scores when the probe is empty: no land pixels to map)."""
    head = {
        "population": "land pixels (Köppen-Geiger) of the protocol's classes in held-out "
        "blocks, simple random sample, each scored by the model of its fold",
        "population_pixels": probe.population,
        "n_samples": int(probe.y.size),
        "model_decision": decision,
    }
    if probe.y.size == 0:
        return head
    return {
        **head,
        **{
            key: headline_figures(
                classification_metrics(
                    probe.y, probe_decision(probe, proba, classes, rule, balance), classes
                )
            )
            for key, rule in (("balanced_decision", "balanced"), ("prior_corrected", "area"))
        },
    }


def probe_decision(
    probe: _Probe,
    proba: np.ndarray,
    classes: Sequence[int],
    decision: str,
    balance: np.ndarray | None = None,
) -> np.ndarray:
    """The probe's labels under ``decision``: ``area`` shifts each pixel's probabilities by
    its fold's prior correction, ``balanced`` by ``balance[fold]`` (when given)."""
    if decision == "area":
        return decide(proba, classes, probe.priors[probe.fold])
    return decide(proba, classes, None if balance is None else balance[probe.fold])


def on_land_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    on_land: np.ndarray,
    classes: Sequence[int],
    baseline: np.ndarray | None = None,
) -> dict[str, Any]:
    """The headline's figures on its class-balanced rows that lie on land (some Köppen-Geiger
    land): without the open-ocean water samples, which any model gets right."""
    out: dict[str, Any] = {
        "rows": "class-balanced rows on Köppen-Geiger land (open-ocean water left out)",
        "n_samples": int(on_land.sum()),
        "n_open_water": int((~on_land).sum()),
    }
    if not on_land.any():
        return out
    out.update(headline_figures(classification_metrics(y[on_land], pred[on_land], classes)))
    if baseline is not None:
        out["baseline"] = headline_figures(
            classification_metrics(y[on_land], baseline[on_land], classes)
        )
    return out
