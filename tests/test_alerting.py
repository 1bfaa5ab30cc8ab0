"""Alerting: promtool checks of deploy/prometheus, the drift exporter on a real drift report,
the Alertmanager webhook intake and retraining policy, and a real end-to-end loop
(exporter → prometheus → alertmanager → POST /v1/alerts → retrain callback → resolved)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from earthops.devservices.local import LOOPBACK, free_port
from earthops.monitoring.alerts import (
    DRIFT_ALERTS,
    AlertIntake,
    AlertmanagerWebhook,
    AlertStore,
    RetrainPolicy,
    WebhookAlert,
)
from earthops.monitoring.drift import DriftConfig, DriftReport, FeatureDrift, drift_report
from earthops.monitoring.exporter import DRIFT_METRIC_NAMES, DriftExporter, DriftMonitor
from earthops.monitoring.profile import build_profile
from earthops.serving.alerts_route import add_alert_routes

REPO = Path(__file__).resolve().parents[1]
PROM = REPO / "deploy" / "prometheus"
RULES = PROM / "rules" / "earthops.rules.yml"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
APT = "apt-get install -y prometheus prometheus-alertmanager"
NUMERIC = ["Temp", "SSTA_DHW", "Turbidity", "Depth_m"]
CATEGORICAL = ["Realm_Name"]


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed ({APT}; .ci/run installs it)")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO)


# ------------------------------------------------------------------------------ promtool
@pytest.mark.parametrize(
    "args",
    [
        ("promtool", "check", "config", str(PROM / "prometheus.yml")),
        ("promtool", "check", "rules", str(RULES)),
        ("promtool", "test", "rules", str(PROM / "rules" / "earthops.rules.test.yml")),
        ("amtool", "check-config", str(ALERTMANAGER)),
    ],
    ids=["check-config", "check-rules", "test-rules", "amtool-check-config"],
)
def test_deploy_configs_pass_promtool(args: tuple[str, ...]) -> None:
    done = _run(_tool(args[0]), *args[1:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_has_severity_usecase_and_annotations_and_a_unit_test() -> None:
    import yaml

    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    assert {r["alert"] for r in alerts} >= {
        "EarthOpsFeatureDrift", "EarthOpsDatasetDrift", "EarthOpsServingLatencyHigh",
        "EarthOpsServingErrorRate", "EarthOpsNoChampion", "EarthOpsModelLoadFailures",
        "EarthOpsCanaryStuck",
    }  # fmt: skip
    tests = (PROM / "rules" / "earthops.rules.test.yml").read_text()
    for rule in alerts:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert "usecase" in rule["annotations"]["summary"], rule["alert"]
        fired = re.findall(rf"alertname: {rule['alert']}\n\s*exp_alerts:\n\s*- exp_labels", tests)
        silent = re.findall(rf"alertname: {rule['alert']}\n\s*exp_alerts: \[\]", tests)
        assert fired and silent, f"{rule['alert']}: needs a firing and a silent unit test"


# ------------------------------------------------------------------------------ exporter
@pytest.fixture(scope="module")
def survey_report(mirror: Path) -> DriftReport:
    """The real drift report: surveys <= 2010 (profile) vs 2011-2016 (current)."""
    from earthops.data.tables import read_bleaching_surveys

    surveys = read_bleaching_surveys()
    early = surveys["Date_Year"] <= 2010
    ref, cur = surveys[early].reset_index(drop=True), surveys[~early].reset_index(drop=True)

    def score(frame: pd.DataFrame) -> pd.Series:
        dhw = frame["SSTA_DHW"].fillna(0.0)
        return dhw / (dhw + 4.0)

    profile = build_profile(ref, numeric=NUMERIC, categorical=CATEGORICAL, predictions=score(ref))
    return drift_report(profile, cur[NUMERIC + CATEGORICAL], predictions=score(cur))


def test_exporter_gauges_equal_the_real_drift_report(survey_report: DriftReport) -> None:
    exporter = DriftExporter()
    exporter.update("bleaching", survey_report, now=1_700_000_000.0)
    for row in survey_report.features:
        assert row.psi is not None
        assert exporter.value("feature_psi", "bleaching", row.feature) == row.psi
        if row.kind == "numeric":
            assert exporter.value("feature_ks", "bleaching", row.feature) == row.statistic
            assert exporter.value("feature_ks_pvalue", "bleaching", row.feature) == row.p_value
        else:  # chi-square is not a KS statistic: not exported as one
            assert exporter.value("feature_ks", "bleaching", row.feature) is None
    assert exporter.value("dataset_drift_share", "bleaching") == survey_report.drifted_share
    threshold = exporter.value("dataset_drift_share_threshold", "bleaching")
    assert threshold == survey_report.config.drift_share
    assert exporter.value("drift_status", "bleaching") == survey_report.status
    assert survey_report.predictions is not None
    assert exporter.value("prediction_psi", "bleaching") == survey_report.predictions.psi
    assert exporter.value("last_run", "bleaching") == 1_700_000_000.0
    names = {f.name for f in text_string_to_metric_families(exporter.render().decode())}
    assert names == set(DRIFT_METRIC_NAMES.values())


def test_exporter_update_replaces_the_series_of_its_usecase(survey_report: DriftReport) -> None:
    exporter = DriftExporter()
    exporter.update("bleaching", survey_report)
    exporter.update("reef", survey_report)
    fewer = survey_report.model_copy(
        update={"features": survey_report.features[:1], "predictions": None}
    )
    exporter.update("bleaching", fewer)
    gone = survey_report.features[1].feature
    assert exporter.value("feature_psi", "bleaching", gone) is None
    assert exporter.value("prediction_psi", "bleaching") is None
    assert exporter.value("feature_psi", "reef", gone) == survey_report.features[1].psi
    exporter.remove("reef")
    assert exporter.value("drift_status", "reef") is None


def _report(psi: float) -> DriftReport:
    """A two-feature report whose ``Temp`` has PSI ``psi`` (the e2e and monitor tests)."""
    temp = FeatureDrift(
        feature="Temp", kind="numeric", statistic=0.3, p_value=1e-9, psi=psi, drifted=psi > 0.2
    )
    depth = FeatureDrift(feature="Depth_m", kind="numeric", statistic=0.01, p_value=0.9, psi=0.01)
    share = (temp.drifted + depth.drifted) / 2
    return DriftReport(
        config=DriftConfig(), n_rows=1000, features=[temp, depth], n_tested=2,
        n_drifted=int(temp.drifted), drifted_share=share, dataset_drift=share > 0.3,
    )  # fmt: skip


def test_drift_monitor_recomputes_on_its_interval_and_survives_errors() -> None:
    reports = iter(
        [{"bleaching": _report(0.05)}, RuntimeError("db gone"), {"bleaching": _report(0.6)}]
    )

    def compute() -> dict[str, DriftReport]:
        item = next(reports, None)
        if isinstance(item, Exception):
            raise item
        return item or {"bleaching": _report(0.6)}

    monitor = DriftMonitor(compute, interval_s=0.05)
    port = monitor.serve(0)
    monitor.start()
    try:
        deadline = time.monotonic() + 10
        while monitor.exporter.value("feature_psi", "bleaching", "Temp") != 0.6:
            assert time.monotonic() < deadline, "the monitor did not recompute"
            time.sleep(0.02)
        assert monitor.errors == 1
        text = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=5).text
        assert 'earthops_feature_psi{feature="Temp",usecase="bleaching"} 0.6' in text
    finally:
        monitor.stop()
    with pytest.raises(ValueError, match="interval_s"):
        DriftMonitor(compute, interval_s=0)


# ------------------------------------------------------------------------------ payload
def _alert(
    alertname: str = "EarthOpsFeatureDrift", status: str = "firing", usecase: str | None = "reef"
) -> dict[str, Any]:
    labels = {"alertname": alertname, "severity": "warning", "feature": "Temp"}
    if usecase is not None:
        labels["usecase"] = usecase
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{usecase}: feature Temp drifted"},
        "startsAt": "2024-05-01T10:00:00.5Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-01T11:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": f"{alertname}-{usecase}",
    }


def _payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    alerts = alerts or (_alert(),)
    return {
        "version": "4", "groupKey": '{}:{alertname="EarthOpsFeatureDrift"}',
        "truncatedAlerts": 0, "status": alerts[0]["status"], "receiver": "earthops-server",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "alerts": list(alerts),
    }  # fmt: skip


class Recorder:
    """A stubbed retraining: records the use cases it was called for (real training: elsewhere)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, float]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, usecase: str) -> dict[str, Any]:
        with self.lock:
            self.calls.append((usecase, time.monotonic()))
        if self.fail:
            raise RuntimeError("training flow failed")
        return {"run_id": "r1", "version": "7"}

    @property
    def usecases(self) -> list[str]:
        with self.lock:
            return [u for u, _ in self.calls]


@pytest.fixture
def client(earthops_home: Path) -> Iterator[tuple[TestClient, AlertIntake, Recorder]]:
    recorder = Recorder()
    app = FastAPI()
    intake = add_alert_routes(app, AlertStore(), RetrainPolicy(recorder, cooldown_s=3600))
    with TestClient(app) as test_client:
        yield test_client, intake, recorder
    intake.store.close()


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda p: _without(p, "receiver"), ["body", "receiver"]),
        (lambda p: {**p, "version": "3"}, ["body", "version"]),
        (lambda p: {**p, "alerts": []}, ["body", "alerts"]),
        (lambda p: {**p, "alerts": [{**_alert(), "status": "pending"}]}, ["body", "alerts", 0, "status"]),
        (lambda p: {**p, "alerts": [_without(_alert(), "fingerprint")]}, ["body", "alerts", 0, "fingerprint"]),
        (lambda p: {**p, "alerts": [{**_alert(), "startsAt": "yesterday"}]}, ["body", "alerts", 0, "startsAt"]),
        (lambda p: {**p, "alerts": [{**_alert(), "startsAt": "2024-05-01T10:00:00"}]}, ["body", "alerts", 0, "startsAt"]),
        (lambda p: {**p, "alerts": [{**_alert(), "labels": {"usecase": "reef"}}]}, ["body", "alerts", 0, "labels"]),
        (lambda p: {**p, "alerts": [{**_alert(), "labels": {"alertname": 3}}]}, ["body", "alerts", 0, "labels", "alertname"]),
    ],
    ids=["receiver", "version", "no-alerts", "status", "fingerprint", "startsAt", "naive-time",
         "alertname-missing", "label-not-text"],
)  # fmt: skip
def test_malformed_payload_is_422_naming_the_field(client, change, loc) -> None:
    test_client, _, recorder = client
    response = test_client.post("/v1/alerts", json=change(_payload()))
    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert recorder.calls == [] and test_client.get("/v1/alerts").json() == []


def test_webhook_answers_202_records_and_retrains_once(client) -> None:
    test_client, intake, recorder = client
    first = test_client.post("/v1/alerts", json=_payload(_alert(), _alert("EarthOpsDatasetDrift")))
    assert first.status_code == 202
    assert [a["action"] for a in first.json()["actions"]] == ["retraining", "debounced"]
    again = test_client.post("/v1/alerts", json=_payload(_alert()))
    assert again.json()["actions"][0]["action"] == "debounced"
    assert intake.wait(10)
    assert recorder.usecases == ["reef"]
    rows = test_client.get("/v1/alerts", params={"usecase": "reef"}).json()
    assert [r["action"] for r in rows] == ["debounced", "debounced", "retrained"]
    assert rows[-1]["detail"]["result"] == {"run_id": "r1", "version": "7"}
    assert rows[-1]["ends_at"] is None and rows[-1]["starts_at"] == "2024-05-01T10:00:00.500000Z"
    resolved = test_client.post("/v1/alerts", json=_payload(_alert(status="resolved")))
    assert resolved.json()["actions"][0]["action"] == "recorded"
    latest = test_client.get("/v1/alerts", params={"limit": 1}).json()
    assert latest[0]["status"] == "resolved" and latest[0]["detail"] == {"reason": "resolved"}


def test_alert_routes_token(earthops_home: Path) -> None:
    app = FastAPI()
    add_alert_routes(app, AlertStore(), RetrainPolicy(Recorder()), token="s3cret")
    with TestClient(app) as test_client:
        assert test_client.post("/v1/alerts", json=_payload()).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert test_client.get("/v1/alerts", headers=wrong).status_code == 403
        right = {"Authorization": "Bearer s3cret"}
        assert test_client.post("/v1/alerts", json=_payload(), headers=right).status_code == 202


# ------------------------------------------------------------------------------ policy
def test_retrain_policy_debounces_per_usecase_and_filters_alertnames() -> None:
    now = [1000.0]
    policy = RetrainPolicy(Recorder(), cooldown_s=600, clock=lambda: now[0])

    def decide(**kwargs: Any) -> str:
        return policy.decide(WebhookAlert.model_validate(_alert(**kwargs))).action

    assert decide() == "retrain"
    assert decide(alertname="EarthOpsDatasetDrift") == "debounced"
    assert decide(usecase="bleaching") == "retrain"
    now[0] += 599
    assert decide() == "debounced"
    now[0] += 1
    assert decide() == "retrain"
    assert decide(alertname="EarthOpsServingLatencyHigh", usecase="other") == "recorded"
    assert decide(status="resolved", usecase="other") == "recorded"
    assert decide(usecase=None) == "recorded"
    custom = RetrainPolicy(Recorder(), alertnames={"EarthOpsServingErrorRate"}, cooldown_s=0)
    error_alert = WebhookAlert.model_validate(_alert("EarthOpsServingErrorRate"))
    assert custom.decide(error_alert).action == "retrain"
    assert custom.decide(error_alert).action == "retrain"  # no cooldown
    assert custom.decide(WebhookAlert.model_validate(_alert())).action == "recorded"


def test_failed_retraining_is_recorded_and_the_cooldown_survives_a_restart(earthops_home) -> None:
    store = AlertStore()
    failing = Recorder(fail=True)
    intake = AlertIntake(store, RetrainPolicy(failing, cooldown_s=3600))
    handled = intake.handle(AlertmanagerWebhook.model_validate(_payload()))
    assert [h.action for h in handled] == ["retraining"]
    assert intake.wait(10)
    row = store.recent(1)[0]
    assert row.action == "retrain_failed" and "training flow failed" in row.detail["error"]
    assert failing.usecases == ["reef"]
    restarted = AlertIntake(AlertStore(store.url), RetrainPolicy(Recorder(), cooldown_s=3600))
    again = restarted.handle(AlertmanagerWebhook.model_validate(_payload()))
    assert [h.action for h in again] == ["debounced"]
    assert restarted.policy.retrain.calls == []
    store.close()
    restarted.store.close()


def test_debounce_holds_across_worker_processes(earthops_home: Path) -> None:
    """Two server workers (own policy, own engine, one database) get the same notification at
    once: exactly one retraining starts."""
    recorders = [Recorder(), Recorder()]
    intakes = [AlertIntake(AlertStore(), RetrainPolicy(r, cooldown_s=3600)) for r in recorders]
    payload = AlertmanagerWebhook.model_validate(_payload())
    barrier = threading.Barrier(2)
    actions: list[str] = []

    def deliver(intake: AlertIntake) -> None:
        barrier.wait()
        actions.extend(h.action for h in intake.handle(payload))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in intakes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(i.wait(10) for i in intakes)
    assert sorted(actions) == ["debounced", "retraining"]
    assert sum(len(r.calls) for r in recorders) == 1
    for intake in intakes:
        intake.store.close()


# ------------------------------------------------------------------------------ end to end
@contextlib.contextmanager
def _process(args: list[str], log: Path, ready_url: str, timeout: float = 30) -> Iterator[None]:
    """Start ``args`` (output to ``log``), wait until ``ready_url`` answers 200; stop it."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _until(lambda: _ok(ready_url), timeout, f"{args[0]} not ready", proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> Any:
    """Poll ``check`` until truthy (returned) or fail after ``timeout`` s with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: exited {proc.returncode}\n{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s\n{log.read_text() if log else ''}")
        time.sleep(0.05)


@contextlib.contextmanager
def _webhook_server(app: FastAPI) -> Iterator[int]:
    """``app`` under uvicorn in a thread on a free loopback port; yields the port."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _until(lambda: server.started, 15, "uvicorn did not start")
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _prometheus_config(tmp: Path, exporter_port: int, am_port: int) -> Path:
    """A test copy of the rules (every ``for:`` 1 s) and a config scraping every second."""
    rules = re.sub(r"for: \d+[smh]", "for: 1s", RULES.read_text())
    (tmp / "rules.yml").write_text(rules)
    config = tmp / "prometheus.yml"
    config.write_text(
        f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["{LOOPBACK}:{am_port}"]}}]}}]
scrape_configs:
  - job_name: earthops-drift
    static_configs: [{{targets: ["{LOOPBACK}:{exporter_port}"]}}]
"""
    )
    return config


def _alertmanager_config(tmp: Path, webhook_port: int) -> Path:
    config = tmp / "alertmanager.yml"
    config.write_text(
        f"""route:
  receiver: earthops-server
  group_by: [usecase, alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: earthops-server
    webhook_configs:
      - url: http://{LOOPBACK}:{webhook_port}/v1/alerts
        send_resolved: true
"""
    )
    return config


class Received:
    """Wraps the intake's ``handle``: the time of every notification the webhook received."""

    def __init__(self, intake: AlertIntake) -> None:
        self.items: list[tuple[float, AlertmanagerWebhook]] = []
        self.lock = threading.Lock()
        handle = intake.handle

        def wrapped(payload: AlertmanagerWebhook) -> Any:
            at = time.monotonic()
            handled = handle(payload)
            with self.lock:  # listed once recorded in the store, at its arrival time
                self.items.append((at, payload))
            return handled

        intake.handle = wrapped  # type: ignore[method-assign]

    def first(self, status: str, *alertnames: str, after: float = 0.0) -> float | None:
        """When the first notification with a ``status`` alert of ``alertnames`` arrived."""
        with self.lock:
            for at, payload in self.items:
                names = {a.alertname for a in payload.alerts if a.status == status}
                if at >= after and names & set(alertnames):
                    return at
        return None

    def count(self, status: str, after: float) -> int:
        with self.lock:
            return sum(p.status == status for at, p in self.items if at >= after)


def _prometheus_ready(base: str) -> bool:
    """Prometheus scraped the exporter's first value and found its Alertmanager."""
    try:
        query = {"query": 'earthops_feature_psi{usecase="bleaching",feature="Temp"}'}
        result = httpx.get(f"{base}/api/v1/query", params=query, timeout=2).json()["data"]
        managers = httpx.get(f"{base}/api/v1/alertmanagers", timeout=2).json()["data"]
    except (httpx.HTTPError, KeyError, ValueError):
        return False
    scraped = [r["value"][1] for r in result["result"]] == ["0.05"]
    return scraped and bool(managers["activeAlertmanagers"])


def _drift_then_recover(
    exporter: DriftExporter, received: Received, recorder: Recorder, intake: AlertIntake
) -> dict[str, float]:
    """PSI 0.05 → 0.5 (alert, one retraining, repeats debounced) → 0.05 (resolved)."""
    drift_set = time.monotonic()
    exporter.update("bleaching", _report(0.5))
    feature_at = _until(
        lambda: received.first("firing", "EarthOpsFeatureDrift", after=drift_set),
        30,
        "no firing EarthOpsFeatureDrift notification",
    )
    alert_at = received.first("firing", *DRIFT_ALERTS, after=drift_set)
    _until(lambda: recorder.calls, 10, "the retrain callback was not called")
    retrain_at = recorder.calls[0][1]
    _until(lambda: received.count("firing", retrain_at) >= 3, 20, "no repeated notifications")
    assert recorder.usecases == ["bleaching"]  # the repeats and EarthOpsDatasetDrift: debounced
    recovered = time.monotonic()
    exporter.update("bleaching", _report(0.05))
    resolved_at = _until(
        lambda: received.first("resolved", "EarthOpsFeatureDrift", after=recovered),
        30,
        "no resolved EarthOpsFeatureDrift notification",
    )
    assert intake.wait(10)
    rows = intake.store.recent(1000, usecase="bleaching")
    actions = [(r.alertname, r.status, r.action) for r in rows]
    retrained = [a for a in actions if a[2] == "retrained"]  # whichever drift alert came first
    assert len(retrained) == 1 and retrained[0][1] == "firing", actions
    firing = {name for name, status, _ in actions if status == "firing"}
    assert firing == {"EarthOpsFeatureDrift", "EarthOpsDatasetDrift"}, actions
    assert sum(a[2] == "debounced" for a in actions) >= 2, actions
    assert ("EarthOpsFeatureDrift", "resolved", "recorded") in actions
    assert recorder.usecases == ["bleaching"]
    assert {r.labels.get("feature") for r in rows if r.alertname == "EarthOpsFeatureDrift"} == {
        "Temp"
    }
    return {
        "drift_set_to_first_drift_alert_received_s": alert_at - drift_set,
        "drift_set_to_feature_drift_alert_received_s": feature_at - drift_set,
        "drift_set_to_retrain_called_s": retrain_at - drift_set,
        "psi_dropped_to_resolved_received_s": resolved_at - recovered,
    }


@pytest.mark.services
def test_drift_alert_closes_the_loop_end_to_end(tmp_path: Path, earthops_home: Path) -> None:
    """Real prometheus + alertmanager; the retraining is stubbed (Recorder): the real training
    flow behind ``retrain`` is tested with the use cases, not here."""
    prometheus, alertmanager = _tool("prometheus"), _tool("prometheus-alertmanager")
    exporter = DriftExporter()
    exporter.update("bleaching", _report(0.05))
    monitor = DriftMonitor(lambda: {}, interval_s=3600, exporter=exporter)  # only serves here
    exporter_port = monitor.serve(0)
    recorder, store, app = Recorder(), AlertStore(), FastAPI()
    intake = add_alert_routes(app, store, RetrainPolicy(recorder, cooldown_s=3600))
    received = Received(intake)
    prom_port, am_port = free_port(), free_port()
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            webhook_port = stack.enter_context(_webhook_server(app))
            am_args = [
                alertmanager, f"--config.file={_alertmanager_config(tmp_path, webhook_port)}",
                f"--storage.path={tmp_path / 'am'}", f"--web.listen-address={LOOPBACK}:{am_port}",
                "--cluster.listen-address=", "--log.level=warn",
            ]  # fmt: skip
            am_ready = f"http://{LOOPBACK}:{am_port}/-/ready"
            stack.enter_context(_process(am_args, tmp_path / "alertmanager.log", am_ready))
            config = _prometheus_config(tmp_path, exporter_port, am_port)
            prom_args = [
                prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{prom_port}", "--log.level=warn",
            ]  # fmt: skip
            base = f"http://{LOOPBACK}:{prom_port}"
            log = tmp_path / "prometheus.log"
            stack.enter_context(_process(prom_args, log, f"{base}/-/ready"))
            _until(lambda: _prometheus_ready(base), 30, "prometheus did not scrape", log=log)
            timings = _drift_then_recover(exporter, received, recorder, intake)
    finally:
        monitor.stop()
        intake.wait(10)
        store.close()
    timings["total_s"] = time.monotonic() - started
    print("alerting end-to-end:", {k: round(v, 2) for k, v in timings.items()})
    assert timings["total_s"] < 90


def test_train_command_failure_names_the_problem(earthops_home: Path) -> None:
    """The server's retrain callback runs ``earthops train U --register``; a failing one is an
    EarthOpsError with the command's message (a real training is tested with the use cases)."""
    from earthops.errors import EarthOpsError
    from earthops.monitoring.alerts import train_command

    with pytest.raises(EarthOpsError, match=r"exited 1: .*unknown use case 'no-such-usecase'"):
        train_command("no-such-usecase", timeout_s=120)
