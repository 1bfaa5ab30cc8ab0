"""The spatial block check of the tabular members beside their random-fold figures."""

from __future__ import annotations

from typing import Any

from earthops.data.samples import SampleSet
from earthops.errors import EarthOpsError
from earthops.logs import get_logger
from earthops.models.metrics import headline_figures
from earthops.models.spatial_cv import spatial_block_cv
from earthops.usecases.landcover_timeseries.config import TrainConfig
from earthops.usecases.landcover_timeseries.cv import _Fitted

log = get_logger(__name__)


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
