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

from .config import (
    _EPS,
    CALIBRATIONS,
    GRID_FEATURES,
    LGBM_PARAMS,
    METRIC_KEYS,
    NAME,
    SEVERITY_PARAMS,
    TABULAR_KINDS,
    XGB_PARAMS,
    ReefConfig,
)
from .fitting import _make_vit, _Recipe
from .heatmap import (
    _PNG_MAX_WIDTH,
    ALERT_COLOURS,
    ALERT_NODATA,
    HEATMAP_BLOCK_ROWS,
    Heatmap,
    _alert_block,
    _grid_risk_block,
    _heatmap_png,
    _heatmap_stats,
    risk_heatmap,
)
from .metrics import (
    _gains,
    _safe,
    baseline_metrics,
    best_f1_threshold,
    binary_metrics,
    severity_metrics,
)
from .model import (
    Calibrator,
    DhwGridModel,
    ReefRiskModel,
    Stacker,
    _chips,
    _load_reef_model,
    _logit,
)
from .selection import _fold_auroc, _lofo, select_recipe
from .splits import forward_split
from .tracking import _input_columns, _log_lineage
from .usecase import ReefBleaching, _exclude

# every name of the former single module (public and private): callers, tests and pickled
# models (ReefRiskModel, DhwGridModel, Calibrator, Stacker) still find them here
__all__ = [
    "ALERT_COLOURS",
    "ALERT_NODATA",
    "CALIBRATIONS",
    "GRID_FEATURES",
    "HEATMAP_BLOCK_ROWS",
    "LGBM_PARAMS",
    "METRIC_KEYS",
    "NAME",
    "SEVERITY_PARAMS",
    "TABULAR_KINDS",
    "XGB_PARAMS",
    "_EPS",
    "_PNG_MAX_WIDTH",
    "Calibrator",
    "DhwGridModel",
    "Heatmap",
    "ReefBleaching",
    "ReefConfig",
    "ReefRiskModel",
    "Stacker",
    "_Recipe",
    "_alert_block",
    "_chips",
    "_exclude",
    "_fold_auroc",
    "_gains",
    "_grid_risk_block",
    "_heatmap_png",
    "_heatmap_stats",
    "_input_columns",
    "_load_reef_model",
    "_lofo",
    "_log_lineage",
    "_logit",
    "_make_vit",
    "_safe",
    "baseline_metrics",
    "best_f1_threshold",
    "binary_metrics",
    "forward_split",
    "risk_heatmap",
    "select_recipe",
    "severity_metrics",
]
