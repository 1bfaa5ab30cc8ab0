"""Optuna tuning: shared studies across worker processes, pruning, nested MLflow runs."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any, ClassVar

import mlflow
import numpy as np
import optuna
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from earthops.errors import EarthOpsError
from earthops.models import tuning

N_PER_WORKER = 12


def _tiny_objective(trial: optuna.Trial) -> float:
    """Cheap objective with fold-wise reports (so the pruner has something to judge)."""
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_int("y", 0, 5)
    value = 0.0
    for step in range(3):
        value = -((x - 2.0) ** 2) - (y - 3) ** 2 - 0.1 * step
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def _worker(storage_url: str, study: str, n_trials: int) -> None:
    tuning.optimize(study, _tiny_objective, n_trials, storage_url=storage_url)


def test_two_workers_share_one_study_without_losing_or_duplicating(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study_name = "two-workers"
    tuning.load_study(study_name, storage_url=url)  # create the schema once, up front
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(url, study_name, N_PER_WORKER)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    trials = optuna.load_study(study_name=study_name, storage=url).get_trials(deepcopy=False)
    assert len(trials) == 2 * N_PER_WORKER, "a trial was lost or an extra one appeared"
    assert sorted(t.number for t in trials) == list(range(2 * N_PER_WORKER))
    assert all(t.state.is_finished() for t in trials)
    params = {(round(t.params["x"], 12), t.params["y"]) for t in trials}
    assert len(params) == len(trials), "two workers evaluated the same parameters"
    summary = tuning.summarize(optuna.load_study(study_name=study_name, storage=url))
    assert summary["n_trials"] == 2 * N_PER_WORKER
    assert summary["n_complete"] + summary["n_pruned"] == 2 * N_PER_WORKER


# ------------------------------------------------------------------------------ a real study
class TinyReef:
    """Bleaching yes/no from four survey covariates; only training years enter the study."""

    name = "tiny-reef-tuning"
    primary_metric = "auroc"
    gate: ClassVar[dict[str, float]] = {}

    def dataset_refs(self, options: Any) -> list:
        from earthops.data.catalog import dataset_ref

        return [dataset_ref("bleaching-surveys")]

    def tuning_problem(self, options: Any) -> tuning.TuningProblem:
        from earthops.data.tables import read_bleaching_surveys

        rows = read_bleaching_surveys().dropna(subset=["avg.bleach"])
        rows = rows[rows["Date_Year"] <= 2010]  # the test years (> 2010) never enter a study
        X = rows[["Temp", "SSTA_DHW", "Turbidity", "Distance_to_Shore"]]
        y = (rows["avg.bleach"] > 10).astype(int).to_numpy()
        folds = rows["Site_ID"].to_numpy() % 3  # grouped by site

        def space(trial: optuna.Trial) -> dict[str, Any]:
            return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}

        return tuning.TuningProblem(
            X=X,
            y=y,
            folds=folds,
            make_estimator=lambda p: make_pipeline(
                SimpleImputer(), StandardScaler(), LogisticRegression(C=p["C"], max_iter=200)
            ),
            search_space=space,
            score=lambda est, Xv, yv: roc_auc_score(yv, est.predict_proba(Xv)[:, 1]),
            metric="auroc",
        )


def test_tune_logs_nested_trials_and_best_params(
    monkeypatch: pytest.MonkeyPatch, mirror: Path
) -> None:
    from earthops.registry.tracking import configure
    from earthops.usecases import _USECASES

    monkeypatch.setitem(_USECASES, TinyReef.name, f"{__name__}:TinyReef")
    result = tuning.tune(TinyReef.name, n_trials=4, study_name="tiny", seed=7)

    assert result["n_trials"] == 4 and result["n_complete"] >= 1
    assert 0.5 < result["best_value"] <= 1.0
    configure()
    runs = mlflow.search_runs(experiment_names=[TinyReef.name])
    parent = runs[runs["run_id"] == result["parent_run_id"]].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == result["parent_run_id"]]
    assert len(children) == 4, "every trial must be a nested run of the tuning run"
    assert float(parent["params.best.C"]) == pytest.approx(result["best_params"]["C"])
    assert float(parent["metrics.best_cv_auroc"]) == pytest.approx(result["best_value"])
    assert set(children["tags.optuna.state"]) <= {"COMPLETE", "PRUNED"}

    # a second worker joins the same study: trials accumulate, numbering continues
    again = tuning.tune(TinyReef.name, n_trials=1, study_name="tiny", seed=8)
    assert again["n_trials"] == 5
    assert again["best_value"] >= result["best_value"]


def test_pruning_stops_bad_trials_early(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    calls: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(4):
            calls.append(step)
            trial.report(x, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    study = tuning.optimize("prune", objective, 14, storage_url=url, seed=0)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.PRUNED in states
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(len(t.intermediate_values) < 4 for t in pruned)
    assert len(calls) < 14 * 4


def test_bad_problems_and_arguments_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EarthOpsError, match="expected equal lengths"):
        tuning.TuningProblem(
            X=np.zeros((4, 2)),
            y=np.zeros(3),
            folds=np.zeros(4),
            make_estimator=dict,
            search_space=lambda t: {},
            score=lambda *a: 0.0,
            metric="m",
        )
    with pytest.raises(EarthOpsError, match="at least 2 CV folds"):
        tuning.TuningProblem(
            X=np.zeros((4, 2)),
            y=np.zeros(4),
            folds=np.zeros(4),
            make_estimator=dict,
            search_space=lambda t: {},
            score=lambda *a: 0.0,
            metric="m",
        )
    with pytest.raises(EarthOpsError, match="positive number of trials"):
        tuning.optimize("s", _tiny_objective, 0)

    class NoSpace:
        name = "no-space"

    with pytest.raises(EarthOpsError, match="declares no search space"):
        tuning.problem_for(NoSpace(), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("usecase", "member", "space"),
    [
        (
            "landcover-timeseries",
            "lgbm_params",
            {"n_estimators", "learning_rate", "num_leaves", "min_child_samples",
             "colsample_bytree", "reg_lambda"},
        ),
        (
            "reef-bleaching",
            "xgboost",
            {"n_estimators", "learning_rate", "max_depth", "min_child_weight", "subsample",
             "colsample_bytree"},
        ),
    ],
)  # fmt: skip
def test_real_use_cases_tune_on_their_data_and_feed_training(
    usecase: str, member: str, space: set[str], mirror: Path
) -> None:
    """``earthops tune`` on the real samples / surveys: trials run on the use case's own
    folds, the lineage names its data, and the best parameters are valid training params."""
    from earthops.registry.tracking import run_datasets
    from earthops.usecases import get_usecase
    from earthops.usecases.base import TrainOptions

    result = tuning.tune(usecase, n_trials=2, fast=True, seed=3)
    assert result["n_trials"] == 2 and result["n_complete"] + result["n_pruned"] == 2
    assert result["n_complete"] >= 1 and 0.5 < result["best_value"] <= 1.0
    assert space <= set(result["best_params"])
    usecase_obj = get_usecase(usecase)
    expected = {r.name: r.digest for r in usecase_obj.dataset_refs(TrainOptions(fast=True))}
    assert run_datasets(result["parent_run_id"]) == expected  # what it tuned on, by digest
    children = mlflow.search_runs(
        experiment_names=[usecase],
        filter_string=f"tags.mlflow.parentRunId = '{result['parent_run_id']}'",
    )
    assert len(children) == 2
    best = {k: result["best_params"][k] for k in space}
    usecase_obj.tuning_problem(TrainOptions(fast=True, params={member: best}))  # accepted
    with pytest.raises(EarthOpsError, match=r"params for member '\w+': unknown .*'bogus'"):
        usecase_obj.tuning_problem(TrainOptions(fast=True, params={member: {**best, "bogus": 1}}))
