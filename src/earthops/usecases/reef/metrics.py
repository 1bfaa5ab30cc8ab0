"""Binary, DHW-baseline and severity metrics; gains over the baseline; the F1 threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from earthops.features.reef_features import DHW_COLUMN, dhw_rule


def _safe(fn: Any, y: np.ndarray, p: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return float(fn(y, p))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """The DESIGN keys for probabilities ``p`` of bleaching (F1 at ``p ≥ threshold``)."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    return {
        "auroc": _safe(roc_auc_score, y, p),
        "average_precision": _safe(average_precision_score, y, p),
        "f1": float(f1_score(y, (p >= threshold).astype(int), zero_division=0)),
        "bleach_risk_p90": float(np.quantile(p, 0.9)) if p.size else None,
        "brier": float(brier_score_loss(y, p)) if p.size else None,
        "n": int(y.size),
        "prevalence": float(y.mean()) if y.size else None,
    }


def baseline_metrics(rows: pd.DataFrame, y: np.ndarray, dhw_threshold: float) -> dict[str, Any]:
    """NOAA DHW rule on ``rows`` (same keys; its 0/1 output is its probability)."""
    out = binary_metrics(y, dhw_rule(rows, dhw_threshold), 0.5)
    out["rule"] = f"{DHW_COLUMN} >= {dhw_threshold} degC-weeks"
    return out


def severity_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    rho = spearmanr(truth, pred).statistic if truth.size > 2 and np.std(truth) > 0 else np.nan
    return {
        "mae": float(mean_absolute_error(truth, pred)),
        "rmse": float(np.sqrt(np.mean((truth - pred) ** 2))),
        "r2": float(r2_score(truth, pred)) if truth.size > 1 else None,
        "spearman": float(rho) if np.isfinite(rho) else None,
    }


def _gains(metrics: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    def diff(key: str) -> float | None:
        a, b = metrics.get(key), base.get(key)
        return None if a is None or b is None else float(a - b)

    return {"auroc_gain_vs_dhw": diff("auroc"), "f1_gain_vs_dhw": diff("f1")}


def best_f1_threshold(y: np.ndarray, p: np.ndarray, folds: np.ndarray | None = None) -> float:
    """Threshold maximising F1 over the quantiles of ``p`` (ties: the lowest).

    With ``folds``, the mean of the per-fold F1 (every validation period weighs the same, so one
    mass-bleaching year with many surveys does not set the threshold for all).
    """
    candidates = np.unique(np.quantile(p, np.linspace(0.01, 0.99, 99)))
    groups = (
        [np.ones(y.size, dtype=bool)] if folds is None else [folds == f for f in np.unique(folds)]
    )

    def f1(truth: np.ndarray, pred: np.ndarray) -> float:
        tp = np.count_nonzero(truth & pred)
        denom = np.count_nonzero(truth) + np.count_nonzero(pred)
        return 2.0 * tp / denom if denom else 0.0

    yb = np.asarray(y).astype(bool)

    def score(t: float) -> float:
        return float(np.mean([f1(yb[g], p[g] >= t) for g in groups]))

    scores = [score(t) for t in candidates]
    return float(candidates[int(np.argmax(scores))])
