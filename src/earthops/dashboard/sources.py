"""What the dashboard shows, read from the sources the CLI reads, as plain frames and dicts.

Every reader returns ``None`` when its source is empty (nothing registered, logged, reported
or drawn yet) and raises :class:`SourceError` — naming the source and how to fix it — when the
source is there but cannot be read (a corrupt file, an unreachable server or registry). The
pages turn ``None`` into "run … to fill this" and a :class:`SourceError` into its message.

Sources (all under the EarthOps home unless configured otherwise):

* the MLflow registry (:mod:`earthops.registry.policy`);
* the prediction log (``settings.prediction_log``, :class:`~earthops.serving.predictionlog.PredictionLog`);
* drift reports: the JSON files ``earthops monitor drift USECASE --json FILE`` writes, read
  from :func:`drift_dir` = ``<home>/outputs/drift/*.json`` (the report's time is the file's
  modification time; the use case is the payload's ``usecase``, else the file-name stem up to
  the first ``_``);
* alert records (:class:`~earthops.monitoring.alerts.AlertStore`, ``<home>/alerts.db``);
* maps: ``*.tif`` (COG) and ``*.png`` files directly under ``<home>/outputs/``;
* the model server's ``GET /v1/models`` when ``settings.server_url`` is set.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earthops.errors import EarthOpsError
from earthops.settings import Settings

#: quantiles of the serving latency panel
LATENCY_QUANTILES = (0.5, 0.95, 0.99)
#: most prediction-log rows the serving page reads (the latest ones)
MAX_LOG_ROWS = 200_000
#: longest side of a map raster drawn in the browser (read from the COG's overviews)
MAP_MAX_PIXELS = 720


class SourceError(EarthOpsError):
    """A source exists but cannot be read; the message names it and the fix."""


# ------------------------------------------------------------------------------ registry
def registry_versions(settings: Settings) -> pd.DataFrame | None:
    """Every registered version: name, version, aliases, stage, gate, approved, metrics,
    datasets, created (one row per version, newest first per model)."""
    from earthops.registry.approved import is_approved
    from earthops.registry.policy import list_versions

    try:
        versions = list_versions()
    except Exception as exc:  # MLflow raises many types for a bad store
        raise SourceError(
            f"MLflow registry at {settings.mlflow_tracking_uri} cannot be read ({exc}); "
            "check EARTHOPS_TRACKING_URI / EARTHOPS_HOME"
        ) from exc
    if not versions:
        return None
    rows = []
    for info in versions:
        row = info.to_dict()
        row["approved"] = is_approved(info.name, info.version)
        row["created"] = pd.to_datetime(info.created_ms, unit="ms", utc=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["_v"] = pd.to_numeric(frame["version"], errors="coerce")
    return frame.sort_values(["name", "_v"], ascending=[True, False]).drop(columns="_v")


def champion_challenger(versions: pd.DataFrame, name: str) -> dict[str, Any] | None:
    """:func:`earthops.registry.policy.compare` of ``name``'s champion and challenger."""
    from earthops.registry.policy import CHALLENGER, CHAMPION, compare

    own = versions[versions["name"] == name]
    holder = {
        alias: next((r.version for r in own.itertuples() if alias in r.aliases), None)
        for alias in (CHAMPION, CHALLENGER)
    }
    if holder[CHAMPION] is None or holder[CHALLENGER] is None:
        return None
    result = compare(name, holder[CHAMPION], holder[CHALLENGER])
    return {"champion": holder[CHAMPION], "challenger": holder[CHALLENGER], **result}


# ------------------------------------------------------------------------------ prediction log
def _sqlite_missing(url: str) -> bool:
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file()


def predictions(settings: Settings, *, since: datetime | None = None) -> pd.DataFrame | None:
    """The latest :data:`MAX_LOG_ROWS` prediction-log rows (``since`` inclusive)."""
    from earthops.serving.predictionlog import PredictionLog

    url = settings.prediction_log
    if _sqlite_missing(url):  # do not create an empty log just by looking
        return None
    try:
        log = PredictionLog(url)
        try:
            frame = log.read(since=since, limit=MAX_LOG_ROWS)
        finally:
            log.close()
    except Exception as exc:
        raise SourceError(
            f"prediction log {url.split('@')[-1]} cannot be read ({exc}); check "
            "EARTHOPS_PREDICTION_LOG_URL"
        ) from exc
    return None if frame.empty else frame


def _bin_width(times: pd.Series, bins: int = 60) -> pd.Timedelta:
    """A round bin width giving about ``bins`` bins over the span of ``times``."""
    span = (times.max() - times.min()) / bins
    for width in ("1s", "5s", "10s", "30s", "1min", "5min", "15min", "1h", "6h", "1D"):
        if pd.Timedelta(width) >= span:
            return pd.Timedelta(width)
    return pd.Timedelta("7D")


def serving_series(frame: pd.DataFrame, width: pd.Timedelta | None = None) -> pd.DataFrame:
    """Per use case, model version and time bin: requests/s, error rate and latency
    p50/p95/p99 (ms) of the logged arms (shadow answers are not served: excluded)."""
    served = frame.loc[frame["arm"] != "shadow"]
    width = width or _bin_width(served["time"])
    grouped = served.groupby(
        ["usecase", "model_version", pd.Grouper(key="time", freq=width)], observed=True
    )
    out = grouped.agg(
        requests=("request_id", "nunique"), errors=("status", lambda s: int((s == "error").sum()))
    )
    latency = grouped["latency_ms"].quantile(list(LATENCY_QUANTILES)).unstack()
    latency.columns = [f"p{round(q * 100)}_ms" for q in latency.columns]
    out = out.join(latency).reset_index()
    out["requests_per_s"] = out["requests"] / width.total_seconds()
    out["error_rate"] = out["errors"] / out["requests"].clip(lower=1)
    return out


def arm_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Observed share of requests per use case, arm and version (the canary's realised split)."""
    counts = frame.groupby(["usecase", "arm", "model_version"]).request_id.nunique()
    totals = frame.loc[frame["arm"] != "shadow"].groupby("usecase").request_id.nunique()
    out = counts.rename("requests").reset_index()
    out["share"] = out["requests"] / out["usecase"].map(totals).clip(lower=1)
    return out


# ------------------------------------------------------------------------------ server
def server_models(settings: Settings) -> list[dict[str, Any]] | None:
    """``GET <server_url>/v1/models``: per use case its arms, weights and canary state."""
    import httpx

    if not settings.server_url:
        return None
    url = settings.server_url.rstrip("/") + "/v1/models"
    try:
        response = httpx.get(url, timeout=3.0)
        response.raise_for_status()
        return list(response.json()["usecases"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise SourceError(
            f"model server {url} unreachable or not an EarthOps server ({exc}); start "
            "`earthops serve` or fix EARTHOPS_SERVER_URL"
        ) from exc


# ------------------------------------------------------------------------------ drift reports
@dataclass
class DriftFile:
    """One drift report file: the report, its use case and time, the CLI payload's extras."""

    path: Path
    time: pd.Timestamp
    usecase: str
    report: Any  # earthops.monitoring.drift.DriftReport
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DriftReports:
    """The readable reports, oldest first, and the files that could not be read."""

    files: list[DriftFile]
    problems: list[str]


def drift_dir(settings: Settings) -> Path:
    """Where the dashboard looks for drift reports: ``<home>/outputs/drift``."""
    return settings.home_dir / "outputs" / "drift"


def _drift_file(path: Path) -> DriftFile:
    from earthops.monitoring.drift import DriftReport

    text = path.read_text(encoding="utf-8")
    report = DriftReport.from_json(text)
    payload = json.loads(text)
    usecase = payload.get("usecase") or path.stem.split("_")[0]
    extra = {k: payload[k] for k in ("model", "source", "prior_shift") if k in payload}
    when = pd.Timestamp(path.stat().st_mtime, unit="s", tz=UTC)
    return DriftFile(path, when, str(usecase), report, extra)


def drift_reports(settings: Settings) -> DriftReports | None:
    """Every ``*.json`` drift report under :func:`drift_dir`; a bad file is a problem line."""
    folder = drift_dir(settings)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        return None
    files, problems = [], []
    for path in paths:
        try:
            files.append(_drift_file(path))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            first = str(exc).splitlines()[0]
            problems.append(
                f"{path}: not a drift report ({first}); re-run `earthops monitor "
                "drift USECASE --json` to rewrite it, or delete it"
            )
    files.sort(key=lambda f: f.time)
    return DriftReports(files, problems)


def drift_features(reports: DriftReports) -> pd.DataFrame:
    """One row per report and feature: time, usecase, feature, kind, psi, ks (numeric D),
    p_adjusted, drifted, psi_threshold — the report's values, nothing recomputed."""
    rows = []
    for f in reports.files:
        for row in f.report.features:
            rows.append({
                "time": f.time, "usecase": f.usecase, "file": f.path.name,
                "feature": row.feature, "kind": row.kind, "psi": row.psi,
                "ks": row.statistic if row.kind == "numeric" else None,
                "p_adjusted": row.p_adjusted, "drifted": row.drifted, "alert": row.alert,
                "psi_threshold": f.report.config.psi_threshold,
            })  # fmt: skip
    return pd.DataFrame(rows)


def drift_datasets(reports: DriftReports) -> pd.DataFrame:
    """One row per report: drifted share vs its threshold, status, estimated (CBPE) and
    realised F1 where the report has them."""
    rows = []
    for f in reports.files:
        prior = f.extra.get("prior_shift") or {}
        rows.append({
            "time": f.time, "usecase": f.usecase, "file": f.path.name,
            "drifted_share": f.report.drifted_share,
            "drift_share_threshold": f.report.config.drift_share,
            "dataset_drift": f.report.dataset_drift, "status": f.report.status,
            "n_rows": f.report.n_rows, "source": f.extra.get("source"),
            "model_version": (f.extra.get("model") or {}).get("version"),
            "estimated_f1": (prior.get("estimated_f1") or {}).get("model_threshold"),
            "realised_f1": (prior.get("realised_f1") or {}).get("model_threshold"),
        })  # fmt: skip
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ alerts
def alerts(settings: Settings, limit: int = 200) -> pd.DataFrame | None:
    """The latest ``limit`` alert records, newest first (the ``alerts`` table's columns)."""
    try:
        from earthops.monitoring.alerts import AlertStore, default_store_url
    except ImportError:  # the alert store is not part of this installation yet
        return None
    url = default_store_url()
    if _sqlite_missing(url):
        return None
    try:
        store = AlertStore(url)
        try:
            records = store.recent(limit)
        finally:
            store.close()
    except Exception as exc:
        raise SourceError(f"alert store {url} cannot be read ({exc})") from exc
    if not records:
        return None
    return pd.DataFrame([r.model_dump() for r in records])


# ------------------------------------------------------------------------------ maps
@dataclass
class MapFile:
    """A map under the outputs: a decimated raster (or a PNG's pixels) and how to draw it."""

    path: Path
    title: str
    kind: str  # "categorical", "continuous" or "image"
    data: np.ndarray
    extent: tuple[float, float, float, float] | None = None  # left, right, bottom, top
    classes: dict[int, str] = field(default_factory=dict)
    colours: dict[int, str] = field(default_factory=dict)
    band: str = ""
    model: str | None = None
    png: Path | None = None


def _read_cog(path: Path) -> MapFile:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from earthops.raster.cog import read_class_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            scale = max(1, int(np.ceil(max(src.width, src.height) / MAP_MAX_PIXELS)))
            shape = (max(1, src.height // scale), max(1, src.width // scale))
            data = src.read(1, out_shape=shape, masked=True)
            tags, band = src.tags(), (src.descriptions[0] or "band 1")
            try:
                palette = src.colormap(1)
            except ValueError:  # no colour table
                palette = {}
            left, bottom, right, top = src.bounds
    classes = read_class_names(path)
    categorical = bool(classes or palette)
    values = data.astype(np.float64).filled(np.nan)
    present = {int(v) for v in np.unique(values[np.isfinite(values)])} if categorical else set()
    present |= set(classes)  # the legend names every class of the scale, drawn or not
    usecase = tags.get("EARTHOPS_USECASE", path.stem)
    when = f" — CRW DHW {tags['DHW_DATE']}" if tags.get("DHW_DATE") else ""
    return MapFile(
        path=path,
        title=f"{usecase}: {band}{when}",
        kind="categorical" if categorical else "continuous",
        data=values,
        extent=(left, right, bottom, top),
        classes={v: classes.get(v, str(v)) for v in sorted(present)},
        colours={v: "#{:02x}{:02x}{:02x}".format(*palette[v][:3]) for v in present if v in palette},
        band=band,
        model=tags.get("EARTHOPS_MODEL") or tags.get("EARTHOPS_MODEL_URI"),
        png=path.with_suffix(".png") if path.with_suffix(".png").is_file() else None,
    )


def _read_png(path: Path) -> MapFile:
    from PIL import Image

    with Image.open(path) as image:
        image.thumbnail((MAP_MAX_PIXELS * 2, MAP_MAX_PIXELS * 2))
        pixels = np.asarray(image.convert("RGB"))
    return MapFile(
        path=path, title=path.stem.replace("_", " "), kind="image", data=pixels, png=path
    )


def maps(settings: Settings) -> tuple[list[MapFile], list[str]] | None:
    """The COGs (with their PNG beside them) and lone PNGs under ``<home>/outputs``, and the
    files that could not be read."""
    folder = settings.home_dir / "outputs"
    if not folder.is_dir():
        return None
    tifs = sorted(folder.glob("*.tif"))
    pngs = [p for p in sorted(folder.glob("*.png")) if not p.with_suffix(".tif").is_file()]
    if not tifs and not pngs:
        return None
    found, problems = [], []
    for path in [*tifs, *pngs]:
        try:
            found.append(_read_cog(path) if path.suffix == ".tif" else _read_png(path))
        except Exception as exc:  # rasterio/PIL raise their own types for corrupt files
            problems.append(
                f"{path}: cannot be read ({exc}); redraw it with `make run` or "
                "`earthops pipeline` / delete it"
            )
    return found, problems


def now() -> datetime:
    """The current UTC time (one seam for "last updated")."""
    return datetime.now(UTC)
