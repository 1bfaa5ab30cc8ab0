"""Bayesian hyper-parameter tuning: Optuna TPE + median pruning over a use case's CV folds.

A use case takes part by exposing ``tuning_problem(options) -> TuningProblem`` (duck-typed;
the generic layers never import a use case).
The problem's folds must come from the *training* part of the use case's honest split:
the test rows never enter a study.

Every trial is a nested MLflow run under one parent run per worker; the parent run records
the best parameters. Studies live in ``settings.optuna_storage_url`` (SQLite by default);
several workers (processes or machines) sharing an RDB URL and a study name cooperate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage

from earthops.errors import EarthOpsError
from earthops.logs import get_logger
from earthops.settings import get_settings
from earthops.usecases.base import TrainOptions

log = get_logger(__name__)

SearchSpace = Callable[[optuna.Trial], dict[str, Any]]
Scorer = Callable[[Any, Any, np.ndarray], float]


@dataclass
class TuningProblem:
    """What a study needs: training rows, their CV folds, a factory, a scorer, a space.

    ``folds`` holds a fold id per row of ``X``; fold ``k`` is validated on a model fitted on the
    other folds (spatial blocks, grouped sites). For forward-in-time validation pass ``splits``
    instead: positional ``(fit_rows, validation_rows)`` pairs, each fitting only on the past.
    ``score(estimator, X_val, y_val)`` is larger-is-better (``metric`` names it).
    """

    X: Any
    y: np.ndarray
    folds: np.ndarray | None
    make_estimator: Callable[[dict[str, Any]], Any]
    search_space: SearchSpace
    score: Scorer
    metric: str
    fixed_params: dict[str, Any] = field(default_factory=dict)
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.splits is None:
            if self.folds is None or len(self.folds) != n or _n_rows(self.X) != n:
                raise EarthOpsError(
                    f"tuning problem: X has {_n_rows(self.X)} rows, y {n}, folds "
                    f"{None if self.folds is None else len(self.folds)}; expected equal lengths"
                )
            ids = np.unique(self.folds)
            self.splits = [
                (np.flatnonzero(self.folds != k), np.flatnonzero(self.folds == k)) for k in ids
            ]
        if _n_rows(self.X) != n:
            raise EarthOpsError(
                f"tuning problem: X has {_n_rows(self.X)} rows, y {n}; expected equal lengths"
            )
        if len(self.splits) < 2:
            raise EarthOpsError("tuning problem: expected at least 2 CV folds")


def _n_rows(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def _take(X: Any, mask: np.ndarray) -> Any:
    return X.iloc[mask] if hasattr(X, "iloc") else X[mask]


def problem_for(usecase: Any, options: TrainOptions) -> TuningProblem:
    """The use case's tuning problem, from its ``tuning_problem(options)`` method."""
    hook = getattr(usecase, "tuning_problem", None)
    if not callable(hook):
        raise EarthOpsError(
            f"use case '{usecase.name}' declares no search space; expected a "
            "`tuning_problem(options)` method"
        )
    return hook(options)


# ------------------------------------------------------------------------------ storage
def storage(url: str | None = None) -> RDBStorage:
    """Optuna RDB storage for ``url`` (default: the settings' SQLite file)."""
    url = url or get_settings().optuna_storage_url
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        # concurrent workers on one SQLite file: wait for the write lock instead of failing
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return RDBStorage(url, **kwargs)


def load_study(
    study_name: str,
    *,
    storage_url: str | None = None,
    direction: str = "maximize",
    seed: int | None = None,
    n_startup_trials: int = 5,
) -> optuna.Study:
    """Create or join a study: TPE sampler and a median pruner on fold-wise intermediate values."""
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=n_startup_trials, constant_liar=True
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=1)
    return optuna.create_study(
        study_name=study_name,
        storage=storage(storage_url),
        sampler=sampler,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )


def worker_seed(seed: int | None = None) -> int:
    """Sampler seed: explicit, else distinct per worker process (workers must not repeat)."""
    if seed is not None:
        return seed
    return (get_settings().seed * 1_000_003 + os.getpid()) % (2**31)


def optimize(
    study_name: str,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    *,
    storage_url: str | None = None,
    direction: str = "maximize",
    seed: int | None = None,
) -> optuna.Study:
    """Run ``n_trials`` of ``objective`` in this worker on the shared study ``study_name``."""
    if n_trials < 1:
        raise EarthOpsError(f"--trials {n_trials}: expected a positive number of trials")
    study = load_study(
        study_name, storage_url=storage_url, direction=direction, seed=worker_seed(seed)
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, gc_after_trial=True)
    return study


# ------------------------------------------------------------------------------ objective
def cv_objective(
    problem: TuningProblem, usecase_name: str, *, track: bool = True
) -> Callable[[optuna.Trial], float]:
    """Objective: mean validation score over folds, reported after each fold (for pruning)."""
    import mlflow

    from earthops.registry.tracking import training_run

    splits = problem.splits or []

    def objective(trial: optuna.Trial) -> float:
        params = {**problem.fixed_params, **problem.search_space(trial)}
        scores: list[float] = []
        with _maybe_run(track, usecase_name, trial.number, training_run):
            if track:
                mlflow.log_params({**params, "trial": trial.number})
            for step, (fit_rows, val_rows) in enumerate(splits):
                est = problem.make_estimator(params)
                est.fit(_take(problem.X, fit_rows), problem.y[fit_rows])
                y_val = problem.y[val_rows]
                scores.append(float(problem.score(est, _take(problem.X, val_rows), y_val)))
                running = float(np.mean(scores))
                trial.report(running, step)
                if track:
                    mlflow.log_metric(f"cv_{problem.metric}", running, step=step)
                if trial.should_prune():
                    if track:
                        mlflow.set_tag("optuna.state", "PRUNED")
                    raise optuna.TrialPruned(f"pruned after fold {step}: {running:.4f}")
            if track:
                mlflow.set_tag("optuna.state", "COMPLETE")
                mlflow.log_metric(f"cv_{problem.metric}_std", float(np.std(scores)))
        return float(np.mean(scores))

    return objective


class _maybe_run:
    """A nested MLflow run for one trial (or nothing when tracking is off)."""

    def __init__(self, track: bool, usecase: str, number: int, factory: Any) -> None:
        self._cm = factory(usecase, run_name=f"trial-{number}", nested=True) if track else None

    def __enter__(self) -> None:
        if self._cm is not None:
            self._cm.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        if self._cm is not None:
            return bool(self._cm.__exit__(*exc))
        return False


# ------------------------------------------------------------------------------ entry point
def tune(
    usecase: str,
    n_trials: int = 20,
    study_name: str | None = None,
    *,
    fast: bool = False,
    storage_url: str | None = None,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``earthops tune``: one worker of a TPE study; returns the study's best so far."""
    import mlflow

    from earthops.registry.tracking import log_dataset_refs, training_run
    from earthops.usecases import get_usecase

    uc = get_usecase(usecase)
    options = TrainOptions(fast=fast, params=dict(params or {}))
    problem = problem_for(uc, options)
    name = study_name or f"{usecase}-{problem.metric}"
    sampler_seed = worker_seed(seed)
    with training_run(usecase, run_name=f"tune-{name}", tags={"earthops.study": name}) as run:
        try:
            log_dataset_refs(uc.dataset_refs(options), context="tuning")
        except EarthOpsError as exc:
            log.warning("tuning lineage unavailable", error=str(exc))
        mlflow.log_params(
            {
                "study": name,
                "n_trials": n_trials,
                "sampler": "TPE",
                "pruner": "median",
                "sampler_seed": sampler_seed,
                "metric": problem.metric,
                "n_rows": len(problem.y),
                "n_folds": len(problem.splits or []),
            }
        )
        study = optimize(
            name,
            cv_objective(problem, usecase),
            n_trials,
            storage_url=storage_url,
            seed=sampler_seed,
        )
        result = summarize(study)
        if result["best_params"] is not None:
            mlflow.log_params({f"best.{k}": v for k, v in result["best_params"].items()})
            mlflow.log_metric(f"best_cv_{problem.metric}", result["best_value"])
            mlflow.log_dict(result, "tuning.json")
    result.update(usecase=usecase, metric=problem.metric, parent_run_id=run.info.run_id)
    log.info("tuning done", **{k: result[k] for k in ("study", "n_complete", "n_pruned")})
    return result


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Counts and the best trial of a study (across all workers)."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    complete = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.state == optuna.trial.TrialState.COMPLETE
    ]
    best = study.best_trial if complete else None
    return {
        "study": study.study_name,
        "n_trials": len(states),
        "n_complete": len(complete),
        "n_pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states),
        "n_failed": sum(s == optuna.trial.TrialState.FAIL for s in states),
        "best_trial": None if best is None else best.number,
        "best_value": None if best is None else float(best.value),
        "best_params": None if best is None else dict(best.params),
    }


# ------------------------------------------------------------------------------ scorers
def auroc_score(est: Any, X: Any, y: np.ndarray) -> float:
    """Area under the ROC curve of ``est`` on a validation fold (prunes one-class folds)."""
    from sklearn.metrics import roc_auc_score

    if np.unique(y).size < 2:
        raise optuna.TrialPruned("validation fold has one class")
    return float(roc_auc_score(y, est.predict_proba(X)[:, 1]))


def macro_f1_score(est: Any, X: Any, y: np.ndarray) -> float:
    """Macro-averaged F1 of ``est`` on a validation fold."""
    from sklearn.metrics import f1_score

    return float(f1_score(y, est.predict(X), average="macro"))
