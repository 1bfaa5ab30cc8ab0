"""ReefGuard: coral-bleaching risk at reef sites (use case ``reef-bleaching``).

Data: the global bleaching surveys (catalog ``bleaching-surveys``, or any CSV in that format).
Target: ``bleaching = avg.bleach ≥ bleach_threshold`` (10 %) plus a severity regression on
``avg.bleach``. Features: :mod:`earthops.features.reef_features`.

Validation (honest, forward in time with sites grouped):

* **final test fold**: train on years ≤ ``test_after`` (2010), test on later years, dropping
  every test row whose ``Site_ID`` appears in training. It is scored once and never used for
  any choice.
* **inner folds** (inside the training years only): forward blocks — train ≤ origin, validate
  the next ``inner_horizon`` years, sites seen in the fold's training dropped. Their
  out-of-fold (OOF) predictions choose the model (XGBoost, LightGBM, or a stacking ensemble
  — only when it beats the best single model by ``stack_min_gain`` AUROC), the probability
  calibration (none / Platt / isotonic, by leave-one-fold-out Brier) and the F1 decision
  threshold (maximising the mean per-fold F1, so one mass-bleaching period with many surveys
  does not dictate it).
* **rolling origin** (robustness report): the chosen recipe refitted at several origins, each
  scored on the next ``rolling_horizon`` years' unseen sites.

Baseline: the NOAA DHW rule (``SSTA_DHW ≥ 4 °C-weeks → bleaching``) scored on exactly the same
rows, under ``baseline`` with the same keys (its "probability" is 0/1).

Optional ViT branch: with ``grid`` (a NetCDF cube, e.g. SST/DHW, ``(time,) lat, lon``; the CRW
DHW product works as a single-time grid), chips around each site (from the last grid time at or
before the end of the survey year) feed :class:`earthops.models.vit.ViTClassifier`; its OOF
probability joins the stacking candidates, never chosen alone.

The logged model (:class:`ReefRiskModel`) takes raw survey rows. With ``refit_all`` (default)
it is the same selection procedure re-run on every year (inner folds up to the last year) and
fitted on all rows; the reported figures are the forward validation above. It also carries a
DHW-driven grid model (DHW only, monotone increasing) that :func:`risk_heatmap` applies to the
CRW DHW grid (:meth:`ReefBleaching.predict_raster`); without a model the heat-map is the CRW
alert level from DHW.

Model registration is not done here: ``train --register`` goes through the generic registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import mlflow
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from earthops.data.catalog import dataset_ref
from earthops.data.identity import DatasetRef, file_sha256, ref_of
from earthops.data.tables import read_bleaching_surveys
from earthops.errors import DataError, EarthOpsError
from earthops.features.reef_features import (
    DEFAULT_BLEACH_THRESHOLD,
    DHW_COLUMN,
    DHW_RULE_THRESHOLD,
    FEATURE_COLUMNS,
    LAT_COLUMN,
    LON_COLUMN,
    OPTIONAL_COLUMNS,
    SITE_COLUMN,
    TARGET_COLUMN,
    YEAR_COLUMN,
    ChipScaler,
    SurveyFeaturizer,
    bleaching_target,
    dhw_rule,
    extract_chips,
    open_grid,
    prepare_surveys,
)
from earthops.features.thermal import ALERT_LEVEL_NAMES, alert_level_from_dhw
from earthops.logs import get_logger
from earthops.models.estimators import N_JOBS, SEED, make_classifier, make_regressor
from earthops.registry.tracking import (
    load_model,
    log_binary_curves,
    log_dataset_refs,
    log_metrics_dict,
    log_model,
    training_run,
)
from earthops.settings import get_settings
from earthops.usecases.base import BBox, EvalOptions, TrainOptions

log = get_logger(__name__)

NAME = "reef-bleaching"
METRIC_KEYS = ("auroc", "average_precision", "f1", "bleach_risk_p90", "brier")
TABULAR_KINDS = ("xgboost", "lightgbm")
CALIBRATIONS = ("none", "platt", "isotonic")
#: grid-model inputs the heat-map can build from a DHW grid (DHW only: latitude made the map
#: paint the survey table's sampling latitudes as stripes)
GRID_FEATURES = [DHW_COLUMN]
_EPS = 1e-6

#: tuned on the inner folds of years ≤ 2010 only (never on the final test fold)
XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "max_depth": 5,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.7,
    "reg_lambda": 2.0,
}
LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_child_samples": 30,
    "subsample": 0.8,
    "colsample_bytree": 0.7,
    "reg_lambda": 2.0,
}
SEVERITY_PARAMS: dict[str, Any] = {"n_estimators": 300, "learning_rate": 0.03, "max_depth": 5}


# ------------------------------------------------------------------------------ configuration
class ReefConfig(BaseModel):
    """Training configuration (``TrainOptions.params``; unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    bleach_threshold: float = Field(DEFAULT_BLEACH_THRESHOLD, gt=0, le=100)
    dhw_threshold: float = Field(DHW_RULE_THRESHOLD, ge=0)
    test_after: int = 2010
    inner_origins: list[int] | None = None
    inner_folds: int = Field(3, ge=2)
    inner_horizon: int = Field(2, ge=1)
    rolling_origins: list[int] = Field(default_factory=lambda: [2006, 2008, 2010, 2012, 2014])
    rolling_horizon: int = Field(2, ge=1)
    candidates: list[Literal["xgboost", "lightgbm"]] = Field(
        default_factory=lambda: list(TABULAR_KINDS)
    )
    stack_min_gain: float = 0.003
    #: log a model refitted (same selection procedure) on every year after the validation
    refit_all: bool = True
    xgboost: dict[str, Any] = Field(default_factory=dict)
    lightgbm: dict[str, Any] = Field(default_factory=dict)
    unknown_realm: Literal["error", "category"] = "error"
    include_lon: bool = False
    grid: Path | None = None
    grid_variables: list[str] | None = None
    chip_size: int = Field(16, ge=4)
    vit: dict[str, Any] = Field(default_factory=dict)
    fast: bool = False

    @classmethod
    def from_options(cls, options: TrainOptions) -> ReefConfig:
        params = dict(options.params)
        params.setdefault("fast", options.fast)
        if "grid" not in params and get_settings().reef_grid is not None:
            params["grid"] = get_settings().reef_grid  # EARTHOPS_REEF_GRID
        try:
            config = cls(**params)
        except ValidationError as exc:
            raise EarthOpsError(f"reef-bleaching parameters: {exc}") from None
        if config.fast:
            fast = {"n_estimators": 80, "learning_rate": 0.1}
            config.xgboost = {**fast, **config.xgboost}
            config.lightgbm = {**fast, **config.lightgbm}
            config.vit = {"epochs": 3, **config.vit}
        return config

    def origins(self, until: int | None = None) -> list[int]:
        """Inner-fold origins for training years ≤ ``until`` (default ``test_after``)."""
        until = self.test_after if until is None else until
        if self.inner_origins:
            return [o for o in sorted(self.inner_origins) if o < until]
        last = until - self.inner_horizon
        return [last - k * self.inner_horizon for k in range(self.inner_folds)][::-1]


# ------------------------------------------------------------------------------ splitting
def forward_split(
    years: np.ndarray,
    sites: np.ndarray,
    origin: int,
    horizon: int | None = None,
    *,
    train_from: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grouped forward-in-time split: train years ≤ ``origin``; test years in
    ``(origin, origin + horizon]`` (all later years without ``horizon``) minus the rows whose
    site is in training. Returns positional ``(train, test, dropped_test_rows)``."""
    years = np.asarray(years)
    sites = np.asarray(sites)
    train = years <= origin
    if train_from is not None:
        train &= years >= train_from
    test = years > origin
    if horizon is not None:
        test &= years <= origin + horizon
    seen = np.isin(sites, np.unique(sites[train]))
    dropped = int((test & seen).sum())
    return np.flatnonzero(train), np.flatnonzero(test & ~seen), dropped


# ------------------------------------------------------------------------------ metrics
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


# ------------------------------------------------------------------------------ model pieces
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class Calibrator(BaseEstimator):
    """Probability calibration of a score in [0, 1]: ``none``, ``platt`` or ``isotonic``."""

    def __init__(self, method: str = "none") -> None:
        self.method = method

    def fit(self, score: np.ndarray, y: np.ndarray) -> Calibrator:
        if self.method == "platt":
            self.model_ = LogisticRegression(C=1e4).fit(_logit(score)[:, None], y)
        elif self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                score, y
            )
        elif self.method != "none":
            raise ValueError(f"unknown calibration '{self.method}'; expected one of {CALIBRATIONS}")
        return self

    def transform(self, score: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return self.model_.predict_proba(_logit(score)[:, None])[:, 1]
        if self.method == "isotonic":
            return np.asarray(self.model_.predict(score), dtype=np.float64)
        return np.asarray(score, dtype=np.float64)


class Stacker(BaseEstimator):
    """Logistic regression on the logits of member OOF probabilities (fitted on OOF only)."""

    def __init__(self, members: tuple[str, ...] = ()) -> None:
        self.members = members

    def fit(self, probs: pd.DataFrame, y: np.ndarray) -> Stacker:
        self.model_ = LogisticRegression(C=1.0).fit(_logit(probs[list(self.members)].to_numpy()), y)
        return self

    def predict(self, probs: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(_logit(probs[list(self.members)].to_numpy()))[:, 1]


class DhwGridModel(ClassifierMixin, BaseEstimator):
    """Bleaching probability from what a DHW grid offers: DHW alone, monotone increasing.

    Input columns :data:`GRID_FEATURES`; used by the risk heat-map.
    """

    def __init__(self, n_estimators: int = 150) -> None:
        self.n_estimators = n_estimators

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        return X[DHW_COLUMN].to_numpy(np.float32)[:, None]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> DhwGridModel:
        from xgboost import XGBClassifier

        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators,
            learning_rate=0.05,
            max_depth=3,
            min_child_weight=20.0,
            monotone_constraints="(1)",
            tree_method="hist",
            n_jobs=N_JOBS,
            random_state=SEED,
            verbosity=0,
        ).fit(self._matrix(X), np.asarray(y, dtype=int))
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._matrix(X)).astype(np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class ReefRiskModel(ClassifierMixin, BaseEstimator):
    """The logged reef model: raw survey rows → calibrated bleaching probability.

    Fitted parts (assembled by :class:`ReefBleaching`): ``featurizer_``, tabular ``members_``,
    optional ViT branch (``vit_``, ``chip_scaler_``, grid path), ``combiner_`` (a member name or
    ``"stack"`` with ``stacker_``), ``calibrator_``, ``threshold_`` (F1 decision threshold),
    ``severity_`` (avg.bleach regressor), ``grid_model_`` (:class:`DhwGridModel`).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config

    # ---- chips -----------------------------------------------------------------------
    def chips_for(self, X: pd.DataFrame) -> np.ndarray:
        """Chips for ``X`` from the configured grid (survey year end: no later grid time)."""
        grid = open_grid(self.grid_path_, self.grid_variables_)
        return _chips(grid, X, self.chip_size_)

    # ---- scores ----------------------------------------------------------------------
    def member_probabilities(
        self, X: pd.DataFrame, chips: np.ndarray | None = None
    ) -> pd.DataFrame:
        feats = self.featurizer_.transform(X)
        out = {name: est.predict_proba(feats)[:, 1] for name, est in self.members_.items()}
        if getattr(self, "vit_", None) is not None:
            chips = self.chips_for(X) if chips is None else chips
            out["vit"] = self.vit_.predict_proba(self.chip_scaler_.transform(chips))[:, 1]
        return pd.DataFrame(out, index=X.index)

    def combine(self, probs: pd.DataFrame) -> np.ndarray:
        """The chosen combiner (one member or the stack) over member probabilities."""
        if self.combiner_ == "stack":
            return self.stacker_.predict(probs)
        return probs[self.combiner_].to_numpy(dtype=np.float64)

    def raw_score(self, X: pd.DataFrame, chips: np.ndarray | None = None) -> np.ndarray:
        return self.combine(self.member_probabilities(X, chips))

    def predict_proba(self, X: pd.DataFrame, chips: np.ndarray | None = None) -> np.ndarray:
        p = np.clip(self.calibrator_.transform(self.raw_score(X, chips)), 0.0, 1.0)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame, chips: np.ndarray | None = None) -> np.ndarray:
        return (self.predict_proba(X, chips)[:, 1] >= self.threshold_).astype(np.int64)

    def predict_severity(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted % of corals bleached (0–100)."""
        return np.clip(self.severity_.predict(self.featurizer_.transform(X).to_numpy()), 0, 100)


def _chips(grid: Any, rows: pd.DataFrame, size: int) -> np.ndarray:
    times = pd.to_datetime(rows[YEAR_COLUMN].astype(int).astype(str) + "-12-31").to_numpy()
    return extract_chips(
        grid, rows[LAT_COLUMN].to_numpy(), rows[LON_COLUMN].to_numpy(), size=size, times=times
    )


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


# ------------------------------------------------------------------------------ selection
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


# ------------------------------------------------------------------------------ use case
def _exclude(frame: pd.DataFrame, boxes: list[BBox], inside: bool) -> pd.DataFrame:
    if not boxes:
        return frame
    lon = frame[LON_COLUMN].to_numpy()
    lat = frame[LAT_COLUMN].to_numpy()
    hit = np.zeros(len(frame), dtype=bool)
    for box in boxes:
        hit |= box.contains(lon, lat)
    return frame.loc[hit if inside else ~hit]


def _input_columns(rows: pd.DataFrame) -> list[str]:
    cols = [*FEATURE_COLUMNS, *[c for c in OPTIONAL_COLUMNS if c in rows.columns]]
    return [*cols, LON_COLUMN, YEAR_COLUMN]


def _log_lineage(refs: list[DatasetRef]) -> None:
    """Dataset inputs via the tracking helper; MLflow caps a dataset digest at 36 characters,
    so a rejected SHA-256 is logged as its first 32 hex digits (full digests in a tag)."""
    try:
        log_dataset_refs(refs)
    except mlflow.exceptions.MlflowException as exc:
        if "digest" not in str(exc):
            raise
        log_dataset_refs([DatasetRef(r.name, r.uri, r.digest[:32]) for r in refs])
        mlflow.set_tag("earthops.datasets.sha256", json.dumps({r.name: r.digest for r in refs}))


class ReefBleaching:
    """``reef-bleaching``: survey covariates → bleaching probability (see the module doc)."""

    name = NAME
    primary_metric = "auroc"
    gate: ClassVar[dict[str, float]] = {
        "auroc": 0.75,
        "auroc_gain_vs_dhw": 0.08,
        "f1_gain_vs_dhw": 0.05,
    }

    # ---- tuning ----------------------------------------------------------------------
    def tuning_problem(self, options: TrainOptions) -> Any:
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
            featurizer = SurveyFeaturizer(
                unknown=config.unknown_realm, include_lon=config.include_lon
            )
            return make_pipeline(featurizer, make_classifier("xgboost", **{**base, **params}))

        return TuningProblem(
            X=X, y=y, folds=None, splits=splits, make_estimator=make, search_space=space,
            score=auroc_score, metric="auroc",
        )  # fmt: skip

    # ---- lineage ---------------------------------------------------------------------
    def dataset_refs(self, options: TrainOptions) -> list[DatasetRef]:
        refs = [
            dataset_ref("bleaching-surveys")
            if options.dataset is None
            else DatasetRef(
                Path(options.dataset).stem, str(options.dataset), file_sha256(options.dataset)
            )
        ]
        grid = options.params.get("grid") or get_settings().reef_grid
        if grid is not None:
            refs.append(DatasetRef(Path(grid).stem, str(grid), file_sha256(grid)))
        return refs

    # ---- training --------------------------------------------------------------------
    def train(self, options: TrainOptions) -> dict[str, Any]:
        """Forward-in-time grouped training/selection/test; logs the run; returns the metrics."""
        config = ReefConfig.from_options(options)
        surveys = read_bleaching_surveys(options.dataset)
        source = (ref_of(surveys) or DatasetRef("surveys", "<surveys>", "")).uri
        n_read = len(surveys)
        surveys = _exclude(surveys, options.exclude_bboxes, inside=False)
        reject = config.unknown_realm == "error"
        rows, rejections = prepare_surveys(surveys, source, reject_unknown=reject)
        rows = rows.reset_index(drop=True)
        y = bleaching_target(rows, config.bleach_threshold).to_numpy()
        years = rows[YEAR_COLUMN].to_numpy()
        sites = rows[SITE_COLUMN].to_numpy()
        train_pos, test_pos, dropped = forward_split(years, sites, config.test_after)
        if train_pos.size == 0 or test_pos.size == 0:
            raise EarthOpsError(
                f"forward split at {config.test_after}: {train_pos.size} training and "
                f"{test_pos.size} test rows; expected both non-empty (set test_after)"
            )
        chips = None
        if config.grid is not None:
            chips = _chips(open_grid(config.grid, config.grid_variables), rows, config.chip_size)
        recipe = _Recipe(config, chips)
        test_rows = rows.iloc[test_pos]

        # validation: select + fit on years <= test_after, score the later years' unseen sites
        model, choice, oof, oof_y, inner_report = self._fit_selected(
            rows, y, train_pos, config.test_after, config, recipe
        )
        log.info("recipe chosen", combiner=choice["combiner"], calibration=choice["calibration"])
        test_probs = model.member_probabilities(
            test_rows, None if chips is None else chips[test_pos]
        )
        p_test = model.calibrator_.transform(model.combine(test_probs))
        y_test = y[test_pos]
        metrics = binary_metrics(y_test, p_test, model.threshold_)
        base = baseline_metrics(test_rows, y_test, config.dhw_threshold)
        comparison = self._comparison(
            model, test_probs, test_rows, y_test, choice, config, oof, oof_y
        )
        severity = severity_metrics(
            test_rows[TARGET_COLUMN].to_numpy(), model.predict_severity(test_rows)
        )
        rolling = [] if config.fast else self._rolling(rows, y, recipe, model, config)
        deployed = model
        if config.refit_all and years.max() > config.test_after:
            # the logged model: the same procedure on every year (inner folds re-run up to the
            # last year); its figures above are the forward validation of the same recipe
            all_pos = np.arange(len(rows))
            deployed, deploy_choice, *_ = self._fit_selected(
                rows, y, all_pos, int(years.max()), config, recipe
            )
        else:
            deploy_choice = choice
        result: dict[str, Any] = {
            **{k: metrics[k] for k in METRIC_KEYS},
            "baseline": {k: base[k] for k in (*METRIC_KEYS, "rule", "n")},
            **_gains(metrics, base),
            "threshold": model.threshold_,
            "threshold_source": "max mean per-fold F1 on inner-fold OOF (training years only)",
            "comparison": comparison,
            "severity": severity,
            "rolling_origin": rolling,
            "split": {
                "protocol": f"train years <= {config.test_after}; test later years, unseen sites",
                "train_rows": int(train_pos.size),
                "test_rows": int(test_pos.size),
                "test_rows_dropped_seen_sites": dropped,
                "test_years": sorted({int(v) for v in years[test_pos]}),
                "test_prevalence": metrics["prevalence"],
                "inner_folds": inner_report,
            },
            "rows": {"read": n_read, "used": len(rows), "rejected": rejections.to_dict()},
            "bleach_threshold": config.bleach_threshold,
            "logged_model": {
                "train_years": [int(years.min()), deployed.train_until_],
                "refit_all": deployed is not model,
                "combiner": deployed.combiner_,
                "calibration": deployed.calibrator_.method,
                "threshold": deployed.threshold_,
                "oof_auroc": deploy_choice["candidates"][deploy_choice["combiner"]][
                    "auroc_mean_fold"
                ],
            },
        }
        model_uri, run_id = self._log(deployed, rows, result, config, options, (y_test, p_test))
        result["model_uri"] = model_uri
        result["run_id"] = run_id
        return result

    def _fit_selected(
        self,
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
        model = self._assemble(fitted, config, choice, oof, oof_y, sub_rows, sub_y)
        model.train_until_ = int(until)
        return model, choice, oof, oof_y, report

    def _assemble(
        self,
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

    def _comparison(
        self,
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

    def _rolling(
        self,
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

    def _log(
        self,
        model: ReefRiskModel,
        rows: pd.DataFrame,
        result: dict[str, Any],
        config: ReefConfig,
        options: TrainOptions,
        forward_test: tuple[np.ndarray, np.ndarray],
    ) -> tuple[str, str]:
        """Log the deployed model; ``forward_test`` (truth, probability) gives its ROC/PR curves."""
        with training_run(NAME, tags={"earthops.fast": str(config.fast).lower()}) as run:
            mlflow.log_params(
                {
                    "bleach_threshold": config.bleach_threshold,
                    "dhw_threshold": config.dhw_threshold,
                    "test_after": config.test_after,
                    "combiner": model.combiner_,
                    "calibration": model.calibrator_.method,
                    "threshold": model.threshold_,
                    "candidates": ",".join(config.candidates),
                    "vit_branch": model.vit_ is not None,
                    "fast": config.fast,
                }
            )
            _log_lineage(self.dataset_refs(options))
            example = rows[_input_columns(rows)].head(5)
            uri = log_model(
                model,
                example,
                output_example=model.predict_proba(example)[:, 1],
                metadata={
                    "usecase": NAME,
                    "input_columns": _input_columns(rows),
                    "features": list(model.featurizer_.feature_names_),
                    "combiner": model.combiner_,
                    "calibration": model.calibrator_.method,
                    "threshold": model.threshold_,
                    "bleach_threshold": config.bleach_threshold,
                    "train_until": model.train_until_,
                    "grid_features": GRID_FEATURES,
                    "realms": model.featurizer_.realms_,
                },
            )
            log_metrics_dict({k: v for k, v in result.items() if k not in ("rolling_origin",)})
            mlflow.log_dict(result, "reef_metrics_full.json")
            log_binary_curves(*forward_test, artifact="forward_test_curves")
            # registration (``train --register``) is the generic registry layer's job
            return uri, run.info.run_id

    # ---- risk heat-map -----------------------------------------------------------------
    def predict_raster(
        self, model_uri: str, inputs: list[Path], output: Path, *, with_probability: bool = False
    ) -> Path:
        """Risk heat-map of a CRW DHW NetCDF (``inputs``: exactly one) with the model's DHW-driven
        grid model; ``with_probability`` adds the CRW alert-level band. Writes the COG and a PNG
        beside it (see :func:`risk_heatmap`); returns the COG path."""
        if len(inputs) != 1:
            raise EarthOpsError(
                f"{NAME} predict-raster: {len(inputs)} inputs; expected one CRW DHW NetCDF"
            )
        model = _load_reef_model(model_uri)
        return risk_heatmap(
            output, dhw=inputs[0], model=model, with_alert_band=with_probability
        ).cog

    # ---- evaluation ------------------------------------------------------------------
    def evaluate(self, model_uri: str, options: EvalOptions) -> dict[str, Any]:
        """Score a logged reef model on labelled surveys (a CSV in the shared survey format).

        Without ``dataset`` the catalog surveys are scored on the model's own test scope
        (years after its training years, unseen sites). ``bboxes`` keep rows inside them.
        Rows with a realm/ocean name outside the vocabulary are rejected and counted
        (``rows.rejected.unknown_Realm_Name``) unless the model was trained with
        ``unknown_realm='category'``; missing columns and out-of-range values are DataErrors.
        """
        model = _load_reef_model(model_uri)
        surveys = read_bleaching_surveys(options.dataset)
        source = (ref_of(surveys) or DatasetRef("surveys", "<surveys>", "")).uri
        n_read = len(surveys)
        surveys = _exclude(surveys, options.bboxes, inside=True)
        # names outside the realm/ocean vocabulary: counted rejections (scoring goes on) unless
        # the model encodes them as an explicit 'unknown' category
        reject = model.featurizer_.unknown == "error"
        rows, rejections = prepare_surveys(surveys, source, reject_unknown=reject)
        seen = rows[SITE_COLUMN].isin(model.train_sites_).to_numpy()
        scope = "all rows of the dataset"
        if options.dataset is None:
            keep = (rows[YEAR_COLUMN] > model.train_until_).to_numpy() & ~seen
            rows, seen = rows.loc[keep], seen[keep]
            scope = f"catalog surveys after {model.train_until_}, sites unseen in training"
        if rows.empty and options.dataset is None:
            raise EarthOpsError(
                f"model '{model_uri}' was trained on every catalog year up to "
                f"{model.train_until_}; pass --dataset with surveys of later years"
            )
        if rows.empty:
            raise EarthOpsError(f"{source}: no survey rows to score after filtering")
        y = bleaching_target(rows, model.bleach_threshold_).to_numpy()
        p = model.predict_proba(rows)[:, 1]
        metrics = binary_metrics(y, p, model.threshold_)
        base = baseline_metrics(rows, y, model.dhw_threshold_)
        result: dict[str, Any] = {
            **{k: metrics[k] for k in METRIC_KEYS},
            "baseline": {k: base[k] for k in (*METRIC_KEYS, "rule", "n")},
            **_gains(metrics, base),
            "threshold": model.threshold_,
            "severity": severity_metrics(
                rows[TARGET_COLUMN].to_numpy(), model.predict_severity(rows)
            ),
            "rows": {
                "read": n_read,
                "scored": len(rows),
                "rejected": rejections.to_dict(),
                "seen_sites": int(seen.sum()),
            },
            "prevalence": metrics["prevalence"],
            "scope": scope,
            "model_uri": model_uri,
        }
        if seen.any() and (~seen).sum() > 0:
            sub = rows.loc[~seen]
            m2 = binary_metrics(y[~seen], p[~seen], model.threshold_)
            b2 = baseline_metrics(sub, y[~seen], model.dhw_threshold_)
            result["unseen_sites"] = {
                **{k: m2[k] for k in METRIC_KEYS},
                "n": m2["n"],
                "baseline": {k: b2[k] for k in METRIC_KEYS},
            }
        return result


# ------------------------------------------------------------------------------ risk heat-map
#: CRW Bleaching Alert Area colours (levels 0..7 of :data:`ALERT_LEVEL_NAMES`)
ALERT_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (200, 250, 250),
    1: (255, 240, 0),
    2: (250, 170, 10),
    3: (240, 0, 0),
    4: (150, 0, 0),
    5: (110, 0, 60),
    6: (80, 0, 110),
    7: (40, 0, 80),
}
ALERT_NODATA = 255
HEATMAP_BLOCK_ROWS = 256
_PNG_MAX_WIDTH = 1800


@dataclass(frozen=True)
class Heatmap:
    """What :func:`risk_heatmap` wrote: the COG, the PNG beside it, and summary statistics."""

    cog: Path
    png: Path
    mode: str
    stats: dict[str, float | int]


def _grid_risk_block(dhw: np.ndarray, *, model: DhwGridModel) -> np.ndarray:
    """Bleaching probability for one ``(band=1, rows, cols)`` DHW block; NaN stays NaN."""
    values = dhw[0]
    out = np.full(values.shape, np.nan, dtype=np.float32)
    valid = np.isfinite(values)
    if valid.any():
        frame = pd.DataFrame({DHW_COLUMN: values[valid]})
        out[valid] = model.predict_proba(frame)[:, 1].astype(np.float32)
    return out[None]


def _alert_block(dhw: np.ndarray) -> np.ndarray:
    levels = alert_level_from_dhw(dhw)
    return np.where(np.isfinite(levels), levels, ALERT_NODATA).astype(np.uint8)


def _heatmap_png(cog: Path, png: Path, *, mode: str, title: str) -> Path:
    """Decimated read of the COG (its overviews: bounded memory) → a PNG heat-map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.colors import BoundaryNorm, ListedColormap

    with rasterio.open(cog) as src:
        scale = max(1, int(np.ceil(src.width / _PNG_MAX_WIDTH)))
        shape = (max(1, src.height // scale), max(1, src.width // scale))
        data = src.read(1, out_shape=shape, masked=True)
        b = src.bounds
    fig, ax = plt.subplots(figsize=(12, 6.4), dpi=150)
    ax.set_facecolor("#d9d9d9")  # land / nodata
    extent = (b.left, b.right, b.bottom, b.top)
    if mode == "alert":
        colours = [np.array(ALERT_COLOURS[k]) / 255 for k in sorted(ALERT_COLOURS)]
        cmap = ListedColormap(colours)
        norm = BoundaryNorm(np.arange(-0.5, len(colours) + 0.5), cmap.N)
        image = ax.imshow(data, extent=extent, cmap=cmap, norm=norm, interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, ticks=sorted(ALERT_COLOURS), shrink=0.8)
        bar.ax.set_yticklabels([ALERT_LEVEL_NAMES[k] for k in sorted(ALERT_COLOURS)], fontsize=7)
    else:
        image = ax.imshow(
            data, extent=extent, cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest"
        )
        fig.colorbar(image, ax=ax, shrink=0.8, label="bleaching probability")
    ax.set_title(title)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


def risk_heatmap(
    output: str | Path,
    *,
    dhw: str | Path | None = None,
    model_uri: str | None = None,
    model: ReefRiskModel | None = None,
    with_alert_band: bool = False,
    block_rows: int = HEATMAP_BLOCK_ROWS,
) -> Heatmap:
    """Bleaching-risk heat-map of a NOAA CRW DHW grid: a COG plus a PNG beside it.

    ``dhw``: a CRW DHW NetCDF (default: catalog ``crw-dhw-20210619``), read by
    :func:`earthops.data.rasters.read_crw_dhw` (land, ice and fill masked → nodata).
    With a reef model (``model`` or ``model_uri``), band ``bleaching_risk`` is its DHW-driven
    grid model (:class:`DhwGridModel`, monotone in DHW) as float32 probability (nodata NaN);
    ``with_alert_band`` adds ``crw_alert_level``. Without a model, the single band is the CRW
    alert level from DHW (uint8 0–7 with the CRW palette, nodata 255). The output is computed
    ``block_rows`` rows at a time (dask) and written as a COG chunk by chunk.
    """
    import dask.array as dsa
    import xarray as xr

    from earthops.data.rasters import read_crw_dhw
    from earthops.raster.cog import write_cog

    output = Path(output)
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise EarthOpsError(f"heat-map output '{output}': expected a .tif path (COG)")
    if model is None and model_uri is not None:
        model = _load_reef_model(model_uri)
    grid = read_crw_dhw(dhw)
    if "time" in grid.dims:
        raise DataError(str(dhw or "crw-dhw"), "several times; expected one DHW day", field="time")
    when = (
        str(np.datetime_as_string(grid["time"].values, unit="D")) if "time" in grid.coords else ""
    )
    lazy = grid.data if isinstance(grid.data, dsa.Array) else dsa.from_array(grid.values)
    lazy = lazy.rechunk((1, block_rows, -1))
    tags = {"EARTHOPS_USECASE": NAME, "DHW_DATE": when}
    if model is not None:
        risk = dsa.map_blocks(
            _grid_risk_block,
            lazy,
            model=model.grid_model_,
            dtype=np.float32,
        )
        bands, names = [risk], ["bleaching_risk"]
        if with_alert_band:
            alert = dsa.map_blocks(
                lambda d: alert_level_from_dhw(d).astype(np.float32), lazy, dtype=np.float32
            )
            bands.append(alert)
            names.append("crw_alert_level")
        data = dsa.concatenate(bands, axis=0)
        out = xr.DataArray(
            data, dims=("band", "y", "x"), coords={"band": names, "y": grid["y"], "x": grid["x"]}
        )
        out = out.rio.write_crs(grid.rio.crs).rio.write_transform(grid.rio.transform())
        write_cog(
            out, output, nodata=float("nan"), tags={**tags, "MODE": "model"}, show_progress=False
        )
        mode = "model"
    else:
        data = dsa.map_blocks(_alert_block, lazy, dtype=np.uint8)
        out = xr.DataArray(
            data,
            dims=("band", "y", "x"),
            coords={"band": ["crw_alert_level"], "y": grid["y"], "x": grid["x"]},
        )
        out = out.rio.write_crs(grid.rio.crs).rio.write_transform(grid.rio.transform())
        write_cog(
            out,
            output,
            nodata=ALERT_NODATA,
            colormap=ALERT_COLOURS,
            class_names=ALERT_LEVEL_NAMES,
            tags={**tags, "MODE": "alert"},
            show_progress=False,
        )
        mode = "alert"
    title = (
        f"Coral bleaching {'probability (DHW model)' if mode == 'model' else 'CRW alert level'}"
        f" — CRW DHW {when}"
    )
    png = _heatmap_png(output, output.with_suffix(".png"), mode=mode, title=title)
    stats = _heatmap_stats(output, mode)
    log.info("reef heat-map written", cog=str(output), png=str(png), mode=mode, **stats)
    return Heatmap(output, png, mode, stats)


def _heatmap_stats(cog: Path, mode: str) -> dict[str, float | int]:
    import rasterio

    with rasterio.open(cog) as src:
        ov = src.overviews(1)
        factor = ov[0] if ov else 1
        data = src.read(1, out_shape=(src.height // factor, src.width // factor), masked=True)
    valid = data.compressed().astype(np.float64)
    stats: dict[str, float | int] = {"valid_fraction": float(valid.size / max(data.size, 1))}
    if valid.size:
        stats["p90"] = float(np.quantile(valid, 0.9))
        stats["max"] = float(valid.max())
    if mode == "alert":
        stats["alert_ge_1_fraction"] = float((valid >= 3).mean()) if valid.size else 0.0
    return stats


def _load_reef_model(model_uri: str) -> ReefRiskModel:
    """A logged reef model from any MLflow URI or a local model dir (checked by its type, so a
    copied model dir works without the tracking store that logged it)."""
    model = load_model(model_uri)
    if not isinstance(model, ReefRiskModel):
        raise EarthOpsError(
            f"model '{model_uri}' is a {type(model).__name__}; expected a {NAME} model"
        )
    return model
