"""Cross-validation of the candidates: OOF probabilities, stack, vote, selection, refit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from earthops.features.timeseries import TimeSeriesFeatures
from earthops.logs import get_logger, progress
from earthops.models.metrics import classification_metrics, headline_figures
from earthops.models.selection import (
    choose_candidate,
    log_probs,
    make_stacker,
    selection_aware_proba,
)
from earthops.usecases.landcover_timeseries.config import TrainConfig
from earthops.usecases.landcover_timeseries.model import TimeSeriesLandCoverModel

log = get_logger(__name__)


@dataclass
class CVResult:
    """Out-of-fold probabilities of every candidate, the selection and the refitted model.

    ``metrics`` holds each candidate's plain CV figures; ``headline`` the selection-aware
    figures (fold ``k`` predicted by ``choices[k]``, the candidate chosen on the other folds).
    ``features`` are the members' inputs (the featurizer's output on every sample).
    """

    features: np.ndarray
    layout: dict[str, int]
    oof: dict[str, np.ndarray]
    metrics: dict[str, dict[str, Any]]
    selected: str
    model: TimeSeriesLandCoverModel
    folds: np.ndarray
    choices: list[str]
    headline: dict[str, Any]
    headline_pred: np.ndarray


def cross_validate(
    X: np.ndarray, y: np.ndarray, cfg: TrainConfig, featurizer: TimeSeriesFeatures, label: str = ""
) -> CVResult:
    """Stratified k-fold OOF probabilities for each member, the stack and the vote; the
    selection-aware headline; the selected candidate refitted on every sample."""
    feats = featurizer.fit(X).transform(X)
    names = list(featurizer.get_feature_names_out())
    layout = {
        "n_dates": int(featurizer.n_dates),
        "n_channels": sum(n.endswith("_t00") for n in names),
    }
    classes = np.unique(y)
    folds = np.full(len(y), -1)
    splitter = StratifiedKFold(n_splits=cfg.n_folds, shuffle=True, random_state=cfg.seed)
    for k, (_, test) in enumerate(splitter.split(feats, y)):
        folds[test] = k
    oof = {kind: np.zeros((len(y), classes.size)) for kind in cfg.models}
    with progress() as bar:
        task = bar.add_task(f"{label} CV".strip(), total=cfg.n_folds * len(cfg.models))
        for k in range(cfg.n_folds):
            train, test = folds != k, folds == k
            for kind in cfg.models:
                est = clone(cfg.member(kind, layout)).fit(feats[train], y[train])
                oof[kind][np.ix_(test, np.searchsorted(classes, est.classes_))] = est.predict_proba(
                    feats[test]
                )
                bar.advance(task)
    if len(cfg.models) > 1:  # stack: meta-learner CV on the OOF log-probabilities, same folds
        Z = log_probs([oof[k] for k in cfg.models])
        stack = np.zeros_like(oof[cfg.models[0]])
        for k in range(cfg.n_folds):
            meta = make_stacker(max_iter=2000).fit(Z[folds != k], y[folds != k])
            stack[np.ix_(folds == k, np.searchsorted(classes, meta.classes_))] = meta.predict_proba(
                Z[folds == k]
            )
        oof["stack"] = stack
        oof["vote"] = np.mean([oof[k] for k in _voters(cfg.models)], axis=0)
    metrics = {
        kind: classification_metrics(y, classes[p.argmax(1)], list(classes))
        for kind, p in oof.items()
    }
    everywhere = np.ones(len(y), dtype=bool)
    selected = choose_candidate(oof, y, everywhere, cfg.models, cfg.min_gain, classes)
    headline_proba, choices = selection_aware_proba(
        oof, y, folds, cfg.models, cfg.min_gain, classes
    )
    headline_pred = classes[np.argmax(headline_proba, axis=1)]
    headline = classification_metrics(y, headline_pred, list(classes))
    log.info(
        "landcover_timeseries.cv",
        label=label,
        selected=selected,
        choice_per_fold=choices,
        headline=headline_figures(headline),
        macro_f1={k: headline_figures(m)["macro_f1"] for k, m in metrics.items()},
    )
    kinds = {"stack": list(cfg.models), "vote": _voters(cfg.models)}.get(selected, [selected])
    members = {kind: clone(cfg.member(kind, layout)).fit(feats, y) for kind in kinds}
    stacker = None
    if selected == "stack":
        stacker = make_stacker(max_iter=2000).fit(log_probs([oof[k] for k in cfg.models]), y)
    model = TimeSeriesLandCoverModel(
        featurizer=featurizer, members=members, stacker=stacker, vote=selected == "vote"
    )
    return CVResult(
        features=feats,
        layout=layout,
        oof=oof,
        metrics=metrics,
        selected=selected,
        model=model,
        folds=folds,
        choices=choices,
        headline=headline,
        headline_pred=headline_pred,
    )


def _voters(models: tuple[str, ...]) -> list[str]:
    """Members of the soft vote: all but the RF baseline when at least two others exist."""
    others = [k for k in models if k != "rf"]
    return others if len(others) >= 2 else list(models)


@dataclass
class _Fitted:
    """One protocol fitted by ``TimeSeriesLandCover._fit_protocol``: layout, rows, names, CV."""

    bands: tuple[str, ...]
    index: tuple[int, ...]
    X: np.ndarray
    feature_names: list[str]
    date_names: list[str]
    signature: dict[str, Any] | None
    result: CVResult
