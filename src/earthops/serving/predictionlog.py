"""Durable, append-only log of every prediction the model server makes (and of true labels).

The server appends one :class:`PredictionRecord` per arm that answered a request (champion,
challenger, shadow); monitoring and the dashboard read the log back with
:meth:`PredictionLog.read`. ``append`` never blocks on the database: records go to an
in-memory queue and a daemon thread commits them in batches (one transaction per batch) at
most ``flush_seconds`` after they were appended (in practice about ``flush_seconds / 2`` plus
one write; longer only while the database is locked by another writer or unreachable).

Backends: ``sqlite:////abs/path.db`` (embedded default: WAL journal, ``synchronous=FULL``,
30 s busy timeout, ``BEGIN IMMEDIATE`` for writes, so several processes — e.g. two uvicorn
workers — can append to one file) or ``postgresql://user@host:port/db`` (scale-out; psycopg2).
Create one ``PredictionLog`` per process (after any fork), and call :meth:`PredictionLog.close`
from the server's shutdown hook (uvicorn runs lifespan shutdown on SIGTERM); without a server,
:meth:`PredictionLog.install_signal_flush` closes the log on SIGTERM. A row survives
``kill -9`` once it is committed, i.e. ``flush_seconds`` after ``append`` returned.

Table ``predictions`` (the schema is stable: columns are only ever added):

================  ===============  ==========================================================
column            type             meaning
================  ===============  ==========================================================
id                integer, PK      insertion order (autoincrement)
time              timestamp (UTC)  when the prediction was made (TIMESTAMPTZ on PostgreSQL;
                                   ISO text ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC on SQLite)
request_id        text             the request's id (one request: one row per arm)
usecase           text             use case name, e.g. ``bleaching``
model_name        text             registered model name
model_version     text             registered model version
arm               text             ``champion``, ``challenger`` or ``shadow``
features          text (JSON)      the input features, a JSON object
output            text (JSON)      the arm's JSON response, a JSON object
label             text, null       predicted class / decision as text
score             float, null      positive-class probability (binary), top-class (multiclass)
latency_ms        float            the arm's model latency in milliseconds
routing_key       text, null       the key the canary router hashed, if any
region            text, null       region of the request, if any
status            text             ``ok`` or ``error``
error             text, null       the error message when ``status`` is ``error``
================  ===============  ==========================================================

Indexes: ``ix_predictions_usecase_time`` (usecase, time), ``ix_predictions_request_id``.

Table ``feedback`` (true labels, joined on ``request_id``; the latest one wins):

================  ===============  ==========================================================
id                integer, PK      insertion order
request_id        text             the logged request the label belongs to
label             text             the true label
time              timestamp (UTC)  when the label was recorded
================  ===============  ==========================================================

Index: ``ix_feedback_request_id``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sqlite3
import threading
import time as _time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from earthops.errors import EarthOpsError
from earthops.logs import get_logger

log = get_logger(__name__)

ARMS = ("champion", "challenger", "shadow")
STATUSES = ("ok", "error")
SQLITE_BUSY_TIMEOUT_S = 30.0
MAX_BATCH = 5000
MAX_RETRY_DELAY_S = 5.0
_PG_DDL_LOCK = 0x6561727468  # advisory-lock key serialising concurrent CREATE TABLE IF NOT EXISTS


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One arm's answer to one request (see the module docstring for the column meanings)."""

    time: datetime
    request_id: str
    usecase: str
    model_name: str
    model_version: str
    arm: str
    features: dict[str, Any]
    output: dict[str, Any]
    label: str | None
    score: float | None
    latency_ms: float
    routing_key: str | None = None
    region: str | None = None
    status: str = "ok"
    error: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise EarthOpsError(
                f"PredictionRecord.time must be a tz-aware datetime, got {self.time!r}"
            )
        if self.arm not in ARMS:
            raise EarthOpsError(f"PredictionRecord.arm must be one of {ARMS}, got {self.arm!r}")
        if self.status not in STATUSES:
            raise EarthOpsError(
                f"PredictionRecord.status must be one of {STATUSES}, got {self.status!r}"
            )
        for name in ("features", "output"):
            if not isinstance(getattr(self, name), dict):
                raise EarthOpsError(f"PredictionRecord.{name} must be a dict")


RECORD_COLUMNS = tuple(f.name for f in dataclasses.fields(PredictionRecord))
READ_COLUMNS = (*RECORD_COLUMNS, "label_true", "feedback_time")
TEXT_COLUMNS = (
    "request_id", "usecase", "model_name", "model_version", "arm", "label", "routing_key",
    "region", "status", "error",
)  # fmt: skip
OPTIONAL_COLUMNS = ("label", "score", "routing_key", "region", "error")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes stored in UTC (naive UTC text on SQLite, TIMESTAMPTZ on PostgreSQL)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise EarthOpsError(f"prediction log times must be tz-aware, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("usecase", sa.String, nullable=False),
    sa.Column("model_name", sa.String, nullable=False),
    sa.Column("model_version", sa.String, nullable=False),
    sa.Column("arm", sa.String, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("label", sa.String),
    sa.Column("score", sa.Float),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("routing_key", sa.String),
    sa.Column("region", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_predictions_usecase_time", "usecase", "time"),
    sa.Index("ix_predictions_request_id", "request_id"),
)
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("label", sa.String, nullable=False),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Index("ix_feedback_request_id", "request_id"),
)


def _to_row(record: PredictionRecord) -> dict[str, Any]:
    """The record as DB-ready values; raises now so the writer thread never gets a bad row."""
    if not isinstance(record, PredictionRecord):
        raise EarthOpsError(f"expected a PredictionRecord, got {type(record).__name__}")
    row = {name: getattr(record, name) for name in RECORD_COLUMNS}
    for name in TEXT_COLUMNS:
        value = row[name]
        if value is None and name in OPTIONAL_COLUMNS:
            continue
        if not isinstance(value, str) or "\x00" in value:
            raise EarthOpsError(
                f"PredictionRecord.{name} must be a string without NUL bytes, got {value!r}"
            )
    for name in ("features", "output"):
        try:
            row[name] = json.dumps(row[name], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EarthOpsError(
                f"PredictionRecord.{name} of request {record.request_id!r} is not JSON: {exc}"
            ) from None
    for name in ("score", "latency_ms"):
        if row[name] is not None or name not in OPTIONAL_COLUMNS:
            try:
                row[name] = float(row[name])
            except (TypeError, ValueError):
                raise EarthOpsError(
                    f"PredictionRecord.{name} must be a number, got {row[name]!r}"
                ) from None
            if not math.isfinite(row[name]):
                raise EarthOpsError(f"PredictionRecord.{name} must be finite, got {row[name]}")
    return row


def _enable_wal(cursor: sqlite3.Cursor, path: str) -> None:
    """Switch the file to WAL; retried while locked (that switch ignores the busy handler)."""
    deadline = _time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or _time.monotonic() > deadline:
                raise
            _time.sleep(0.01)
    if str(mode).lower() != "wal":
        raise EarthOpsError(f"{path}: SQLite refused the WAL journal mode (got {mode!r})")


def _sqlite_engine(url: sa.URL) -> Engine:
    """A SQLite engine in WAL mode, with a busy timeout and ``BEGIN IMMEDIATE`` for writes."""
    path = url.database or ""
    if path in ("", ":memory:") or not Path(path).is_absolute():
        raise EarthOpsError(
            f"prediction log SQLite URL needs an absolute file path (sqlite:////abs/path.db), "
            f"got {url.render_as_string()!r}"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            _enable_wal(cursor, path)
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("earthops_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _engine(url: str) -> Engine:
    """The engine for a ``sqlite:///`` or ``postgresql://`` URL; EarthOpsError otherwise."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise EarthOpsError(f"prediction log URL {url!r} is not a database URL") from None
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return _sqlite_engine(parsed)
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        return sa.create_engine(
            parsed.set(drivername="postgresql+psycopg2"),
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10},
        )
    raise EarthOpsError(
        f"prediction log URL scheme {parsed.drivername!r} is not supported "
        "(use sqlite:////abs/path.db or postgresql://user@host:port/db)"
    )


def _create_tables(engine: Engine) -> None:
    """``CREATE TABLE/INDEX IF NOT EXISTS``, safe when several processes start at once."""
    with engine.execution_options(earthops_write=True).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_DDL_LOCK})
        for table in metadata.sorted_tables:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                conn.execute(CreateIndex(index, if_not_exists=True))


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise EarthOpsError(f"{name} must be a tz-aware datetime, got {value!r}")
    return value


class PredictionLog:
    """Append-only prediction log with a background batch writer (see the module docstring)."""

    def __init__(self, url: str, *, flush_seconds: float = 0.2, max_queue: int = 100_000) -> None:
        if not 0 < flush_seconds <= 1.0:
            raise EarthOpsError(f"flush_seconds must be in (0, 1.0] seconds, got {flush_seconds}")
        if max_queue < 1:
            raise EarthOpsError(f"max_queue must be at least 1, got {max_queue}")
        self.url = url
        self.flush_seconds = float(flush_seconds)
        self.max_queue = int(max_queue)
        self._engine = _engine(url)
        self._writer = self._engine.execution_options(earthops_write=True)
        _create_tables(self._engine)
        self._cond = threading.Condition(threading.RLock())  # re-entrant: signal handlers
        self._pending: deque[tuple[int, float, dict[str, Any]]] = deque()  # (seq, t, row)
        self._seq = 0  # last appended
        self._committed = 0  # last committed
        self._flush_gen = 0  # bumped by flush(): one immediate (re)try
        self._stopping = False
        self._abandon = False
        self._closed = False
        self._last_error: str | None = None
        self._dead = False
        self._flush_seen = 0  # writer thread only, from here on
        self._failures = 0
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # -- appending -------------------------------------------------------------------------

    def append(self, record: PredictionRecord) -> None:
        """Queue one record; returns at once. EarthOpsError if closed or the queue is full."""
        self.append_many([record])

    def append_many(self, records: Iterable[PredictionRecord]) -> None:
        """Queue several records (all or none); returns at once."""
        rows = [_to_row(r) for r in records]
        if not rows:
            return
        now = _time.monotonic()
        with self._cond:
            if self._stopping:
                raise EarthOpsError("prediction log is closed: cannot append")
            if len(self._pending) + len(rows) > self.max_queue:
                raise EarthOpsError(
                    f"prediction log queue is full ({len(self._pending)} of {self.max_queue} rows "
                    f"not yet written; last write error: {self._last_error})"
                )
            was_empty = not self._pending
            for row in rows:
                self._seq += 1
                self._pending.append((self._seq, now, row))
            if was_empty or len(self._pending) >= MAX_BATCH:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record appended before this call is committed.

        Raises EarthOpsError when that did not happen within ``timeout`` seconds.
        """
        with self._cond:
            target = self._seq
            if self._committed >= target:
                return
            self._flush_gen += 1
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._committed >= target or self._dead, timeout)
            if self._dead:
                raise EarthOpsError("prediction log writer thread died (see the log); rows kept")
            if not done:
                raise EarthOpsError(
                    f"prediction log: {target - self._committed} rows still not written after "
                    f"{timeout} s (last write error: {self._last_error})"
                )

    def pending(self) -> int:
        """Rows appended but not yet committed."""
        with self._cond:
            return len(self._pending)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush and stop the writer thread; idempotent.

        If the rows cannot be written within ``timeout`` seconds (database gone), the thread is
        stopped anyway, the loss is logged with the row count and EarthOpsError is raised.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = self._stopping = True
            self._cond.notify_all()
        try:
            self.flush(timeout)
        except EarthOpsError:
            with self._cond:
                lost = len(self._pending)
                self._abandon = True
                self._cond.notify_all()
            log.error("prediction_log_rows_lost", rows=lost, url=self._safe_url())
            raise
        finally:
            self._thread.join(timeout=5.0)
            self._engine.dispose()

    def install_signal_flush(self, signals: Sequence[int] = (signal.SIGTERM,)) -> None:
        """Close the log on these signals, then hand the signal to the previous handler.

        For scripts and workers without a shutdown hook (a server calls :meth:`close` from its
        lifespan shutdown instead). Call from the main thread.
        """
        for signum in signals:
            previous = signal.getsignal(signum)

            def _handler(num: int, frame: FrameType | None, previous: Any = previous) -> None:
                with contextlib.suppress(EarthOpsError):
                    self.close()
                if callable(previous):
                    previous(num, frame)
                elif previous != signal.SIG_IGN:
                    signal.signal(num, signal.SIG_DFL)
                    signal.raise_signal(num)

            signal.signal(signum, _handler)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------

    def _next_batch(self) -> list[tuple[int, float, dict[str, Any]]]:
        """Under the lock: wait until a batch is due; [] means stop."""
        while True:
            if self._abandon or (self._stopping and not self._pending):
                return []
            if not self._pending:
                self._cond.wait()
                continue
            now = _time.monotonic()
            due = self._pending[0][1] + self.flush_seconds / 2
            if self._stopping or len(self._pending) >= MAX_BATCH:
                due = now
            due = max(due, self._retry_at)
            if self._flush_gen != self._flush_seen:
                self._flush_seen = self._flush_gen
                due = now
            if due <= now:
                return [self._pending[i] for i in range(min(len(self._pending), MAX_BATCH))]
            self._cond.wait(timeout=due - now)

    def _run(self) -> None:
        try:
            self._write_loop()
        except BaseException:  # a bug, not a write failure: wake flush() instead of hanging it
            with self._cond:
                self._dead = True
                self._cond.notify_all()
            log.exception("prediction_log_writer_died", pending=len(self._pending))
            raise

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if not batch:
                return
            error = self._write([row for _, _, row in batch])
            with self._cond:
                if error is None:
                    for _ in batch:
                        self._pending.popleft()
                    self._committed = batch[-1][0]
                    self._last_error = None
                    self._failures, self._retry_at = 0, 0.0
                    self._cond.notify_all()
                    continue
                self._last_error = error
                self._failures += 1
                delay = min(self.flush_seconds * 2 ** (self._failures - 1), MAX_RETRY_DELAY_S)
                self._retry_at = _time.monotonic() + delay
                pending = len(self._pending)
            log.error(
                "prediction_log_write_failed",
                rows=len(batch),
                pending=pending,
                retry_in_s=round(delay, 3),
                url=self._safe_url(),
                error=error,
            )

    def _write(self, rows: list[dict[str, Any]]) -> str | None:
        """Insert ``rows`` in one transaction; the error text on failure, else None."""
        try:
            with self._writer.begin() as conn:
                conn.execute(predictions.insert(), rows)
        except Exception as exc:  # any failure: keep the rows, retry later
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        return None

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    # -- feedback and reading --------------------------------------------------------------

    def add_feedback(self, request_id: str, label: str, time: datetime | None = None) -> bool:
        """Store the true ``label`` of a logged request; False when no such request is logged."""
        when = _utc(time, "feedback time") or datetime.now(UTC)
        self.flush(timeout=SQLITE_BUSY_TIMEOUT_S)
        exists = sa.select(predictions.c.id).where(predictions.c.request_id == request_id).limit(1)
        with self._writer.begin() as conn:
            if conn.execute(exists).first() is None:
                return False
            conn.execute(
                feedback.insert().values(request_id=request_id, label=str(label), time=when)
            )
        return True

    def count(self, usecase: str | None = None) -> int:
        """Committed prediction rows (of one use case)."""
        query = sa.select(sa.func.count()).select_from(predictions)
        if usecase is not None:
            query = query.where(predictions.c.usecase == usecase)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def read(
        self,
        *,
        usecase: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        arm: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Committed rows ordered by time, with ``label_true`` and ``feedback_time``.

        ``since`` is inclusive, ``until`` exclusive (both tz-aware); ``limit`` keeps the latest
        ``limit`` rows (still oldest first). ``features``/``output`` come back as dicts, ``time``
        and ``feedback_time`` as UTC timestamps, missing labels as None, missing scores as NaN.
        """
        rows = self._select(usecase, _utc(since, "since"), _utc(until, "until"), arm, limit)
        frame = pd.DataFrame([dict(r) for r in rows], columns=list(READ_COLUMNS))
        for name in ("features", "output"):
            frame[name] = [json.loads(v) for v in frame[name]]
        for name in ("time", "feedback_time"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    def _select(
        self,
        usecase: str | None,
        since: datetime | None,
        until: datetime | None,
        arm: str | None,
        limit: int | None,
    ) -> list[sa.RowMapping]:
        latest = (
            sa.select(
                feedback.c.request_id,
                feedback.c.label.label("label_true"),
                feedback.c.time.label("feedback_time"),
                sa.func.row_number()
                .over(
                    partition_by=feedback.c.request_id,
                    order_by=(feedback.c.time.desc(), feedback.c.id.desc()),
                )
                .label("rank"),
            )
        ).subquery()
        p = predictions.c
        query = sa.select(
            *(p[name] for name in RECORD_COLUMNS), latest.c.label_true, latest.c.feedback_time
        ).outerjoin(latest, sa.and_(latest.c.request_id == p.request_id, latest.c.rank == 1))
        for column, value in ((p.usecase, usecase), (p.arm, arm)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(p.time >= since)
        if until is not None:
            query = query.where(p.time < until)
        query = query.order_by(p.time.desc(), p.id.desc())
        if limit is not None:
            query = query.limit(int(limit))
        with self._engine.connect() as conn:
            return list(reversed(conn.execute(query).mappings().all()))
