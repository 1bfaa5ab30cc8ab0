"""``landcover-global``: IGBP land cover (MCD12C1 2019) on the 0.05° CMG grid.

* **Inputs** (never the labels): the cached global feature grid of
  :mod:`earthops.features.global_grid` — Blue Marble RGB, indices, multi-scale neighbourhood
  statistics, GLCM texture, Köppen-Geiger mode/fractions, ocean-fraction context, coordinates —
  and, for the ViT, Blue Marble chips centred on each pixel.
* **Sampling**: class-balanced stratified — up to ``n_per_class`` pixels per class, seeded;
  pixels inside ``--exclude-bbox`` regions are never sampled for training. ``n_random``
  area-proportional land pixels (from the probe's population below, each in its block's
  fold) may join the *training* sample (default: 20 000 with
  ``decision='area'``, none otherwise); the headline is still scored on the class-balanced
  rows only, and the balanced decision then shifts probabilities back to a uniform class
  prior (× uniform share / training share), so extras teach the common classes without
  tilting it. The sample is drawn from land pixels (some Köppen-Geiger land; ``land_only``,
  default): MCD12C1 water is 98 % open ocean, which every model gets right, so without it
  the water rows would be almost all open sea and inflate the headline. ``on_land``
  re-scores the headline on its rows on land (the same as the headline with ``land_only``).
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
  argmax on a sample with area-proportional extras, what maximises accuracy on a map's own
  class mix; the candidates are then chosen on the probe below, selection-aware, by their
  prior-corrected macro F1). The logged model, its headline and its maps all follow the
  chosen rule; a lone LightGBM member applies it on its early-stopping path (a ``log``
  offset per class), so corrected maps stay on the fast path (0.83× the plain labels in
  the benchmark, not the full scores).
* **Models**: Random Forest (baseline), LightGBM, XGBoost, a ViT on Blue Marble chips, and a
  stacking ensemble (logistic regression on the members' out-of-fold log-probabilities) that
  is selected only when its block-CV macro F1 beats the best single model by ``min_gain``.
* **Protocols**: ``igbp7`` (classes 0–6, sampled only from those pixels) and ``igbp17``.
* **Outside gate** (``params.outside_gate``, default on; :mod:`.outside`): a protocol that
  lacks some classes (igbp7) also fits a binary LightGBM, "inside its classes" against
  "outside" on land pixels, block cross-validated on the same folds. Maps write the land it
  calls outside as 254, "other land", instead of forcing a class there (about 85 % of the
  land is outside igbp7). ``outside_gate`` in the metrics gives its block-CV figures and
  the map accuracy over all land of the held-out blocks, with and without it; ``evaluate``
  gives its rates where it scores and, when the scored pixels stand for an area (boxes, a
  dataset's points, an area-proportional sample), the same map accuracy there
  (:mod:`.evaluation`).

Labelled datasets for :meth:`GlobalLandCover.evaluate` (``--dataset``):

* a GeoTIFF label raster on the CMG grid (7200×3600, EPSG:4326, −180…180/90…−90; uint8 IGBP
  0–16, nodata 255), e.g. MCD12C1 of another year; or
* a CSV with columns ``lon,lat,label`` (degrees, IGBP value); each row is scored at the
  0.05° grid pixel that contains it.

Labels outside the protocol's classes are ignored. ``--bbox`` restricts either source (or
the catalog MCD12C1 when no dataset is given) to the union of the boxes. With neither
``--dataset`` nor ``--bbox``, a model trained with ``--exclude-bbox`` is scored inside its
excluded boxes (the catalog labels are its training labels); any other is scored on a global
sample of the catalog labels: class-balanced, or for a ``decision="area"`` model a simple
random sample of the land pixels (the map's own class mix). ``population`` in the metrics
names what was scored. The metrics say how honest the score is: ``training_area_share`` is
the share of scored pixels outside every excluded box — where training pixels were drawn, so
neighbours of them — and ``holdout`` is true when it is 0 (a warning is logged otherwise).
"""

from __future__ import annotations

from .area import (
    area_proportional_metrics,
    balance_shift,
    decide,
    land_mask,
    prior_shift,
    probe_sample,
)
from .config import (
    _LGBM,
    _RF,
    _VIT,
    _XGB,
    BLOCK_DEG,
    DECISIONS,
    DEFAULT_PROTOCOL,
    MAP_INPUTS,
    NAME,
    NODATA,
    OUTSIDE_PIXELS,
    PROTOCOLS,
    TABULAR_KINDS,
    TRAINING_PIXELS,
    TrainConfig,
    check_protocol,
    default_models,
    vit_available,
)
from .labels import (
    block_folds,
    block_ids,
    in_bboxes,
    read_label_csv,
    read_labels,
    sample_pixels,
)
from .maps import check_map_inputs, predict_global_map
from .metrics import classification_metrics
from .model import GlobalLandCoverModel, _vit_input
from .outside import OUTSIDE, outside_classes
from .samples import _Probe, _Sample
from .usecase import GlobalLandCover

# the public names of the former single module, and the private ones tests and benchmarks
# use: callers and pickled models (GlobalLandCoverModel) still find them here
__all__ = [
    "BLOCK_DEG",
    "DECISIONS",
    "DEFAULT_PROTOCOL",
    "MAP_INPUTS",
    "NAME",
    "NODATA",
    "OUTSIDE",
    "OUTSIDE_PIXELS",
    "PROTOCOLS",
    "TABULAR_KINDS",
    "TRAINING_PIXELS",
    "_LGBM",
    "_RF",
    "_VIT",
    "_XGB",
    "GlobalLandCover",
    "GlobalLandCoverModel",
    "TrainConfig",
    "_Probe",
    "_Sample",
    "_vit_input",
    "area_proportional_metrics",
    "balance_shift",
    "block_folds",
    "block_ids",
    "check_map_inputs",
    "check_protocol",
    "classification_metrics",
    "decide",
    "default_models",
    "in_bboxes",
    "land_mask",
    "outside_classes",
    "predict_global_map",
    "prior_shift",
    "probe_sample",
    "read_label_csv",
    "read_labels",
    "sample_pixels",
    "vit_available",
]
