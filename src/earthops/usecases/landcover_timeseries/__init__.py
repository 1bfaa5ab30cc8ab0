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

from .config import (
    _LGBM,
    _LTAE,
    _RF,
    _SVM,
    _TEMPCNN,
    _XGB,
    CUBE,
    DATASET,
    DATE_TOLERANCE_DAYS,
    DEFAULT_PROTOCOL,
    MEMBER_KINDS,
    NAME,
    PROTOCOLS,
    SINOP_INDEX,
    TABULAR_KINDS,
    TrainConfig,
    check_protocol,
    protocol_layout,
)
from .cv import CVResult, _Fitted, _voters, cross_validate
from .maps import _match_dates, predict_cube
from .model import TimeSeriesLandCoverModel, decode_keys, encode_keys
from .samples import _season_names, sample_rows, season_day
from .spatial import spatial_check
from .tuning import tuning_problem
from .usecase import TimeSeriesLandCover

# every name of the former single module: callers and pickled models
# (TimeSeriesLandCoverModel) still find them here
__all__ = [
    "CUBE",
    "DATASET",
    "DATE_TOLERANCE_DAYS",
    "DEFAULT_PROTOCOL",
    "MEMBER_KINDS",
    "NAME",
    "PROTOCOLS",
    "SINOP_INDEX",
    "TABULAR_KINDS",
    "_LGBM",
    "_LTAE",
    "_RF",
    "_SVM",
    "_TEMPCNN",
    "_XGB",
    "CVResult",
    "TimeSeriesLandCover",
    "TimeSeriesLandCoverModel",
    "TrainConfig",
    "_Fitted",
    "_match_dates",
    "_season_names",
    "_voters",
    "check_protocol",
    "cross_validate",
    "decode_keys",
    "encode_keys",
    "predict_cube",
    "protocol_layout",
    "sample_rows",
    "season_day",
    "spatial_check",
    "tuning_problem",
]
