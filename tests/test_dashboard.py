"""The dashboard (issue #20) over real sources, in headless Chromium; the Grafana dashboard's
PromQL against the metric names the server and the drift exporter export.

The browser test's home: the real reef model of ``serving_support`` (v1 champion, v2 made the
challenger), ``earthops serve`` answering 50 real requests (prediction log, ``/v1/models``),
two drift reports of the real surveys (profile <= 2010; 2011-13 and 2014-16), the real CRW
alert-level heat-map (COG + PNG) and one alert record. Screenshots go under the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import serving_support
from earthops.devservices.local import free_port
from earthops.settings import Settings, get_settings
from serving_support import GATES, NAME, _sites

served_home = serving_support.served_home

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "deploy" / "grafana" / "earthops.json"
START_DEADLINE = 120.0  # s: import + model load, on a shared 2-core machine
PAGE_DEADLINE = 60.0
NUMERIC = ["Temp", "SSTA_DHW", "Turbidity", "Depth_m"]
CATEGORICAL = ["Realm_Name"]
CANARY_WEIGHT = 0.3
REQUESTS = 50


# ------------------------------------------------------------------------------ grafana
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers outside strings, label matchers,
    ranges and grouping clauses that are neither functions nor keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:ms|[smhdwy])?", " ", text)  # 0.95, 5m
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        if match.start() > 0 and text[match.start() - 1] == "$":
            continue  # $__rate_interval, $usecase
        names.add(match.group())
    return names


def exported_names() -> set[str]:
    """Sample names the server's and the drift exporter's registries export (histograms:
    ``_bucket/_sum/_count``; counters: ``_total``), from the registries themselves."""
    from earthops.monitoring.exporter import DRIFT_METRIC_NAMES, DriftExporter
    from earthops.serving.metrics import METRIC_NAMES, ServingMetrics

    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}
    names: set[str] = set()
    families: set[str] = set()
    for registry in (ServingMetrics().registry, DriftExporter().registry):
        for family in registry.collect():
            families.add(family.name)
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    declared = {
        n.removesuffix("_total") for n in (*METRIC_NAMES.values(), *DRIFT_METRIC_NAMES.values())
    }
    assert declared == families, declared ^ families  # the contract lists what is exported
    return names


def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = [p for p in dashboard["panels"] for p in (p, *p.get("panels", []))]
    return [t for p in panels for t in p.get("targets", [])]


def test_grafana_queries_only_metrics_the_server_and_exporter_export() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for t in _targets(dashboard)]
    variables = [
        v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    # a variable's label_values(METRIC, LABEL) is Grafana's, not PromQL: its metric is arg 1
    selectors = [re.sub(r"label_values\(\s*([^,]+),[^)]*\)", r"\1", v) for v in variables]
    used = set().union(*(promql_metrics(e) for e in exprs + selectors))
    exported = exported_names()
    assert used and used <= exported, f"not exported: {sorted(used - exported)}"
    for needed in ("earthops_request_latency_seconds_bucket", "earthops_requests_total",
                   "earthops_canary_weight", "earthops_feature_psi"):  # fmt: skip
        assert needed in used
    assert any("histogram_quantile(0.95" in e for e in exprs)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]
    import yaml

    provisioning = yaml.safe_load((GRAFANA.parent / "provisioning.yaml").read_text())
    assert provisioning["providers"][0]["type"] == "file"
    assert provisioning["datasources"][0]["type"] == "prometheus"


def test_promql_parser_sees_through_matchers_ranges_and_grouping() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, version) (rate(a_bucket{x="b_c", y=~"$u"}'
        "[$__rate_interval]))) / on (version) group_left b_total offset 5m"
    )
    assert promql_metrics(expr) == {"a_bucket", "b_total"}


# ------------------------------------------------------------------------------ bad input
def _page_text(path: str, settings: Settings) -> str:
    from earthops.dashboard.app import PAGES, render_page

    page = next(p for p in PAGES if path == p.PATH)
    return str(render_page(page, settings))


def test_empty_sources_say_what_to_run(earthops_home: Path) -> None:
    settings = get_settings()
    expected = {
        "/models": "earthops train",
        "/serving": "earthops serve",
        "/drift": "earthops monitor drift",
        "/maps": "make run",
        "/alerts": "/v1/alerts",
    }
    for path, command in expected.items():
        text = _page_text(path, settings)
        assert "empty-state" in text and command in text, (path, text[:400])
        assert "Traceback" not in text and "source-error" not in text
    assert not (earthops_home / "predictions.db").exists()  # looking does not create the log


def test_corrupt_and_unreachable_sources_name_the_source_and_the_fix(
    earthops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drift = earthops_home / "outputs" / "drift"
    drift.mkdir(parents=True)
    (drift / "reef-bleaching_bad.json").write_text("{not json")
    (earthops_home / "outputs" / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    (earthops_home / "alerts.db").write_bytes(b"definitely not sqlite" * 100)
    monkeypatch.setenv("EARTHOPS_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    settings = get_settings()
    cases = {
        "/drift": ("reef-bleaching_bad.json", "earthops monitor"),
        "/maps": ("broken.tif", "redraw"),
        "/alerts": ("alert store", "alerts.db"),
        "/serving": ("model server", "EARTHOPS_SERVER_URL"),
    }
    for path, (source, fix) in cases.items():
        text = _page_text(path, settings)
        assert "source-error" in text and source in text and fix in text, (path, text[:600])
        assert "Traceback" not in text


# ------------------------------------------------------------------------------ the real home
def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EARTHOPS_") and k.upper() != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        EARTHOPS_HOME=str(home),
        EARTHOPS_DATA_DIR=os.environ["EARTHOPS_DATA_DIR"],
        EARTHOPS_GATES=json.dumps(GATES),
        EARTHOPS_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[str]:
    """Start ``cmd`` in its own process group; yield once ``url`` answers 200; stop it."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline, last = time.monotonic() + START_DEADLINE, "no answer"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[3:5]} exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                response = httpx.get(url, timeout=5)
                if response.status_code == 200:
                    break
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.1)  # poll interval, not a wait for readiness
        else:
            pytest.fail(f"{url} not 200 within {START_DEADLINE} s ({last}):\n{log.read_text()}")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _make_challenger(version: str) -> None:
    from earthops.registry.policy import CHALLENGER, TAG_STAGE
    from earthops.registry.tracking import configure

    client = configure()
    client.set_registered_model_alias(NAME, CHALLENGER, version)
    client.set_model_version_tag(NAME, version, TAG_STAGE, "staging")


def _drift_reports(folder: Path) -> dict[str, Any]:
    """Profile of the surveys <= 2010; reports of 2011-13 (older file) and 2014-16."""
    from earthops.data.tables import read_bleaching_surveys
    from earthops.monitoring.drift import drift_report
    from earthops.monitoring.profile import build_profile

    surveys = read_bleaching_surveys()
    ref = surveys[surveys["Date_Year"] <= 2010].reset_index(drop=True)
    profile = build_profile(ref, numeric=NUMERIC, categorical=CATEGORICAL, groups=ref["Realm_Name"])
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (lo, hi) in enumerate(((2011, 2013), (2014, 2016))):
        cur = surveys[surveys["Date_Year"].between(lo, hi)].reset_index(drop=True)
        report = drift_report(profile, cur, groups=cur["Realm_Name"])
        payload = {**json.loads(report.to_json()), "usecase": NAME, "source": f"surveys {lo}-{hi}"}
        path = folder / f"{NAME}_{hi}.json"
        path.write_text(json.dumps(payload))
        stamp = time.time() - 3600 * (1 - i)
        os.utime(path, (stamp, stamp))
        out[f"{lo}-{hi}"] = report
    return out


def _record_alert() -> str:
    from earthops.monitoring.alerts import AlertmanagerWebhook, AlertStore

    alert = {
        "status": "firing",
        "labels": {"alertname": "EarthOpsFeatureDrift", "usecase": NAME, "feature": "Temp",
                   "severity": "warning"},
        "annotations": {"summary": "Temp PSI above 0.2"},
        "startsAt": datetime.now(UTC).isoformat(),
        "fingerprint": "f00d",
    }  # fmt: skip
    payload = AlertmanagerWebhook.model_validate(
        {"version": "4", "status": "firing", "receiver": "earthops", "alerts": [alert]}
    )
    store = AlertStore()
    try:
        store.record(payload, payload.alerts[0], "recorded", {"reason": "outside the policy"})
    finally:
        store.close()
    return "EarthOpsFeatureDrift"


def _send_requests(url: str) -> int:
    sites = _sites(REQUESTS)
    with httpx.Client(base_url=url, timeout=60) as client:
        for i, site in enumerate(sites):
            response = client.post(
                f"/v1/{NAME}/predict",
                json={"records": [{"site_id": site}]},
                headers={"X-Request-ID": f"dash-{i}"},
            )
            assert response.status_code == 200, response.text
    return len(sites)


def _logged(expected: int) -> pd.DataFrame:
    from earthops.serving.predictionlog import PredictionLog

    log = PredictionLog(get_settings().prediction_log)
    try:
        deadline = time.monotonic() + 30
        while log.count(NAME) < expected and time.monotonic() < deadline:
            time.sleep(0.1)  # poll interval: rows land within the server's flush interval
        return log.read(usecase=NAME)
    finally:
        log.close()


@pytest.fixture(scope="module")
def dash_home(
    served_home: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The real home above, with ``earthops serve`` still running on it."""
    from earthops.usecases.reef.heatmap import risk_heatmap

    home = tmp_path_factory.mktemp("dash_home")
    shutil.copytree(served_home["home"], home, dirs_exist_ok=True)
    port = free_port()
    code = "from earthops.cli.app import main; main()"
    cmd = [sys.executable, "-c", code, "serve", "--usecase", NAME, "--host", "127.0.0.1"]
    env = _env(home, EARTHOPS_CANARY_WEIGHT=str(CANARY_WEIGHT),
               EARTHOPS_CANARY_MIN_REQUESTS="1000000", EARTHOPS_CANARY_WINDOW_SECONDS="86400")  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHOPS_HOME", str(home))
        mp.setenv("EARTHOPS_GATES", json.dumps(GATES))
        get_settings.cache_clear()
        _make_challenger("2")
        reports = _drift_reports(home / "outputs" / "drift")
        heatmap = risk_heatmap(home / "outputs" / "reef_risk.tif")
        alertname = _record_alert()
        log_file = home / "serve.log"
        url = f"http://127.0.0.1:{port}"
        with process([*cmd, "--port", str(port)], env, url + "/readyz", log_file):
            sent = _send_requests(url)
            logged = _logged(sent)
            models = httpx.get(url + "/v1/models", timeout=10).json()
            get_settings.cache_clear()
            yield {"home": home, "server_url": url, "reports": reports, "heatmap": heatmap,
                   "alertname": alertname, "log": logged, "models": models}  # fmt: skip
    get_settings.cache_clear()


# ------------------------------------------------------------------------------ sources
@pytest.mark.services
def test_serving_series_percentiles_equal_the_logged_latencies(
    dash_home: dict[str, Any],
) -> None:
    from earthops.dashboard.sources import serving_series

    log = dash_home["log"]
    assert log["request_id"].nunique() == REQUESTS
    assert set(log["model_version"]) == {"1", "2"}, "the canary split reached both versions"
    series = serving_series(log, pd.Timedelta("3650D"))  # one bin holds the whole test
    for version, part in log.groupby("model_version"):
        (row,) = series[series["model_version"] == version].itertuples()
        assert row.requests == part["request_id"].nunique() and row.errors == 0
        for q in (0.5, 0.95, 0.99):
            expected = np.quantile(part["latency_ms"], q)
            assert getattr(row, f"p{round(q * 100)}_ms") == pytest.approx(expected)


# ------------------------------------------------------------------------------ browser
def _driver() -> Any:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("Debian chromium + chromium-driver not installed (apt-get install chromium "
                    "chromium-driver; .ci/run installs them)")  # fmt: skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1100"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def _until(driver: Any, check: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, PAGE_DEADLINE, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,))  # fmt: skip
    try:
        return wait.until(check)
    except WebDriverException as exc:
        body = driver.find_element("tag name", "body").text[:2000]
        pytest.fail(f"{what} not rendered within {PAGE_DEADLINE} s ({exc.msg}):\n{body}")


def open_page(driver: Any, base: str, path: str) -> None:
    """Load ``path`` and wait until its title and every graph on it are drawn."""
    from selenium.webdriver.common.by import By

    driver.get(base + path)

    def drawn(d: Any) -> bool:
        titles = d.find_elements(By.ID, "page-title")
        if not titles or titles[0].get_attribute("data-page") != path:
            return False
        graphs = d.find_elements(By.CSS_SELECTOR, ".dash-graph")
        plots = d.find_elements(By.CSS_SELECTOR, ".dash-graph .js-plotly-plot .main-svg")
        return len(plots) >= len(graphs)

    _until(driver, drawn, f"page {path}")


def texts(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.get_attribute("textContent") for e in driver.find_elements(By.CSS_SELECTOR, css)]


def cells(driver: Any, table_id: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[c.get_attribute("textContent") for c in r.find_elements(By.TAG_NAME, "td")]
            for r in rows]  # fmt: skip


def _check_models(driver: Any) -> None:
    rows = cells(driver, f"{NAME}-versions")
    by_version = {r[0]: r for r in rows}
    assert "champion" in by_version["1"][1] and "challenger" in by_version["2"][1], rows
    assert by_version["1"][2] == "production" and by_version["1"][4] == "yes"
    compare = texts(driver, f"#{NAME}-compare th")
    assert "champion v1" in compare and "challenger v2" in compare
    assert "champion v1" in texts(driver, f"#{NAME}-versus .legendtext")


def _check_serving(driver: Any, home: dict[str, Any]) -> None:
    legend = texts(driver, f"#{NAME}-latency .legendtext")
    assert "v1 p95" in legend and "v2 p95" in legend, legend
    split = {(r[0], r[1]): int(r[2]) for r in cells(driver, f"{NAME}-split")}
    log = home["log"]
    for (arm, version), part in log.groupby(["arm", "model_version"]):
        assert split[(arm, version)] == part["request_id"].nunique()
    canary = cells(driver, "canary-table")[0]
    served = home["models"]["usecases"][0]
    assert canary[0] == NAME and float(canary[2]) == pytest.approx(served["challenger_weight"])
    assert f"{REQUESTS} requests logged" in driver.find_element("tag name", "body").text


def _check_drift(driver: Any, home: dict[str, Any]) -> None:
    latest = home["reports"]["2014-2016"]
    rows = {r[0]: r for r in cells(driver, f"{NAME}-features")}
    temp = latest.feature("Temp")
    assert rows["Temp"][2] == f"{temp.psi:.4g}", rows["Temp"]  # the PSI, as the report has it
    assert "feature Temp" in texts(driver, f"#{NAME}-psi-time .legendtext")
    verdict = driver.find_element("css selector", f"[data-testid={NAME}-verdict]").text
    assert f"{latest.drifted_share:.2f}" in verdict and "2016.json" in verdict
    assert cells(driver, f"{NAME}-regions"), "the per-region table has rows"


def _check_maps(driver: Any) -> None:
    legend = texts(driver, "#map-reef-risk .legendtext")
    assert "Bleaching Alert Level 2" in legend and "No Stress" in legend, legend
    body = driver.find_element("tag name", "body").text
    assert "CRW DHW 2021-06-19" in body and "reef_risk.png" in body


def _check_alerts(driver: Any, home: dict[str, Any]) -> None:
    rows = cells(driver, "alerts-table")
    assert rows and rows[0][1] == home["alertname"] and rows[0][2] == NAME, rows
    assert "recorded" in texts(driver, "#alerts-timeline .legendtext")


@pytest.mark.services
def test_every_page_renders_real_values_in_chromium(
    dash_home: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    code = (
        "import typer; from earthops.cli import dashboard; app = typer.Typer(); "
        "app.callback()(lambda: None); dashboard.register(app); app()"
    )
    cmd = [sys.executable, "-c", code, "dashboard", "--host", "127.0.0.1", "--port", str(port)]
    env = _env(dash_home["home"], EARTHOPS_SERVER_URL=dash_home["server_url"],
               EARTHOPS_DASHBOARD_REFRESH_SECONDS="600")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    checks: dict[str, Callable[[Any], None]] = {
        "/models": _check_models,
        "/serving": lambda d: _check_serving(d, dash_home),
        "/drift": lambda d: _check_drift(d, dash_home),
        "/maps": _check_maps,
        "/alerts": lambda d: _check_alerts(d, dash_home),
    }
    with process(cmd, env, base + "/", tmp_path / "dashboard.log"):
        driver = _driver()
        try:
            for path, check in checks.items():
                open_page(driver, base, path)
                height = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(1400, min(max(int(height) + 40, 900), 8000))
                driver.save_screenshot(str(tmp_path / f"{path.strip('/')}.png"))
                check(driver)
                errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                assert not errors, f"{path}: console errors {errors}"
                assert "Traceback" not in driver.page_source
        finally:
            driver.quit()
    for path in checks:
        assert (tmp_path / f"{path.strip('/')}.png").stat().st_size > 10_000
