"""Block-CV of every candidate model, the selection rule and the selection-aware headline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earthops.logs import get_logger
from earthops.models.metrics import headline_figures
from earthops.models.selection import choose_candidate, selection_aware_proba
from earthops.usecases.landcover_global.area import decide
from earthops.usecases.landcover_global.config import TrainConfig
from earthops.usecases.landcover_global.cv import _oof, _stacked_oof
from earthops.usecases.landcover_global.metrics import classification_metrics
from earthops.usecases.landcover_global.samples import _Probe, _Sample

log = get_logger(__name__)


@dataclass
class CandidateCV:
    """Out-of-fold probabilities of every candidate (members, then ``stacking``) on the
    training sample and on the probe, and their headline figures on the balanced rows."""

    oof: dict[str, np.ndarray]
    oof_probe: dict[str, np.ndarray]
    comparison: dict[str, dict[str, Any]]


@dataclass
class Selection:
    """The rule's choice on all folds and the selection-aware out-of-fold predictions."""

    selected: str
    members: list[str]
    choices: list[str]  # fold k: the candidate chosen without fold k
    final_proba: np.ndarray  # balanced rows, fold k by choices[k]
    probe_proba: np.ndarray  # probe pixels, likewise
    shift: np.ndarray | None  # per balanced row: the decision's probability shift
    scored_on: str


def cross_validate_candidates(
    cfg: TrainConfig,
    data: _Sample,
    folds: np.ndarray,
    probe: _Probe,
    classes: Sequence[int],
    balanced_shift: np.ndarray | None,
) -> CandidateCV:
    """Block-CV every member of ``cfg.models`` and (with two or more) the stack on their
    out-of-fold log-probabilities; figures on the balanced rows with the balanced decision."""
    bal = data.balanced
    y_bal = data.y[bal]
    oof: dict[str, np.ndarray] = {}
    oof_probe: dict[str, np.ndarray] = {}
    comparison: dict[str, dict[str, Any]] = {}
    for kind in cfg.models:
        t0 = time.perf_counter()
        oof[kind], oof_probe[kind] = _oof(kind, cfg, data, folds, classes, probe)
        pred = decide(oof[kind][bal], classes, balanced_shift)
        comparison[kind] = {
            **headline_figures(classification_metrics(y_bal, pred, classes)),
            "cv_seconds": round(time.perf_counter() - t0, 1),
        }
        log.info("landcover_global.cv", model=kind, **comparison[kind])
    if len(cfg.models) > 1:
        stack_members = list(cfg.models)
        oof["stacking"], oof_probe["stacking"] = _stacked_oof(
            [oof[k] for k in stack_members],
            [oof_probe[k] for k in stack_members],
            data.y,
            folds,
            probe.fold,
            classes,
            cfg.seed,
        )
        pred = decide(oof["stacking"][bal], classes, balanced_shift)
        best_single = max(cfg.models, key=lambda k: comparison[k]["macro_f1"])
        stacked = headline_figures(classification_metrics(y_bal, pred, classes))
        comparison["stacking"] = {
            **stacked,
            "members": stack_members,
            "gain_over_best_single": round(
                stacked["macro_f1"] - comparison[best_single]["macro_f1"], 4
            ),
        }
    return CandidateCV(oof, oof_probe, comparison)


def select_candidate(
    cfg: TrainConfig,
    cv: CandidateCV,
    data: _Sample,
    folds: np.ndarray,
    probe: _Probe,
    classes: Sequence[int],
    balanced_shift: np.ndarray | None,
) -> Selection:
    """Choose by block-CV macro F1 on what the logged model is for — the balanced rows with
    the balanced decision, or (``decision="area"``) the map probe prior-corrected — and the
    selection-aware estimate: fold ``k`` predicted by the candidate chosen on the other folds
    only, so choosing never looks at the fold it is scored on."""
    bal = data.balanced
    y_bal, folds_bal = data.y[bal], folds[bal]
    if cfg.decision == "area" and probe.y.size:
        scored = {k: p * probe.priors[probe.fold] for k, p in cv.oof_probe.items()}
        scored_y, scored_folds, scored_on = probe.y, probe.fold, "the area-proportional probe"
    else:
        scored = {
            kind: p[bal] if balanced_shift is None else p[bal] * balanced_shift
            for kind, p in cv.oof.items()
        }
        scored_y, scored_folds, scored_on = y_bal, folds_bal, "the class-balanced sample"
    everywhere = np.ones(len(scored_y), dtype=bool)
    selected = choose_candidate(scored, scored_y, everywhere, cfg.models, cfg.min_gain, classes)
    _, choices = selection_aware_proba(
        scored, scored_y, scored_folds, cfg.models, cfg.min_gain, classes
    )
    final_proba = np.zeros((len(y_bal), len(classes)))
    probe_proba = np.zeros((len(probe.y), len(classes)))
    for k, choice in enumerate(choices):
        final_proba[folds_bal == k] = cv.oof[choice][bal][folds_bal == k]
        probe_proba[probe.fold == k] = cv.oof_probe[choice][probe.fold == k]
    return Selection(
        selected=selected,
        members=list(cfg.models) if selected == "stacking" else [selected],
        choices=choices,
        final_proba=final_proba,
        probe_proba=probe_proba,
        # with decision="area" every fold's labels are prior-corrected like the logged model's
        shift=probe.priors[folds_bal] if cfg.decision == "area" else balanced_shift,
        scored_on=scored_on,
    )
