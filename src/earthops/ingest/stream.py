"""Streaming SST ingestion: source → validated records → offline store → fresh online features.

Per page of records: each record is validated (:class:`~earthops.ingest.records.SSTRecord`;
failures are counted by reason), the valid ones are appended to the offline ``sst_daily`` table
(idempotent on site + timestamp), the thermal features of the new days are recomputed from the
site's stored series and upserted into ``sst_features``, and the newest row per site is written
to the online store (view ``sst_stream``). The offline append happens first, so a failing online
store never loses a record, and a restart resumes after the newest stored timestamp (no
duplicates, no gaps). Every loop is bounded (source end, ``max_records``, ``max_seconds``, idle
polls).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from earthops.errors import DataError
from earthops.featurestore import offline
from earthops.featurestore.store import check_online, feature_store, known_sites, write_online
from earthops.featurestore.tables import sst_feature_rows
from earthops.ingest.records import SST_NAMES, Rejections, SSTRecord, validate_record
from earthops.ingest.sources import CSVReplay, HTTPPoller, Raw, is_url
from earthops.logs import get_logger
from earthops.settings import Settings, get_settings

log = get_logger(__name__)


@dataclass
class IngestReport:
    """Counts of one ingestion run."""

    source: str
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: Rejections = field(default_factory=Rejections)
    pages: int = 0
    online_rows: int = 0
    first_time: str | None = None
    last_time: str | None = None
    stopped: str = "source exhausted"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "rejected"}
        out["rejected"] = self.rejected.to_dict()
        return out


def stored_until(site_id: int, settings: Settings | None = None) -> datetime | None:
    """Newest stored raw SST timestamp of a site (the resume point)."""
    settings = settings or get_settings()
    raw = offline.read_table("sst_daily", settings.feature_repo_dir)
    stamps = raw.loc[raw["site_id"] == site_id, "event_timestamp"]
    return None if stamps.empty else pd.Timestamp(stamps.max()).to_pydatetime()


def check_site(site_id: int, settings: Settings | None = None) -> None:
    """DataError unless ``site_id`` is a site of the feature repository."""
    if site_id not in known_sites(settings):
        raise DataError(
            "--site",
            f"unknown site {site_id}; expected a Site_ID of the bleaching-survey table "
            "(applied with `earthops features apply`)",
        )


def _to_frame(records: list[SSTRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": [r.site_id for r in records],
            "event_timestamp": pd.to_datetime([r.time for r in records], utc=True),
            "sst": [r.sst for r in records],
            "latitude": [r.latitude for r in records],
            "longitude": [r.longitude for r in records],
        }
    )


def ingest_records(
    records: list[SSTRecord], report: IngestReport, settings: Settings | None = None
) -> None:
    """Append validated records offline, refresh their sites' features offline and online."""
    if not records:
        return
    settings = settings or get_settings()
    repo = settings.feature_repo_dir
    frame = _one_per_day(_to_frame(records), offline.read_table("sst_daily", repo), report)
    result = offline.append_rows(frame, "sst_daily", repo)
    report.accepted += result.added
    report.duplicates += result.duplicates
    report.conflicts += result.conflicts
    if result.conflicts:
        log.warning("records conflicting with stored values ignored", count=result.conflicts)
    added = result.added_keys
    if added is None or added.empty:
        return
    raw = offline.read_table("sst_daily", repo)
    stored = offline.read_table("sst_features", repo)
    pending = stored.loc[stored["hotspot"].isna(), ["site_id", "event_timestamp"]]
    rows = []
    for site_id, keys in added.groupby("site_id"):
        # rows stored before the site had a CRW climatology are completed once it has one
        stamps = pd.concat(
            [keys["event_timestamp"], pending.loc[pending["site_id"] == site_id, "event_timestamp"]]
        ).drop_duplicates()
        rows.append(sst_feature_rows(raw[raw["site_id"] == site_id], stamps))
    features = pd.concat(rows, ignore_index=True)
    offline.append_rows(features, "sst_features", repo, replace=True)
    report.online_rows += write_online("sst_stream", features, settings)
    first, last = added["event_timestamp"].min(), added["event_timestamp"].max()
    report.first_time = report.first_time or pd.Timestamp(first).isoformat()
    report.last_time = pd.Timestamp(last).isoformat()


def _one_per_day(frame: pd.DataFrame, raw: pd.DataFrame, report: IngestReport) -> pd.DataFrame:
    """Reject (count) records of a day that already has a reading at another time: the stream is
    a daily series (CRW thermal features), and sub-daily samples must be resampled upstream."""
    day = frame["event_timestamp"].dt.floor("D")
    stored = raw[["site_id", "event_timestamp"]].assign(day=raw["event_timestamp"].dt.floor("D"))
    stored = stored.drop_duplicates(["site_id", "day"]).set_index(["site_id", "day"])
    keys = pd.MultiIndex.from_arrays([frame["site_id"], day])
    at = stored["event_timestamp"].reindex(keys).to_numpy()
    other_time = pd.notna(at) & (at != frame["event_timestamp"].to_numpy())
    first = ~pd.DataFrame({"s": frame["site_id"], "d": day}).duplicated().to_numpy()
    same_batch = ~first & ~frame.duplicated(["site_id", "event_timestamp"]).to_numpy()
    bad = other_time | same_batch
    for ts in frame.loc[bad, "event_timestamp"]:
        report.rejected.add(
            "time: a reading for this day already exists",
            f"{ts.isoformat()}: expected one reading per UTC day",
        )
    return frame[~bad]


def _site_from_columns(columns: list[str], site_id: int | None, source: str) -> None:
    if site_id is None and not {"site_id", "Site_ID", "site"} & set(columns):
        raise DataError(
            source,
            "records carry no site id; pass --site ID (a Site_ID of the bleaching-survey table)",
            field="site_id",
        )
    if not set(SST_NAMES) & set(columns):
        raise DataError(source, f"no SST column; expected one of {list(SST_NAMES)}", field="sst")


def run_stream(
    source: str | Path,
    *,
    site_id: int | None = None,
    speed: float = 0.0,
    max_records: int | None = None,
    max_seconds: float | None = None,
    poll_interval: float = 1.0,
    idle_polls: int = 3,
    page_size: int = 200,
    settings: Settings | None = None,
) -> IngestReport:
    """Ingest a CSV replay (a file) or an HTTP JSON endpoint (a URL); see the module doc.

    ``max_records``: stop after reading this many records (valid or not); ``max_seconds``: stop
    after this long; an HTTP source also stops after ``idle_polls`` polls without new records.
    Resumes after the newest stored timestamp of ``site_id``.
    """
    settings = settings or get_settings()
    feature_store(settings)  # the repository must be applied (clear error otherwise)
    check_online(settings)
    if site_id is not None:
        check_site(site_id, settings)
    after = stored_until(site_id, settings) if site_id is not None else None
    text = str(source)
    report = IngestReport(source=text)
    if is_url(text):
        pages = HTTPPoller(text, after=after, interval=poll_interval, idle_polls=idle_polls)
    else:
        path = Path(text)
        if not path.is_file():
            raise DataError(path, "no such file; expected a CSV of SST records or an http(s) URL")
        replay = CSVReplay(path, after=after, speed=speed, page_size=page_size)
        _site_from_columns(replay.columns(), site_id, text)
        pages = replay
    sites = set(known_sites(settings))
    started = time.monotonic()
    log.info("stream started", source=text, site=site_id, resume_after=str(after))
    for page in pages.pages(report.rejected):
        if max_records is not None:
            page = page[: max(0, max_records - report.read)]
        report.pages += 1
        report.read += len(page)
        records = _validate(page, site_id, sites, report.rejected)
        ingest_records(records, report, settings)
        if max_records is not None and report.read >= max_records:
            report.stopped = "max records"
            break
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            report.stopped = "max seconds"
            break
    else:
        if is_url(text):
            report.stopped = "idle"
    log.info(
        "stream stopped",
        **{k: v for k, v in report.to_dict().items() if k != "rejected"},
        rejected=report.rejected.total,
    )
    return report


def _validate(
    page: list[Raw], site_id: int | None, sites: set[int], rejections: Rejections
) -> list[SSTRecord]:
    records = []
    for where, raw in page:
        record = validate_record(raw, site_id, rejections, where)
        if record is None:
            continue
        if record.site_id not in sites:
            rejections.add("site_id: unknown site", f"{where}: site {record.site_id}")
            continue
        records.append(record)
    return records
