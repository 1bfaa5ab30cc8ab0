"""The ``reef-bleaching`` use case: training with forward validation, evaluation, heat-map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from earthops.data.identity import DatasetRef, ref_of
from earthops.data.tables import read_bleaching_surveys
from earthops.errors import EarthOpsError
from earthops.features.reef_features import (
    LAT_COLUMN,
    LON_COLUMN,
    SITE_COLUMN,
    TARGET_COLUMN,
    YEAR_COLUMN,
    bleaching_target,
    open_grid,
    prepare_surveys,
)
from earthops.logs import get_logger
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords
from earthops.usecases.base import BBox, EvalOptions, RecordContract, TrainOptions

from . import serving, tracking, tuning
from .config import METRIC_KEYS, NAME, ReefConfig
from .fitting import _Recipe, fit_selected
from .heatmap import risk_heatmap
from .metrics import _gains, baseline_metrics, binary_metrics, severity_metrics
from .model import _chips, _load_reef_model
from .reports import candidate_comparison, rolling_origin
from .splits import forward_split

log = get_logger(__name__)


def _exclude(frame: pd.DataFrame, boxes: list[BBox], inside: bool) -> pd.DataFrame:
    if not boxes:
        return frame
    lon = frame[LON_COLUMN].to_numpy()
    lat = frame[LAT_COLUMN].to_numpy()
    hit = np.zeros(len(frame), dtype=bool)
    for box in boxes:
        hit |= box.contains(lon, lat)
    return frame.loc[hit if inside else ~hit]


class ReefBleaching(RecordContract):
    """``reef-bleaching``: survey covariates → bleaching probability (see the package doc)."""

    name = NAME
    primary_metric = "auroc"
    gate: ClassVar[dict[str, float]] = {
        "auroc": 0.75,
        "auroc_gain_vs_dhw": 0.08,
        "f1_gain_vs_dhw": 0.05,
    }

    # ---- tuning ----------------------------------------------------------------------
    def tuning_problem(self, options: TrainOptions) -> Any:
        """The XGBoost member on inner forward-in-time folds (:func:`.tuning.tuning_problem`)."""
        return tuning.tuning_problem(options)

    # ---- lineage ---------------------------------------------------------------------
    def dataset_refs(self, options: TrainOptions) -> list[DatasetRef]:
        """The survey table (and the ViT grid, when configured) with their SHA-256 digests."""
        return tracking.dataset_refs(options)

    # ---- training --------------------------------------------------------------------
    def train(self, options: TrainOptions) -> dict[str, Any]:
        """Forward-in-time grouped training/selection/test; logs the run; returns the metrics."""
        config = ReefConfig.from_options(options)
        surveys = read_bleaching_surveys(options.dataset)
        source = (ref_of(surveys) or DatasetRef("surveys", "<surveys>", "")).uri
        n_read = len(surveys)
        surveys = _exclude(surveys, options.exclude_bboxes, inside=False)
        reject = config.unknown_realm == "error"
        rows, rejections = prepare_surveys(surveys, source, reject_unknown=reject)
        rows = rows.reset_index(drop=True)
        y = bleaching_target(rows, config.bleach_threshold).to_numpy()
        years = rows[YEAR_COLUMN].to_numpy()
        sites = rows[SITE_COLUMN].to_numpy()
        train_pos, test_pos, dropped = forward_split(years, sites, config.test_after)
        if train_pos.size == 0 or test_pos.size == 0:
            raise EarthOpsError(
                f"forward split at {config.test_after}: {train_pos.size} training and "
                f"{test_pos.size} test rows; expected both non-empty (set test_after)"
            )
        chips = None
        if config.grid is not None:
            chips = _chips(open_grid(config.grid, config.grid_variables), rows, config.chip_size)
        recipe = _Recipe(config, chips)
        test_rows = rows.iloc[test_pos]

        # validation: select + fit on years <= test_after, score the later years' unseen sites
        model, choice, oof, oof_y, inner_report = fit_selected(
            rows, y, train_pos, config.test_after, config, recipe
        )
        log.info("recipe chosen", combiner=choice["combiner"], calibration=choice["calibration"])
        test_probs = model.member_probabilities(
            test_rows, None if chips is None else chips[test_pos]
        )
        p_test = model.calibrator_.transform(model.combine(test_probs))
        y_test = y[test_pos]
        metrics = binary_metrics(y_test, p_test, model.threshold_)
        base = baseline_metrics(test_rows, y_test, config.dhw_threshold)
        comparison = candidate_comparison(
            model, test_probs, test_rows, y_test, choice, config, oof, oof_y
        )
        severity = severity_metrics(
            test_rows[TARGET_COLUMN].to_numpy(), model.predict_severity(test_rows)
        )
        rolling = [] if config.fast else rolling_origin(rows, y, recipe, model, config)
        deployed = model
        if config.refit_all and years.max() > config.test_after:
            # the logged model: the same procedure on every year (inner folds re-run up to the
            # last year); its figures above are the forward validation of the same recipe
            all_pos = np.arange(len(rows))
            deployed, deploy_choice, *_ = fit_selected(
                rows, y, all_pos, int(years.max()), config, recipe
            )
        else:
            deploy_choice = choice
        result: dict[str, Any] = {
            **{k: metrics[k] for k in METRIC_KEYS},
            "baseline": {k: base[k] for k in (*METRIC_KEYS, "rule", "n")},
            **_gains(metrics, base),
            "threshold": model.threshold_,
            "threshold_source": "max mean per-fold F1 on inner-fold OOF (training years only)",
            "comparison": comparison,
            "severity": severity,
            "rolling_origin": rolling,
            "split": {
                "protocol": f"train years <= {config.test_after}; test later years, unseen sites",
                "train_rows": int(train_pos.size),
                "test_rows": int(test_pos.size),
                "test_rows_dropped_seen_sites": dropped,
                "test_years": sorted({int(v) for v in years[test_pos]}),
                "test_prevalence": metrics["prevalence"],
                "inner_folds": inner_report,
            },
            "rows": {"read": n_read, "used": len(rows), "rejected": rejections.to_dict()},
            "bleach_threshold": config.bleach_threshold,
            "logged_model": {
                "train_years": [int(years.min()), deployed.train_until_],
                "refit_all": deployed is not model,
                "combiner": deployed.combiner_,
                "calibration": deployed.calibrator_.method,
                "threshold": deployed.threshold_,
                "oof_auroc": deploy_choice["candidates"][deploy_choice["combiner"]][
                    "auroc_mean_fold"
                ],
            },
        }
        model_uri, run_id = tracking.log_run(
            deployed, rows, result, config, options, (y_test, p_test)
        )
        result["model_uri"] = model_uri
        result["run_id"] = run_id
        return result

    # ---- the predict contract ---------------------------------------------------------
    request_model = serving.ReefRecord
    response_model = serving.ReefAnswer

    def routing_key(self, record: serving.ReefRecord) -> str:
        return f"site:{record.site_id}"

    def prepare_records(
        self, model: LoadedModel, records: Sequence[serving.ReefRecord]
    ) -> PreparedRecords:
        return serving.prepare(model, records)

    def respond(
        self, model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
    ) -> list[serving.ReefAnswer]:
        return serving.respond(model, prepared, prediction)

    def readiness(self) -> str | None:
        from earthops.featurestore.store import check_online

        try:
            check_online()
        except EarthOpsError as exc:
            return f"feature store: {exc}"
        return None

    def example_record(self) -> serving.ReefRecord:
        """The first site of the feature store (materialize it first)."""
        from earthops.featurestore import known_sites

        sites = known_sites()
        if sites.empty:
            raise EarthOpsError("no site in the feature store; run `earthops features apply`")
        return serving.ReefRecord(site_id=int(sites[0]))

    def serving_metric(
        self, y_true: Sequence[str], labels: Sequence[str], scores: Sequence[Any]
    ) -> float:
        """AUROC of the served probabilities against fed-back labels (``0``/``1``)."""
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(np.asarray(y_true, dtype=float).astype(int), scores))

    # ---- risk heat-map -----------------------------------------------------------------
    def predict_raster(
        self, model_uri: str, inputs: list[Path], output: Path, *, with_probability: bool = False
    ) -> Path:
        """Risk heat-map of a CRW DHW NetCDF (``inputs``: exactly one) with the model's DHW-driven
        grid model; ``with_probability`` adds the CRW alert-level band. Writes the COG and a PNG
        beside it (see :func:`risk_heatmap`); returns the COG path."""
        if len(inputs) != 1:
            raise EarthOpsError(
                f"{NAME} predict-raster: {len(inputs)} inputs; expected one CRW DHW NetCDF"
            )
        model = _load_reef_model(model_uri)
        return risk_heatmap(
            output, dhw=inputs[0], model=model, with_alert_band=with_probability
        ).cog

    # ---- evaluation ------------------------------------------------------------------
    def evaluate(self, model_uri: str, options: EvalOptions) -> dict[str, Any]:
        """Score a logged reef model on labelled surveys (a CSV in the shared survey format).

        Without ``dataset`` the catalog surveys are scored on the model's own test scope
        (years after its training years, unseen sites). ``bboxes`` keep rows inside them.
        Rows with a realm/ocean name outside the vocabulary are rejected and counted
        (``rows.rejected.unknown_Realm_Name``) unless the model was trained with
        ``unknown_realm='category'``; missing columns and out-of-range values are DataErrors.
        """
        model = _load_reef_model(model_uri)
        surveys = read_bleaching_surveys(options.dataset)
        source = (ref_of(surveys) or DatasetRef("surveys", "<surveys>", "")).uri
        n_read = len(surveys)
        surveys = _exclude(surveys, options.bboxes, inside=True)
        # names outside the realm/ocean vocabulary: counted rejections (scoring goes on) unless
        # the model encodes them as an explicit 'unknown' category
        reject = model.featurizer_.unknown == "error"
        rows, rejections = prepare_surveys(surveys, source, reject_unknown=reject)
        seen = rows[SITE_COLUMN].isin(model.train_sites_).to_numpy()
        scope = "all rows of the dataset"
        if options.dataset is None:
            keep = (rows[YEAR_COLUMN] > model.train_until_).to_numpy() & ~seen
            rows, seen = rows.loc[keep], seen[keep]
            scope = f"catalog surveys after {model.train_until_}, sites unseen in training"
        if rows.empty and options.dataset is None:
            raise EarthOpsError(
                f"model '{model_uri}' was trained on every catalog year up to "
                f"{model.train_until_}; pass --dataset with surveys of later years"
            )
        if rows.empty:
            raise EarthOpsError(f"{source}: no survey rows to score after filtering")
        y = bleaching_target(rows, model.bleach_threshold_).to_numpy()
        p = model.predict_proba(rows)[:, 1]
        metrics = binary_metrics(y, p, model.threshold_)
        base = baseline_metrics(rows, y, model.dhw_threshold_)
        result: dict[str, Any] = {
            **{k: metrics[k] for k in METRIC_KEYS},
            "baseline": {k: base[k] for k in (*METRIC_KEYS, "rule", "n")},
            **_gains(metrics, base),
            "threshold": model.threshold_,
            "severity": severity_metrics(
                rows[TARGET_COLUMN].to_numpy(), model.predict_severity(rows)
            ),
            "rows": {
                "read": n_read,
                "scored": len(rows),
                "rejected": rejections.to_dict(),
                "seen_sites": int(seen.sum()),
            },
            "prevalence": metrics["prevalence"],
            "scope": scope,
            "model_uri": model_uri,
        }
        if seen.any() and (~seen).sum() > 0:
            sub = rows.loc[~seen]
            m2 = binary_metrics(y[~seen], p[~seen], model.threshold_)
            b2 = baseline_metrics(sub, y[~seen], model.dhw_threshold_)
            result["unseen_sites"] = {
                **{k: m2[k] for k in METRIC_KEYS},
                "n": m2["n"],
                "baseline": {k: b2[k] for k in METRIC_KEYS},
            }
        return result
