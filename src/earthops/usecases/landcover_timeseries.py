"""``landcover-timeseries``: crop and land-cover classes from MOD13Q1 time series (Mato Grosso).

* **Data**: the labelled samples ``mt-mod13q1-9classes`` (23 16-day dates per sample, bands
  ndvi, evi, nir, mir, blue, red; 9 classes) or any samples JSON in the same format.
* **Features** (:mod:`earthops.features.timeseries`): the raw bands per date, derived index
  series (NDMI, NIRv) and phenology statistics of the vegetation indices (amplitude, peak and
  season timing, integrals, quarter means, green-up/senescence rates, double-crop peaks).
* **Validation**: stratified ``n_folds``-fold CV (5; 3 when fast), the same folds for every
  model; metrics are computed on the pooled out-of-fold (OOF) predictions. The headline is
  selection-aware: fold ``k`` is predicted by the candidate chosen on the OOF predictions of
  the other folds only, so the model choice never sees the fold it is scored on
  (``selection.choice_per_fold``); every candidate's plain CV figures are under ``models``.
  Random folds put revisits of a place on both sides of a split, so ``spatial_check``
  (:mod:`earthops.models.spatial_cv`) adds the tabular members on whole 0.5° blocks, the
  sampling sites per class and the classes confined to one block.
* **Models**: Random Forest (baseline, always reported under ``baseline``), LightGBM, an RBF
  SVM on standardised features (sigmoid-calibrated), a TempCNN seed ensemble
  (:mod:`earthops.models.tempcnn`: 1-D CNNs over the dates of the raw series, PyTorch,
  probabilities averaged over nets with different seeds; optional: an L-TAE seed ensemble,
  :mod:`earthops.models.ltae`, via ``params.models``), and two ensembles: a stack
  (multinomial logistic regression on the members' OOF log-probabilities, itself scored by CV
  over the same folds) and a soft vote (mean probability of the non-baseline members). The
  rule: the best OOF macro F1; an ensemble only when it beats the best single member by
  ``min_gain``. The logged model is the rule's choice on all folds, refitted on every sample.

Protocols (``--protocol``):

* ``all-bands`` (default): every band at all 23 dates. The run also fits the NDVI-only Sinop
  model below and ships it inside the logged model, so ``predict-raster`` on the Sinop cube
  works with a default model too; its CV figures are under ``ndvi_sinop``.
* ``ndvi-sinop``: NDVI only, at the 12 dates of the Sinop cube (every other sample date,
  matched by calendar day), for mapping that cube.

``predict-raster --input <12 NDVI files …_YYYY-MM-DD.jp2|tif>`` classifies such a cube (read by
:func:`earthops.data.rasters.read_sinop_cube`: one file per date, same grid) with the NDVI model
into a COG with the 9 class names in its palette; the cube must have the model's dates
(calendar day ±3 d, any year) and CRS, otherwise :class:`~earthops.errors.SignatureError`.
Any extent on that grid works (the model is per pixel).

``evaluate`` scores any samples JSON; the logged model keeps the keys of its training samples
(place and first date, :attr:`~earthops.data.samples.SampleSet.keys`), so the metrics say
which share of the scored samples it was trained on (``training_sample_share``; ``holdout``
is true when none) and a warning is logged when any were.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from earthops.data import catalog
from earthops.data.identity import DatasetRef
from earthops.data.samples import SampleSet, read_mod13q1_samples
from earthops.errors import DataError, EarthOpsError, SignatureError
from earthops.features.timeseries import TimeSeriesFeatures, input_columns
from earthops.logs import get_logger, progress
from earthops.models.estimators import make_classifier
from earthops.models.ltae import LTAEClassifier
from earthops.models.metrics import classification_metrics, headline_figures, holdout_fields
from earthops.models.selection import (
    choose_candidate,
    log_probs,
    make_stacker,
    selection_aware_proba,
)
from earthops.models.spatial_cv import spatial_block_cv
from earthops.models.tempcnn import TempCNNClassifier
from earthops.usecases.base import EvalOptions, TrainOptions, check_members, merge_member_params

log = get_logger(__name__)

NAME = "landcover-timeseries"
DATASET = "mt-mod13q1-9classes"
CUBE = "sinop-mod13q1-ndvi"
PROTOCOLS = ("all-bands", "ndvi-sinop")
DEFAULT_PROTOCOL = "all-bands"
MEMBER_KINDS = ("rf", "lightgbm", "xgboost", "svm", "tempcnn", "ltae")
#: members the spatial check fits by default (the nets would multiply the run time)
TABULAR_KINDS = ("rf", "lightgbm", "xgboost", "svm")
#: the Sinop cube's dates as positions in the samples' 23-date series (every other date)
SINOP_INDEX = tuple(range(0, 23, 2))
DATE_TOLERANCE_DAYS = 3

_RF: dict[str, Any] = {"n_estimators": 500}
_LGBM: dict[str, Any] = {
    "n_estimators": 150,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "max_bin": 63,
    "colsample_bytree": 0.3,
    "min_child_samples": 5,
}
_XGB: dict[str, Any] = {"n_estimators": 300, "learning_rate": 0.08, "max_depth": 4}
_SVM: dict[str, Any] = {"C": 10.0, "gamma": "scale"}
#: a seed ensemble of small hybrid TempCNNs (series convolutions + a dense branch on the
#: phenology features); settings compared on a development CV split (another shuffle seed),
#: not on the reported folds
_TEMPCNN: dict[str, Any] = {
    "filters": 32,
    "hidden": 128,
    "batch_size": 64,
    "with_features": True,
    "n_members": 5,
}
#: an optional member (``params.models``): a seed ensemble of hybrid L-TAEs. On the
#: development split 0.951 / 0.939 (acc / macro F1) against the TempCNN's 0.953 / 0.955, so
#: not a default
_LTAE: dict[str, Any] = {"with_features": True, "n_members": 5, "epochs": 120, "batch_size": 64}


# ------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run (defaults = full run; ``fast`` = seconds)."""

    protocol: str = DEFAULT_PROTOCOL
    n_folds: int = 5
    models: tuple[str, ...] = ("rf", "lightgbm", "svm", "tempcnn")
    min_gain: float = 0.002
    seed: int = 42
    with_map_model: bool = True
    #: spatial block check (:mod:`earthops.models.spatial_cv`): block size in degrees
    #: (``None``: off) and its members (``None``: the tabular ones of ``models``)
    spatial_block_deg: float | None = 0.5
    spatial_models: tuple[str, ...] | None = None
    rf_params: dict[str, Any] = field(default_factory=lambda: dict(_RF))
    lgbm_params: dict[str, Any] = field(default_factory=lambda: dict(_LGBM))
    xgb_params: dict[str, Any] = field(default_factory=lambda: dict(_XGB))
    svm_params: dict[str, Any] = field(default_factory=lambda: dict(_SVM))
    tempcnn_params: dict[str, Any] = field(default_factory=lambda: dict(_TEMPCNN))
    ltae_params: dict[str, Any] = field(default_factory=lambda: dict(_LTAE))

    @classmethod
    def from_options(cls, options: TrainOptions) -> TrainConfig:
        protocol = check_protocol(options.protocol or DEFAULT_PROTOCOL)
        cfg = cls(protocol=protocol)
        if options.fast:
            cfg = replace(
                cfg,
                n_folds=3,
                models=("rf", "svm"),
                rf_params={"n_estimators": 40},
            )
        params = merge_member_params(cfg, options.params)
        if "models" in params:
            params["models"] = tuple(params["models"])
            if set(params["models"]) - set(MEMBER_KINDS) or "rf" not in params["models"]:
                raise EarthOpsError(
                    f"params.models {params['models']}: expected a subset of {MEMBER_KINDS} "
                    "that includes the 'rf' baseline"
                )
        if params.get("spatial_models") is not None:
            params["spatial_models"] = tuple(params["spatial_models"])
            if not params["spatial_models"] or set(params["spatial_models"]) - set(MEMBER_KINDS):
                raise EarthOpsError(
                    f"params.spatial_models {params['spatial_models']}: expected a non-empty "
                    f"subset of {MEMBER_KINDS}"
                )
        deg = params.get("spatial_block_deg")
        if deg is not None and not (isinstance(deg, int | float) and deg > 0):
            raise EarthOpsError(
                f"params.spatial_block_deg {deg!r}: expected a block size in degrees > 0 "
                "(or null to skip the spatial check)"
            )
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise EarthOpsError(f"unknown {NAME} params {sorted(unknown)}")
        cfg = replace(cfg, **params)
        check_members(cfg.models, cfg.member)
        return cfg

    @property
    def spatial_kinds(self) -> tuple[str, ...]:
        """Members of the spatial check."""
        if self.spatial_models is not None:
            return self.spatial_models
        return tuple(k for k in self.models if k in TABULAR_KINDS)

    def member(self, kind: str, layout: dict[str, int] | None = None) -> Any:
        """An unfitted member of ``kind`` (features in, labels out); ``layout`` gives the nets
        ``n_dates``/``n_channels`` of the raw series at the start of the features."""
        layout = layout or {}
        if kind == "svm":
            svc = SVC(**self.svm_params, random_state=self.seed)
            return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, ensemble=False))
        if kind == "tempcnn":
            return TempCNNClassifier(**{"seed": self.seed, **self.tempcnn_params, **layout})
        if kind == "ltae":
            return LTAEClassifier(**{"seed": self.seed, **self.ltae_params, **layout})
        params = {"rf": self.rf_params, "lightgbm": self.lgbm_params, "xgboost": self.xgb_params}
        return make_classifier(kind, **params[kind])


def encode_keys(keys: np.ndarray) -> str:
    """Sample keys (uint64) as compact text for the model metadata (sorted, base64)."""
    return base64.b64encode(np.unique(keys).astype("<u8").tobytes()).decode("ascii")


def decode_keys(text: str) -> np.ndarray:
    """Inverse of :func:`encode_keys`."""
    return np.frombuffer(base64.b64decode(text), dtype="<u8")


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise EarthOpsError(
            f"unknown protocol '{protocol}' for {NAME}; expected one of {', '.join(PROTOCOLS)}"
        )
    return protocol


def protocol_layout(
    protocol: str, bands: tuple[str, ...], n_dates: int
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``(bands, date positions)`` a protocol uses from samples with ``bands`` × ``n_dates``."""
    if protocol == "ndvi-sinop":
        if "ndvi" not in bands:
            raise EarthOpsError("protocol ndvi-sinop needs an 'ndvi' band in the samples")
        if n_dates <= SINOP_INDEX[-1]:
            raise EarthOpsError(f"protocol ndvi-sinop needs 23 dates per sample, got {n_dates}")
        return ("ndvi",), SINOP_INDEX
    return bands, tuple(range(n_dates))


# ------------------------------------------------------------------------------- model
class TimeSeriesLandCoverModel(ClassifierMixin, BaseEstimator):
    """The logged model: flat time-major rows ``(n, n_dates × n_bands)`` → class labels.

    Columns follow :func:`earthops.features.timeseries.input_columns` (``ndvi_t00, evi_t00, …``).
    ``members`` are fitted on the features of ``featurizer``; with a ``stacker`` their
    log-probabilities (in ``members`` order) feed it, else the single member answers.
    With ``vote`` their probabilities are averaged (soft voting). ``map_model`` (optional) is
    the NDVI-only model used by ``predict_raster``.
    """

    def __init__(
        self,
        featurizer: TimeSeriesFeatures | None = None,
        members: dict[str, Any] | None = None,
        stacker: Any = None,
        map_model: TimeSeriesLandCoverModel | None = None,
        vote: bool = False,
    ) -> None:
        self.featurizer = featurizer
        self.members = members
        self.stacker = stacker
        self.map_model = map_model
        self.vote = vote

    @property
    def classes_(self) -> np.ndarray:
        first = next(iter((self.members or {}).values()))
        return np.asarray(first.classes_)

    def fit(self, X: Any, y: Any) -> TimeSeriesLandCoverModel:  # pragma: no cover
        raise NotImplementedError("built by TimeSeriesLandCover.train")

    def predict_proba(self, X: Any) -> np.ndarray:
        assert self.featurizer is not None and self.members
        feats = self.featurizer.transform(X)
        probas = [np.asarray(m.predict_proba(feats)) for m in self.members.values()]
        if self.vote:
            return np.mean(probas, axis=0)
        if self.stacker is None:
            return probas[0]
        return np.asarray(self.stacker.predict_proba(log_probs(probas)))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# -------------------------------------------------------------------------------- CV
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


def spatial_check(samples: SampleSet, fitted: _Fitted, cfg: TrainConfig) -> dict[str, Any]:
    """Spatial block CV of ``cfg.spatial_kinds`` beside their random-fold figures.

    Samples that cannot be split into enough blocks (one site) are reported, not fatal.
    """
    assert cfg.spatial_block_deg is not None
    result, kinds = fitted.result, cfg.spatial_kinds
    try:
        check = spatial_block_cv(
            result.features,
            samples.labels,
            samples.coords,
            lambda kind: cfg.member(kind, result.layout),
            kinds,
            n_folds=cfg.n_folds,
            block_deg=cfg.spatial_block_deg,
            seed=cfg.seed,
        )
    except EarthOpsError as exc:
        log.warning("landcover_timeseries.spatial_check_skipped", reason=str(exc))
        return {"skipped": str(exc)}
    check["random_folds"] = {
        k: headline_figures(result.metrics[k]) for k in kinds if k in result.metrics
    }
    return check


def _voters(models: tuple[str, ...]) -> list[str]:
    """Members of the soft vote: all but the RF baseline when at least two others exist."""
    others = [k for k in models if k != "rf"]
    return others if len(others) >= 2 else list(models)


# ----------------------------------------------------------------------------- samples
def sample_rows(samples: SampleSet, bands: tuple[str, ...], index: tuple[int, ...]) -> np.ndarray:
    """Flat time-major rows ``(n, len(index) × len(bands))`` of ``samples``."""
    missing = [b for b in bands if b not in samples.bands]
    if missing:
        raise DataError(
            samples.ref.uri,
            f"bands {missing} missing; the model needs {list(bands)}",
            field="bands",
        )
    if samples.n_times <= max(index):
        raise DataError(
            samples.ref.uri,
            f"{samples.n_times} dates per sample; the model needs {max(index) + 1}",
            field="time_series",
        )
    cube = samples.array[:, list(index), :][:, :, [samples.bands.index(b) for b in bands]]
    return cube.reshape(len(cube), -1).astype(np.float32)


def season_day(dates: Any) -> np.ndarray:
    """Days since 1 September of the season each date belongs to (calendar-day matching)."""
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    start_year = np.where(d.month >= 9, d.year, d.year - 1)
    start = pd.to_datetime([f"{y}-09-01" for y in start_year])
    return np.asarray((d - start).days, dtype=np.int64)


def _season_names(days: np.ndarray) -> list[str]:
    base = pd.Timestamp("2013-09-01")  # non-leap reference season
    return [(base + pd.Timedelta(days=int(v))).strftime("%m-%d") for v in days]


# ---------------------------------------------------------------------------- use case
class TimeSeriesLandCover:
    """The ``landcover-timeseries`` use case (see module docstring)."""

    name: ClassVar[str] = NAME
    primary_metric: ClassVar[str] = "macro_f1"
    gate: ClassVar[dict[str, float]] = {"overall_accuracy": 0.9, "macro_f1": 0.85}

    def tuning_problem(self, options: TrainOptions) -> Any:
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

    def dataset_refs(self, options: TrainOptions) -> list[DatasetRef]:
        refs = []
        if options.dataset is not None:
            from earthops.data.identity import file_sha256

            path = Path(options.dataset)
            if not path.is_file():
                raise DataError(path, "samples file not found")
            refs.append(DatasetRef(name=path.name, uri=str(path), digest=file_sha256(path)))
        else:
            refs.append(catalog.dataset_ref(DATASET))
        protocol = check_protocol(options.protocol or DEFAULT_PROTOCOL)
        cfg = TrainConfig.from_options(options)
        if protocol == "ndvi-sinop" or cfg.with_map_model:
            refs.append(catalog.dataset_ref(CUBE))
        return refs

    # -- train --------------------------------------------------------------------------------
    def train(self, options: TrainOptions) -> dict[str, Any]:
        from earthops.registry.tracking import (
            log_confusion_matrix,
            log_dataset_refs,
            log_metrics_dict,
            log_model,
            training_run,
        )

        if options.exclude_bboxes:
            raise EarthOpsError(f"{NAME} does not support --exclude-bbox (samples, not a grid)")
        cfg = TrainConfig.from_options(options)
        samples = read_mod13q1_samples(options.dataset)
        y = samples.labels
        if min(np.unique(y, return_counts=True)[1]) < cfg.n_folds:
            raise DataError(samples.ref.uri, f"every class needs >= {cfg.n_folds} samples for CV")
        refs = self.dataset_refs(options)
        with training_run(NAME, run_name=f"{NAME}-{cfg.protocol}") as run:
            log_dataset_refs(refs)
            main = self._fit_protocol(samples, cfg.protocol, cfg)
            map_part: _Fitted | None = None
            if cfg.protocol == "ndvi-sinop":
                map_part = main
            elif cfg.with_map_model:
                map_cfg = cfg  # the same members and folds, on NDVI at the cube dates
                map_part = self._fit_protocol(samples, "ndvi-sinop", map_cfg)
                main.result.model.map_model = map_part.result.model
            result = main.result
            classes = [str(c) for c in np.unique(y)]
            metrics = dict(result.headline)
            metrics["baseline"] = {
                k: result.metrics["rf"][k]
                for k in ("overall_accuracy", "macro_f1", "kappa", "per_class")
            }
            metrics.update(
                protocol=cfg.protocol,
                selected=result.selected,
                selected_plain_cv=headline_figures(result.metrics[result.selected]),
                models={k: headline_figures(m) for k, m in result.metrics.items()},
                ensembles_vs_best_single={
                    "stack_macro_f1": (
                        round(result.metrics["stack"]["macro_f1"], 4)
                        if "stack" in result.metrics
                        else None
                    ),
                    "vote_macro_f1": (
                        round(result.metrics["vote"]["macro_f1"], 4)
                        if "vote" in result.metrics
                        else None
                    ),
                    "best_single": max(cfg.models, key=lambda k: result.metrics[k]["macro_f1"]),
                    "min_gain": cfg.min_gain,
                },
                selection={
                    "rule": (
                        "best OOF macro F1; an ensemble (stack, vote) only if it beats the best "
                        f"single member by min_gain={cfg.min_gain}"
                    ),
                    "choice_per_fold": result.choices,
                    "metrics": (
                        "selection-aware: fold k is scored with the candidate chosen on the "
                        f"other {cfg.n_folds - 1} folds only; every candidate's plain CV "
                        "figures are under models"
                    ),
                },
                validation=f"stratified {cfg.n_folds}-fold CV, pooled out-of-fold predictions",
                n_features=len(main.feature_names),
                fast=options.fast,
            )
            if cfg.spatial_block_deg is not None:
                metrics["spatial_check"] = spatial_check(samples, main, cfg)
            if map_part is not None and map_part is not main:
                metrics["ndvi_sinop"] = {
                    **headline_figures(map_part.result.headline),
                    "selected": map_part.result.selected,
                    "choice_per_fold": map_part.result.choices,
                    "baseline": headline_figures(map_part.result.metrics["rf"]),
                }
            metadata = {
                "usecase": NAME,
                "protocol": cfg.protocol,
                "bands": list(main.bands),
                "date_index": list(main.index),
                "dates": main.date_names,
                "n_dates": len(main.index),
                "input_columns": input_columns(main.bands, len(main.index)),
                "feature_names": main.feature_names,
                "classes": classes,
                "selected": result.selected,
                "members": list(result.model.members or {}),
                "training_sample_keys": encode_keys(samples.keys),
            }
            if map_part is not None:
                metadata["raster_signature"] = map_part.signature
                metadata["map_dates"] = map_part.date_names
            example = pd.DataFrame(main.X[:5], columns=input_columns(main.bands, len(main.index)))
            log_metrics_dict(metrics)
            log_confusion_matrix(y, result.headline_pred, classes)
            uri = log_model(result.model, example, metadata=metadata)
            metrics.update(model_uri=uri, run_id=run.info.run_id)
        log.info("landcover_timeseries.trained", **headline_figures(metrics), model_uri=uri)
        return metrics

    def _fit_protocol(self, samples: SampleSet, protocol: str, cfg: TrainConfig) -> _Fitted:
        bands, index = protocol_layout(protocol, samples.bands, samples.n_times)
        X = sample_rows(samples, bands, index)
        featurizer = TimeSeriesFeatures(bands=bands, n_dates=len(index))
        result = cross_validate(
            X, samples.labels, replace(cfg, protocol=protocol), featurizer, protocol
        )
        days = season_day(samples.dates[0][list(index)])
        signature = None
        if protocol == "ndvi-sinop":
            from earthops.data.rasters import read_sinop_cube
            from earthops.models.mapping import raster_signature

            cube = read_sinop_cube()
            signature = raster_signature(cube, layer_names=_season_names(days))
            cube_names = _season_names(season_day(cube["time"].values))
            if cube_names != signature["names"]:
                raise DataError(
                    CUBE, f"cube dates {cube_names} are not the samples' dates {signature['names']}"
                )
        return _Fitted(
            bands=bands,
            index=index,
            X=X,
            feature_names=list(featurizer.get_feature_names_out()),
            date_names=_season_names(days),
            signature=signature,
            result=result,
        )

    # -- evaluate ------------------------------------------------------------------------------
    def evaluate(self, model_uri: str, options: EvalOptions) -> dict[str, Any]:
        """Score a logged model on a samples JSON (default: the catalog samples)."""
        from earthops.registry.tracking import load_model, model_metadata

        meta = _check_meta(model_uri, model_metadata(model_uri))
        model = load_model(model_uri)
        samples = read_mod13q1_samples(options.dataset, bands=tuple(meta["bands"]))
        X = sample_rows(samples, tuple(meta["bands"]), tuple(meta["date_index"]))
        y = samples.labels
        pred = model.predict(X)
        classes = sorted(set(meta.get("classes", [])) | set(y.tolist()))
        metrics = classification_metrics(y, pred, classes)
        unknown = sorted(set(y.tolist()) - set(meta.get("classes", [])))
        trained_on = meta.get("training_sample_keys")
        honesty = holdout_fields(
            "training_sample_share",
            None if trained_on is None else np.isin(samples.keys, decode_keys(trained_on)).mean(),
            hint="these samples were in the model's training set; score held-out samples for "
            "an honest figure",
        )
        metrics.update(
            model_uri=model_uri,
            dataset=str(options.dataset or samples.ref.uri),
            protocol=meta.get("protocol"),
            unknown_labels=unknown,
            **honesty,
        )
        return metrics

    # -- maps --------------------------------------------------------------------------------
    def predict_raster(
        self, model_uri: str, inputs: list[Path], output: Path, *, with_probability: bool = False
    ) -> Path:
        """Classify an NDVI cube (one file per date) into a COG with the class palette."""
        from earthops.data.rasters import read_sinop_cube
        from earthops.models.mapping import classify_blocks
        from earthops.registry.tracking import load_model, model_metadata

        meta = _check_meta(model_uri, model_metadata(model_uri))
        signature = meta.get("raster_signature")
        if not signature:
            raise SignatureError(
                f"model '{model_uri}' has no raster signature; train it with protocol "
                "ndvi-sinop (or all-bands with the map model) to map a cube"
            )
        if not inputs:
            raise EarthOpsError("predict-raster needs the NDVI files of the cube (one per date)")
        cube = read_sinop_cube(inputs)
        names = _match_dates(season_day(cube["time"].values), meta["raster_signature"]["names"])
        model = load_model(model_uri)
        map_model = model if meta.get("protocol") == "ndvi-sinop" else model.map_model
        if map_model is None:
            raise SignatureError(f"model '{model_uri}' carries no NDVI map model")
        n = int(cube.sizes["time"])

        def featurize(block: np.ndarray) -> np.ndarray:
            return block.reshape(block.shape[0], -1).T

        return classify_blocks(
            cube,
            featurize,
            map_model,
            output,
            legend={c: c for c in map_model.classes_},
            with_probability=with_probability,
            signature=signature,
            layer_names=names,
            source=f"NDVI cube ({n} files, {Path(inputs[0]).parent})",
            min_valid_layers=max(1, n // 2),
            description="land_cover",
            tags={"EARTHOPS_MODEL": model_uri, "EARTHOPS_USECASE": NAME},
        )


@dataclass
class _Fitted:
    bands: tuple[str, ...]
    index: tuple[int, ...]
    X: np.ndarray
    feature_names: list[str]
    date_names: list[str]
    signature: dict[str, Any] | None
    result: CVResult


def _check_meta(model_uri: str, meta: dict[str, Any]) -> dict[str, Any]:
    if meta.get("usecase") != NAME:
        raise EarthOpsError(
            f"model '{model_uri}' is not a {NAME} model (usecase={meta.get('usecase')!r})"
        )
    return meta


def _match_dates(days: np.ndarray, expected: list[str]) -> list[str]:
    """Cube dates as the model's season names when within the tolerance, else their own."""
    ref = pd.Timestamp("2013-09-01")
    want = {n: (pd.Timestamp(f"{2013 if n >= '09' else 2014}-{n}") - ref).days for n in expected}
    out = []
    for d in days:
        close = [n for n, w in want.items() if abs(int(d) - w) <= DATE_TOLERANCE_DAYS]
        out.append(close[0] if close else _season_names(np.array([d]))[0])
    return out
