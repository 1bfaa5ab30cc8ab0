"""Spatial block cross-validation of point samples: how a model does away from its samples.

Random (stratified) folds put samples of the same field, farm or revisited place on both
sides of a split, so they measure how well a model recognises places it has seen. Here the
samples are grouped into ``block_deg`` × ``block_deg`` lon/lat blocks and whole blocks are
assigned to folds (:class:`~sklearn.model_selection.StratifiedGroupKFold`), as in Roberts et
al. 2017 ("Cross-validation strategies for data with temporal, spatial, hierarchical, or
phylogenetic structure"). A class whose samples all lie in one block is never seen in
training when that block is tested: such classes are named, because no random-fold score
says anything about them elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold

from earthops.errors import EarthOpsError
from earthops.logs import get_logger, progress
from earthops.models.metrics import classification_metrics, headline_figures

log = get_logger(__name__)


def lonlat_blocks(coords: np.ndarray, block_deg: float) -> np.ndarray:
    """Block id of each ``(lon, lat)`` row on a ``block_deg`` grid anchored at (0°, 0°)."""
    if not block_deg > 0:
        raise EarthOpsError(f"spatial block size must be > 0 degrees, got {block_deg}")
    cells = np.floor(np.asarray(coords, dtype=np.float64) / block_deg).astype(np.int64)
    return np.unique(cells, axis=0, return_inverse=True)[1].ravel()


def sampling_sites(coords: np.ndarray, y: np.ndarray, blocks: np.ndarray) -> dict[str, Any]:
    """Per class: samples, distinct places (to 1e-5°) and spatial blocks they come from."""
    places = np.unique(np.round(coords, 5), axis=0, return_inverse=True)[1].ravel()
    out = {}
    for c in np.unique(y):
        member = y == c
        out[str(c)] = {
            "samples": int(member.sum()),
            "places": int(np.unique(places[member]).size),
            "blocks": int(np.unique(blocks[member]).size),
        }
    return out


def spatial_block_cv(
    X: np.ndarray,
    y: np.ndarray,
    coords: np.ndarray,
    make_member: Callable[[str], Any],
    kinds: Sequence[str],
    *,
    n_folds: int = 5,
    block_deg: float = 0.5,
    seed: int = 42,
) -> dict[str, Any]:
    """Out-of-fold figures of each member kind under spatial block folds.

    ``make_member(kind)`` returns an unfitted estimator. Returns the validation description,
    the block count, per-kind headline figures with per-class recall, the sampling sites per
    class and the classes confined to a single block.
    """
    y = np.asarray(y)
    blocks = lonlat_blocks(coords, block_deg)
    n_blocks = int(np.unique(blocks).size)
    if n_blocks < n_folds:
        raise EarthOpsError(
            f"spatial block CV needs >= {n_folds} blocks of {block_deg}°, the samples span "
            f"{n_blocks}"
        )
    classes = np.unique(y)
    folds = np.full(len(y), -1)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(X, y, blocks)):
        folds[test] = k
    models: dict[str, Any] = {}
    preds = {kind: np.empty(len(y), dtype=classes.dtype) for kind in kinds}
    with progress() as bar:
        task = bar.add_task(f"spatial block CV ({block_deg}°)", total=n_folds * len(kinds))
        for k in range(n_folds):
            train, test = folds != k, folds == k
            for kind in kinds:
                est = clone(make_member(kind)).fit(X[train], y[train])
                preds[kind][test] = est.predict(X[test])
                bar.advance(task)
    sites = sampling_sites(coords, y, blocks)
    single = [c for c, s in sites.items() if s["blocks"] == 1]
    spread = ~np.isin(y.astype(str), single)
    for kind, pred in preds.items():
        metrics = classification_metrics(y, pred, list(classes))
        models[kind] = {
            **headline_figures(metrics),
            # what the score is on the classes that a held-out block can have seen elsewhere
            "overall_accuracy_multi_block": (
                round(float(np.mean(pred[spread] == y[spread])), 4) if spread.any() else None
            ),
            "recall": {str(c): round(v["recall"], 4) for c, v in metrics["per_class"].items()},
        }
    if single:
        log.warning(
            "spatial_cv.single_block_classes",
            classes=single,
            block_deg=block_deg,
            hint="every sample of these classes lies in one block: random-fold scores for them "
            "measure revisits of that place, not other places",
        )
    return {
        "validation": (
            f"StratifiedGroupKFold, {n_folds} folds of whole {block_deg}° lon/lat blocks "
            "(a block never split), pooled out-of-fold predictions"
        ),
        "block_deg": block_deg,
        "n_blocks": n_blocks,
        "models": models,
        "sites": sites,
        "single_block_classes": single,
    }
