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
from earthops.data.tables import _NA, SURVEY_SCHEMA, _read_csv, require_columns
from earthops.errors import DataError
from earthops.features.reef_features import (
    DEFAULT_BLEACH_THRESHOLD,
    FEATURE_COLUMNS,
    LON_COLUMN,
    OPTIONAL_COLUMNS,
    REALM_COLUMN,
    SITE_COLUMN,
    YEAR_COLUMN,
    bleaching_target,
    prepare_surveys,
)
from earthops.monitoring.artifacts import log_reference_profile
from earthops.monitoring.profile import ReferenceProfile, build_profile
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


def reef_card(
    input_columns: list[str], threshold: float, reference_profile: str | None = None
) -> ModelCard:
    """The model card of a reef model: survey covariates → P(bleaching) and its decision."""
    return ModelCard(
        usecase=NAME,
        task="binary",
        input_columns=input_columns,
        classes=[0, 1],
        class_names={"0": "no bleaching", "1": "bleaching"},
        threshold=float(threshold),
        reference_profile=reference_profile,
    )


# ------------------------------------------------------------------------------ monitoring
#: the survey year is the time axis, not a feature: a later window is always outside its range
PROFILE_EXCLUDED = (YEAR_COLUMN,)


def monitored_columns(input_columns: list[str], rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` model input columns drift monitoring compares (by dtype)."""
    cols = [c for c in input_columns if c not in PROFILE_EXCLUDED and c in rows.columns]
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(rows[c].dtype)]
    return numeric, [c for c in cols if c not in numeric]


def monitoring_inputs(rows: pd.DataFrame, input_columns: list[str]) -> dict[str, Any]:
    """What a reference profile and a drift report of survey ``rows`` read: the monitored
    columns, groups (``Realm_Name``), clusters (``Site_ID``); no season (no survey month)."""
    numeric, categorical = monitored_columns(input_columns, rows)
    return {
        "frame": rows[[*numeric, *categorical]].reset_index(drop=True),
        "numeric": numeric,
        "categorical": categorical,
        "groups": rows[REALM_COLUMN].astype(str).reset_index(drop=True),
        "clusters": rows[SITE_COLUMN].reset_index(drop=True),
    }


def reference_profile(
    model: ReefRiskModel, rows: pd.DataFrame, bleach_threshold: float
) -> ReferenceProfile:
    """Profile of the deployed model's training rows (years ≤ ``train_until_``): monitored
    inputs, its (in-sample) bleaching probability and the labels (prevalence)."""
    train = rows.loc[rows[YEAR_COLUMN] <= model.train_until_].reset_index(drop=True)
    inputs = monitoring_inputs(train, _input_columns(train))
    score = pd.Series(model.predict_proba(train[_input_columns(train)])[:, 1], dtype="float64")
    return build_profile(
        inputs["frame"],
        numeric=inputs["numeric"],
        categorical=inputs["categorical"],
        predictions=score,
        labels=bleaching_target(train, bleach_threshold).reset_index(drop=True),
        groups=inputs["groups"],
        clusters=inputs["clusters"],
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


def _mask_fills(
    frame: pd.DataFrame, fill_values: list[float]
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Fill values of the numeric feature columns set to NaN (so the reader's range checks pass);
    the original values per column, to put back for the drift report's data-quality check."""
    masked, fills = frame.copy(), {}
    for col in (c for c in [*FEATURE_COLUMNS, *OPTIONAL_COLUMNS] if c in frame.columns):
        values = pd.to_numeric(frame[col], errors="coerce")
        hit = values.isin(fill_values) if pd.api.types.is_numeric_dtype(frame[col]) else None
        if hit is not None and hit.any():
            fills[col] = values.where(hit)
            masked.loc[hit, col] = np.nan
    return masked, fills


def monitoring_window(
    path: str | Path,
    input_columns: list[str],
    fill_values: list[float],
    bleach_threshold: float = DEFAULT_BLEACH_THRESHOLD,
) -> dict[str, Any]:
    """A labelled survey CSV read for ``monitor drift``: the survey reader's checks, except
    that fill values (e.g. -9999) in feature columns are kept for the data-quality report
    instead of failing the read. ``rows`` (fills as NaN) feed the model; ``frame`` (fills put
    back) the drift report; plus labels, groups, clusters and the rejections."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file; expected a survey CSV in the bleaching-surveys format")
    raw = _read_csv(path, na_values=_NA, keep_default_na=True, low_memory=False)
    require_columns(raw, list(SURVEY_SCHEMA.columns), path)
    masked, fills = _mask_fills(raw, fill_values)
    rows, rejections = prepare_surveys(masked, path)
    inputs = monitoring_inputs(rows, input_columns)
    for col, original in fills.items():
        if col in inputs["frame"].columns:
            back = original.reindex(rows.index).to_numpy()
            inputs["frame"][col] = np.where(np.isnan(back), inputs["frame"][col], back)
    return {
        **inputs,
        "rows": rows.reset_index(drop=True),
        "labels": bleaching_target(rows, bleach_threshold).reset_index(drop=True),
        "rejections": rejections.to_dict(),
        "fills": {col: int(v.reindex(rows.index).notna().sum()) for col, v in fills.items()},
    }


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
        profile_path = log_reference_profile(
            reference_profile(model, rows, config.bleach_threshold)
        )
        uri = log_model(
            model,
            example,
            card=reef_card(_input_columns(rows), model.threshold_, profile_path),
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
