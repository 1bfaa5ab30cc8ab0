"""The tuning problem: the LightGBM member on the series features, on stratified folds."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline

from earthops.data.samples import read_mod13q1_samples
from earthops.features.timeseries import TimeSeriesFeatures
from earthops.models.estimators import make_classifier
from earthops.usecases.base import TrainOptions
from earthops.usecases.landcover_timeseries.config import TrainConfig, protocol_layout
from earthops.usecases.landcover_timeseries.samples import sample_rows


def tuning_problem(options: TrainOptions) -> Any:
    """The LightGBM member on the series features, tuned on stratified folds.

    The folds use another shuffle seed than the reporting CV; this use case has no separate
    test set, so its CV metrics after tuning carry some selection optimism.
    """
    import optuna

    from earthops.models.tuning import TuningProblem, macro_f1_score

    cfg = TrainConfig.from_options(options)
    samples = read_mod13q1_samples(options.dataset)
    bands, index = protocol_layout(cfg.protocol, samples.bands, samples.n_times)
    X, y = sample_rows(samples, bands, index), np.asarray(samples.labels)
    folds = np.full(len(y), -1)
    splitter = StratifiedKFold(n_splits=cfg.n_folds, shuffle=True, random_state=cfg.seed + 1)
    for k, (_, val) in enumerate(splitter.split(X, y)):
        folds[val] = k
    base = dict(cfg.lgbm_params)

    def space(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "n_estimators": trial.suggest_int("n_estimators", 30, 120 if options.fast else 600),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 63),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 40),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-2, 10.0, log=True),
        }

    def make(params: dict[str, Any]) -> Any:
        return make_pipeline(
            TimeSeriesFeatures(bands=bands, n_dates=len(index)),
            make_classifier("lightgbm", **{**base, **params}),
        )

    return TuningProblem(
        X=X, y=y, folds=folds, make_estimator=make, search_space=space,
        score=macro_f1_score, metric="macro_f1",
    )  # fmt: skip
