"""Streaming ingestion: the real CoralTemp Honoliʻi series replayed by a local HTTP server (ERDDAP
JSON, with malformed records mixed in) and from CSV, into the offline and online feature store."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
import structlog

from earthops.data.tables import read_coraltemp_csv
from earthops.devservices import free_port
from earthops.errors import DataError
from earthops.features.thermal import thermal_features
from earthops.featurestore import OnlineStoreError, apply, get_online, offline
from earthops.featurestore.tables import load_surveys
from earthops.ingest import run_stream
from earthops.settings import Settings, get_settings

SITE = 8712  # the survey site nearest the Honoliʻi pixel
STREAM_START = "2021-01-01"
COLUMNS = ["time", "latitude", "longitude", "CRW_SST"]


# ------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def coraltemp(mirror: Path) -> pd.DataFrame:
    return read_coraltemp_csv()


@pytest.fixture(scope="module")
def surveys(mirror: Path) -> pd.DataFrame:
    table = load_surveys()
    return table[table["Realm_Name"] == "Eastern Indo-Pacific"]  # real rows, incl. SITE


def _rows(frame: pd.DataFrame) -> list[list[Any]]:
    return [
        [t.strftime("%Y-%m-%dT%H:%M:%SZ"), r.latitude, r.longitude, r.sst]
        for t, r in frame.iterrows()
    ]


def _with_malformed(rows: list[list[Any]], every: int = 30) -> tuple[list[list[Any]], int]:
    """Real rows with a malformed record after every ``every``-th one (5 kinds, cycled)."""
    out, bad = [], 0
    for i, row in enumerate(rows):
        out.append(row)
        if (i + 1) % every:
            continue
        between = (pd.Timestamp(row[0]) + pd.Timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
        kinds = [
            ["not-a-time", row[1], row[2], row[3]],
            [between, row[1], row[2], "abc"],
            [between, row[1], row[2], 99.9],
            [between, row[1], row[2]],
            [between, row[1], row[2], None],
        ]
        out.append(kinds[bad % len(kinds)])
        bad += 1
    return out, bad


@pytest.fixture(scope="module")
def template(
    coraltemp: pd.DataFrame, surveys: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A repository with the real series up to 2020 ingested (CSV backfill through the stream)."""
    repo = tmp_path_factory.mktemp("template_repo")
    settings = Settings(home=repo.parent, feature_repo=repo)
    apply(surveys, settings=settings)
    history = coraltemp.loc[: pd.Timestamp(STREAM_START, tz="UTC") - pd.Timedelta(seconds=1)]
    csv = repo.parent / "history.csv"
    pd.DataFrame(_rows(history), columns=COLUMNS).to_csv(csv, index=False)
    report = run_stream(csv, site_id=SITE, page_size=100_000, settings=settings)
    assert report.accepted == len(history) and report.rejected.total == 0
    return repo


@pytest.fixture
def repo(
    template: Path,
    surveys: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A fresh repository holding the backfilled history (copied from the template)."""
    path = tmp_path / "feature_repo"
    (path / "data").mkdir(parents=True)
    for name in ("sst_daily", "sst_features"):
        shutil.copy(offline.table_path(name, template), path / "data" / f"{name}.parquet")
    monkeypatch.setenv("EARTHOPS_FEATURE_REPO", str(path))
    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", "sqlite")
    get_settings.cache_clear()
    apply(surveys)
    return path


# ------------------------------------------------------------------------------ HTTP server
class _Feed:
    """What the local ERDDAP-like server replays."""

    def __init__(self, rows: list[list[Any]], page: int) -> None:
        self.rows, self.page = rows, page
        self.bad_bodies = 0
        self.requests = 0


def _stamp(value: Any) -> pd.Timestamp | None:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(ts) else ts


class _Handler(BaseHTTPRequestHandler):
    feed: _Feed

    def do_GET(self) -> None:
        feed = self.server.feed  # type: ignore[attr-defined]
        feed.requests += 1
        if feed.bad_bodies > 0:
            feed.bad_bodies -= 1
            self._send(b'{"table": {"columnNames": ["time", "CRW_SST"], "rows": [[')
            return
        query = unquote(urlparse(self.path).query)
        start = 0
        if "time>" in query:
            cursor = pd.Timestamp(query.split("time>", 1)[1].split("&", 1)[0])
            for i, row in enumerate(feed.rows):
                ts = _stamp(row[0])
                if ts is not None and ts <= cursor:
                    start = i + 1
        rows = feed.rows[start : start + feed.page]
        body = {
            "table": {
                "columnNames": COLUMNS,
                "columnUnits": ["UTC", "degrees_north", "degrees_east", "degree_C"],
                "rows": rows,
            }
        }
        self._send(json.dumps(body).encode())

    def _send(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stream_2021(coraltemp: pd.DataFrame) -> tuple[pd.DataFrame, list[list[Any]], int]:
    valid = coraltemp.loc[STREAM_START:]
    rows, bad = _with_malformed(_rows(valid))
    return valid, rows, bad


@pytest.fixture
def server(stream_2021) -> Iterator[tuple[str, _Feed]]:
    _, rows, _ = stream_2021
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.feed = _Feed(rows, page=60)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/erddap/tabledap/coraltemp.json", httpd.feed  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _stream(url: str, **kwargs: Any):
    return run_stream(url, site_id=SITE, poll_interval=0.02, idle_polls=2, **kwargs)


def _assert_store_complete(repo: Path, coraltemp: pd.DataFrame) -> pd.DataFrame:
    """The offline raw table holds exactly the real series: no duplicates, no gaps."""
    raw = offline.read_table("sst_daily", repo)
    raw = raw[raw["site_id"] == SITE].sort_values("event_timestamp")
    assert not raw.duplicated(["site_id", "event_timestamp"]).any()
    steps = raw["event_timestamp"].diff().dropna()
    source_steps = coraltemp.index.to_series().diff().dropna()
    assert (steps > pd.Timedelta(days=1)).sum() == (source_steps > pd.Timedelta(days=1)).sum()
    assert raw["event_timestamp"].tolist() == coraltemp.index.tolist()
    np.testing.assert_array_equal(raw["sst"].to_numpy(), coraltemp["sst"].to_numpy())
    return raw


# ------------------------------------------------------------------------------ tests
def test_http_stream_rejects_malformed_records_and_loses_nothing(
    repo: Path, server, stream_2021, coraltemp: pd.DataFrame
) -> None:
    url, _feed = server
    valid, _, bad = stream_2021
    report = _stream(url)
    assert report.stopped == "idle"
    assert report.accepted == len(valid) and report.duplicates == 0 and report.conflicts == 0
    assert report.rejected.total == bad
    reasons = report.rejected.counts
    assert reasons["record: wrong number of fields"] >= 1
    assert any(r.startswith("time:") for r in reasons) and any(
        r.startswith("sst:") for r in reasons
    )
    _assert_store_complete(repo, coraltemp)
    # incrementally computed features equal the batch CRW computation on the whole real series
    batch = thermal_features(coraltemp["sst"])
    feats = offline.read_table("sst_features", repo).set_index("event_timestamp")
    for col in ("dhw", "hotspot", "sst_mean_30d", "sst_mean_90d"):
        np.testing.assert_allclose(
            feats.loc[valid.index, col].to_numpy(), batch.loc[valid.index, col].to_numpy()
        )
    online = get_online(SITE)
    assert online["sst"] == pytest.approx(valid["sst"].iloc[-1])
    assert online["dhw"] == pytest.approx(batch["dhw"].iloc[-1])
    assert online["sst_mean_7d"] == pytest.approx(batch["sst_mean_7d"].iloc[-1])


def test_restart_mid_stream_gives_no_duplicates_and_no_gaps(
    repo: Path, server, stream_2021, coraltemp: pd.DataFrame
) -> None:
    url, _ = server
    valid, _, _ = stream_2021
    first = _stream(url, max_records=97)  # stops inside a page: the rest of it is dropped
    assert first.stopped == "max records" and first.read == 97
    second = _stream(url)
    assert second.duplicates == 0
    assert first.accepted + second.accepted == len(valid)
    _assert_store_complete(repo, coraltemp)
    assert get_online(SITE)["sst"] == pytest.approx(valid["sst"].iloc[-1])


def test_malformed_response_body_is_counted_and_polling_continues(
    repo: Path, server, stream_2021, coraltemp: pd.DataFrame
) -> None:
    url, feed = server
    feed.bad_bodies = 1
    report = _stream(url)
    assert report.rejected.counts["response: malformed JSON"] == 1
    assert report.accepted == len(stream_2021[0])
    _assert_store_complete(repo, coraltemp)


def test_csv_replay_cli_with_speed_and_bad_lines(
    repo: Path, coraltemp: pd.DataFrame, tmp_path: Path, capsys, monkeypatch
) -> None:
    from earthops.cli.app import main

    valid = coraltemp.loc[STREAM_START:"2021-03-31"]
    lines = ["time,latitude,longitude,CRW_SST", "UTC,degrees_north,degrees_east,degree_C"]
    lines += [",".join(str(v) for v in row) for row in _rows(valid)]
    bad = [
        "2021-02-01T18:00:00Z,19.775,-155.075,warm",
        "2021-02-02T18:00:00Z,19.775",
        "yesterday,19.775,-155.075,25.1",
        "2021-02-03T18:00:00Z,19.775,-155.075,-40",
    ]
    for i, line in enumerate(bad):
        lines.insert(10 + 20 * i, line)
    csv = tmp_path / "replay.csv"
    csv.write_text("\n".join(lines) + "\n")
    speed = 1000.0
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "earthops",
            "ingest",
            "stream",
            "--source",
            str(csv),
            "--site",
            str(SITE),
            "--speed",
            str(speed),
        ],
    )
    started = time.monotonic()
    try:
        with pytest.raises(SystemExit) as stop:
            main()
    finally:  # the CLI bound log output to this test's captured stderr: unbind it
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert stop.value.code == 0, out
    report = json.loads(out)
    assert report["accepted"] == len(valid)
    assert report["rejected"]["total"] == len(bad)
    assert elapsed >= 0.9 * (len(valid) + len(bad)) / speed  # paced at --speed records/s
    raw = offline.read_table("sst_daily", repo)
    assert raw["event_timestamp"].max() == valid.index[-1]
    assert not raw.duplicated(["site_id", "event_timestamp"]).any()


def test_bad_sources_and_unknown_sites_are_clear_errors(
    repo: Path, tmp_path: Path, coraltemp: pd.DataFrame
) -> None:
    before = hashlib.sha256(offline.table_path("sst_daily", repo).read_bytes()).hexdigest()
    with pytest.raises(DataError, match="unknown site 123456789"):
        run_stream(tmp_path / "x.csv", site_id=123456789)
    with pytest.raises(DataError, match="no such file"):
        run_stream(tmp_path / "missing.csv", site_id=SITE)
    dead = f"http://127.0.0.1:{free_port()}/erddap/tabledap/x.json"
    with pytest.raises(DataError, match="endpoint unreachable after 2 poll"):
        run_stream(dead, site_id=SITE, poll_interval=0.01, idle_polls=2)
    csv = tmp_path / "nosite.csv"
    pd.DataFrame(_rows(coraltemp.iloc[-5:]), columns=COLUMNS).to_csv(csv, index=False)
    with pytest.raises(DataError, match="pass --site"):
        run_stream(csv)
    # records naming their own site: an unknown one is rejected and counted
    with_site = tmp_path / "with_site.csv"
    stored = coraltemp.loc["2020-12-29":"2020-12-31"]  # backfilled by the template
    frame = pd.DataFrame(_rows(stored), columns=COLUMNS)
    frame.insert(0, "site_id", [SITE, 424242424, SITE])
    frame.to_csv(with_site, index=False)
    report = run_stream(with_site)
    assert report.rejected.counts["site_id: unknown site"] == 1
    assert report.duplicates == 2  # already stored by the backfill: idempotent
    after = hashlib.sha256(offline.table_path("sst_daily", repo).read_bytes()).hexdigest()
    assert after == before
    # a daily series: a second reading of a stored day, or twice in one new day, is rejected
    sub_daily = tmp_path / "sub_daily.csv"
    real = coraltemp.loc["2021-01-01":"2021-01-02"]
    frame = pd.DataFrame(_rows(real), columns=COLUMNS)
    extra = frame.copy()
    extra["time"] = ["2020-12-31T18:00:00Z", "2021-01-01T13:00:00Z"]
    pd.concat([frame.iloc[[0]], extra, frame.iloc[[1]]]).to_csv(sub_daily, index=False)
    report = run_stream(sub_daily, site_id=SITE)
    assert report.accepted == 2
    assert report.rejected.counts["time: a reading for this day already exists"] == 2
    raw = offline.read_table("sst_daily", repo)
    assert raw["event_timestamp"].dt.hour.eq(12).all()


def test_online_store_failure_keeps_offline_records_and_restart_completes(
    repo: Path, server, stream_2021, coraltemp: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    valid, _, _ = stream_2021
    dead = f"redis://127.0.0.1:{free_port()}"
    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", dead)
    get_settings.cache_clear()
    with pytest.raises(OnlineStoreError, match="unreachable"):
        _stream(url)  # refused up front: nothing read
    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", "sqlite")
    get_settings.cache_clear()
    import earthops.ingest.stream as stream_module

    calls = {"n": 0}
    real_write = stream_module.write_online

    def flaky(view: str, rows: pd.DataFrame, settings: Any = None) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OnlineStoreError(f"online store {dead!r} unreachable (test); offline data kept")
        return real_write(view, rows, settings)

    monkeypatch.setattr(stream_module, "write_online", flaky)
    with pytest.raises(OnlineStoreError):
        _stream(url)
    raw = offline.read_table("sst_daily", repo)
    stored_2021 = raw[raw["event_timestamp"] >= pd.Timestamp(STREAM_START, tz="UTC")]
    assert len(stored_2021) >= 2 * 30  # both pages reached the offline store before the failure
    second = _stream(url)
    assert second.duplicates == 0
    _assert_store_complete(repo, coraltemp)
    assert get_online(SITE)["sst"] == pytest.approx(valid["sst"].iloc[-1])
