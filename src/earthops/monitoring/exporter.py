"""Prometheus exporter of drift reports, and a runner that recomputes them on an interval.

The metric names below are a stable public contract (``deploy/prometheus/rules`` and the
dashboard use them); they are also listed in :data:`DRIFT_METRIC_NAMES`. Every series has a
``usecase`` label; per-feature series also ``feature``.

``earthops_feature_psi`` (gauge; ``usecase, feature``)
    Population stability index of the feature against the reference profile.
``earthops_feature_ks`` (gauge; ``usecase, feature``)
    Two-sample KS statistic D (numerical features only; categorical ones use chi-square).
``earthops_feature_ks_pvalue`` (gauge; ``usecase, feature``)
    The KS test's p-value (numerical features only, before the BH adjustment).
``earthops_dataset_drift_share`` (gauge; ``usecase``)
    Share of the tested features that drifted (``DriftReport.drifted_share``).
``earthops_dataset_drift_share_threshold`` (gauge; ``usecase``)
    The report's configured ``drift_share``: dataset drift ⇔ share > threshold.
``earthops_drift_status`` (gauge; ``usecase``)
    ``DriftReport.status``: 0 no drift, 1 drift, 2 data-quality problem.
``earthops_prediction_psi`` (gauge; ``usecase``)
    PSI of the model's predictions (absent when the report has no prediction test).
``earthops_drift_last_run_timestamp_seconds`` (gauge; ``usecase``)
    Unix time of the last successful report (stale ⇒ the drift job stopped).

A value the report does not have (a PSI of a constant column, a KS of a categorical feature)
is not exported, and each update replaces all series of its use case, so a feature that left
the report leaves the exposition too. The exporter has its own :class:`CollectorRegistry`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

from earthops.logs import get_logger
from earthops.monitoring.drift import DriftReport

log = get_logger(__name__)

DRIFT_METRIC_NAMES: Final[dict[str, str]] = {
    "feature_psi": "earthops_feature_psi",
    "feature_ks": "earthops_feature_ks",
    "feature_ks_pvalue": "earthops_feature_ks_pvalue",
    "dataset_drift_share": "earthops_dataset_drift_share",
    "dataset_drift_share_threshold": "earthops_dataset_drift_share_threshold",
    "drift_status": "earthops_drift_status",
    "prediction_psi": "earthops_prediction_psi",
    "last_run": "earthops_drift_last_run_timestamp_seconds",
}
FEATURE_METRICS: Final = ("feature_psi", "feature_ks", "feature_ks_pvalue")
DEFAULT_PORT: Final = 9108

_HELP: Final[dict[str, str]] = {
    "feature_psi": "Population stability index of a feature against the reference profile.",
    "feature_ks": "Two-sample KS statistic D of a numerical feature.",
    "feature_ks_pvalue": "KS p-value of a numerical feature (before BH adjustment).",
    "dataset_drift_share": "Share of the tested features that drifted.",
    "dataset_drift_share_threshold": "Configured drift share above which the dataset drifts.",
    "drift_status": "Drift report status: 0 no drift, 1 drift, 2 data-quality problem.",
    "prediction_psi": "Population stability index of the model's predictions.",
    "last_run": "Unix time of the last successful drift report.",
}


class DriftExporter:
    """Gauges of :data:`DRIFT_METRIC_NAMES` set from :class:`DriftReport` objects."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.gauges: dict[str, Gauge] = {}
        for key, name in DRIFT_METRIC_NAMES.items():
            labels = ["usecase", "feature"] if key in FEATURE_METRICS else ["usecase"]
            self.gauges[key] = Gauge(name, _HELP[key], labels, registry=self.registry)
        self._series: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    def update(self, usecase: str, report: DriftReport, *, now: float | None = None) -> None:
        """Replace the series of ``usecase`` with the values of ``report``."""
        values: dict[tuple[str, tuple[str, ...]], float] = {}
        for row in report.features:
            key = (usecase, row.feature)
            if row.psi is not None:
                values[("feature_psi", key)] = row.psi
            if row.kind == "numeric" and row.statistic is not None:
                values[("feature_ks", key)] = row.statistic
                if row.p_value is not None:
                    values[("feature_ks_pvalue", key)] = row.p_value
        one = (usecase,)
        values[("dataset_drift_share", one)] = report.drifted_share
        values[("dataset_drift_share_threshold", one)] = report.config.drift_share
        values[("drift_status", one)] = float(report.status)
        if report.predictions is not None and report.predictions.psi is not None:
            values[("prediction_psi", one)] = report.predictions.psi
        values[("last_run", one)] = time.time() if now is None else now
        with self._lock:
            for series in self._series.get(usecase, set()) - set(values):
                self.gauges[series[0]].remove(*series[1])
            for (key, labels), value in values.items():
                self.gauges[key].labels(*labels).set(value)
            self._series[usecase] = set(values)

    def remove(self, usecase: str) -> None:
        """Drop every series of ``usecase``."""
        with self._lock:
            for key, labels in self._series.pop(usecase, set()):
                self.gauges[key].remove(*labels)

    def render(self) -> bytes:
        """The Prometheus exposition text of the registry."""
        return generate_latest(self.registry)

    def value(self, key: str, usecase: str, feature: str | None = None) -> float | None:
        """The current value of one series (``None`` when absent): for tests and the CLI."""
        labels = {"usecase": usecase, **({"feature": feature} if feature is not None else {})}
        return self.registry.get_sample_value(DRIFT_METRIC_NAMES[key], labels)


class DriftMonitor:
    """Recompute ``compute() -> {usecase: DriftReport}`` every ``interval_s`` in a thread.

    A failing ``compute`` is logged and leaves the previous values (and their
    ``earthops_drift_last_run_timestamp_seconds``) in place, so a stale timestamp shows it.
    """

    def __init__(
        self,
        compute: Callable[[], dict[str, DriftReport]],
        interval_s: float,
        exporter: DriftExporter | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.compute = compute
        self.interval_s = interval_s
        self.exporter = exporter or DriftExporter()
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: WSGIServer | None = None

    def run_once(self) -> bool:
        """One recomputation; False (and logged) when ``compute`` raised."""
        try:
            reports = self.compute()
        except Exception as exc:  # the loop must survive a bad window or a lost database
            self.errors += 1
            log.error("drift computation failed", error=f"{type(exc).__name__}: {exc}")
            return False
        now = time.time()
        for usecase, report in reports.items():
            self.exporter.update(usecase, report, now=now)
        return True

    def start(self) -> None:
        """Compute now, then every ``interval_s`` in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="drift-monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        self.run_once()
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def serve(self, port: int = DEFAULT_PORT, addr: str = "127.0.0.1") -> int:
        """Expose ``/metrics`` on ``addr:port`` (0: a free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=addr, registry=self.exporter.registry)
        self._server = server
        return int(server.server_address[1])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and the HTTP server."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
