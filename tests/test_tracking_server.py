"""The same tracking/registry code against a real MLflow server backed by PostgreSQL.

Starts PostgreSQL (``initdb`` in a temp dir, ``pg_ctl`` on a free 127.0.0.1 port, as the
``postgres`` user when run as root) and ``mlflow server`` on 127.0.0.1, trains a small real
model with ``EARTHOPS_TRACKING_URI`` pointing at the server, registers it through the policy
and reads everything back — from the server and from the PostgreSQL tables themselves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from earthops.data import catalog
from earthops.devservices import free_port
from earthops.devservices.local import POSTGRES_INSTALL, postgres_available, postgres_server
from earthops.settings import get_settings

pytestmark = pytest.mark.services

START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1; yields a SQLAlchemy URL to database 'mlflow'."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL server binaries not installed ({POSTGRES_INSTALL})")
    with postgres_server(tmp_path_factory.mktemp("pg"), user="mlflow", database="mlflow") as url:
        yield url.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture(scope="module")
def mlflow_server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on PostgreSQL with proxied artifacts; yields its http URL."""
    artifacts = tmp_path_factory.mktemp("mlflow_artifacts")
    port = free_port()
    log_path = artifacts.parent / "mlflow-server.log"
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri", postgres,
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"mlflow server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server not healthy in {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _rows(postgres: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sqlalchemy.text(sql), params)]
    finally:
        engine.dispose()


def test_training_and_registry_on_postgres_backed_server(
    mlflow_server: str, postgres: str, monkeypatch: pytest.MonkeyPatch, mirror: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from earthops import usecases
    from earthops.registry import policy
    from earthops.registry.tracking import load_model
    from earthops.usecases.base import TrainOptions
    from test_registry import NAME, STRONG, TinyBleaching, _surveys

    monkeypatch.setitem(usecases._USECASES, NAME, "test_registry:TinyBleaching")
    monkeypatch.setenv("EARTHOPS_TRACKING_URI", mlflow_server)
    get_settings.cache_clear()
    assert get_settings().mlflow_tracking_uri == mlflow_server

    metrics = TinyBleaching().train(TrainOptions(params={"features": STRONG}))
    info = policy.register_version(NAME, metrics)

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run = client.get_run(metrics["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied by the server
    assert run.data.params["features"] == ",".join(STRONG)
    assert run.data.params["test_after"] == "2010"
    assert run.data.metrics["auroc"] == pytest.approx(metrics["auroc"])
    assert run.data.tags["env.mlflow"]  # environment logged
    surveys = catalog.dataset_ref("bleaching-surveys")
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert inputs == {surveys.name: surveys.digest[:32]}

    version = client.get_model_version(NAME, info.version)
    assert str(version.run_id) == metrics["run_id"]
    assert version.tags["stage"] == "staging"
    assert client.get_model_version_by_alias(NAME, "challenger").version == version.version
    assert policy.list_versions(NAME)[0].datasets == {surveys.name: surveys.digest}

    # the model's artifacts come back through the server
    rows = _surveys()[STRONG].head(5)
    proba = load_model(f"models:/{NAME}@challenger").predict_proba(rows)
    assert proba.shape == (5, 2) and ((proba >= 0) & (proba <= 1)).all()

    # and the records live in PostgreSQL
    stored = _rows(postgres, "SELECT status FROM runs WHERE run_uuid = :id", id=metrics["run_id"])
    assert stored == [("FINISHED",)]
    registered = _rows(postgres, "SELECT version FROM model_versions WHERE name = :n", n=NAME)
    assert registered == [(int(info.version),)]
