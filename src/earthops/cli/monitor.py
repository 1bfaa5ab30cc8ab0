"""``earthops monitor drift``: a model's reference profile against current data.

Exit codes: 0 no drift, 1 drift, 2 data-quality problem (:attr:`DriftReport.status`); bad input
(missing file, unknown use case, a model without a profile) is one error line and exit 1.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from earthops.cli.common import console, write_json
from earthops.errors import DataError, EarthOpsError
from earthops.monitoring.drift import DriftConfig, DriftReport, drift_report
from earthops.monitoring.profile import ReferenceProfile
from earthops.registry.inference import LoadedModel

app = typer.Typer(help="Model monitoring: drift, data quality, label-free performance.")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass
class Window:
    """Current data for one drift report: model inputs and what goes beside them."""

    frame: pd.DataFrame
    source: str
    rows: pd.DataFrame  # what the model is fed (its input columns)
    labels: pd.Series | None = None
    groups: pd.Series | None = None
    clusters: pd.Series | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_since(value: str | None) -> datetime | None:
    """``7d`` / ``24h`` / ``30m`` (before now) or an ISO 8601 time (naive = UTC)."""
    if value is None:
        return None
    if match := _DURATION.match(value.strip()):
        delta = timedelta(**{_UNITS[match[2]]: float(match[1])})
        return datetime.now(UTC) - delta
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise EarthOpsError(
            f"--since {value!r}: expected an ISO 8601 time (2026-01-31T00:00) or a duration "
            "(30m, 24h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------ windows
def _reef_dataset(loaded: LoadedModel, path: Path, cfg: DriftConfig) -> Window:
    from earthops.features.reef_features import DEFAULT_BLEACH_THRESHOLD
    from earthops.usecases.reef.tracking import monitoring_window

    threshold = getattr(loaded.model, "bleach_threshold_", DEFAULT_BLEACH_THRESHOLD)
    found = monitoring_window(path, loaded.card.input_columns, cfg.fill_values, threshold)
    return Window(
        frame=found["frame"],
        source=str(path),
        rows=found["rows"],
        labels=found["labels"],
        groups=found["groups"],
        clusters=found["clusters"],
        extra={"rejections": found["rejections"], "fill_values": found["fills"]},
    )


def _timeseries_dataset(loaded: LoadedModel, path: Path, cfg: DriftConfig) -> Window:
    from earthops.data.samples import read_mod13q1_samples
    from earthops.usecases.landcover_timeseries.samples import sample_rows

    if not path.is_file():
        raise DataError(path, "no such file; expected a MOD13Q1 samples JSON")
    bands = tuple(loaded.meta["bands"])
    samples = read_mod13q1_samples(path, bands=bands)
    X = sample_rows(samples, bands, tuple(loaded.meta["date_index"]))
    frame = pd.DataFrame(X, columns=loaded.card.input_columns)
    labels = pd.Series(np.asarray(samples.labels).astype(str))
    return Window(frame=frame, source=str(path), rows=frame, labels=labels)


DATASET_WINDOWS = {"reef-bleaching": _reef_dataset, "landcover-timeseries": _timeseries_dataset}


def _log_window(
    loaded: LoadedModel, usecase: str, since: datetime | None, profile: ReferenceProfile
) -> Window:
    """Logged requests of ``usecase`` (one row per request, ``status == ok``) since ``since``."""
    from earthops.serving.predictionlog import PredictionLog
    from earthops.settings import get_settings

    url = get_settings().prediction_log
    log = PredictionLog(url)
    try:
        found = log.read(usecase=usecase, since=since)
    finally:
        log.close()
    found = found.loc[found["status"] == "ok"].drop_duplicates("request_id")
    if found.empty:
        when = f" since {since.isoformat()}" if since else ""
        raise DataError("prediction log", f"no logged {usecase} predictions{when}")
    rows = pd.DataFrame(list(found["features"]))
    keep = [c for c in rows.columns if c in profile.columns or c not in loaded.card.input_columns]
    truth = found["label_true"].reset_index(drop=True)
    labels = None
    if truth.notna().any():
        numeric = all(isinstance(c, int) for c in loaded.card.classes)
        labels = pd.to_numeric(truth, errors="coerce") if numeric else truth
    region = found["region"].reset_index(drop=True)
    return Window(
        frame=rows[keep],
        source=f"prediction log ({usecase})",
        rows=rows,
        labels=labels,
        groups=region if region.notna().any() else None,
    )


def current_window(
    loaded: LoadedModel,
    usecase: str,
    profile: ReferenceProfile,
    cfg: DriftConfig,
    *,
    dataset: Path | None,
    since: datetime | None,
) -> Window:
    if dataset is None:
        return _log_window(loaded, usecase, since, profile)
    reader = DATASET_WINDOWS.get(usecase)
    if reader is None:
        raise EarthOpsError(
            f"monitor drift --dataset is not available for {usecase} yet (supported: "
            f"{', '.join(DATASET_WINDOWS)}); use --from-log"
        )
    return reader(loaded, Path(dataset), cfg)


# ------------------------------------------------------------------------------ the report
def _prior_shift(
    loaded: LoadedModel, profile: ReferenceProfile, scores: np.ndarray, window: Window
) -> dict[str, Any] | None:
    """SLD prevalence, CBPE F1 and the adjusted threshold for a binary model's scores."""
    from earthops.monitoring.prior import prior_shift_summary

    card = loaded.card
    if card.task != "binary" or profile.labels is None or profile.predictions_kind != "score":
        return None
    train_prior = profile.labels.shares.get(str(card.classes[1]))
    if not train_prior or train_prior >= 1:
        return None
    labels = None if window.labels is None else pd.to_numeric(window.labels, errors="coerce")
    threshold = 0.5 if card.threshold is None else card.threshold
    return prior_shift_summary(scores, train_prior, threshold, labels)


def monitor_drift(
    usecase: str,
    model_uri: str | None = None,
    *,
    dataset: Path | None = None,
    since: datetime | None = None,
    by_region: bool = False,
    config: DriftConfig | None = None,
) -> tuple[DriftReport, dict[str, Any]]:
    """The drift report of ``usecase``'s model on a dataset (or the prediction log) and the
    JSON payload: the report's fields plus ``usecase``, ``model``, ``source``, ``prior_shift``."""
    from earthops.monitoring.artifacts import load_reference_profile
    from earthops.registry.inference import load
    from earthops.usecases import get_usecase

    get_usecase(usecase)  # an unknown name is a clear error before any model lookup
    cfg = config or DriftConfig()
    uri = model_uri or f"models:/{usecase}@champion"
    loaded = load(uri, usecase=usecase)
    profile = load_reference_profile(loaded)
    window = current_window(loaded, usecase, profile, cfg, dataset=dataset, since=since)
    prediction = loaded.predict_frame(window.rows)
    if profile.predictions_kind == "score":
        predictions = pd.Series(prediction.scores, dtype="float64")
    else:
        predictions = pd.Series(np.asarray(prediction.labels).astype(str))
    report = drift_report(
        profile,
        window.frame,
        config=cfg,
        predictions=predictions if profile.predictions is not None else None,
        labels=window.labels if profile.labels is not None else None,
        groups=window.groups if by_region else None,
        clusters=window.clusters,
    )
    payload = {
        **json.loads(report.to_json()),
        "usecase": usecase,
        "model": {"uri": uri, "name": loaded.name, "version": loaded.version},
        "source": window.source,
        "prior_shift": _prior_shift(loaded, profile, prediction.scores, window),
        **window.extra,
    }
    return report, payload


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def print_report(report: DriftReport, payload: dict[str, Any]) -> None:
    """A rich table of the features, then the verdict and the prior-shift figures."""
    table = Table(title=f"drift: {payload['usecase']} vs {payload['source']}")
    for name in ("feature", "kind", "n_cur", "p_adj", "PSI", "JS", "drifted", "alert"):
        table.add_column(name)
    for row in report.features:
        table.add_row(
            row.feature,
            row.kind,
            str(row.n_cur),
            _fmt(row.p_adjusted),
            _fmt(row.psi),
            _fmt(row.js),
            "yes" if row.drifted else "",
            row.alert or "",
        )
    console.print(table)
    for name in ("predictions", "labels"):
        shift = getattr(report, name)
        if shift is not None:
            console.print(
                f"{name}: PSI {_fmt(shift.psi)}, p {_fmt(shift.p_value)}, drifted {shift.drifted}",
                highlight=False,
            )
    verdict = {0: "no drift", 1: "drift", 2: "data-quality problem"}[report.status]
    console.print(
        f"status {report.status} ({verdict}): {report.n_drifted}/{report.n_tested} features "
        f"drifted; {len(report.alerts)} alert(s)",
        highlight=False,
    )
    _print_prior(payload.get("prior_shift"))


def _print_prior(prior: dict[str, Any] | None) -> None:
    if not prior:
        return
    est, thr = prior["estimated_f1"], prior["adjusted_threshold"]
    line = (
        f"prevalence: training {prior['train_prevalence']:.3f}, SLD estimate "
        f"{prior['prevalence_estimate']:.3f}, mean score {prior['mean_score']:.3f}"
    )
    if "prevalence" in prior:
        line += f", realised {prior['prevalence']:.3f}"
    console.print(line, highlight=False)
    console.print(
        f"CBPE F1: {est['model_threshold']:.3f} at the model threshold "
        f"{prior['model_threshold']:.3f}, {est['adjusted_threshold']:.3f} at the adjusted "
        f"threshold {thr:.3f}",
        highlight=False,
    )
    if "realised_f1" in prior:
        real = prior["realised_f1"]
        console.print(
            f"realised F1: {real['model_threshold']:.3f} at the model threshold, "
            f"{real['adjusted_threshold']:.3f} at the adjusted threshold",
            highlight=False,
        )
    if not prior["label_shift_plausible"]:
        console.print(
            "[yellow]warning:[/] the scores are not a label shift of the training scores (the "
            "prior's likelihood peaks at a boundary); do not use the adjusted threshold"
        )


def write_html(report: DriftReport, payload: dict[str, Any], path: Path) -> Path:
    """The drift report's HTML page with a prior-shift section appended."""
    report.to_html(path)
    prior = payload.get("prior_shift")
    if prior:
        flat = {k: v for k, v in prior.items() if not isinstance(v, dict)}
        for group in ("estimated_f1", "realised_f1"):
            for key, value in (prior.get(group) or {}).items():
                flat[f"{group} at {key.replace('_', ' ')}"] = value
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v) if isinstance(v, float) else str(v))}</td></tr>"
            for k, v in flat.items()
        )
        section = f"<h2>Prevalence shift (SLD, CBPE)</h2><table>{cells}</table>"
        text = path.read_text(encoding="utf-8").replace("</body>", section + "</body>")
        path.write_text(text, encoding="utf-8")
    return path


@app.command("drift")
def drift(
    usecase: Annotated[str, typer.Argument(help="reef-bleaching | landcover-timeseries | …")],
    model: Annotated[
        str | None, typer.Option("--model", help="MODEL_URI (default models:/USECASE@champion).")
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option("--dataset", "--current", help="Current data in the use case's format."),
    ] = None,
    from_log: Annotated[
        bool, typer.Option("--from-log", help="Current data: the prediction log (default).")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Log rows since an ISO time or a duration (7d, 24h).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", "--report-out", help="Write the JSON report here.")
    ] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write an HTML report.")] = None,
    by_region: Annotated[bool, typer.Option(help="Per-region table (groups).")] = False,
) -> None:
    """Drift, data quality and prevalence shift of a model's inputs and scores.

    Exits 0 (no drift), 1 (drift) or 2 (data-quality problem); bad input exits 1 with an error.
    """
    if dataset is not None and (from_log or since is not None):
        raise EarthOpsError("monitor drift: give --dataset or --from-log [--since], not both")
    report, payload = monitor_drift(
        usecase, model, dataset=dataset, since=parse_since(since), by_region=by_region
    )
    write_json(payload, json_out)
    if html_out is not None:
        write_html(report, payload, html_out)
    print_report(report, payload)
    raise typer.Exit(report.status)
