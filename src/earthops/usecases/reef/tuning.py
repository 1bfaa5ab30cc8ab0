"""The Optuna tuning problem: the XGBoost member on inner forward-in-time folds."""

from __future__ import annotations

from typing import Any

import numpy as np

from earthops.data.tables import read_bleaching_surveys
from earthops.features.reef_features import (
    SITE_COLUMN,
    YEAR_COLUMN,
    SurveyFeaturizer,
    bleaching_target,
    prepare_surveys,
)
from earthops.models.estimators import make_classifier
from earthops.usecases.base import TrainOptions

from .config import XGB_PARAMS, ReefConfig
from .splits import forward_split


def tuning_problem(options: TrainOptions) -> Any:
    """The XGBoost member on survey features, tuned on inner forward-in-time folds.

    Only training years (≤ ``test_after``) enter; each fold fits on years ≤ an origin and
    validates on the next ``inner_horizon`` years at unseen sites — this use case's own
    protocol, so the forward test years never reach a study.
    """
    import optuna
    from sklearn.pipeline import make_pipeline

    from earthops.models.tuning import TuningProblem, auroc_score

    config = ReefConfig.from_options(options)
    surveys = read_bleaching_surveys(options.dataset)
    rows, _ = prepare_surveys(surveys, str(options.dataset or "bleaching-surveys"))
    rows = rows.reset_index(drop=True)
    y_all = bleaching_target(rows, config.bleach_threshold).to_numpy()
    years, sites = rows[YEAR_COLUMN].to_numpy(), rows[SITE_COLUMN].to_numpy()
    train_pos, _, _ = forward_split(years, sites, config.test_after)
    X, y = rows.iloc[train_pos].reset_index(drop=True), y_all[train_pos]
    splits = []
    for origin in config.origins():
        fit, val, _ = forward_split(
            years[train_pos], sites[train_pos], origin, config.inner_horizon
        )
        if fit.size and val.size and np.unique(y[val]).size == 2:
            splits.append((fit, val))
    base = {**XGB_PARAMS, **config.xgboost}

    def space(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "n_estimators": trial.suggest_int("n_estimators", 60, 160 if config.fast else 600),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 8),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-2, 10.0, log=True),
        }

    def make(params: dict[str, Any]) -> Any:
        featurizer = SurveyFeaturizer(unknown=config.unknown_realm, include_lon=config.include_lon)
        return make_pipeline(featurizer, make_classifier("xgboost", **{**base, **params}))

    return TuningProblem(
        X=X, y=y, folds=None, splits=splits, make_estimator=make, search_space=space,
        score=auroc_score, metric="auroc",
    )  # fmt: skip
