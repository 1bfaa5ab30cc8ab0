"""Constants, default member parameters and the training configuration (:class:`ReefConfig`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from earthops.errors import EarthOpsError
from earthops.features.reef_features import (
    DEFAULT_BLEACH_THRESHOLD,
    DHW_COLUMN,
    DHW_RULE_THRESHOLD,
)
from earthops.models.estimators import make_classifier
from earthops.settings import get_settings
from earthops.usecases.base import TrainOptions, check_members

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
        check_members(
            TABULAR_KINDS,
            lambda kind: make_classifier(kind, **getattr(config, kind)),
        )
        return config

    def origins(self, until: int | None = None) -> list[int]:
        """Inner-fold origins for training years ≤ ``until`` (default ``test_after``)."""
        until = self.test_after if until is None else until
        if self.inner_origins:
            return [o for o in sorted(self.inner_origins) if o < until]
        last = until - self.inner_horizon
        return [last - k * self.inner_horizon for k in range(self.inner_folds)][::-1]
