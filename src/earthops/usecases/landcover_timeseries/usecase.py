"""The ``landcover-timeseries`` use case: train, evaluate, tune and map (entry points)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from earthops.data import catalog
from earthops.data.identity import DatasetRef
from earthops.data.samples import SampleSet, read_mod13q1_samples
from earthops.errors import DataError, EarthOpsError
from earthops.features.timeseries import TimeSeriesFeatures, input_columns
from earthops.logs import get_logger
from earthops.models.metrics import classification_metrics, headline_figures, holdout_fields
from earthops.registry.card import ModelCard
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords
from earthops.usecases.base import EvalOptions, RecordContract, TrainOptions
from earthops.usecases.landcover_timeseries import serving
from earthops.usecases.landcover_timeseries.config import (
    CUBE,
    DATASET,
    DEFAULT_PROTOCOL,
    NAME,
    TrainConfig,
    check_protocol,
    protocol_layout,
)
from earthops.usecases.landcover_timeseries.cv import _Fitted, cross_validate
from earthops.usecases.landcover_timeseries.maps import predict_cube
from earthops.usecases.landcover_timeseries.model import decode_keys, encode_keys
from earthops.usecases.landcover_timeseries.samples import _season_names, sample_rows, season_day
from earthops.usecases.landcover_timeseries.spatial import spatial_check
from earthops.usecases.landcover_timeseries.tuning import tuning_problem

log = get_logger(__name__)


def _log_profile(main: _Fitted, y: np.ndarray, predicted: np.ndarray) -> str:
    """The reference profile (every numeric input column, the out-of-fold predicted classes,
    the labels) logged to the active run; its artifact path for the model card."""
    from earthops.monitoring.artifacts import log_reference_profile
    from earthops.monitoring.profile import build_profile

    frame = pd.DataFrame(main.X, columns=input_columns(main.bands, len(main.index)))
    profile = build_profile(
        frame,
        numeric=list(frame.columns),
        categorical=[],
        predictions=pd.Series(np.asarray(predicted).astype(str)),
        labels=pd.Series(np.asarray(y).astype(str)),
    )
    return log_reference_profile(profile)


class TimeSeriesLandCover(RecordContract):
    """The ``landcover-timeseries`` use case (see the package docstring)."""

    name: ClassVar[str] = NAME
    primary_metric: ClassVar[str] = "macro_f1"
    gate: ClassVar[dict[str, float]] = {"overall_accuracy": 0.9, "macro_f1": 0.85}

    # -- the predict contract ------------------------------------------------------------------
    request_model = serving.SeriesRecord
    response_model = serving.SeriesAnswer

    def routing_key(self, record: serving.SeriesRecord) -> str:
        return f"lonlat:{record.longitude:.3f},{record.latitude:.3f}"

    def example_record(self) -> serving.SeriesRecord:
        """The first series of the shared samples file."""
        import gzip
        import json

        raw = catalog.resolve_one("mt-mod13q1-9classes").read_bytes()
        records = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        return serving.SeriesRecord.model_validate(records[0])

    def prepare_records(
        self, model: LoadedModel, records: Sequence[serving.SeriesRecord]
    ) -> PreparedRecords:
        return serving.prepare(model, records)

    def respond(
        self, model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
    ) -> list[serving.SeriesAnswer]:
        return serving.respond(model, prepared, prediction)

    def tuning_problem(self, options: TrainOptions) -> Any:
        """The LightGBM member on the series features, tuned on stratified folds
        (:func:`~earthops.usecases.landcover_timeseries.tuning.tuning_problem`)."""
        return tuning_problem(options)

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
            card = ModelCard(
                usecase=NAME,
                task="multiclass",
                input_columns=list(example.columns),
                classes=[str(c) for c in result.model.classes_],
                raster_signature=metadata.get("raster_signature"),
                reference_profile=_log_profile(main, y, result.headline_pred),
            )
            uri = log_model(result.model, example, card=card, metadata=metadata)
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
        from earthops.registry.inference import load

        loaded = load(model_uri, usecase=NAME)
        meta, model = loaded.meta, loaded.model
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
        return predict_cube(model_uri, inputs, output, with_probability=with_probability)
