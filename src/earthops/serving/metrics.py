"""Prometheus metrics of ``earthops serve``, correct with several uvicorn worker processes.

The metric names below are a stable public contract (the Grafana dashboard and the
Prometheus alert rules use them); they are also listed in :data:`METRIC_NAMES`.

``earthops_requests_total`` (counter; ``usecase, version, arm, outcome``)
    Prediction requests answered. ``arm`` is ``champion``, ``challenger`` or ``shadow``;
    ``outcome`` is ``ok``, ``client_error`` (4xx) or ``server_error`` (5xx).
``earthops_request_latency_seconds`` (histogram; ``usecase, version, arm``)
    Request latency, buckets 0.5 ms … 5 s (fine around 1–10 ms for p99 alerts).
``earthops_model_loaded`` (gauge; ``usecase, alias, version``; multiprocess ``livemax``)
    1 for the version that serves an alias. A replaced version drops out (single process)
    or reads 0 (multiprocess, where series cannot be removed).
``earthops_model_load_failures_total`` (counter; ``usecase``)
    Failed model (re)loads.
``earthops_canary_weight`` (gauge; ``usecase``; multiprocess ``livemax``)
    Challenger traffic share, 0..1.
``earthops_feature_lookup_seconds`` (histogram; ``usecase``)
    Feature-store (online) lookup latency.
``earthops_batch_rows`` (histogram; ``usecase``)
    Rows per model call after micro-batching.
``earthops_prediction_log_queue`` (gauge; no labels; multiprocess ``livesum``)
    Prediction-log rows waiting to be written, summed over the live workers.

Multiprocess mode is on when ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's own
variable, not an EarthOps setting) is set *before* ``prometheus_client`` is first imported:
each worker writes its values to files there and :meth:`ServingMetrics.render` aggregates
them with a fresh registry and a ``MultiProcessCollector``. Clear the directory with
:func:`prepare_multiprocess_dir` before the workers start and call :func:`mark_process_dead`
when a worker exits (its live gauges then stop counting).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from earthops.errors import EarthOpsError

METRIC_NAMES: Final[dict[str, str]] = {
    "requests": "earthops_requests_total",
    "request_latency": "earthops_request_latency_seconds",
    "model_loaded": "earthops_model_loaded",
    "model_load_failures": "earthops_model_load_failures_total",
    "canary_weight": "earthops_canary_weight",
    "feature_lookup": "earthops_feature_lookup_seconds",
    "batch_rows": "earthops_batch_rows",
    "prediction_log_queue": "earthops_prediction_log_queue",
}
ARMS: Final = frozenset({"champion", "challenger", "shadow"})
OUTCOMES: Final = frozenset({"ok", "client_error", "server_error"})
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
LOOKUP_BUCKETS: Final = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The multiprocess directory prometheus-client writes to, or None in single-process mode.

    Decided by how prometheus-client was imported (file-backed values or not), not by the
    variable alone: Feast sets ``PROMETHEUS_MULTIPROC_DIR`` when it is imported, which in a
    process whose prometheus-client is already in-memory must not switch rendering to files.
    """
    if values.ValueClass is values.MutexValue:
        return None
    value = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(value) if value else None


def prepare_multiprocess_dir(path: str | Path) -> Path:
    """Create ``path`` or empty it of metric files; call once before the workers start.

    Files left by an earlier run would be added to this run's counters. Only ``*.db`` files
    (what prometheus-client writes) are removed, so a wrong path loses nothing else.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EarthOpsError(f"{MULTIPROC_ENV}={path} is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)
    return path


def mark_process_dead(pid: int, path: str | Path | None = None) -> None:
    """Drop a dead worker's live gauges (its counters and histograms keep counting)."""
    where = Path(path) if path is not None else multiprocess_dir()
    if where is not None:
        multiprocess.mark_process_dead(pid, str(where))


def outcome_for_status(status: int) -> str:
    """``ok`` / ``client_error`` / ``server_error`` for an HTTP status code."""
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "ok"


class ServingMetrics:
    """The server's metric objects; create one per process (or per test).

    Single-process mode registers on ``registry`` (default: a new one per instance, so
    several instances can live in one process). Multiprocess mode renders from the
    multiprocess directory instead of the registry.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, multiproc_dir: str | Path | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.multiproc_dir = Path(multiproc_dir) if multiproc_dir else multiprocess_dir()
        if self.multiproc_dir is not None and values.ValueClass is values.MutexValue:
            raise EarthOpsError(
                f"{MULTIPROC_ENV} must be set before prometheus_client is first imported; "
                "values of this process would not reach the multiprocess directory"
            )
        self._models: dict[tuple[str, str], str] = {}
        self._build(self.registry)

    def _build(self, reg: CollectorRegistry) -> None:
        n = METRIC_NAMES
        self.requests = Counter(
            n["requests"],
            "Prediction requests answered.",
            ["usecase", "version", "arm", "outcome"],
            registry=reg,
        )
        self.latency = Histogram(
            n["request_latency"],
            "Prediction request latency in seconds.",
            ["usecase", "version", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.model_loaded = Gauge(
            n["model_loaded"],
            "1 for the model version serving an alias.",
            ["usecase", "alias", "version"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.load_failures = Counter(
            n["model_load_failures"], "Failed model loads.", ["usecase"], registry=reg
        )
        self.canary_weight = Gauge(
            n["canary_weight"],
            "Challenger traffic share (0..1).",
            ["usecase"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.lookup = Histogram(
            n["feature_lookup"],
            "Online feature-store lookup latency in seconds.",
            ["usecase"],
            buckets=LOOKUP_BUCKETS,
            registry=reg,
        )
        self.batch_rows = Histogram(
            n["batch_rows"],
            "Rows per model call after micro-batching.",
            ["usecase"],
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        self.log_queue = Gauge(
            n["prediction_log_queue"],
            "Prediction-log rows waiting to be written.",
            multiprocess_mode="livesum",
            registry=reg,
        )

    @property
    def multiprocess(self) -> bool:
        return self.multiproc_dir is not None

    def observe_request(
        self, usecase: str, version: str, arm: str, outcome: str, seconds: float
    ) -> None:
        """Count one answered request and observe its latency."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {sorted(ARMS)}, got {arm!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        self.requests.labels(usecase, version, arm, outcome).inc()
        self.latency.labels(usecase, version, arm).observe(seconds)

    def set_model(self, usecase: str, alias: str, version: str) -> None:
        """Mark ``version`` as serving ``alias``; the alias's previous version stops reading 1."""
        previous = self._models.get((usecase, alias))
        if previous is not None and previous != version:
            if self.multiprocess:  # series cannot be removed from the mmap files: write 0
                self.model_loaded.labels(usecase, alias, previous).set(0)
            else:
                self.model_loaded.remove(usecase, alias, previous)
        self.model_loaded.labels(usecase, alias, version).set(1)
        self._models[(usecase, alias)] = version

    def model_load_failed(self, usecase: str) -> None:
        self.load_failures.labels(usecase).inc()

    def set_canary_weight(self, usecase: str, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"canary weight must be in [0, 1], got {weight}")
        self.canary_weight.labels(usecase).set(weight)

    def observe_lookup(self, usecase: str, seconds: float) -> None:
        self.lookup.labels(usecase).observe(seconds)

    def observe_batch(self, usecase: str, rows: int) -> None:
        self.batch_rows.labels(usecase).observe(rows)

    def set_log_queue(self, n: int) -> None:
        self.log_queue.set(n)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' values in multiprocess mode)."""
        if self.multiproc_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiproc_dir))
        return generate_latest(registry), CONTENT_TYPE_LATEST
