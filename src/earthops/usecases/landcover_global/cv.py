"""Spatial block cross-validation: member fits, out-of-fold and stacked probabilities."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earthops.features.global_grid import pixel_lonlat
from earthops.logs import progress
from earthops.models.selection import log_probs, make_stacker
from earthops.usecases.landcover_global.config import TrainConfig
from earthops.usecases.landcover_global.model import _align, _vit_input
from earthops.usecases.landcover_global.samples import _Probe, _Sample


def _fit_member(
    kind: str, cfg: TrainConfig, X: np.ndarray, chips: np.ndarray | None, y: np.ndarray
) -> Any:
    est = cfg.member(kind)
    if kind == "vit":
        return est.fit(_vit_input(chips), y)
    return est.fit(X, y)


def _member_proba(
    kind: str, est: Any, X: np.ndarray, chips: np.ndarray | None, classes: Sequence[int]
) -> np.ndarray:
    raw = est.predict_proba(_vit_input(chips) if kind == "vit" else X)
    return _align(raw, est.classes_, classes)


def _oof(
    kind: str,
    cfg: TrainConfig,
    data: _Sample,
    folds: np.ndarray,
    classes: Sequence[int],
    probe: _Probe,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of one model kind under the block folds: on the balanced
    sample and on the area-proportional probe."""
    oof = np.zeros((len(data.y), len(classes)))
    oof_probe = np.zeros((len(probe.y), len(classes)))
    with progress() as bar:
        task = bar.add_task(f"block CV {kind}", total=cfg.n_folds)
        for k in range(cfg.n_folds):
            test = folds == k
            est = _fit_member(
                kind,
                cfg,
                data.X[~test],
                None if data.chips is None else data.chips[~test],
                data.y[~test],
            )
            oof[test] = _member_proba(
                kind, est, data.X[test], None if data.chips is None else data.chips[test], classes
            )
            held = probe.fold == k
            oof_probe[held] = _member_proba(
                kind,
                est,
                probe.X[held],
                None if probe.chips is None else probe.chips[held],
                classes,
            )
            bar.advance(task)
    return oof, oof_probe


def _stacked_oof(
    member_oof: Sequence[np.ndarray],
    member_probe: Sequence[np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    probe_folds: np.ndarray,
    classes: Sequence[int],
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Block-CV probabilities of the stacker fitted on the members' out-of-fold outputs, on
    the balanced sample and on the probe (fold ``k``'s stacker never sees fold ``k``)."""
    Z, Zp = log_probs(member_oof), log_probs(member_probe)
    out = np.zeros((len(y), len(classes)))
    out_probe = np.zeros((len(probe_folds), len(classes)))
    for k in np.unique(folds):
        test, held = folds == k, probe_folds == k
        meta = make_stacker(seed=seed).fit(Z[~test], y[~test])
        out[test] = _align(meta.predict_proba(Z[test]), meta.classes_, classes)
        if held.any():
            out_probe[held] = _align(meta.predict_proba(Zp[held]), meta.classes_, classes)
    return out, out_probe


def _log_training_pixels(
    rows: np.ndarray, cols: np.ndarray, y: np.ndarray, folds: np.ndarray, name: str
) -> None:
    """Training pixels (grid pixel, lon/lat, label, block-CV fold) as the run artifact
    ``name`` (a ``.csv.gz``)."""
    import mlflow

    lon, lat = pixel_lonlat(rows, cols)
    frame = pd.DataFrame(
        {"row": rows, "col": cols, "lon": lon, "lat": lat, "label": y, "fold": folds}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path))
