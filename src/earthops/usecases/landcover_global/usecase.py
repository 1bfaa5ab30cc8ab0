"""The ``landcover-global`` use case: train, evaluate, map."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from earthops.data import catalog
from earthops.data.identity import DatasetRef
from earthops.data.legends import IGBP
from earthops.errors import EarthOpsError
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
)
from earthops.logs import get_logger, progress
from earthops.models.metrics import holdout_fields
from earthops.models.selection import (
    log_probs,
    make_stacker,
)
from earthops.registry.card import ModelCard
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords
from earthops.usecases.base import BBox, EvalOptions, RecordContract, TrainOptions
from earthops.usecases.landcover_global import serving
from earthops.usecases.landcover_global.area import (
    add_area_extras,
    area_proportional_metrics,
    balance_shift,
    decide,
    fold_balance_shifts,
    land_mask,
    map_population,
    on_land_metrics,
    probe_decision,
    probe_sample,
)
from earthops.usecases.landcover_global.candidates import (
    Selection,
    cross_validate_candidates,
    select_candidate,
)
from earthops.usecases.landcover_global.config import (
    DEFAULT_PROTOCOL,
    MAP_INPUTS,
    NAME,
    OUTSIDE_PIXELS,
    PROTOCOLS,
    TRAINING_PIXELS,
    TrainConfig,
    check_protocol,
)
from earthops.usecases.landcover_global.cv import _fit_member, _log_training_pixels
from earthops.usecases.landcover_global.evaluation import (
    EvalPixels,
    eval_pixels,
    read_label_source,
    score_gate,
)
from earthops.usecases.landcover_global.labels import (
    block_folds,
    block_ids,
    in_bboxes,
    read_labels,
    sample_pixels,
)
from earthops.usecases.landcover_global.maps import (
    _catalog_sources,
    check_map_inputs,
    predict_global_map,
)
from earthops.usecases.landcover_global.metrics import classification_metrics
from earthops.usecases.landcover_global.model import GlobalLandCoverModel
from earthops.usecases.landcover_global.outside import (
    OUTSIDE,
    fit_outside_gate,
    outside_classes,
)
from earthops.usecases.landcover_global.outside import (
    THRESHOLD as OUTSIDE_THRESHOLD,
)
from earthops.usecases.landcover_global.samples import _Inputs, _Sample

log = get_logger(__name__)


class GlobalLandCover(RecordContract):
    """The ``landcover-global`` use case (see the package docstring)."""

    name = NAME
    primary_metric = "macro_f1"
    gate: ClassVar[dict[str, float]] = {"overall_accuracy": 0.85, "macro_f1": 0.80}

    # -- the predict contract ------------------------------------------------------------------
    request_model = serving.PixelRecord
    response_model = serving.LandCoverAnswer

    def routing_key(self, record: serving.PixelRecord) -> str:
        """The place to 0.1° (one client's neighbouring pixels see one model)."""
        if record.features is not None:
            return "features:" + ",".join(f"{v:.4g}" for v in record.features.values())
        return f"lonlat:{record.lon:.1f},{record.lat:.1f}"

    def example_record(self) -> serving.PixelRecord:
        """A pixel of the Congo basin's evergreen broadleaf forest."""
        return serving.PixelRecord(lon=18.0, lat=1.0)

    def prepare_records(
        self, model: LoadedModel, records: Sequence[serving.PixelRecord]
    ) -> PreparedRecords:
        return serving.prepare(model, records)

    def respond(
        self, model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
    ) -> list[serving.LandCoverAnswer]:
        return serving.respond(model, prepared, prediction)

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
        grid = load_feature_grid(cfg.grid)
        inputs = _Inputs(
            cfg, read_labels(options.dataset), land_mask(grid), grid, options.exclude_bboxes
        )
        land = inputs.land
        data = self._sample(inputs, classes)
        blocks = block_ids(data.rows, data.cols, cfg.block_deg)
        n_blocks = int(np.unique(blocks).size)
        folds = block_folds(data.y, blocks, cfg.n_folds, cfg.seed)
        population = map_population(inputs, data, folds)
        if cfg.n_random:
            data, folds = add_area_extras(inputs, population, data, folds)
        log.info("landcover_global.sample", protocol=cfg.protocol, n=len(data.y), blocks=n_blocks)

        probe = probe_sample(inputs, population, data, folds)
        # the headline is scored on the class-balanced rows; with area-proportional extras in
        # training, their probabilities are shifted back to a uniform class prior first
        bal = data.balanced
        y_bal = data.y[bal]
        balance = fold_balance_shifts(data, folds, cfg.n_folds, classes)
        balanced_shift = None if balance is None else balance[folds[bal]]
        cv = cross_validate_candidates(cfg, data, folds, probe, classes, balanced_shift)
        sel = select_candidate(cfg, cv, data, folds, probe, classes, balanced_shift)

        final_pred = decide(sel.final_proba, classes, sel.shift)
        rf_pred = decide(cv.oof["rf"][bal], classes, sel.shift)
        metrics = classification_metrics(y_bal, final_pred, classes)
        metrics["selection"] = {
            "rule": f"highest block-CV macro F1 on {sel.scored_on} (the logged model's "
            f"decision); stacking only if it gains >= {cfg.min_gain}",
            "choice_per_fold": sel.choices,
            "metrics": "selection-aware: each fold scored with the model chosen without it",
        }
        metrics["area_proportional"] = area_proportional_metrics(
            probe, sel.probe_proba, classes, cfg.decision, balance
        )
        gate = fitted_gate = None
        if cfg.outside_gate:
            correct = probe_decision(probe, sel.probe_proba, classes, cfg.decision, balance)
            fitted_gate = fit_outside_gate(inputs, data, folds, probe, correct == probe.y)
            if fitted_gate is not None:
                gate = fitted_gate.gate
                metrics["outside_gate"] = fitted_gate.metrics
        metrics["baseline"] = {"model": "rf", **classification_metrics(y_bal, rf_pred, classes)}
        metrics["on_land"] = on_land_metrics(
            y_bal, final_pred, land[data.rows[bal], data.cols[bal]], classes, rf_pred
        )
        metrics["comparison"] = cv.comparison
        metrics["selected_model"] = sel.selected
        metrics["validation"] = {
            "scheme": "spatial block CV",
            "block_deg": cfg.block_deg,
            "n_folds": cfg.n_folds,
            "sampling": f"class-balanced, up to {cfg.n_per_class} px per class"
            + (" on land (Köppen-Geiger)" if cfg.land_only else "")
            + (
                f", plus {len(data.y) - len(y_bal)} area-proportional land pixels in training "
                "(the headline is scored on the class-balanced rows)"
                if data.has_extras
                else ""
            ),
            "n_area_proportional": len(data.y) - len(y_bal),
            "n_blocks": n_blocks,
        }
        metrics["protocol"] = cfg.protocol

        model = self._refit(cfg, data, classes, grid, sel.members, cv.oof, probe.prior_shift, gate)
        with training_run(NAME, run_name=f"{NAME}-{cfg.protocol}") as run:
            log_dataset_refs(self.dataset_refs(options))
            import mlflow

            mlflow.log_params(_run_params(cfg, options, sel.selected, model))
            _log_training_pixels(data.rows, data.cols, data.y, folds, TRAINING_PIXELS)
            if fitted_gate is not None:
                _log_training_pixels(*fitted_gate.outside_pixels, OUTSIDE_PIXELS)
            example = self._example(grid, data, model)
            model_uri = log_model(
                model,
                example,
                card=_model_card(cfg, model, list(example.columns)),
                metadata=_model_metadata(cfg, options, grid, model, sel),
            )
            metrics["model_uri"] = model_uri
            metrics["run_id"] = run.info.run_id
            metrics["runtime_s"] = round(time.perf_counter() - started, 1)
            log_metrics_dict({k: v for k, v in metrics.items() if k not in ("model_uri", "run_id")})
            log_confusion_matrix(y_bal, final_pred, list(classes), names=IGBP.names())
        return metrics

    def _sample(self, inputs: _Inputs, classes: Sequence[int]) -> _Sample:
        cfg, labels = inputs.cfg, inputs.labels
        rows, cols = sample_pixels(
            labels,
            classes,
            cfg.n_per_class,
            seed=cfg.seed,
            exclude=inputs.exclude,
            include=cfg.include_boxes,
            within=inputs.land if cfg.land_only else None,
        )
        y = labels[rows, cols].astype(np.int64)
        present = np.unique(y)
        if present.size < 2:
            raise EarthOpsError(
                f"training sample has {present.size} class(es) after exclusions; need >= 2"
            )
        chips = extract_chips(rows, cols, cfg.chip_size) if "vit" in cfg.models else None
        return _Sample(rows, cols, y, inputs.grid.values(rows, cols), chips)

    def _refit(
        self,
        cfg: TrainConfig,
        data: _Sample,
        classes: Sequence[int],
        grid: FeatureGrid,
        members: list[str],
        oof: dict[str, np.ndarray],
        prior_shift: np.ndarray,
        outside_gate: Any = None,
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
            balance_shift=balance_shift(data.y, classes).tolist() if data.has_extras else None,
            sea_class=0 if cfg.land_only and 0 in classes else None,
            outside_gate=outside_gate,
            outside_threshold=OUTSIDE_THRESHOLD,
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
        """Score a logged model on labelled pixels (see the package docstring for formats)."""
        from earthops.registry.inference import load

        loaded = load(model_uri, usecase=NAME)
        meta, model = loaded.meta, loaded.model
        protocol = options.protocol or str(meta.get("protocol", DEFAULT_PROTOCOL))
        classes = check_protocol(protocol)
        trained = {int(c) for c in meta.get("classes", classes)}
        if not set(classes) <= trained:
            raise EarthOpsError(
                f"protocol '{protocol}' needs classes {sorted(set(classes) - trained)}"
                f" the model was not trained on (model protocol "
                f"{meta.get('protocol')})"
            )
        spec = GridSpec.from_metadata(meta["grid_spec"])
        region = BBox(*spec.region) if spec.region is not None else None
        held_out = [BBox.parse(b) for b in meta.get("exclude_bboxes", [])]
        if options.dataset is None and not options.bboxes and held_out:
            # the catalog labels the model was trained on: score where it never sampled
            log.info("landcover_global.evaluate_held_out", bboxes=[str(b) for b in held_out])
            options = replace(options, bboxes=held_out)
        grid = load_feature_grid(spec)
        area = meta.get("decision") == "area"
        land_only = bool(meta.get("land_only", False))
        land = land_mask(grid)
        labelled = read_label_source(options.dataset)
        scored = eval_pixels(
            labelled,
            classes,
            options.bboxes,
            region,
            land=land if area or land_only else None,
            area=area,
        )
        rows, cols, y = scored.rows, scored.cols, scored.y
        honesty = holdout_fields(  # training pixels were drawn outside every excluded box
            "training_area_share",
            np.mean(~in_bboxes(rows, cols, held_out)),
            hint="the model sampled its training pixels around these; for a true hold-out "
            "train with --exclude-bbox and evaluate with --bbox inside it",
        )
        chips = (
            extract_chips(rows, cols, int(meta.get("chip_size", 16)))
            if meta.get("needs_chips")
            else None
        )
        features = grid.values(rows, cols)
        pred = model.predict_arrays(features, chips)
        metrics = classification_metrics(y, pred, classes)
        metrics.update(
            protocol=protocol,
            model_uri=model_uri,
            source=scored.source,
            population=scored.population,
            bboxes=[str(b) for b in options.bboxes],
            **honesty,
        )
        if model.has_outside_gate:
            others = outside_classes(str(meta.get("protocol", DEFAULT_PROTOCOL)))
            try:  # the other classes' land pixels, drawn by the same rule
                drawn: EvalPixels | None = eval_pixels(
                    labelled, others, options.bboxes, region, land=land, area=area
                )
            except EarthOpsError:  # none of them there
                drawn = None
            metrics["outside_gate"] = score_gate(
                model, scored, features, pred, drawn, others, land, grid
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


def _run_params(
    cfg: TrainConfig, options: TrainOptions, selected: str, model: GlobalLandCoverModel
) -> dict[str, Any]:
    """The MLflow run parameters of a training run."""
    params: dict[str, Any] = {
        "protocol": cfg.protocol,
        "n_per_class": cfg.n_per_class,
        "n_random": cfg.n_random,
        "n_folds": cfg.n_folds,
        "block_deg": cfg.block_deg,
        "models": ",".join(cfg.models),
        "selected_model": selected,
        "decision": cfg.decision,
        "land_only": cfg.land_only,
        "outside_gate": cfg.outside_gate,
        "exclude_bboxes": ";".join(str(b) for b in options.exclude_bboxes) or "none",
        "fast": options.fast,
        "seed": cfg.seed,
        "grid_spec": cfg.grid.key(),
        "chip_size": cfg.chip_size,
        **{f"{k}.{p}": v for k in cfg.models for p, v in cfg.model_params(k).items()},
    }
    if model.has_outside_gate:
        params |= {f"gate.{p}": v for p, v in cfg.model_params("gate").items()}
        params["gate.threshold"] = model.gate_threshold
    return params


def _model_card(cfg: TrainConfig, model: GlobalLandCoverModel, columns: list[str]) -> ModelCard:
    """The model card: grid features (+ chip columns) at a pixel → IGBP class."""
    classes = list(PROTOCOLS[cfg.protocol])
    return ModelCard(
        usecase=NAME,
        task="multiclass",
        input_columns=columns,
        classes=classes,
        class_names={str(c): IGBP.names()[c] for c in classes},
        raster_signature={
            "grid_spec": cfg.grid.model_dump(mode="json"),
            "shape": list(GRID_SHAPE),
            "res_deg": GRID_RES,
            "crs": GRID_CRS,
            "map_inputs": MAP_INPUTS,
            "outside_threshold": model.gate_threshold if model.has_outside_gate else None,
        },
    )


def _model_metadata(
    cfg: TrainConfig,
    options: TrainOptions,
    grid: FeatureGrid,
    model: GlobalLandCoverModel,
    sel: Selection,
) -> dict[str, Any]:
    """What ``evaluate`` and ``predict-raster`` read back from the logged model."""
    classes = PROTOCOLS[cfg.protocol]
    return {
        "usecase": NAME,
        "protocol": cfg.protocol,
        "feature_names": list(grid.feature_names),
        "classes": list(classes),
        "class_names": {str(c): IGBP.names()[c] for c in classes},
        "members": sel.members,
        "selected_model": sel.selected,
        "decision": cfg.decision,
        "land_only": cfg.land_only,
        "outside_value": OUTSIDE if model.has_outside_gate else None,
        "outside_threshold": model.gate_threshold if model.has_outside_gate else None,
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
