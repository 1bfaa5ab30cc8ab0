"""Stream sources: a CSV replay and an HTTP JSON poller (ERDDAP tabledap / buoy style).

Both yield *pages*: lists of ``(where, raw_mapping)`` records, plus counted problems with whole
responses. Parsing of single values is left to :mod:`earthops.ingest.records`, so one bad record
never costs the rest of its page.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

from earthops.errors import DataError
from earthops.ingest.records import Rejections
from earthops.logs import get_logger

log = get_logger(__name__)

Raw = tuple[str, dict[str, Any]]


def parse_time(value: Any) -> datetime | None:
    """UTC datetime of an ISO-8601 string, or None when it does not parse."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(ts):
        return None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# ------------------------------------------------------------------------------ CSV replay
@dataclass
class CSVReplay:
    """Replays a CSV (ERDDAP ``time,latitude,longitude,CRW_SST``, optional units row) in pages.

    ``after``: resume point — rows up to and including the first row stamped after ``after`` are
    skipped (so a restart continues where the stored data ends). ``speed``: records per second
    (0: as fast as possible). ``page_size``: records per page.
    """

    path: Path
    after: datetime | None = None
    speed: float = 0.0
    page_size: int = 200

    def columns(self) -> list[str]:
        with open(self.path, encoding="utf-8", errors="replace", newline="") as fh:
            header = next(csv.reader(fh), None)
        if not header:
            raise DataError(self.path, "empty file; expected a CSV with a header row")
        return [h.strip() for h in header]

    def pages(self, rejections: Rejections) -> Iterator[list[Raw]]:
        columns = self.columns()
        if "time" not in columns:
            raise DataError(self.path, f"no 'time' column (columns: {columns})", field="time")
        page: list[Raw] = []
        resumed = self.after is None
        started = time.monotonic()
        sent = 0
        with open(self.path, encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            for line, row in enumerate(reader, start=2):
                if not row or (line == 2 and row and row[0].strip() == "UTC"):
                    continue  # blank line, ERDDAP units row
                where = f"{self.path.name}:{line}"
                if not resumed:
                    stamp = parse_time(row[columns.index("time")]) if len(row) > 0 else None
                    if stamp is None or stamp <= self.after:  # type: ignore[operator]
                        continue
                    resumed = True
                if len(row) != len(columns):
                    rejections.add(
                        "record: wrong number of fields",
                        f"{where}: {len(row)} fields, expected {len(columns)} ({row!r})"[:300],
                    )
                    continue
                page.append((where, dict(zip(columns, row, strict=True))))
                sent += 1
                if self.speed > 0:
                    delay = started + sent / self.speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing the replay, not synchronisation
                if len(page) >= self.page_size or (self.speed > 0 and len(page) >= self.speed):
                    yield page
                    page = []
        if page:
            yield page


# ------------------------------------------------------------------------------ HTTP poller
def with_time_constraint(url: str, after: datetime | None) -> str:
    """ERDDAP tabledap constraint ``time>ISO`` appended to ``url``."""
    if after is None:
        return url
    stamp = after.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{url}{'&' if '?' in url else '?'}time%3E{quote(stamp)}"


def parse_json_page(text: str, where: str, rejections: Rejections) -> list[Raw]:
    """Records of an ERDDAP JSON table (``{"table": {"columnNames", "rows"}}``) or a JSON list
    of objects. A malformed body counts one rejection (``response: …``) and yields nothing."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        rejections.add("response: malformed JSON", f"{where}: {exc.msg} at line {exc.lineno}")
        return []
    if isinstance(doc, list):
        out: list[Raw] = []
        for i, item in enumerate(doc):
            if isinstance(item, dict):
                out.append((f"{where}[{i}]", item))
            else:
                rejections.add("record: not an object", f"{where}[{i}]: {item!r}"[:300])
        return out
    table = doc.get("table") if isinstance(doc, dict) else None
    names = table.get("columnNames") if isinstance(table, dict) else None
    rows = table.get("rows") if isinstance(table, dict) else None
    if not isinstance(names, list) or not isinstance(rows, list):
        rejections.add(
            "response: not an ERDDAP table",
            f"{where}: expected {{'table': {{'columnNames': [...], 'rows': [...]}}}}",
        )
        return []
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            rejections.add(
                "record: wrong number of fields",
                f"{where} row {i}: {row!r}, expected {names}"[:300],
            )
            continue
        out.append((f"{where} row {i}", dict(zip(names, row, strict=True))))
    return out


@dataclass
class HTTPPoller:
    """Polls an HTTP JSON endpoint for records newer than a cursor (ERDDAP ``time>`` constraint).

    Stops after ``idle_polls`` consecutive polls without new records; callers bound it further
    (records, seconds). Network errors and non-200 answers count as rejected responses and the
    poll is retried after ``interval`` seconds.
    """

    url: str
    after: datetime | None = None
    interval: float = 1.0
    idle_polls: int = 3
    timeout: float = 10.0

    def pages(self, rejections: Rejections) -> Iterator[list[Raw]]:
        idle = 0
        answered = False
        cursor = self.after
        with httpx.Client(timeout=self.timeout) as client:
            while idle < self.idle_polls:
                url = with_time_constraint(self.url, cursor)
                try:
                    response = client.get(url)
                except httpx.HTTPError as exc:
                    rejections.add("response: request failed", f"{url}: {exc}"[:300])
                    idle += 1
                    if idle >= self.idle_polls and not answered:
                        raise DataError(
                            self.url,
                            f"endpoint unreachable after {idle} poll(s) ({exc}); expected an "
                            "HTTP JSON endpoint (ERDDAP tabledap .json or a JSON list of records)",
                        ) from exc
                    time.sleep(self.interval)
                    continue
                answered = True
                if response.status_code != 200:
                    rejections.add(
                        f"response: HTTP {response.status_code}", f"{url}: {response.text[:200]}"
                    )
                    idle += 1
                    time.sleep(self.interval)
                    continue
                page = parse_json_page(response.text, url, rejections)
                stamps = [parse_time(raw.get("time")) for _, raw in page]
                newest = max((s for s in stamps if s is not None), default=None)
                if newest is not None and (cursor is None or newest > cursor):
                    cursor = newest
                if not page:
                    idle += 1
                    time.sleep(self.interval)
                    continue
                idle = 0
                yield page
