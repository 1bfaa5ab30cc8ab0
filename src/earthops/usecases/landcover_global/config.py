"""Constants, default member parameters and the training config of ``landcover-global``."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from typing import Any

from earthops.errors import EarthOpsError
from earthops.features.global_grid import GridSpec
from earthops.models.estimators import make_classifier
from earthops.usecases.base import (
    BBox,
    TrainOptions,
    check_members,
    members_to_check,
    merge_member_params,
)

NAME = "landcover-global"
PROTOCOLS: dict[str, tuple[int, ...]] = {"igbp7": tuple(range(7)), "igbp17": tuple(range(17))}
DEFAULT_PROTOCOL = "igbp7"
BLOCK_DEG = 10.0
NODATA = 255
TABULAR_KINDS = ("rf", "lightgbm", "xgboost")
TRAINING_PIXELS = "training_pixels.csv.gz"
#: the outside gate's pixels of the other classes (its inside pixels are the training sample)
OUTSIDE_PIXELS = "outside_gate_pixels.csv.gz"
#: decision rules of the logged model (see the package docstring)
DECISIONS = ("balanced", "area")
#: the raw rasters a model's map is computed from (``predict_raster`` inputs), by role
MAP_INPUTS: dict[str, dict[str, Any]] = {
    "bmng-2004": {"bands": 3, "height": 2700, "width": 5400, "crs": "EPSG:4326"},
    "koppen-geiger": {"bands": 1, "height": 21600, "width": 43200, "crs": "EPSG:4326"},
}

#: the config field holding each member's parameters
PARAMS_FIELDS = {
    "rf": "rf_params",
    "lightgbm": "lgbm_params",
    "xgboost": "xgb_params",
    "vit": "vit_params",
    "gate": "gate_params",
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
#: the outside gate (:mod:`.outside`, one binary LightGBM): half the trees of the class
#: model's LightGBM cost nothing on a development split (block-CV accuracy 0.873 -> 0.874,
#: igbp7, seed 7) and keep the map's extra cost small
_GATE = {**_LGBM, "n_estimators": 150, "learning_rate": 0.1}
#: area-proportional training pixels of a ``decision='area'`` run (chosen on a development
#: fold split, seed 7: igbp7 map accuracy 0.806 -> 0.852, igbp17 0.745 -> 0.776, LightGBM)
AREA_EXTRAS = 20_000
_VIT: dict[str, Any] = {"epochs": 6}  # half the ViT default: CV fits it n_folds + 1 times


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
    #: area-proportional land pixels added to the training sample (never to the headline's
    #: class-balanced evaluation rows): the training sample then follows what a map is made
    #: of. Default: AREA_EXTRAS with ``decision='area'`` (whose rule targets the map's class
    #: mix), none with ``decision='balanced'``
    n_random: int = 0
    n_folds: int = 5
    block_deg: float = BLOCK_DEG
    models: tuple[str, ...] = field(default_factory=lambda: default_models())
    chip_size: int = 16
    min_gain: float = 0.003
    probe_pixels: int = 40_000
    decision: str = "balanced"
    #: draw the class-balanced sample from land pixels only (some Köppen-Geiger land): water
    #: is then lakes, rivers and coasts. ``False``: water comes 97 % from the open ocean,
    #: which every model gets right (it inflated the igbp7 headline by 2.4 points)
    land_only: bool = True
    #: fit the outside gate (:mod:`.outside`) of a protocol that lacks some IGBP classes:
    #: its maps then call the land of those classes "other land" instead of forcing a class
    outside_gate: bool = True
    seed: int = 42
    rf_params: dict[str, Any] = field(default_factory=lambda: dict(_RF))
    lgbm_params: dict[str, Any] = field(default_factory=lambda: dict(_LGBM))
    xgb_params: dict[str, Any] = field(default_factory=lambda: dict(_XGB))
    vit_params: dict[str, Any] = field(default_factory=lambda: dict(_VIT))
    gate_params: dict[str, Any] = field(default_factory=lambda: dict(_GATE))
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
                gate_params={**_GATE, "n_estimators": 60, "learning_rate": 0.15},
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
        n_random = params.get("n_random", 0)
        if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 0:
            raise EarthOpsError(f"params.n_random {n_random!r}: expected a pixel count >= 0")
        if params.get("decision", "balanced") not in DECISIONS:
            raise EarthOpsError(
                f"params.decision {params['decision']!r}: expected one of {', '.join(DECISIONS)}"
            )
        for flag in ("land_only", "outside_gate"):
            if not isinstance(params.get(flag, False), bool):
                raise EarthOpsError(f"params.{flag} {params[flag]!r}: expected true or false")
        cfg = replace(cfg, **params)
        if "n_random" not in params and cfg.decision == "area":
            cfg = replace(cfg, n_random=AREA_EXTRAS // 10 if options.fast else AREA_EXTRAS)
        check_members(members_to_check((*cfg.models, "gate"), params, PARAMS_FIELDS), cfg.member)
        return cfg

    @property
    def include_boxes(self) -> list[BBox]:
        """Where training pixels may be drawn: the feature grid's region (none: global)."""
        return [BBox(*self.grid.region)] if self.grid.region is not None else []

    def member(self, kind: str) -> Any:
        """An unfitted member of ``kind``, or the outside gate's LightGBM (``"gate"``)."""
        if kind == "gate":
            return make_classifier("lightgbm", **{**self.gate_params, "random_state": self.seed})
        return make_classifier(kind, **self.model_params(kind))

    def model_params(self, kind: str) -> dict[str, Any]:
        return getattr(self, PARAMS_FIELDS[kind])


def check_protocol(protocol: str) -> tuple[int, ...]:
    """Classes of ``protocol``; a clear error for an unknown one."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise EarthOpsError(
            f"unknown protocol '{protocol}' for {NAME}; expected one of {', '.join(PROTOCOLS)}"
        ) from None
