"""Alert intake: Alertmanager webhook payloads, an alert store, and the retraining policy.

Alertmanager (``deploy/alertmanager/alertmanager.yml``) posts each notification (one group of
alerts with the same ``usecase`` and ``alertname``) to the server's ``POST /v1/alerts``
(:mod:`earthops.serving.alerts_route`). :class:`AlertIntake` validates nothing itself (the
payload models do), records every alert in the :class:`AlertStore` and asks the
:class:`RetrainPolicy` what to do:

* a **firing** alert whose ``alertname`` is in ``RetrainPolicy.alertnames`` (default
  :data:`DRIFT_ALERTS`) and that has a ``usecase`` label triggers ``retrain(usecase)`` in a
  background thread, at most once per use case per ``cooldown_s`` (debounce: a repeated
  notification, the other drift alert, or another feature's alert of the same use case within
  the cooldown is recorded as ``debounced``). The cooldown starts when a retraining starts and
  is kept when it fails (a failing training is not retried on every notification). The
  policy debounces within a process; :meth:`AlertStore.claim_retrain` checks the store in
  one write transaction, so the debounce also holds across the server's worker processes
  and across restarts. Keep the cooldown above Alertmanager's
  ``repeat_interval`` (4 h), since a drift alert keeps firing until the reference changes.
* everything else (resolved alerts, other alertnames, alerts without ``usecase``) is only
  recorded.

``retrain`` is handed in by the caller; it returns a JSON-able dict (run id, version…) that
is stored with the alert. :func:`train_command` is the server's: it runs
``earthops train USECASE --register`` in a subprocess (the training flow, registration gate
and all), so monitoring never imports a use case.

Table ``alerts`` (one row per alert per notification; columns only ever added): ``id``,
``received_at``, ``updated_at`` (UTC), ``fingerprint``, ``alertname``, ``usecase``,
``status`` (firing/resolved), ``severity``, ``starts_at``, ``ends_at``, ``receiver``,
``group_key``, ``labels`` / ``annotations`` (JSON), ``action`` (:data:`ACTIONS`) and
``detail`` (JSON: the retraining's result, its error, or why nothing was done).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import Engine, make_url

from earthops.errors import EarthOpsError
from earthops.logs import get_logger

log = get_logger(__name__)

DRIFT_ALERTS: Final = frozenset({"EarthOpsFeatureDrift", "EarthOpsDatasetDrift"})
ACTIONS: Final = ("recorded", "debounced", "retraining", "retrained", "retrain_failed")
RETRAIN_ACTIONS: Final = ("retraining", "retrained", "retrain_failed")
Action = Literal["recorded", "debounced", "retraining", "retrained", "retrain_failed"]
Status = Literal["firing", "resolved"]
DEFAULT_COOLDOWN_S: Final = 24 * 3600.0
_PG_LOCK: Final = 0x616C657274  # advisory-lock key of claim_retrain


# ------------------------------------------------------------------------------ payload
class WebhookAlert(BaseModel):
    """One alert of an Alertmanager webhook notification (payload version 4)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels must contain a non-empty 'alertname'")
        return labels

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("time must carry a time zone (RFC 3339)")
        return None if value.year <= 1 else value.astimezone(UTC)  # 0001-01-01: no end yet

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    @property
    def usecase(self) -> str | None:
        return self.labels.get("usecase") or None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body (``version`` "4"); unknown keys are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: Literal["4"]
    group_key: str = Field("", alias="groupKey")
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
    status: Status
    receiver: str
    group_labels: dict[str, str] = Field({}, alias="groupLabels")
    common_labels: dict[str, str] = Field({}, alias="commonLabels")
    common_annotations: dict[str, str] = Field({}, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[WebhookAlert] = Field(min_length=1)


class StoredAlert(BaseModel):
    """A row of the alert store (``GET /v1/alerts``)."""

    id: int
    received_at: datetime
    updated_at: datetime
    fingerprint: str
    alertname: str
    usecase: str | None
    status: Status
    severity: str | None
    starts_at: datetime
    ends_at: datetime | None
    receiver: str
    group_key: str
    labels: dict[str, str]
    annotations: dict[str, str]
    action: Action
    detail: dict[str, Any] | None


# ------------------------------------------------------------------------------ store
class _UTC(sa.types.TypeDecorator[datetime]):
    """Aware datetimes stored as naive UTC (SQLite) or TIMESTAMPTZ (PostgreSQL)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", _UTC, nullable=False),
    sa.Column("updated_at", _UTC, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("alertname", sa.String, nullable=False),
    sa.Column("usecase", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("severity", sa.String),
    sa.Column("starts_at", _UTC, nullable=False),
    sa.Column("ends_at", _UTC),
    sa.Column("receiver", sa.String, nullable=False),
    sa.Column("group_key", sa.String, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("annotations", sa.Text, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Index("ix_alerts_usecase_received", "usecase", "received_at"),
)


def _engine(url: str) -> Engine:
    """A ``sqlite:////abs.db`` (WAL, busy timeout) or ``postgresql://`` engine. On SQLite a
    write transaction (execution option ``earthops_write``) begins ``IMMEDIATE``, taking the
    write lock at once, so a check-then-insert is atomic across processes (PostgreSQL:
    :meth:`AlertStore._lock` takes an advisory lock)."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise EarthOpsError(f"alert store URL {url!r} is not a database URL") from None
    if parsed.drivername.startswith("postgresql"):
        return sa.create_engine(parsed.set(drivername="postgresql+psycopg2"), pool_pre_ping=True)
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise EarthOpsError(f"alert store URL scheme {parsed.drivername!r} is not supported")
    path = parsed.database or ""
    if not path or path == ":memory:" or not Path(path).is_absolute():
        raise EarthOpsError(f"alert store SQLite URL needs an absolute path, got {url!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("earthops_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def default_store_url() -> str:
    """``sqlite:///<EarthOps home>/alerts.db``."""
    from earthops.settings import get_settings

    return f"sqlite:///{get_settings().home_dir / 'alerts.db'}"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False, sort_keys=True)


class AlertStore:
    """The ``alerts`` table (see the module docstring); thread-safe."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        self._engine = _engine(self.url)
        self._writer = self._engine.execution_options(earthops_write=True)
        metadata.create_all(self._writer, checkfirst=True)

    def record(
        self,
        payload: AlertmanagerWebhook,
        alert: WebhookAlert,
        action: Action,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Insert one alert with what it triggered; returns its id."""
        with self._writer.begin() as conn:
            return self._insert(conn, payload, alert, action, detail)

    def claim_retrain(
        self,
        payload: AlertmanagerWebhook,
        alert: WebhookAlert,
        cooldown_s: float,
        detail: dict[str, Any] | None = None,
    ) -> tuple[int, Action]:
        """Insert the alert as ``retraining`` unless a retraining of its use case started in
        the last ``cooldown_s`` (then ``debounced``), in one write transaction: atomic across
        the server's worker processes and restarts. Returns the id and the action."""
        since = datetime.now(UTC) - timedelta(seconds=cooldown_s)
        t = alerts_table.c
        recent = sa.select(t.id).where(
            t.usecase == alert.usecase, t.action.in_(RETRAIN_ACTIONS), t.received_at > since
        )
        with self._writer.begin() as conn:
            self._lock(conn)
            action: Action = "debounced" if conn.execute(recent.limit(1)).first() else "retraining"
            if action == "debounced":
                detail = {**(detail or {}), "reason": "retrained by another worker within cooldown"}
            return self._insert(conn, payload, alert, action, detail), action

    def _lock(self, conn: sa.Connection) -> None:
        if self._engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})

    @staticmethod
    def _insert(
        conn: sa.Connection,
        payload: AlertmanagerWebhook,
        alert: WebhookAlert,
        action: Action,
        detail: dict[str, Any] | None,
    ) -> int:
        now = datetime.now(UTC)
        row = {
            "received_at": now,
            "updated_at": now,
            "fingerprint": alert.fingerprint,
            "alertname": alert.alertname,
            "usecase": alert.usecase,
            "status": alert.status,
            "severity": alert.labels.get("severity"),
            "starts_at": alert.starts_at,
            "ends_at": alert.ends_at,
            "receiver": payload.receiver,
            "group_key": payload.group_key,
            "labels": _json(alert.labels),
            "annotations": _json(alert.annotations),
            "action": action,
            "detail": None if detail is None else _json(detail),
        }
        result = conn.execute(alerts_table.insert().values(**row))
        return int(result.inserted_primary_key[0])

    def update(self, alert_id: int, action: Action, detail: dict[str, Any] | None) -> None:
        """Set what an alert's action came to (a retraining's result or error)."""
        values = {"action": action, "detail": None if detail is None else _json(detail)}
        stmt = alerts_table.update().where(alerts_table.c.id == alert_id)
        with self._writer.begin() as conn:
            conn.execute(stmt.values(**values, updated_at=datetime.now(UTC)))

    def recent(
        self, limit: int = 100, *, usecase: str | None = None, alertname: str | None = None
    ) -> list[StoredAlert]:
        """The latest ``limit`` alerts, newest first."""
        stmt = sa.select(alerts_table).order_by(alerts_table.c.id.desc()).limit(limit)
        if usecase is not None:
            stmt = stmt.where(alerts_table.c.usecase == usecase)
        if alertname is not None:
            stmt = stmt.where(alerts_table.c.alertname == alertname)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_stored(row) for row in rows]

    def close(self) -> None:
        self._engine.dispose()


def _stored(row: Mapping[str, Any]) -> StoredAlert:
    data = dict(row)
    for name in ("labels", "annotations"):
        data[name] = json.loads(data[name])
    data["detail"] = None if data["detail"] is None else json.loads(data["detail"])
    return StoredAlert.model_validate(data)


# ------------------------------------------------------------------------------ policy
@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one alert: ``retrain``, ``debounced`` or ``recorded``, and why."""

    action: Literal["retrain", "debounced", "recorded"]
    usecase: str | None
    reason: str


class RetrainPolicy:
    """Firing drift alert → ``retrain(usecase)``, at most once per use case per cooldown."""

    def __init__(
        self,
        retrain: Callable[[str], dict[str, Any]],
        *,
        alertnames: Iterable[str] = DRIFT_ALERTS,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s}")
        self.retrain = retrain
        self.alertnames = frozenset(alertnames)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def decide(self, alert: WebhookAlert) -> Decision:
        """The decision; a ``retrain`` decision starts the use case's cooldown at once."""
        usecase = alert.usecase
        if alert.status != "firing":
            return Decision("recorded", usecase, "resolved")
        if alert.alertname not in self.alertnames:
            return Decision("recorded", usecase, f"{alert.alertname} does not retrain")
        if usecase is None:
            return Decision("recorded", None, "alert has no usecase label")
        with self._lock:
            now = self.clock()
            last = self._last.get(usecase)
            if last is not None and now - last < self.cooldown_s:
                left = self.cooldown_s - (now - last)
                reason = f"retrained {now - last:.0f} s ago ({left:.0f} s of cooldown left)"
                return Decision("debounced", usecase, reason)
            self._last[usecase] = now
        return Decision("retrain", usecase, f"{alert.alertname} firing")


# ------------------------------------------------------------------------------ intake
@dataclass(frozen=True, slots=True)
class Handled:
    """One alert of a notification: its store id and the action taken."""

    id: int
    fingerprint: str
    alertname: str
    usecase: str | None
    status: Status
    action: Action


class AlertIntake:
    """Record a notification's alerts and run the retrainings in background threads."""

    def __init__(self, store: AlertStore, policy: RetrainPolicy) -> None:
        self.store = store
        self.policy = policy
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def handle(self, payload: AlertmanagerWebhook) -> list[Handled]:
        """Record every alert; start the retrainings the policy asks for; return at once."""
        out: list[Handled] = []
        for alert in payload.alerts:
            decision = self.policy.decide(alert)
            detail = {"reason": decision.reason}
            if decision.action == "retrain":
                cooldown = self.policy.cooldown_s
                alert_id, action = self.store.claim_retrain(payload, alert, cooldown, detail)
            else:
                action = decision.action
                alert_id = self.store.record(payload, alert, action, detail)
            log.info("alert", alertname=alert.alertname, usecase=alert.usecase, action=action)
            if action == "retraining" and decision.usecase is not None:
                self._spawn(alert_id, decision.usecase, decision.reason)
            out.append(
                Handled(
                    alert_id,
                    alert.fingerprint,
                    alert.alertname,
                    alert.usecase,
                    alert.status,
                    action,
                )
            )
        return out

    def _spawn(self, alert_id: int, usecase: str, reason: str) -> None:
        thread = threading.Thread(
            target=self._retrain,
            args=(alert_id, usecase, reason),
            name=f"retrain-{usecase}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _retrain(self, alert_id: int, usecase: str, reason: str) -> None:
        started = time.monotonic()
        try:
            result = self.policy.retrain(usecase)
        except Exception as exc:  # recorded with the alert; the server keeps running
            error = f"{type(exc).__name__}: {exc}"
            log.error("retraining failed", usecase=usecase, error=error)
            self.store.update(alert_id, "retrain_failed", {"reason": reason, "error": error})
            return
        seconds = round(time.monotonic() - started, 3)
        detail = {"reason": reason, "result": result, "seconds": seconds}
        self.store.update(alert_id, "retrained", detail)
        log.info("retrained", usecase=usecase, result=result)

    def wait(self, timeout: float | None = None) -> bool:
        """Join the running retrainings; False when one is still running after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(t.is_alive() for t in threads)


# ------------------------------------------------------------------------------ retraining
TRAIN_TIMEOUT_S: Final = 6 * 3600.0
_CLI: Final = "from earthops.cli.app import main; main()"


def train_command(
    usecase: str, *, extra_args: Sequence[str] = (), timeout_s: float = TRAIN_TIMEOUT_S
) -> dict[str, Any]:
    """Run ``earthops train USECASE --register [extra_args]`` in a subprocess (same
    environment: EarthOps home, registry); its run id, model URI and registered version.

    Raises :class:`EarthOpsError` with the end of the command's output when it fails."""
    with tempfile.TemporaryDirectory(prefix="earthops-retrain-") as tmp:
        out = Path(tmp) / "metrics.json"
        args = [sys.executable, "-c", _CLI, "train", usecase, "--register", *extra_args]
        args += ["--metrics-out", str(out)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise EarthOpsError(f"earthops train {usecase} ran over {timeout_s:.0f} s") from None
        if done.returncode != 0 or not out.is_file():
            tail = " ".join(f"{done.stdout}\n{done.stderr}".split())[-2000:]
            raise EarthOpsError(f"earthops train {usecase} exited {done.returncode}: {tail}")
        metrics = json.loads(out.read_text())
    registered = metrics.get("registered") or {}
    return {
        "run_id": metrics.get("run_id"),
        "model_uri": metrics.get("model_uri"),
        "version": registered.get("version"),
        "aliases": registered.get("aliases"),
    }
