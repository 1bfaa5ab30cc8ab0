"""Fitting: members (and the ViT branch) on rows; inner folds → recipe → :class:`ReefRiskModel`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from earthops.errors import EarthOpsError
from earthops.features.reef_features import (
    SITE_COLUMN,
    TARGET_COLUMN,
    YEAR_COLUMN,
    ChipScaler,
    SurveyFeaturizer,
)
from earthops.logs import get_logger
from earthops.models.estimators import make_classifier, make_regressor

from .config import GRID_FEATURES, LGBM_PARAMS, SEVERITY_PARAMS, XGB_PARAMS, ReefConfig
from .model import Calibrator, DhwGridModel, ReefRiskModel, Stacker
from .selection import select_recipe
from .splits import forward_split

log = get_logger(__name__)


def _make_vit(params: dict[str, Any]) -> Any:
    from earthops.models.vit import ViTClassifier

    return ViTClassifier(**params)


class _Recipe:
    """Fit members (and the ViT branch) on a set of rows; predict member probabilities."""

    def __init__(self, config: ReefConfig, chips: np.ndarray | None) -> None:
        self.config = config
        self.chips = chips

    def params(self, kind: str) -> dict[str, Any]:
        base = XGB_PARAMS if kind == "xgboost" else LGBM_PARAMS
        return {**base, **(self.config.xgboost if kind == "xgboost" else self.config.lightgbm)}

    def fit(
        self, rows: pd.DataFrame, y: np.ndarray, pos: np.ndarray, kinds: list[str]
    ) -> dict[str, Any]:
        featurizer = SurveyFeaturizer(
            unknown=self.config.unknown_realm, include_lon=self.config.include_lon
        ).fit(rows)
        feats = featurizer.transform(rows)
        fitted: dict[str, Any] = {"featurizer": featurizer, "members": {}}
        for kind in kinds:
            fitted["members"][kind] = make_classifier(kind, **self.params(kind)).fit(feats, y)
        if self.chips is not None:
            scaler = ChipScaler().fit(self.chips[pos])
            fitted["chip_scaler"] = scaler
            fitted["vit"] = _make_vit(self.config.vit).fit(scaler.transform(self.chips[pos]), y)
        return fitted

    def predict(self, fitted: dict[str, Any], rows: pd.DataFrame, pos: np.ndarray) -> pd.DataFrame:
        feats = fitted["featurizer"].transform(rows)
        out = {k: m.predict_proba(feats)[:, 1] for k, m in fitted["members"].items()}
        if "vit" in fitted:
            chips = fitted["chip_scaler"].transform(self.chips[pos])
            out["vit"] = fitted["vit"].predict_proba(chips)[:, 1]
        return pd.DataFrame(out, index=rows.index)


def fit_selected(
    rows: pd.DataFrame,
    y: np.ndarray,
    pos: np.ndarray,
    until: int,
    config: ReefConfig,
    recipe: _Recipe,
) -> tuple[ReefRiskModel, dict[str, Any], pd.DataFrame, np.ndarray, list[dict[str, Any]]]:
    """Inner forward folds inside ``rows[pos]`` (years ≤ ``until``) → OOF → recipe choice;
    then the chosen recipe fitted on all of ``rows[pos]``."""
    years = rows[YEAR_COLUMN].to_numpy()[pos]
    sites = rows[SITE_COLUMN].to_numpy()[pos]
    sub_rows, sub_y = rows.iloc[pos], y[pos]
    oof_parts, fold_ids, oof_idx, report = [], [], [], []
    for k, origin in enumerate(config.origins(until)):
        tr, va, drop = forward_split(years, sites, origin, config.inner_horizon)
        if tr.size == 0 or va.size == 0 or len(np.unique(sub_y[va])) < 2:
            log.warning("inner fold skipped (empty or one class)", origin=origin)
            continue
        fitted = recipe.fit(sub_rows.iloc[tr], sub_y[tr], pos[tr], config.candidates)
        oof_parts.append(recipe.predict(fitted, sub_rows.iloc[va], pos[va]))
        fold_ids.append(np.full(va.size, k))
        oof_idx.append(va)
        report.append(
            {
                "origin": origin,
                "train": int(tr.size),
                "validate": int(va.size),
                "dropped_seen_sites": drop,
            }
        )
    if len(oof_parts) < 2:
        raise EarthOpsError(
            f"only {len(oof_parts)} usable inner fold(s) up to {until}; expected ≥ 2 "
            "(adjust inner_origins / inner_folds / test_after)"
        )
    oof = pd.concat(oof_parts)
    folds = np.concatenate(fold_ids)
    oof_y = sub_y[np.concatenate(oof_idx)]
    choice = select_recipe(oof, oof_y, folds, config.stack_min_gain)
    fitted = recipe.fit(sub_rows, sub_y, pos, list(config.candidates))
    model = assemble_model(fitted, config, choice, oof, oof_y, sub_rows, sub_y)
    model.train_until_ = int(until)
    return model, choice, oof, oof_y, report


def assemble_model(
    fitted: dict[str, Any],
    config: ReefConfig,
    choice: dict[str, Any],
    oof: pd.DataFrame,
    oof_y: np.ndarray,
    train_rows: pd.DataFrame,
    y_train: np.ndarray,
) -> ReefRiskModel:
    model = ReefRiskModel(config=config.model_dump(mode="json"))
    model.featurizer_ = fitted["featurizer"]
    model.members_ = fitted["members"]
    model.vit_ = fitted.get("vit")
    model.chip_scaler_ = fitted.get("chip_scaler")
    model.grid_path_ = str(config.grid) if config.grid is not None else None
    model.grid_variables_ = config.grid_variables
    model.chip_size_ = config.chip_size
    model.combiner_ = choice["combiner"]
    model.stacker_ = (
        Stacker(tuple(choice["stack_members"])).fit(oof, oof_y)
        if choice["combiner"] == "stack"
        else None
    )
    model.calibrator_ = Calibrator(choice["calibration"]).fit(choice["score"], oof_y)
    model.threshold_ = float(choice["threshold"])
    feats = model.featurizer_.transform(train_rows).to_numpy()
    sev_params = {
        **SEVERITY_PARAMS,
        **({"n_estimators": 80, "learning_rate": 0.1} if config.fast else {}),
    }
    model.severity_ = make_regressor("xgboost", **sev_params).fit(
        feats, train_rows[TARGET_COLUMN].to_numpy(np.float64)
    )
    model.grid_model_ = DhwGridModel(n_estimators=60 if config.fast else 150).fit(
        train_rows[GRID_FEATURES], y_train
    )
    model.train_sites_ = np.unique(train_rows[SITE_COLUMN].to_numpy())
    model.bleach_threshold_ = config.bleach_threshold
    model.dhw_threshold_ = config.dhw_threshold
    model.classes_ = np.array([0, 1])
    return model
