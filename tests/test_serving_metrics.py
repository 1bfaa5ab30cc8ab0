"""Serving metrics: labels and values in the exposition, and aggregation over uvicorn workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from earthops.devservices.local import free_port
from earthops.serving.metrics import (
    METRIC_NAMES,
    ServingMetrics,
    outcome_for_status,
    prepare_multiprocess_dir,
)

TESTS = Path(__file__).resolve().parent


def samples(text: bytes | str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of an exposition text."""
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_observations_render_with_labels_and_values() -> None:
    m = ServingMetrics()
    m.observe_request("landcover", "3", "champion", "ok", 0.004)
    m.observe_request("landcover", "3", "champion", "ok", 0.0015)
    m.observe_request("landcover", "4", "challenger", "server_error", 2.0)
    m.model_load_failed("reef")
    m.set_canary_weight("landcover", 0.1)
    m.observe_lookup("landcover", 0.003)
    m.observe_batch("landcover", 17)
    m.set_log_queue(5)
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    got = samples(body)
    req = "earthops_requests_total"
    assert value(got, req, usecase="landcover", version="3", arm="champion", outcome="ok") == 2
    assert (
        value(got, req, usecase="landcover", version="4", arm="challenger", outcome="server_error")
        == 1
    )
    lat = "earthops_request_latency_seconds"
    champion = {"usecase": "landcover", "version": "3", "arm": "champion"}
    assert value(got, lat + "_count", **champion) == 2
    assert value(got, lat + "_sum", **champion) == pytest.approx(0.0055)
    assert value(got, lat + "_bucket", **champion, le="0.001") == 0
    assert value(got, lat + "_bucket", **champion, le="0.002") == 1
    assert value(got, lat + "_bucket", **champion, le="0.005") == 2
    assert value(got, lat + "_bucket", **champion, le="0.0005") == 0  # finest bucket
    assert value(got, lat + "_bucket", **champion, le="5.0") == 2  # coarsest finite bucket
    assert value(got, "earthops_model_load_failures_total", usecase="reef") == 1
    assert value(got, "earthops_canary_weight", usecase="landcover") == pytest.approx(0.1)
    assert value(got, "earthops_feature_lookup_seconds_count", usecase="landcover") == 1
    assert value(got, "earthops_batch_rows_bucket", usecase="landcover", le="16.0") == 0
    assert value(got, "earthops_batch_rows_bucket", usecase="landcover", le="32.0") == 1
    assert value(got, "earthops_prediction_log_queue") == 5
    # every contract name appears in the exposition
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    m.set_model("landcover", "champion", "3")
    families |= {f.name for f in text_string_to_metric_families(m.render()[0].decode())}
    assert {name.removesuffix("_total") for name in METRIC_NAMES.values()} <= families


def test_set_model_leaves_only_the_new_version() -> None:
    m = ServingMetrics()
    m.set_model("landcover", "champion", "3")
    m.set_model("landcover", "challenger", "4")
    m.set_model("landcover", "champion", "5")
    got = samples(m.render()[0])
    loaded = {
        (dict(labels)["alias"], dict(labels)["version"]): v
        for (name, labels), v in got.items()
        if name == "earthops_model_loaded"
    }
    assert loaded == {("champion", "5"): 1, ("challenger", "4"): 1}


def test_two_instances_in_one_process_do_not_clash() -> None:
    a, b = ServingMetrics(), ServingMetrics(registry=CollectorRegistry())
    a.observe_request("landcover", "1", "champion", "ok", 0.01)
    b.observe_request("landcover", "1", "shadow", "ok", 0.01)
    got_a, got_b = samples(a.render()[0]), samples(b.render()[0])
    ok = {"usecase": "landcover", "version": "1", "outcome": "ok"}
    assert value(got_a, "earthops_requests_total", arm="champion", **ok) == 1
    assert value(got_a, "earthops_requests_total", arm="shadow", **ok) is None
    assert value(got_b, "earthops_requests_total", arm="shadow", **ok) == 1


def test_bad_labels_are_refused() -> None:
    m = ServingMetrics()
    with pytest.raises(ValueError, match="arm"):
        m.observe_request("landcover", "1", "blue", "ok", 0.01)
    with pytest.raises(ValueError, match="outcome"):
        m.observe_request("landcover", "1", "champion", "200", 0.01)
    with pytest.raises(ValueError, match="canary"):
        m.set_canary_weight("landcover", 1.5)
    assert [outcome_for_status(s) for s in (200, 404, 422, 500, 503)] == [
        "ok", "client_error", "client_error", "server_error", "server_error",
    ]  # fmt: skip


def test_prepare_multiprocess_dir_clears_only_metric_files(tmp_path: Path) -> None:
    where = tmp_path / "prom"
    assert prepare_multiprocess_dir(where) == where and where.is_dir()
    (where / "counter_123.db").write_bytes(b"stale")
    (where / "notes.txt").write_text("keep")
    prepare_multiprocess_dir(where)
    assert sorted(p.name for p in where.iterdir()) == ["notes.txt"]


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from earthops.serving.metrics import ServingMetrics, mark_process_dead
    m = ServingMetrics()
    m.set_model("landcover", "champion", "3")
    m.set_model("landcover", "champion", "4")
    m.set_log_queue(7)
    m.observe_request("landcover", "4", "champion", "ok", 0.002)
    sys.stdout.write(m.render()[0].decode())
    sys.stdout.write("#--dead--\\n")
    mark_process_dead(os.getpid())
    sys.stdout.write(m.render()[0].decode())
    """
)


def test_multiprocess_mode_in_one_process(tmp_path: Path) -> None:
    """Multiprocess mode (chosen at import) in a fresh interpreter: files, set_model, dead pid."""
    where = prepare_multiprocess_dir(tmp_path / "prom")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(where)}
    out = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    alive, dead = (samples(part) for part in out.split("#--dead--\n"))
    assert any(where.glob("counter_*.db"))
    champion = {"usecase": "landcover", "alias": "champion"}
    assert value(alive, "earthops_model_loaded", **champion, version="4") == 1
    assert value(alive, "earthops_model_loaded", **champion, version="3") == 0
    assert value(alive, "earthops_prediction_log_queue") == 7
    ok = {"usecase": "landcover", "version": "4", "arm": "champion", "outcome": "ok"}
    # a dead worker's counters still count, its live gauges do not
    assert value(dead, "earthops_requests_total", **ok) == 1
    assert value(dead, "earthops_model_loaded", **champion, version="4") is None
    assert value(dead, "earthops_prediction_log_queue") in (None, 0)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    """``uvicorn --workers 2`` serving ``tests/serving_metrics_app.py``; yields its base URL."""
    where = prepare_multiprocess_dir(tmp_path / "prom")
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(where)}
    cmd = [
        sys.executable, "-m", "uvicorn", "serving_metrics_app:app", "--app-dir", str(TESTS),
        "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    log = tmp_path / "uvicorn.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log, deadline=time.monotonic() + 60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen, url: str, log: Path, *, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"uvicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/metrics", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # poll interval, not a wait for readiness
    pytest.fail(f"uvicorn not ready in time:\n{log.read_text()}")


def hit_all(url: str, n: int) -> set[int]:
    """``n`` POST /hit, each on a new connection, 4 at a time; the answering pids."""

    def one(_: int) -> int:
        response = httpx.post(f"{url}/hit", headers={"Connection": "close"}, timeout=10)
        response.raise_for_status()
        return int(response.json()["pid"])

    with ThreadPoolExecutor(4) as pool:
        return set(pool.map(one, range(n)))


def requests_total(url: str) -> float:
    response = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10)
    response.raise_for_status()
    got = samples(response.text)
    return sum(v for (name, _), v in got.items() if name == "earthops_requests_total")


def test_counts_aggregate_across_two_uvicorn_workers(two_workers: str) -> None:
    url = two_workers
    pids = hit_all(url, 60)
    # every scrape, whichever worker answers it, sees all 60
    assert [requests_total(url) for _ in range(6)] == [60.0] * 6
    sent = 60
    while len(pids) < 2 and sent < 600:
        pids |= hit_all(url, 60)
        sent += 60
    assert len(pids) == 2, f"only pid(s) {pids} answered {sent} fresh connections"
    assert {requests_total(url) for _ in range(6)} == {float(sent)}
    # a livemax gauge set by both workers reads 1, not 2
    got = samples(httpx.get(f"{url}/metrics", timeout=10).text)
    loaded = value(got, "earthops_model_loaded", usecase="landcover", alias="champion", version="1")
    assert loaded == 1
