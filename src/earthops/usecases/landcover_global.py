"""``landcover-global``: IGBP land cover (MCD12C1 2019) on the 0.05° CMG grid.

* **Inputs** (never the labels): the cached global feature grid of
  :mod:`earthops.features.global_grid` — Blue Marble RGB, indices, multi-scale neighbourhood
  statistics, GLCM texture, Köppen-Geiger mode/fractions, ocean-fraction context, coordinates —
  and, for the ViT, Blue Marble chips centred on each pixel.
* **Sampling**: class-balanced stratified — up to ``n_per_class`` pixels per class, seeded;
  pixels inside ``--exclude-bbox`` regions are never sampled for training.
* **Validation**: spatial block CV — 10°×10° blocks, ``n_folds`` folds (5; 3 when fast),
  blocks assigned whole to folds (stratified by class, :class:`StratifiedGroupKFold`). Every
  model gets the same folds; metrics are computed on the pooled out-of-fold predictions of
  the balanced sample (so overall accuracy ≈ mean per-class recall). The headline metrics are
  selection-aware: each fold is predicted by the candidate chosen on the other folds, so the
  model choice never sees the fold it is scored on (``comparison`` has every candidate's
  plain block-CV score). A balanced sample over-represents rare classes, so
  ``area_proportional`` adds what a *map* user sees: a simple random sample of the land pixels
  (Köppen-Geiger land, protocol classes) of the held-out blocks, each scored by the model of
  its fold — with the balanced decision and with the Bayes prior correction (probabilities
  × population share / training-sample share, from the training blocks; Saerens et al. 2002).
* **Decision** (``params.decision``): ``balanced`` (default; argmax of the class-balanced
  model, what the headline's balanced sample rewards) or ``area`` (the prior-corrected
  argmax, what maximises accuracy on a map's own class mix). The logged model, its
  headline and its maps all follow the chosen rule.
* **Models**: Random Forest (baseline), LightGBM, XGBoost, a ViT on Blue Marble chips, and a
  stacking ensemble (logistic regression on the members' out-of-fold log-probabilities) that
  is selected only when its block-CV macro F1 beats the best single model by ``min_gain``.
* **Protocols**: ``igbp7`` (classes 0–6, sampled only from those pixels) and ``igbp17``.

Labelled datasets for :meth:`GlobalLandCover.evaluate` (``--dataset``):

* a GeoTIFF label raster on the CMG grid (7200×3600, EPSG:4326, −180…180/90…−90; uint8 IGBP
  0–16, nodata 255), e.g. MCD12C1 of another year; or
* a CSV with columns ``lon,lat,label`` (degrees, IGBP value); each row is scored at the
  0.05° grid pixel that contains it.

Labels outside the protocol's classes are ignored. ``--bbox`` restricts either source (or
the catalog MCD12C1 when no dataset is given) to the union of the boxes. With neither
``--dataset`` nor ``--bbox``, a model trained with ``--exclude-bbox`` is scored inside its
excluded boxes (the catalog labels are its training labels). The metrics say how honest the
score is: ``training_area_share`` is the share of scored pixels outside every excluded box —
where training pixels were drawn, so neighbours of them — and ``holdout`` is true when it is 0
(a warning is logged otherwise).
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from rasterio.transform import from_origin
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedGroupKFold

from earthops.data import catalog
from earthops.data.identity import DatasetRef
from earthops.data.legends import IGBP
from earthops.data.rasters import read_mcd12c1
from earthops.errors import DataError, EarthOpsError, SignatureError
from earthops.features.global_grid import (
    GRID_CRS,
    GRID_RES,
    GRID_SHAPE,
    FeatureGrid,
    GridSpec,
    chip_columns,
    extract_chips,
    flatten_chips,
    load_feature_grid,
    lonlat_to_pixel,
    pixel_lonlat,
    read_bmng_rgb,
    unflatten_chips,
)
from earthops.logs import get_logger, progress
from earthops.models.estimators import make_classifier
from earthops.models.metrics import classification_metrics as _metrics
from earthops.models.metrics import headline_figures, holdout_fields
from earthops.models.selection import (
    choose_candidate,
    log_probs,
    make_stacker,
    selection_aware_proba,
)
from earthops.usecases.base import (
    BBox,
    EvalOptions,
    TrainOptions,
    check_members,
    merge_member_params,
)

log = get_logger(__name__)

NAME = "landcover-global"
PROTOCOLS: dict[str, tuple[int, ...]] = {"igbp7": tuple(range(7)), "igbp17": tuple(range(17))}
DEFAULT_PROTOCOL = "igbp7"
BLOCK_DEG = 10.0
NODATA = 255
TABULAR_KINDS = ("rf", "lightgbm", "xgboost")
TRAINING_PIXELS = "training_pixels.csv.gz"
#: decision rules of the logged model (see the module docstring)
DECISIONS = ("balanced", "area")
#: the raw rasters a model's map is computed from (``predict_raster`` inputs), by role
MAP_INPUTS: dict[str, dict[str, Any]] = {
    "bmng-2004": {"bands": 3, "height": 2700, "width": 5400, "crs": "EPSG:4326"},
    "koppen-geiger": {"bands": 1, "height": 21600, "width": 43200, "crs": "EPSG:4326"},
}

_RF = {"n_estimators": 300, "min_samples_leaf": 1}
_LGBM = {
    "n_estimators": 300,
    "learning_rate": 0.08,
    "num_leaves": 31,
    "max_bin": 63,
    "colsample_bytree": 0.5,
}
_XGB = {
    "n_estimators": 250,
    "learning_rate": 0.1,
    "max_depth": 6,
    "max_bin": 64,
    "colsample_bytree": 0.5,
}
_VIT: dict[str, Any] = {"epochs": 6}  # half the ViT default: CV fits it n_folds + 1 times


# ------------------------------------------------------------------------------ config
def vit_available() -> bool:
    """Whether the ViT member (``earthops.models.vit``) is importable in this build."""
    try:
        return importlib.util.find_spec("earthops.models.vit") is not None
    except ModuleNotFoundError:
        return False


def default_models() -> tuple[str, ...]:
    """Members tried by a full run: the tabular models, plus the ViT when it is available."""
    return (*TABULAR_KINDS, "vit") if vit_available() else TABULAR_KINDS


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run (defaults = full run; :meth:`fast` = smoke run)."""

    protocol: str = DEFAULT_PROTOCOL
    n_per_class: int = 3000
    n_folds: int = 5
    block_deg: float = BLOCK_DEG
    models: tuple[str, ...] = field(default_factory=lambda: default_models())
    chip_size: int = 16
    min_gain: float = 0.003
    probe_pixels: int = 40_000
    decision: str = "balanced"
    seed: int = 42
    rf_params: dict[str, Any] = field(default_factory=lambda: dict(_RF))
    lgbm_params: dict[str, Any] = field(default_factory=lambda: dict(_LGBM))
    xgb_params: dict[str, Any] = field(default_factory=lambda: dict(_XGB))
    vit_params: dict[str, Any] = field(default_factory=lambda: dict(_VIT))
    grid: GridSpec = field(default_factory=GridSpec)

    @classmethod
    def from_options(cls, options: TrainOptions) -> TrainConfig:
        """Config for ``options``: protocol, fast mode, then ``options.params`` overrides."""
        protocol = options.protocol or DEFAULT_PROTOCOL
        check_protocol(protocol)
        cfg = cls(protocol=protocol, n_per_class=3000 if protocol == "igbp7" else 1200)
        if options.fast:
            cfg = replace(
                cfg,
                n_per_class=300,
                n_folds=3,
                probe_pixels=6000,
                models=("rf", "lightgbm"),
                rf_params={"n_estimators": 60},
                lgbm_params={**_LGBM, "n_estimators": 80, "learning_rate": 0.15},
            )
        params = merge_member_params(cfg, options.params)
        if "models" in params:
            params["models"] = tuple(params["models"])
            unknown = set(params["models"]) - {*TABULAR_KINDS, "vit"}
            if unknown or "rf" not in params["models"]:
                raise EarthOpsError(
                    f"params.models {params['models']}: expected a subset of "
                    f"{(*TABULAR_KINDS, 'vit')} that includes the 'rf' baseline"
                )
            if "vit" in params["models"] and not vit_available():
                raise EarthOpsError(
                    "params.models asks for 'vit' but earthops.models.vit is absent"
                )
        if "grid" in params and isinstance(params["grid"], dict):
            params["grid"] = GridSpec.model_validate(params["grid"])
        unknown_keys = set(params) - set(cls.__dataclass_fields__)
        if unknown_keys:
            raise EarthOpsError(f"unknown landcover-global params {sorted(unknown_keys)}")
        if params.get("decision", "balanced") not in DECISIONS:
            raise EarthOpsError(
                f"params.decision {params['decision']!r}: expected one of {', '.join(DECISIONS)}"
            )
        cfg = replace(cfg, **params)
        check_members(cfg.models, lambda kind: make_classifier(kind, **cfg.model_params(kind)))
        return cfg

    def model_params(self, kind: str) -> dict[str, Any]:
        return {
            "rf": self.rf_params,
            "lightgbm": self.lgbm_params,
            "xgboost": self.xgb_params,
            "vit": self.vit_params,
        }[kind]


def check_protocol(protocol: str) -> tuple[int, ...]:
    """Classes of ``protocol``; a clear error for an unknown one."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise EarthOpsError(
            f"unknown protocol '{protocol}' for {NAME}; expected one of {', '.join(PROTOCOLS)}"
        ) from None


# ------------------------------------------------------------------------------ labels
def read_labels(path: str | Path | None = None) -> np.ndarray:
    """IGBP labels ``(3600, 7200)`` uint8 (nodata 255): catalog MCD12C1 2019 or a GeoTIFF on
    the CMG grid (checked: shape and extent)."""
    da = read_mcd12c1(path)
    source = path or "mcd12c1-2019"
    if da.shape[1:] != GRID_SHAPE:
        raise DataError(
            source,
            f"expected a {GRID_SHAPE[1]}x{GRID_SHAPE[0]} label raster on the "
            f"0.05° CMG grid, got {da.shape[2]}x{da.shape[1]}",
        )
    left, bottom, right, top = da.rio.bounds()
    if max(abs(left + 180), abs(right - 180), abs(top - 90), abs(bottom + 90)) > GRID_RES / 2:
        raise DataError(
            source, f"expected global extent -180,-90,180,90; got {left},{bottom},{right},{top}"
        )
    values = np.asarray(da.values[0], dtype=np.uint8)
    nodata = int(da.rio.nodata) if da.rio.nodata is not None else NODATA
    if nodata != NODATA:
        values = np.where(values == nodata, NODATA, values).astype(np.uint8)
    return values


def in_bboxes(rows: np.ndarray, cols: np.ndarray, bboxes: Sequence[BBox]) -> np.ndarray:
    """Pixels (by centre) inside any of ``bboxes``."""
    lon, lat = pixel_lonlat(rows, cols)
    mask = np.zeros(np.shape(rows), dtype=bool)
    for box in bboxes:
        mask |= box.contains(lon, lat)
    return mask


def _box_mask(shape: tuple[int, ...], bboxes: Sequence[BBox]) -> np.ndarray:
    """``shape`` boolean grid: pixels whose centre lies in any of ``bboxes`` (cf. in_bboxes)."""
    mask = np.zeros(shape, dtype=bool)
    lon, _ = pixel_lonlat(np.zeros(shape[1]), np.arange(shape[1]))
    _, lat = pixel_lonlat(np.arange(shape[0]), np.zeros(shape[0]))
    for box in bboxes:
        rows = np.flatnonzero((lat >= box.miny) & (lat <= box.maxy))
        cols = np.flatnonzero((lon >= box.minx) & (lon <= box.maxx))
        if rows.size and cols.size:
            mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    return mask


def sample_pixels(
    labels: np.ndarray,
    classes: Sequence[int],
    n_per_class: int,
    *,
    seed: int = 42,
    exclude: Sequence[BBox] = (),
    include: Sequence[BBox] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced stratified sample: up to ``n_per_class`` random pixels of each class.

    Pixels whose centre lies in an ``exclude`` box are never drawn; with ``include`` only
    pixels inside those boxes are. Returns ``(rows, cols)`` sorted by class then draw order.
    """
    rng = np.random.default_rng(seed)
    width = labels.shape[1]
    flat = labels.ravel()
    allowed = None
    if exclude or include:
        allowed = _box_mask(labels.shape, include) if include else np.ones(labels.shape, bool)
        if exclude:
            allowed &= ~_box_mask(labels.shape, exclude)
        allowed = allowed.ravel()
    rows_out, cols_out = [], []
    for cls in classes:
        hit = flat == cls
        if allowed is not None:
            hit &= allowed
        idx = np.flatnonzero(hit)
        if idx.size > n_per_class:
            idx = rng.choice(idx, n_per_class, replace=False)
        r, c = np.divmod(idx, width)
        rows_out.append(r)
        cols_out.append(c)
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(cols_out).astype(np.int64)


def block_ids(rows: np.ndarray, cols: np.ndarray, block_deg: float = BLOCK_DEG) -> np.ndarray:
    """Id of the ``block_deg``×``block_deg`` block (aligned at −180°, 90°) holding each pixel."""
    per_block = round(block_deg / GRID_RES)
    n_x = -(-GRID_SHAPE[1] // per_block)
    return (np.asarray(rows) // per_block) * n_x + np.asarray(cols) // per_block


def block_folds(y: np.ndarray, blocks: np.ndarray, n_folds: int = 5, seed: int = 42) -> np.ndarray:
    """Fold index (0..n_folds-1) of every sample; a block is never split across folds."""
    if np.unique(blocks).size < n_folds:
        raise EarthOpsError(
            f"spatial block CV needs at least {n_folds} blocks with samples, got "
            f"{np.unique(blocks).size}"
        )
    folds = np.full(len(y), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, blocks)):
        folds[test] = k
    return folds


# ----------------------------------------------------------------------------- metrics
def classification_metrics(
    y: np.ndarray, pred: np.ndarray, classes: Sequence[int]
) -> dict[str, Any]:
    """The DESIGN metrics with ``per_class`` keyed by IGBP class name."""
    return _metrics(y, pred, classes, IGBP.names())


# ------------------------------------------------------------------------------- model
def _align(proba: np.ndarray, model_classes: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Probability columns re-ordered to ``classes`` (zeros for classes unseen in training)."""
    out = np.zeros((proba.shape[0], len(classes)), dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(model_classes):
        out[:, index[int(c)]] = proba[:, j]
    return out


def _vit_input(chips: np.ndarray) -> np.ndarray:
    return np.asarray(chips, dtype=np.float32) / np.float32(255.0)


class GlobalLandCoverModel(ClassifierMixin, BaseEstimator):
    """The logged model: one or more fitted members, optionally stacked.

    Input: a table with the grid features (``feature_names``) and, when a ViT member is
    present, the flattened Blue Marble chip (``chip_0000``…, uint8 values). Output: IGBP values.
    """

    def __init__(
        self,
        members: dict[str, Any] | None = None,
        stacker: Any = None,
        feature_names: Sequence[str] = (),
        classes: Sequence[int] = (),
        chip_size: int | None = None,
        decision: str = "balanced",
        prior_shift: Sequence[float] | None = None,
    ) -> None:
        self.members = members
        self.stacker = stacker
        self.feature_names = feature_names
        self.classes = classes
        self.chip_size = chip_size
        self.decision = decision
        self.prior_shift = prior_shift

    @property
    def shifts_priors(self) -> bool:
        """Whether probabilities are re-weighted to the map's class shares (``decision='area'``;
        models logged before the option have no such attribute)."""
        shift = getattr(self, "prior_shift", None)
        return getattr(self, "decision", "balanced") == "area" and shift is not None

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=np.int64)

    @property
    def needs_chips(self) -> bool:
        return "vit" in (self.members or {})

    def fit(self, X: Any, y: Any) -> GlobalLandCoverModel:  # pragma: no cover - built by train
        raise NotImplementedError("built by GlobalLandCover.train")

    def proba_arrays(self, features: np.ndarray, chips: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities ``(n, classes)`` from a feature matrix and optional chips."""
        probas = []
        for kind, est in (self.members or {}).items():
            if kind == "vit":
                if chips is None:
                    raise EarthOpsError("this model has a ViT member: chips are required")
                raw = est.predict_proba(_vit_input(chips))
            else:
                raw = est.predict_proba(features)
            probas.append(_align(raw, est.classes_, self.classes))
        if self.stacker is None:
            proba = probas[0]
        else:
            proba = _align(
                self.stacker.predict_proba(log_probs(probas)), self.stacker.classes_, self.classes
            )
        if self.shifts_priors:
            proba = proba * np.asarray(self.prior_shift, dtype=np.float64)
            proba /= np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
        return proba

    def predict_arrays(self, features: np.ndarray, chips: np.ndarray | None = None) -> np.ndarray:
        """Class labels, the argmax of :meth:`proba_arrays`.

        A lone tabular member (no stacker, no prior shift, classes in the model's order) gives
        the same labels through its own ``predict``, which may stop scoring a row early.
        """
        members = self.members or {}
        if len(members) == 1 and self.stacker is None and not self.shifts_priors:
            kind, est = next(iter(members.items()))
            order = [int(c) for c in est.classes_]
            if kind != "vit" and order == [c for c in self.classes if c in order]:
                return np.asarray(est.predict(features))
        return self.classes_[np.argmax(self.proba_arrays(features, chips), axis=1)]

    def _arrays(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The feature matrix and (when a ViT member needs them) the chips of a table."""
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise EarthOpsError(f"input lacks model features {missing[:5]}")
        features = X[list(self.feature_names)].to_numpy(dtype=np.float32)
        chips = None
        if self.needs_chips:
            cols = chip_columns(int(self.chip_size or 16))
            chips = unflatten_chips(X[cols].to_numpy(dtype=np.uint8), int(self.chip_size or 16))
        return features, chips

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba_arrays(*self._arrays(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_arrays(*self._arrays(X))


# ---------------------------------------------------------------------------- training
@dataclass
class _Sample:
    rows: np.ndarray
    cols: np.ndarray
    y: np.ndarray
    X: np.ndarray
    chips: np.ndarray | None = None


@dataclass
class _Probe:
    """Area-proportional probe: a simple random sample of the map population.

    The population is every land pixel (some Köppen-Geiger land) of the protocol's classes in
    a block that has a fold; ``priors[k]`` re-weight the probabilities of the model trained
    without fold ``k`` from its training-sample class shares to the population's shares
    outside fold ``k`` (all that model may know).
    """

    rows: np.ndarray
    cols: np.ndarray
    y: np.ndarray
    X: np.ndarray
    fold: np.ndarray
    priors: np.ndarray  # (n_folds, classes): population share / training-sample share
    population: int
    prior_shift: np.ndarray  # (classes,): the same over every fold (for the final model)
    chips: np.ndarray | None = None


def land_mask(grid: FeatureGrid) -> np.ndarray:
    """CMG-grid mask of the pixels inside ``grid``'s window holding some Köppen-Geiger land."""
    layer = grid.spec.stored_names().index("koppen")
    r0, r1, c0, c1 = grid.spec.window()
    mask = np.zeros(GRID_SHAPE, dtype=bool)
    mask[r0:r1, c0:c1] = np.asarray(grid.data[layer]) > 0
    return mask


def probe_sample(
    labels: np.ndarray,
    grid: FeatureGrid,
    data: _Sample,
    folds: np.ndarray,
    cfg: TrainConfig,
    classes: Sequence[int],
    exclude: Sequence[BBox] = (),
) -> _Probe:
    """Draw the :class:`_Probe` (``cfg.probe_pixels`` pixels, seeded) for the block folds."""
    sampled_blocks = block_ids(data.rows, data.cols, cfg.block_deg)
    population = land_mask(grid) & np.isin(labels, classes)
    if exclude:
        population &= ~_box_mask(labels.shape, exclude)
    rows, cols = np.nonzero(population)
    blocks = block_ids(rows, cols, cfg.block_deg)
    fold_of_block = np.full(max(int(blocks.max(initial=0)), int(sampled_blocks.max())) + 1, -1)
    fold_of_block[sampled_blocks] = folds  # a block's samples share one fold
    fold = fold_of_block[blocks]
    rows, cols, fold = rows[fold >= 0], cols[fold >= 0], fold[fold >= 0]
    y_all = labels[rows, cols].astype(np.int64)
    priors = np.stack(
        [prior_shift(y_all[fold != k], data.y[folds != k], classes) for k in range(cfg.n_folds)]
    )
    rng = np.random.default_rng(cfg.seed + 1)
    pick = np.sort(rng.choice(rows.size, min(cfg.probe_pixels, rows.size), replace=False))
    rows, cols = rows[pick], cols[pick]
    chips = extract_chips(rows, cols, cfg.chip_size) if data.chips is not None else None
    return _Probe(
        rows,
        cols,
        y_all[pick],
        grid.values(rows, cols),
        fold[pick],
        priors,
        int(y_all.size),
        prior_shift(y_all, data.y, classes),
        chips,
    )


def prior_shift(population: np.ndarray, sample: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Per-class factor population share / sample share (0 for classes never sampled)."""
    area = np.bincount(population, minlength=max(classes) + 1)[list(classes)]
    drawn = np.bincount(sample, minlength=max(classes) + 1)[list(classes)]
    return np.divide(
        area / max(area.sum(), 1),
        drawn / max(drawn.sum(), 1),
        out=np.zeros(len(classes)),
        where=drawn > 0,
    )


def decide(
    proba: np.ndarray, classes: Sequence[int], shift: np.ndarray | None = None
) -> np.ndarray:
    """Class labels: the argmax, prior-corrected by ``shift`` (per row or per class) if given."""
    weighted = proba if shift is None else proba * shift
    return np.asarray(classes)[np.argmax(weighted, axis=1)]


def area_proportional_metrics(
    probe: _Probe, proba: np.ndarray, classes: Sequence[int], decision: str
) -> dict[str, Any]:
    """Scores on the probe: the balanced decision, the prior-corrected one, and which of the two
    the logged model uses (no scores when the probe is empty: no land pixels to map)."""
    head = {
        "population": "land pixels (Köppen-Geiger) of the protocol's classes in held-out "
        "blocks, simple random sample, each scored by the model of its fold",
        "population_pixels": probe.population,
        "n_samples": int(probe.y.size),
        "model_decision": decision,
    }
    if probe.y.size == 0:
        return head
    return {
        **head,
        "balanced_decision": headline_figures(
            classification_metrics(probe.y, decide(proba, classes), classes)
        ),
        "prior_corrected": headline_figures(
            classification_metrics(
                probe.y, decide(proba, classes, probe.priors[probe.fold]), classes
            )
        ),
    }


def _fit_member(
    kind: str, cfg: TrainConfig, X: np.ndarray, chips: np.ndarray | None, y: np.ndarray
) -> Any:
    est = make_classifier(kind, **cfg.model_params(kind))
    if kind == "vit":
        return est.fit(_vit_input(chips), y)
    return est.fit(X, y)


def _member_proba(
    kind: str, est: Any, X: np.ndarray, chips: np.ndarray | None, classes: Sequence[int]
) -> np.ndarray:
    raw = est.predict_proba(_vit_input(chips) if kind == "vit" else X)
    return _align(raw, est.classes_, classes)


def _oof(
    kind: str,
    cfg: TrainConfig,
    data: _Sample,
    folds: np.ndarray,
    classes: Sequence[int],
    probe: _Probe,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of one model kind under the block folds: on the balanced
    sample and on the area-proportional probe."""
    oof = np.zeros((len(data.y), len(classes)))
    oof_probe = np.zeros((len(probe.y), len(classes)))
    with progress() as bar:
        task = bar.add_task(f"block CV {kind}", total=cfg.n_folds)
        for k in range(cfg.n_folds):
            test = folds == k
            est = _fit_member(
                kind,
                cfg,
                data.X[~test],
                None if data.chips is None else data.chips[~test],
                data.y[~test],
            )
            oof[test] = _member_proba(
                kind, est, data.X[test], None if data.chips is None else data.chips[test], classes
            )
            held = probe.fold == k
            oof_probe[held] = _member_proba(
                kind,
                est,
                probe.X[held],
                None if probe.chips is None else probe.chips[held],
                classes,
            )
            bar.advance(task)
    return oof, oof_probe


def _stacked_oof(
    member_oof: Sequence[np.ndarray],
    member_probe: Sequence[np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    probe_folds: np.ndarray,
    classes: Sequence[int],
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Block-CV probabilities of the stacker fitted on the members' out-of-fold outputs, on
    the balanced sample and on the probe (fold ``k``'s stacker never sees fold ``k``)."""
    Z, Zp = log_probs(member_oof), log_probs(member_probe)
    out = np.zeros((len(y), len(classes)))
    out_probe = np.zeros((len(probe_folds), len(classes)))
    for k in np.unique(folds):
        test, held = folds == k, probe_folds == k
        meta = make_stacker(seed=seed).fit(Z[~test], y[~test])
        out[test] = _align(meta.predict_proba(Z[test]), meta.classes_, classes)
        if held.any():
            out_probe[held] = _align(meta.predict_proba(Zp[held]), meta.classes_, classes)
    return out, out_probe


def _log_training_pixels(data: _Sample, folds: np.ndarray) -> None:
    """The training sample (grid pixel, lon/lat, label, block-CV fold) as a run artifact."""
    import mlflow

    lon, lat = pixel_lonlat(data.rows, data.cols)
    frame = pd.DataFrame(
        {"row": data.rows, "col": data.cols, "lon": lon, "lat": lat, "label": data.y, "fold": folds}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / TRAINING_PIXELS
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path))


class GlobalLandCover:
    """The ``landcover-global`` use case (see the module docstring)."""

    name = NAME
    primary_metric = "macro_f1"
    gate: ClassVar[dict[str, float]] = {"overall_accuracy": 0.85, "macro_f1": 0.80}

    # -- lineage -------------------------------------------------------------------------
    def dataset_refs(self, options: TrainOptions) -> list[DatasetRef]:
        refs = [catalog.dataset_ref(n) for n in ("bmng-2004", "koppen-geiger")]
        if options.dataset is not None:
            from earthops.data.identity import file_sha256

            path = Path(options.dataset)
            return [DatasetRef("labels", str(path), file_sha256(path)), *refs]
        return [catalog.dataset_ref("mcd12c1-2019"), *refs]

    # -- training --------------------------------------------------------------------------
    def train(self, options: TrainOptions) -> dict[str, Any]:
        """Sample, block-CV every model, select, refit on all samples, log to MLflow."""
        from earthops.registry.tracking import (
            log_confusion_matrix,
            log_dataset_refs,
            log_metrics_dict,
            log_model,
            training_run,
        )

        started = time.perf_counter()
        cfg = TrainConfig.from_options(options)
        classes = PROTOCOLS[cfg.protocol]
        labels = read_labels(options.dataset)
        grid = load_feature_grid(cfg.grid)
        data = self._sample(labels, grid, cfg, options.exclude_bboxes, classes)
        blocks = block_ids(data.rows, data.cols, cfg.block_deg)
        n_blocks = int(np.unique(blocks).size)
        folds = block_folds(data.y, blocks, cfg.n_folds, cfg.seed)
        log.info("landcover_global.sample", protocol=cfg.protocol, n=len(data.y), blocks=n_blocks)

        probe = probe_sample(labels, grid, data, folds, cfg, classes, options.exclude_bboxes)
        oof: dict[str, np.ndarray] = {}
        oof_probe: dict[str, np.ndarray] = {}
        comparison: dict[str, dict[str, Any]] = {}
        for kind in cfg.models:
            t0 = time.perf_counter()
            oof[kind], oof_probe[kind] = _oof(kind, cfg, data, folds, classes, probe)
            pred = np.asarray(classes)[np.argmax(oof[kind], axis=1)]
            comparison[kind] = {
                **headline_figures(classification_metrics(data.y, pred, classes)),
                "cv_seconds": round(time.perf_counter() - t0, 1),
            }
            log.info("landcover_global.cv", model=kind, **comparison[kind])

        if len(cfg.models) > 1:
            stack_members = list(cfg.models)
            st, oof_probe["stacking"] = _stacked_oof(
                [oof[k] for k in stack_members],
                [oof_probe[k] for k in stack_members],
                data.y,
                folds,
                probe.fold,
                classes,
                cfg.seed,
            )
            oof["stacking"] = st
            pred = np.asarray(classes)[np.argmax(st, axis=1)]
            comparison["stacking"] = {
                **headline_figures(classification_metrics(data.y, pred, classes)),
                "members": stack_members,
            }
        everywhere = np.ones(len(data.y), dtype=bool)
        selected = choose_candidate(oof, data.y, everywhere, cfg.models, cfg.min_gain, classes)
        members = list(cfg.models) if selected == "stacking" else [selected]
        if "stacking" in comparison:
            best_single = max(cfg.models, key=lambda k: comparison[k]["macro_f1"])
            gain = comparison["stacking"]["macro_f1"] - comparison[best_single]["macro_f1"]
            comparison["stacking"]["gain_over_best_single"] = round(gain, 4)

        # selection-aware estimate: fold k is predicted by the candidate chosen on the other
        # folds only, so choosing the model never looks at the fold it is scored on
        # (with decision="area" every fold's labels are prior-corrected like the logged model's)
        shift = probe.priors[folds] if cfg.decision == "area" else None
        final_proba, choices = selection_aware_proba(
            oof, data.y, folds, cfg.models, cfg.min_gain, classes
        )
        probe_proba = np.zeros((len(probe.y), len(classes)))
        for k, choice in enumerate(choices):
            probe_proba[probe.fold == k] = oof_probe[choice][probe.fold == k]
        final_pred = decide(final_proba, classes, shift)
        rf_pred = decide(oof["rf"], classes, shift)
        metrics = classification_metrics(data.y, final_pred, classes)
        metrics["selection"] = {
            "rule": f"highest block-CV macro F1; stacking only if it gains >= {cfg.min_gain}",
            "choice_per_fold": choices,
            "metrics": "selection-aware: each fold scored with the model chosen without it",
        }
        metrics["area_proportional"] = area_proportional_metrics(
            probe, probe_proba, classes, cfg.decision
        )
        metrics["baseline"] = {"model": "rf", **classification_metrics(data.y, rf_pred, classes)}
        metrics["comparison"] = comparison
        metrics["selected_model"] = selected
        metrics["validation"] = {
            "scheme": "spatial block CV",
            "block_deg": cfg.block_deg,
            "n_folds": cfg.n_folds,
            "sampling": f"class-balanced, up to {cfg.n_per_class} px per class",
            "n_blocks": n_blocks,
        }
        metrics["protocol"] = cfg.protocol

        model = self._refit(cfg, data, classes, grid, members, oof, probe.prior_shift)
        with training_run(NAME, run_name=f"{NAME}-{cfg.protocol}") as run:
            log_dataset_refs(self.dataset_refs(options))
            import mlflow

            mlflow.log_params(
                {
                    "protocol": cfg.protocol,
                    "n_per_class": cfg.n_per_class,
                    "n_folds": cfg.n_folds,
                    "block_deg": cfg.block_deg,
                    "models": ",".join(cfg.models),
                    "selected_model": selected,
                    "decision": cfg.decision,
                    "exclude_bboxes": ";".join(str(b) for b in options.exclude_bboxes) or "none",
                    "fast": options.fast,
                    "seed": cfg.seed,
                    "grid_spec": cfg.grid.key(),
                    "chip_size": cfg.chip_size,
                    **{f"{k}.{p}": v for k in cfg.models for p, v in cfg.model_params(k).items()},
                }
            )
            _log_training_pixels(data, folds)
            example = self._example(grid, data, model)
            metadata = {
                "usecase": NAME,
                "protocol": cfg.protocol,
                "feature_names": list(grid.feature_names),
                "classes": list(classes),
                "class_names": {str(c): IGBP.names()[c] for c in classes},
                "members": members,
                "selected_model": selected,
                "decision": cfg.decision,
                "needs_chips": model.needs_chips,
                "chip_size": cfg.chip_size,
                "grid_spec": cfg.grid.model_dump(mode="json"),
                "grid": {
                    "shape": list(GRID_SHAPE),
                    "res_deg": GRID_RES,
                    "crs": GRID_CRS,
                    "bounds": [-180.0, -90.0, 180.0, 90.0],
                },
                "input": "landcover-global feature grid (+ Blue Marble chips when needs_chips)",
                "map_inputs": MAP_INPUTS,
                "exclude_bboxes": [str(b) for b in options.exclude_bboxes],
            }
            model_uri = log_model(model, example, metadata=metadata)
            metrics["model_uri"] = model_uri
            metrics["run_id"] = run.info.run_id
            metrics["runtime_s"] = round(time.perf_counter() - started, 1)
            log_metrics_dict({k: v for k, v in metrics.items() if k not in ("model_uri", "run_id")})
            log_confusion_matrix(data.y, final_pred, list(classes), names=IGBP.names())
        return metrics

    def _sample(
        self,
        labels: np.ndarray,
        grid: FeatureGrid,
        cfg: TrainConfig,
        exclude: Sequence[BBox],
        classes: Sequence[int],
    ) -> _Sample:
        include = [BBox(*cfg.grid.region)] if cfg.grid.region is not None else []
        rows, cols = sample_pixels(
            labels, classes, cfg.n_per_class, seed=cfg.seed, exclude=exclude, include=include
        )
        y = labels[rows, cols].astype(np.int64)
        present = np.unique(y)
        if present.size < 2:
            raise EarthOpsError(
                f"training sample has {present.size} class(es) after exclusions; need >= 2"
            )
        chips = extract_chips(rows, cols, cfg.chip_size) if "vit" in cfg.models else None
        return _Sample(rows, cols, y, grid.values(rows, cols), chips)

    def _refit(
        self,
        cfg: TrainConfig,
        data: _Sample,
        classes: Sequence[int],
        grid: FeatureGrid,
        members: list[str],
        oof: dict[str, np.ndarray],
        prior_shift: np.ndarray,
    ) -> GlobalLandCoverModel:
        fitted = {}
        for kind in members:
            with progress() as bar:
                bar.add_task(f"final fit {kind}", total=None)
                fitted[kind] = _fit_member(kind, cfg, data.X, data.chips, data.y)
        stacker = None
        if len(members) > 1:
            stacker = make_stacker(seed=cfg.seed).fit(log_probs([oof[k] for k in members]), data.y)
        return GlobalLandCoverModel(
            members=fitted,
            stacker=stacker,
            feature_names=list(grid.feature_names),
            classes=list(classes),
            chip_size=cfg.chip_size if "vit" in members else None,
            decision=cfg.decision,
            prior_shift=prior_shift.tolist(),
        )

    @staticmethod
    def _example(grid: FeatureGrid, data: _Sample, model: GlobalLandCoverModel) -> pd.DataFrame:
        frame = pd.DataFrame(data.X[:5], columns=grid.feature_names)
        if model.needs_chips and data.chips is not None:
            chips = pd.DataFrame(
                flatten_chips(data.chips[:5]), columns=chip_columns(int(model.chip_size or 16))
            )
            frame = pd.concat([frame, chips], axis=1)
        return frame

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, model_uri: str, options: EvalOptions) -> dict[str, Any]:
        """Score a logged model on labelled pixels (see the module docstring for formats)."""
        from earthops.registry.tracking import load_model, model_metadata

        meta = model_metadata(model_uri)
        if meta.get("usecase") != NAME:
            raise EarthOpsError(
                f"model '{model_uri}' is not a {NAME} model (usecase={meta.get('usecase')!r})"
            )
        model = load_model(model_uri)
        protocol = options.protocol or str(meta.get("protocol", DEFAULT_PROTOCOL))
        classes = check_protocol(protocol)
        trained = {int(c) for c in meta.get("classes", classes)}
        if not set(classes) <= trained:
            raise EarthOpsError(
                f"protocol '{protocol}' needs classes {sorted(set(classes) - trained)}"
                f" the model was not trained on (model protocol "
                f"{meta.get('protocol')})"
            )
        spec = GridSpec.model_validate(meta["grid_spec"])
        region = BBox(*spec.region) if spec.region is not None else None
        held_out = [BBox.parse(b) for b in meta.get("exclude_bboxes", [])]
        if options.dataset is None and not options.bboxes and held_out:
            # the catalog labels the model was trained on: score where it never sampled
            log.info("landcover_global.evaluate_held_out", bboxes=[str(b) for b in held_out])
            options = replace(options, bboxes=held_out)
        rows, cols, y, source = self._eval_pixels(options, classes, region)
        honesty = holdout_fields(  # training pixels were drawn outside every excluded box
            "training_area_share",
            np.mean(~in_bboxes(rows, cols, held_out)),
            hint="the model sampled its training pixels around these; for a true hold-out "
            "train with --exclude-bbox and evaluate with --bbox inside it",
        )
        grid = load_feature_grid(spec)
        chips = (
            extract_chips(rows, cols, int(meta.get("chip_size", 16)))
            if meta.get("needs_chips")
            else None
        )
        pred = model.predict_arrays(grid.values(rows, cols), chips)
        metrics = classification_metrics(y, pred, classes)
        metrics.update(
            protocol=protocol,
            model_uri=model_uri,
            source=source,
            bboxes=[str(b) for b in options.bboxes],
            **honesty,
        )
        return metrics

    # -- maps --------------------------------------------------------------------------------
    def predict_raster(
        self,
        model_uri: str,
        inputs: list[Path],
        output: Path,
        *,
        with_probability: bool = False,
        decimate: int = 4,
    ) -> Path:
        """The IGBP map of a logged model as a COG (palette, class names, overviews).

        ``inputs``: the raw rasters the features are computed from — a 3-band Blue Marble RGB
        (5400×2700) and/or the 1-band Köppen-Geiger (43200×21600), both EPSG:4326 global;
        missing ones come from the catalog. Anything else raises :class:`SignatureError`.
        The map is computed on every ``decimate``-th grid pixel (4: 0.2°, reduced cost).
        """
        roles = check_map_inputs(inputs)
        return predict_global_map(
            model_uri,
            output,
            decimate=decimate,
            with_probability=with_probability,
            sources=_catalog_sources(roles),
        )

    def _eval_pixels(
        self,
        options: EvalOptions,
        classes: Sequence[int],
        region: BBox | None = None,
        max_pixels: int = 50_000,
        seed: int = 7,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Labelled pixels to score: from a CSV/GeoTIFF dataset or the catalog MCD12C1.

        ``region`` (the model's feature-grid region, when it has one) limits them further.
        """
        dataset = options.dataset
        if dataset is not None and Path(dataset).suffix.lower() == ".csv":
            rows, cols, y = read_label_csv(dataset)
            keep = np.isin(y, classes)
            if options.bboxes:
                keep &= in_bboxes(rows, cols, options.bboxes)
            rows, cols, y = rows[keep], cols[keep], y[keep]
            source = str(dataset)
        else:
            labels = read_labels(dataset)
            source = str(dataset) if dataset is not None else "mcd12c1-2019"
            if options.bboxes:
                rows, cols = _pixels_in_bboxes(labels, options.bboxes, classes)
            else:  # global: class-balanced, a seed different from training
                rows, cols = sample_pixels(
                    labels,
                    classes,
                    max_pixels // len(classes),
                    seed=seed,
                    include=[region] if region is not None else [],
                )
            y = labels[rows, cols].astype(np.int64)
        if region is not None:
            keep = in_bboxes(rows, cols, [region])
            rows, cols, y = rows[keep], cols[keep], y[keep]
        if y.size == 0:
            boxes = [*options.bboxes, *([region] if region is not None else [])]
            where = f" inside {' and '.join(map(str, boxes))}" if boxes else ""
            raise EarthOpsError(f"no labelled pixels of classes {list(classes)}{where} in {source}")
        if y.size > max_pixels:
            pick = np.sort(np.random.default_rng(seed).choice(y.size, max_pixels, replace=False))
            rows, cols, y = rows[pick], cols[pick], y[pick]
        return rows, cols, y, source


def _pixels_in_bboxes(
    labels: np.ndarray, bboxes: Sequence[BBox], classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled pixel of ``classes`` whose centre is inside one of the boxes."""
    rows_all, cols_all = [], []
    for box in bboxes:
        r0, c0 = lonlat_to_pixel(np.array([box.minx]), np.array([box.maxy]))
        r1, c1 = lonlat_to_pixel(np.array([box.maxx]), np.array([box.miny]))
        rr, cc = np.mgrid[int(r0[0]) : int(r1[0]) + 1, int(c0[0]) : int(c1[0]) + 1]
        rr, cc = rr.ravel(), cc.ravel()
        keep = in_bboxes(rr, cc, [box]) & np.isin(labels[rr, cc], classes)
        rows_all.append(rr[keep])
        cols_all.append(cc[keep])
    flat = np.unique(np.concatenate(rows_all) * GRID_SHAPE[1] + np.concatenate(cols_all))
    return np.divmod(flat, GRID_SHAPE[1])


def read_label_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lon,lat,label`` CSV -> grid rows, cols, labels (clear errors for bad content)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "labelled dataset not found")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise DataError(path, f"cannot read CSV ({type(exc).__name__}: {exc})") from exc
    cols = {c.lower().strip(): c for c in frame.columns}
    missing = [c for c in ("lon", "lat", "label") if c not in cols]
    if missing:
        raise DataError(
            path, f"missing columns {missing}; expected lon,lat,label", field=",".join(missing)
        )
    lon = pd.to_numeric(frame[cols["lon"]], errors="coerce").to_numpy()
    lat = pd.to_numeric(frame[cols["lat"]], errors="coerce").to_numpy()
    label = pd.to_numeric(frame[cols["label"]], errors="coerce").to_numpy()
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | ~np.isfinite(label)
    bad |= (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            path,
            f"{int(bad.sum())} row(s) with non-numeric or out-of-range "
            f"lon/lat/label (first: data row {first + 1})",
        )
    rows, cols_ = lonlat_to_pixel(lon, lat)
    return rows, cols_, label.astype(np.int64)


# ------------------------------------------------------------------------------- maps
def check_map_inputs(inputs: Sequence[str | Path]) -> dict[str, Path]:
    """Match raster inputs to the model's map inputs (:data:`MAP_INPUTS`) by layout.

    Returns ``{role: path}`` (roles not given come from the catalog). A raster whose band
    count, size or CRS matches no role raises :class:`SignatureError` naming the mismatch.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    roles: dict[str, Path] = {}
    by_bands = {spec["bands"]: role for role, spec in MAP_INPUTS.items()}
    for raw in inputs:
        path = Path(raw)
        if not path.is_file():
            raise DataError(path, "input raster not found")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    count, height, width, crs = src.count, src.height, src.width, src.crs
        except RasterioIOError as exc:
            raise DataError(path, f"cannot open as a raster ({exc})") from None
        role = by_bands.get(count)
        if role is None:
            expected = " or ".join(f"{v['bands']} ({k})" for k, v in MAP_INPUTS.items())
            raise SignatureError(f"{path}: {count} band(s); the model expects {expected}")
        want = MAP_INPUTS[role]
        if (height, width) != (want["height"], want["width"]):
            raise SignatureError(
                f"{path} ({role}): shape {width}x{height} px; the model expects "
                f"{want['width']}x{want['height']} (global, north up)"
            )
        if crs is not None and crs.to_string() != want["crs"]:
            raise SignatureError(f"{path} ({role}): CRS {crs}; the model expects {want['crs']}")
        if role in roles:
            raise SignatureError(f"{path}: a second {role} input (first: {roles[role]})")
        roles[role] = path
    return roles


def _catalog_sources(roles: dict[str, Path]) -> dict[str, Path]:
    """Drop inputs that are the catalog's own files (same content) so the cached grid is used."""
    from earthops.data.identity import file_sha256

    return {
        role: path
        for role, path in roles.items()
        if file_sha256(path) != catalog.dataset_ref(role).digest
    }


def predict_global_map(
    model_uri: str,
    output: str | Path,
    *,
    decimate: int = 4,
    with_probability: bool = False,
    rows_per_chunk: int = 128,
    sources: dict[str, Path] | None = None,
) -> Path:
    """Classify the grid (every ``decimate``-th pixel) into an IGBP COG with palette.

    The map covers the model's feature grid (global, or its region). Features come from the
    cached grid (built on first use; ``sources`` replace catalog inputs), chunk by chunk
    (bounded memory). ``with_probability`` adds a second band: the max class probability
    × 100 (uint8). Returns the map's path.
    """
    from earthops.raster.cog import write_cog
    from earthops.registry.tracking import load_model, model_metadata

    if decimate < 1:
        raise EarthOpsError(f"decimate must be >= 1, got {decimate}")
    meta = model_metadata(model_uri)
    if meta.get("usecase") != NAME:
        raise EarthOpsError(f"model '{model_uri}' is not a {NAME} model")
    model = load_model(model_uri)
    spec = GridSpec.model_validate(meta["grid_spec"])
    if list(meta.get("feature_names", [])) != spec.feature_names():
        raise SignatureError(f"model '{model_uri}': feature names do not match its grid spec")
    grid = load_feature_grid(spec, sources=sources)
    needs_chips = bool(meta.get("needs_chips"))
    chip_size = int(meta.get("chip_size", 16))
    bmng = read_bmng_rgb(path=(sources or {}).get("bmng-2004")) if needs_chips else None

    r0, r1, c0, c1 = spec.window()
    rows = np.arange(r0 + decimate // 2, r1, decimate)
    cols = np.arange(c0 + decimate // 2, c1, decimate)
    classes = [int(c) for c in model.classes_]
    n_bands = 2 if with_probability else 1
    out = np.full((n_bands, rows.size, cols.size), NODATA, dtype=np.uint8)
    with progress() as bar:
        task = bar.add_task(f"IGBP map 1/{decimate}", total=rows.size)
        for i0 in range(0, rows.size, rows_per_chunk):
            r = rows[i0 : i0 + rows_per_chunk]
            feats = grid.block(r, cols)
            chips = None
            if needs_chips:
                rr, cc = np.meshgrid(r, cols, indexing="ij")
                chips = extract_chips(rr.ravel(), cc.ravel(), chip_size, rgb=bmng)
            valid = np.isfinite(feats).any(axis=1)  # all-nodata pixels stay nodata
            labels = np.full(feats.shape[0], NODATA, dtype=np.uint8)
            prob = np.zeros(feats.shape[0], dtype=np.uint8)
            n_valid = int(valid.sum())
            take = slice(None) if n_valid == valid.size else valid  # no copy when all valid
            chips_taken = None if chips is None else chips[take]
            if n_valid and not with_probability:
                labels[take] = model.predict_arrays(feats[take], chips_taken)
            elif n_valid:
                proba = model.proba_arrays(feats[take], chips_taken)
                best = np.argmax(proba, axis=1)
                labels[take] = model.classes_[best]
                prob[take] = np.rint(100 * proba[np.arange(best.size), best])
            out[0, i0 : i0 + r.size] = labels.reshape(r.size, cols.size)
            if with_probability:
                out[1, i0 : i0 + r.size] = prob.reshape(r.size, cols.size)
            bar.advance(task, r.size)

    res = GRID_RES * decimate
    x0, y0 = -180.0 + GRID_RES * c0, 90.0 - GRID_RES * r0
    ys = y0 - res * (np.arange(rows.size) + 0.5)
    xs = x0 + res * (np.arange(cols.size) + 0.5)
    da = xr.DataArray(
        out, dims=("band", "y", "x"), coords={"band": list(range(1, n_bands + 1)), "y": ys, "x": xs}
    )
    da = da.rio.write_crs(GRID_CRS).rio.write_transform(from_origin(x0, y0, res, res))
    output = Path(output)
    tags = {"EARTHOPS_MODEL": model_uri, "EARTHOPS_DECIMATE": str(decimate)}
    names = {c: IGBP.names()[c] for c in classes}
    if with_probability:  # a palette needs a single band: class names go into the tags
        write_cog(
            da,
            output,
            nodata=NODATA,
            descriptions=["igbp", "max_probability_pct"],
            class_names=names,
            tags=tags,
            overview_resampling="nearest",
            blocksize=256,
            show_progress=False,
        )
    else:
        write_cog(
            da,
            output,
            nodata=NODATA,
            descriptions=["igbp"],
            colormap={c: IGBP.colormap()[c] for c in classes},
            class_names=names,
            tags=tags,
            blocksize=256,
            show_progress=False,
        )
    log.info("landcover_global.map", path=str(output), shape=list(out.shape))
    return output
