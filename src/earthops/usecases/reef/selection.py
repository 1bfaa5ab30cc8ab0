"""Recipe selection on inner-fold OOF probabilities: combiner, calibration, F1 threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

from .config import CALIBRATIONS
from .metrics import _safe, best_f1_threshold
from .model import Calibrator, Stacker


def _fold_auroc(y: np.ndarray, p: np.ndarray, folds: np.ndarray) -> float:
    values = [_safe(roc_auc_score, y[folds == f], p[folds == f]) for f in np.unique(folds)]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def _lofo(fit_predict: Any, folds: np.ndarray) -> np.ndarray:
    """Leave-one-fold-out predictions: ``fit_predict(train_mask, test_mask) -> scores``."""
    out = np.full(folds.size, np.nan)
    for f in np.unique(folds):
        test = folds == f
        out[test] = fit_predict(~test, test)
    return out


def select_recipe(
    oof: pd.DataFrame, y: np.ndarray, folds: np.ndarray, min_gain: float
) -> dict[str, Any]:
    """Choose combiner, calibration and F1 threshold from inner-fold OOF probabilities."""
    scores: dict[str, np.ndarray] = {m: oof[m].to_numpy(np.float64) for m in oof.columns}
    stacks: dict[str, tuple[str, ...]] = {}
    tabular = tuple(m for m in oof.columns if m != "vit")
    if len(tabular) >= 2:
        stacks["stack"] = tabular
    if "vit" in oof.columns:
        stacks["stack"] = (*tabular, "vit")
    for name, members in stacks.items():
        scores[name] = _lofo(
            lambda tr, te, members=members: Stacker(members).fit(oof[tr], y[tr]).predict(oof[te]),
            folds,
        )
    table = {
        name: {
            "auroc_mean_fold": _fold_auroc(y, s, folds),
            "auroc_pooled": _safe(roc_auc_score, y, s),
            "brier_pooled": float(brier_score_loss(y, np.clip(s, 0, 1))),
        }
        for name, s in scores.items()
    }
    singles = [m for m in oof.columns if m != "vit"] or list(oof.columns)
    best_single = max(singles, key=lambda m: table[m]["auroc_mean_fold"])
    chosen = best_single
    if "stack" in scores and (
        table["stack"]["auroc_mean_fold"] >= table[best_single]["auroc_mean_fold"] + min_gain
    ):
        chosen = "stack"
    score = scores[chosen]
    calib: dict[str, float] = {}
    calibrated: dict[str, np.ndarray] = {}
    for method in CALIBRATIONS:
        cal = _lofo(
            lambda tr, te, method=method: (
                Calibrator(method).fit(score[tr], y[tr]).transform(score[te])
            ),
            folds,
        )
        calibrated[method] = cal
        calib[method] = float(brier_score_loss(y, np.clip(cal, 0, 1)))
    method = min(calib, key=calib.get)  # type: ignore[arg-type]
    threshold = best_f1_threshold(y, calibrated[method], folds)
    return {
        "combiner": chosen,
        "stack_members": list(stacks.get("stack", ())),
        "calibration": method,
        "threshold": threshold,
        "candidates": table,
        "calibration_brier_lofo": calib,
        "oof_f1_at_threshold": float(f1_score(y, (calibrated[method] >= threshold).astype(int))),
        "score": score,
    }
