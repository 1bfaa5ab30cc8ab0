"""Validation reports: every candidate on the test fold, and rolling-origin robustness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from earthops.features.reef_features import DHW_COLUMN, SITE_COLUMN, YEAR_COLUMN

from .config import GRID_FEATURES, ReefConfig
from .fitting import _Recipe
from .metrics import _safe, baseline_metrics, binary_metrics
from .model import ReefRiskModel, Stacker
from .splits import forward_split


def candidate_comparison(
    model: ReefRiskModel,
    test_probs: pd.DataFrame,
    test_rows: pd.DataFrame,
    y_test: np.ndarray,
    choice: dict[str, Any],
    config: ReefConfig,
    oof: pd.DataFrame,
    oof_y: np.ndarray,
) -> dict[str, Any]:
    """Every candidate on the final test fold — reported only, never used to choose."""
    test: dict[str, Any] = {}
    for name in test_probs.columns:
        p = test_probs[name].to_numpy()
        test[name] = {
            "auroc": _safe(roc_auc_score, y_test, p),
            "brier": float(brier_score_loss(y_test, p)),
        }
    if choice["stack_members"]:
        stacker = model.stacker_ or Stacker(tuple(choice["stack_members"])).fit(oof, oof_y)
        p = stacker.predict(test_probs)
        test["stack"] = {
            "auroc": _safe(roc_auc_score, y_test, p),
            "brier": float(brier_score_loss(y_test, p)),
        }
    dhw = test_rows[DHW_COLUMN].to_numpy(np.float64)
    test["dhw_continuous"] = {"auroc": _safe(roc_auc_score, y_test, dhw)}
    p_grid = model.grid_model_.predict_proba(test_rows[GRID_FEATURES])[:, 1]
    test["dhw_grid_model"] = {
        "auroc": _safe(roc_auc_score, y_test, p_grid),
        "brier": float(brier_score_loss(y_test, p_grid)),
    }
    return {
        "chosen": choice["combiner"],
        "calibration": choice["calibration"],
        "selection": "inner forward folds (training years only): mean per-fold AUROC; "
        f"stack only if >= best single + {config.stack_min_gain}",
        "inner_oof": choice["candidates"],
        "calibration_brier_lofo": choice["calibration_brier_lofo"],
        "oof_f1_at_threshold": choice["oof_f1_at_threshold"],
        "test_fold_report_only": test,
    }


def rolling_origin(
    rows: pd.DataFrame,
    y: np.ndarray,
    recipe: _Recipe,
    model: ReefRiskModel,
    config: ReefConfig,
) -> list[dict[str, Any]]:
    """Rolling-origin robustness: the chosen recipe refitted at each origin (calibration and
    threshold from the main run), scored on the next years' unseen sites vs the DHW rule."""
    years = rows[YEAR_COLUMN].to_numpy()
    sites = rows[SITE_COLUMN].to_numpy()
    kinds = list(model.members_)
    out = []
    for origin in config.rolling_origins:
        tr, te, _ = forward_split(years, sites, origin, config.rolling_horizon)
        if tr.size < 200 or te.size < 50 or len(np.unique(y[te])) < 2:
            continue
        fitted = recipe.fit(rows.iloc[tr], y[tr], tr, kinds)
        probs = recipe.predict(fitted, rows.iloc[te], te)
        raw = (
            model.stacker_.predict(probs)
            if model.combiner_ == "stack"
            else probs[model.combiner_].to_numpy()
        )
        m = binary_metrics(y[te], model.calibrator_.transform(raw), model.threshold_)
        b = baseline_metrics(rows.iloc[te], y[te], config.dhw_threshold)
        out.append(
            {
                "origin": origin,
                "test_years": [origin + 1, origin + config.rolling_horizon],
                "n": m["n"],
                "auroc": m["auroc"],
                "f1": m["f1"],
                "brier": m["brier"],
                "baseline_auroc": b["auroc"],
                "baseline_f1": b["f1"],
            }
        )
    return out
