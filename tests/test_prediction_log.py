"""The durable prediction log: round trip, flush latency, several writer processes, SIGTERM and
kill -9 (no acknowledged row lost beyond the flush window), write-failure retry, PostgreSQL.

Waiting is by polling with a deadline. Margins for a loaded 2-core machine: a row must be
readable from another connection ``flush_seconds + LATENCY_MARGIN_S`` after ``append``
returned, and after ``kill -9`` every row acknowledged more than that long before the kill
must be in the database.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from earthops.devservices.local import POSTGRES_INSTALL, postgres_available, postgres_server
from earthops.errors import EarthOpsError
from earthops.serving.predictionlog import READ_COLUMNS, PredictionLog, PredictionRecord

FLUSH_S = 0.2
LATENCY_MARGIN_S = 0.3  # scheduling slack on a loaded 2-core machine
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

# A writer process: appends one row per loop, prints "ack <i> <monotonic>" after each append
# returned; mode "flag" stops on SIGTERM via a flag and close()s, "handler" relies on
# install_signal_flush(); with a count it appends that many rows (after a "go" on stdin).
WRITER = """
import signal, sys, time
from datetime import UTC, datetime
from earthops.serving.predictionlog import PredictionLog, PredictionRecord
url, tag, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
log = PredictionLog(url, flush_seconds=0.2)
stop = False
def on_term(*_):
    global stop
    stop = True
if mode == "handler":
    log.install_signal_flush()
else:
    signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
if n:
    sys.stdin.readline()
i = 0
while not stop and (n == 0 or i < n):
    log.append(PredictionRecord(
        time=datetime.now(UTC), request_id=f"{tag}-{i}", usecase="reef", model_name="m",
        model_version="1", arm="champion", features={"i": i}, output={"p": 0.5},
        label="yes", score=0.5, latency_ms=1.0))
    print(f"ack {i} {time.monotonic():.6f}", flush=True)
    i += 1
    time.sleep(0.002)
log.close()
print("closed", flush=True)
"""


def _record(i: int, **overrides: Any) -> PredictionRecord:
    values: dict[str, Any] = {
        "time": T0 + timedelta(seconds=i),
        "request_id": f"req-{i}",
        "usecase": "reef",
        "model_name": "reef-bleaching",
        "model_version": "3",
        "arm": "champion",
        "features": {"sst": 29.5 + i, "dhw": [1, 2.5, None], "site": {"id": f"s{i}", "ok": True}},
        "output": {"label": "bleached", "proba": {"bleached": 0.8, "healthy": 0.2}},
        "label": "bleached",
        "score": 0.8,
        "latency_ms": 3.25,
        "routing_key": f"key-{i}",
        "region": "GBR",
    }
    values.update(overrides)
    return PredictionRecord(**values)


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'predictions.db'}"


def _poll(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` held; fails after ``timeout`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what} not within {timeout} s")
        time.sleep(0.002)
    return time.monotonic() - start


def _round_trip(url: str) -> None:
    records = [
        _record(2),
        _record(0, arm="challenger", model_version="4", score=0.7),
        _record(1, usecase="landcover", output={"class": "forest"}, label="forest", score=0.9),
        _record(3, arm="shadow", status="error", error="boom", label=None, score=None),
    ]
    with PredictionLog(url, flush_seconds=FLUSH_S) as log:
        log.append_many(records[:3])
        log.append(records[3])
        log.flush(timeout=10)
        frame = log.read()
        assert list(frame.columns) == list(READ_COLUMNS)
        assert frame["request_id"].tolist() == ["req-0", "req-1", "req-2", "req-3"]  # by time
        first = frame.iloc[2]  # req-2 == records[0]
        for name in ("usecase", "model_name", "model_version", "arm", "label", "routing_key"):
            assert first[name] == getattr(records[0], name)
        assert first["time"].to_pydatetime() == records[0].time
        assert first["features"] == records[0].features  # dicts back, nested and with None
        assert first["output"] == records[0].output
        assert first["score"] == 0.8 and first["latency_ms"] == 3.25 and first["status"] == "ok"
        last = frame.iloc[3]
        assert (last["status"], last["error"], last["label"]) == ("error", "boom", None)
        assert math.isnan(last["score"])
        assert log.count() == 4 and log.count("reef") == 3 and log.count("nope") == 0

        assert log.read(usecase="landcover")["request_id"].tolist() == ["req-1"]
        assert log.read(arm="shadow")["request_id"].tolist() == ["req-3"]
        since = log.read(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
        assert since["request_id"].tolist() == ["req-1", "req-2"]  # since inclusive, until not
        assert log.read(limit=2)["request_id"].tolist() == ["req-2", "req-3"]  # the latest two
        assert log.read(usecase="reef", arm="champion")["request_id"].tolist() == ["req-2"]

        # feedback: the latest label wins; unknown ids are refused; a just-appended id is found
        assert log.add_feedback("req-2", "healthy", time=T0 + timedelta(hours=1))
        assert log.add_feedback("req-2", "bleached", time=T0 + timedelta(hours=2))
        assert not log.add_feedback("no-such-request", "bleached")
        log.append(_record(9))
        assert log.add_feedback("req-9", "healthy")
        frame = log.read()
        labels = dict(zip(frame["request_id"], frame["label_true"], strict=True))
        assert labels == {"req-0": None, "req-1": None, "req-2": "bleached", "req-3": None,
                          "req-9": "healthy"}  # fmt: skip
        row = frame.set_index("request_id").loc["req-2"]
        assert row["feedback_time"].to_pydatetime() == T0 + timedelta(hours=2)
        assert frame.set_index("request_id")["feedback_time"].isna().sum() == 3
    with PredictionLog(url) as other:  # a fresh connection sees the same rows
        assert other.count() == 5
        assert other.read(since=T0 + timedelta(days=1)).empty


def test_round_trip_filters_and_feedback_sqlite(tmp_path: Path) -> None:
    _round_trip(_sqlite_url(tmp_path))
    with sqlite3.connect(tmp_path / "predictions.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"ix_predictions_usecase_time", "ix_predictions_request_id"} <= indexes


@pytest.mark.services
def test_round_trip_postgres(tmp_path: Path) -> None:
    if not postgres_available():
        pytest.skip(f"PostgreSQL server binaries not installed ({POSTGRES_INSTALL})")
    with postgres_server(tmp_path) as url:
        _round_trip(url)


def test_rows_committed_within_flush_seconds(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    with PredictionLog(url, flush_seconds=FLUSH_S) as writer, PredictionLog(url) as reader:
        latencies = []
        for i in range(8):
            writer.append(_record(i))
            latencies.append(
                _poll(lambda n=i + 1: reader.count() == n, FLUSH_S + LATENCY_MARGIN_S, f"row {i}")
            )
        print(f"commit latency (s): {[round(x, 3) for x in latencies]}")
        assert max(latencies) <= FLUSH_S + LATENCY_MARGIN_S
        assert writer.pending() == 0


def _writer(url: str, tag: str, mode: str, n: int, stderr: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, tag, mode, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr.open("w"),
        text=True,
        bufsize=1,
    )


def _line(proc: subprocess.Popen[str], stderr: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        pytest.fail(f"writer exited ({proc.wait(10)}): {stderr.read_text()[-2000:]}")
    return line.strip()


def _acks(lines: list[str]) -> dict[int, float]:
    """ack index -> the writer's monotonic time of that ack."""
    return {int(p[1]): float(p[2]) for p in (ln.split() for ln in lines) if p[0] == "ack"}


def _ids(url: str, tag: str) -> set[int]:
    with PredictionLog(url) as log:
        frame = log.read()
    return {int(r.split("-")[1]) for r in frame["request_id"] if r.startswith(f"{tag}-")}


@pytest.mark.timeout(180)
def test_two_processes_append_to_one_sqlite_file(tmp_path: Path) -> None:
    url, n = _sqlite_url(tmp_path), 600  # the two processes also create the file together
    procs = {tag: _writer(url, tag, "count", n, tmp_path / f"{tag}.err") for tag in ("a", "b")}
    for tag, proc in procs.items():
        assert _line(proc, tmp_path / f"{tag}.err") == "ready"
    for proc in procs.values():  # both start appending together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for tag, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        err = (tmp_path / f"{tag}.err").read_text()
        assert proc.returncode == 0, err
        assert out.splitlines()[-1] == "closed"
        assert "prediction_log_write_failed" not in err
    with PredictionLog(url) as log:
        assert log.count() == 2 * n
    assert _ids(url, "a") == _ids(url, "b") == set(range(n))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["flag", "handler"])
def test_sigterm_loses_no_acknowledged_row(tmp_path: Path, mode: str) -> None:
    """``flag``: the server pattern (SIGTERM -> stop loop -> close()): rows == acks exactly.
    ``handler``: install_signal_flush() may interrupt between append and ack: acks or acks+1."""
    url, err = _sqlite_url(tmp_path), tmp_path / "writer.err"
    proc = _writer(url, "t", mode, 0, err)
    lines = [_line(proc, err) for _ in range(201)]  # "ready" + 200 acks
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    lines += out.splitlines()
    acked = _acks(lines[1:])
    assert sorted(acked) == list(range(len(acked))) and len(acked) >= 200
    ids = _ids(url, "t")
    if mode == "flag":
        assert proc.returncode == 0 and lines[-1] == "closed", err.read_text()
        assert ids == set(acked)
    else:
        assert proc.returncode == -signal.SIGTERM, err.read_text()
        assert set(acked) <= ids <= set(range(len(acked) + 1))


@pytest.mark.timeout(120)
def test_kill_9_loses_only_rows_younger_than_the_flush_window(tmp_path: Path) -> None:
    url, err = _sqlite_url(tmp_path), tmp_path / "writer.err"
    proc = _writer(url, "k", "flag", 0, err)
    assert _line(proc, err) == "ready"
    lines = [_line(proc, err)]
    first = _acks(lines)[0]
    while len(lines) < 300 or time.monotonic() - first < 1.5:  # several flushes have happened
        lines.append(_line(proc, err))
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    acked = _acks(lines + out.splitlines())
    window = FLUSH_S + LATENCY_MARGIN_S
    old = {i for i, t in acked.items() if t < killed_at - window}
    ids = _ids(url, "k")
    lost = set(acked) - ids
    assert len(old) >= 250
    assert old <= ids, f"rows acknowledged > {window} s before kill -9 lost: {sorted(old - ids)}"
    assert lost <= set(acked) - old  # only rows inside the flush window may be lost
    assert ids <= set(range(max(acked) + 2))  # nothing invented (at most one unacked append)
    print(f"kill -9: {len(acked)} acked, {len(lost)} lost (all acked < {window} s before kill)")


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def _drop_predictions(url: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("DROP TABLE predictions")


def test_write_failure_is_logged_and_retried(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    with structlog.testing.capture_logs() as logs, PredictionLog(url, flush_seconds=0.05) as log:
        _drop_predictions(url)  # the database "goes away"
        log.append(_record(1))
        log.append(_record(2))
        _poll(lambda: _events(logs, "prediction_log_write_failed"), 10, "a logged write failure")
        event = _events(logs, "prediction_log_write_failed")[0]
        assert event["log_level"] == "error" and "predictions" in event["error"]
        assert log.pending() == 2 and log._thread.is_alive()  # kept, thread alive
        with pytest.raises(EarthOpsError, match="still not written"):
            log.flush(timeout=0.3)
        PredictionLog(url).close()  # the database is back (tables re-created)
        log.flush(timeout=10)
        assert log.pending() == 0
        assert log.read()["request_id"].tolist() == ["req-1", "req-2"]


def test_full_queue_refuses_and_close_reports_unwritten_rows(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    log = PredictionLog(url, max_queue=3)
    _drop_predictions(url)  # nothing can be written: rows stay queued
    with pytest.raises(EarthOpsError, match="queue is full"):
        log.append_many([_record(i) for i in range(4)])
    log.append_many([_record(i) for i in range(3)])
    with pytest.raises(EarthOpsError, match=r"queue is full \(3 of 3"):
        log.append(_record(3))
    with structlog.testing.capture_logs() as logs, pytest.raises(EarthOpsError, match="3 rows"):
        log.close(timeout=0.3)
    assert [e["rows"] for e in _events(logs, "prediction_log_rows_lost")] == [3]
    assert not log._thread.is_alive()
    log.close()  # idempotent
    with pytest.raises(EarthOpsError, match="closed"):
        log.append(_record(5))


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("mysql://u@localhost/db", {}, "scheme 'mysql' is not supported"),
        ("not a url", {}, "not a database URL"),
        ("sqlite:///relative.db", {}, "absolute file path"),
        ("sqlite://", {}, "absolute file path"),
        (None, {"flush_seconds": 1.5}, "flush_seconds must be in"),
        (None, {"flush_seconds": 0}, "flush_seconds must be in"),
        (None, {"max_queue": 0}, "max_queue"),
    ],
)
def test_bad_settings_name_the_problem(
    tmp_path: Path, url: str | None, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(EarthOpsError, match=match):
        PredictionLog(url or _sqlite_url(tmp_path), **kwargs)


def test_bad_records_are_refused_at_append(tmp_path: Path) -> None:
    with pytest.raises(EarthOpsError, match="tz-aware"):
        _record(0, time=datetime(2024, 1, 1))
    with pytest.raises(EarthOpsError, match="arm must be one of"):
        _record(0, arm="canary")
    with pytest.raises(EarthOpsError, match="status must be one of"):
        _record(0, status="fine")
    with PredictionLog(_sqlite_url(tmp_path)) as log:
        with pytest.raises(EarthOpsError, match=r"features of request 'req-0' is not JSON"):
            log.append(_record(0, features={"x": {1, 2}}))
        with pytest.raises(EarthOpsError, match="model_version must be a string"):
            log.append(_record(0, model_version=3))
        with pytest.raises(EarthOpsError, match="error must be a string without NUL"):
            log.append(_record(0, status="error", error="bad\x00byte"))
        with pytest.raises(EarthOpsError, match="latency_ms must be a number"):
            log.append(_record(0, latency_ms=None))
        with pytest.raises(EarthOpsError, match="score must be finite"):
            log.append(_record(0, score=float("nan")))
        with pytest.raises(EarthOpsError, match="since must be a tz-aware"):
            log.read(since=datetime(2024, 1, 1))
        log.flush(timeout=5)
        assert log.count() == 0  # nothing half-appended
