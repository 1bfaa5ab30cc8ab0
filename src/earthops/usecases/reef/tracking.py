"""Lineage and MLflow logging of a trained reef model (params, datasets, model, metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from earthops.data.catalog import dataset_ref
from earthops.data.identity import DatasetRef, file_sha256
from earthops.features.reef_features import (
    FEATURE_COLUMNS,
    LON_COLUMN,
    OPTIONAL_COLUMNS,
    YEAR_COLUMN,
)
from earthops.registry.card import ModelCard
from earthops.registry.tracking import (
    log_binary_curves,
    log_dataset_refs,
    log_metrics_dict,
    log_model,
    training_run,
)
from earthops.settings import get_settings
from earthops.usecases.base import TrainOptions

from .config import GRID_FEATURES, NAME, ReefConfig
from .model import ReefRiskModel


def _input_columns(rows: pd.DataFrame) -> list[str]:
    cols = [*FEATURE_COLUMNS, *[c for c in OPTIONAL_COLUMNS if c in rows.columns]]
    return [*cols, LON_COLUMN, YEAR_COLUMN]


def reef_card(input_columns: list[str], threshold: float) -> ModelCard:
    """The model card of a reef model: survey covariates → P(bleaching) and its decision."""
    return ModelCard(
        usecase=NAME,
        task="binary",
        input_columns=input_columns,
        classes=[0, 1],
        class_names={"0": "no bleaching", "1": "bleaching"},
        threshold=float(threshold),
    )


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


def dataset_refs(options: TrainOptions) -> list[DatasetRef]:
    """The survey table (catalog or ``options.dataset``) and the ViT grid, with SHA-256s."""
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


def log_run(
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
        _log_lineage(dataset_refs(options))
        example = rows[_input_columns(rows)].head(5)
        uri = log_model(
            model,
            example,
            card=reef_card(_input_columns(rows), model.threshold_),
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
