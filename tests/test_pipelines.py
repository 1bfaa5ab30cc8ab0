"""Prefect pipelines: caching on input digests, retries, and no half-registered versions.

A small real use case (bleaching surveys → logistic regression, forward-in-time split) is
registered under a test name so these tests stay fast; the flows are the production ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import mlflow
import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from earthops.registry.card import ModelCard

NAME = "tiny-bleaching"
FEATURES = ["Temp", "SSTA_DHW", "Turbidity", "Distance_to_Shore"]


class TinyBleaching:
    """Bleaching yes/no from four survey covariates; train ≤ 2010, test later years."""

    name = NAME
    primary_metric = "auroc"
    gate: ClassVar[dict[str, float]] = {"auroc": 0.5}
    calls = 0
    failures_left = 0  # transient failures to inject before training succeeds

    def dataset_refs(self, options: Any) -> list:
        from earthops.data.catalog import dataset_ref

        return [dataset_ref("bleaching-surveys")]

    def train(self, options: Any) -> dict[str, Any]:
        from earthops.data.tables import read_bleaching_surveys
        from earthops.registry.tracking import log_dataset_refs, log_model, training_run

        TinyBleaching.calls += 1
        if TinyBleaching.failures_left > 0:
            TinyBleaching.failures_left -= 1
            raise OSError("transient: survey mirror not reachable")
        rows = read_bleaching_surveys().dropna(subset=["avg.bleach"])
        y = (rows["avg.bleach"] > 10).astype(int).to_numpy()
        train = rows["Date_Year"].to_numpy() <= 2010
        X = rows[FEATURES]
        model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=200))
        with training_run(NAME) as run:
            log_dataset_refs(self.dataset_refs(options))
            model.fit(X[train], y[train])
            p = model.predict_proba(X[~train])[:, 1]
            dhw = X[~train]["SSTA_DHW"].fillna(0).to_numpy()
            metrics = {
                "auroc": float(roc_auc_score(y[~train], p)),
                "baseline": {"auroc": float(roc_auc_score(y[~train], dhw))},
                "split": {"train_years": "<=2010", "test_rows": int((~train).sum())},
            }
            mlflow.log_metric("auroc", metrics["auroc"])
            card = ModelCard(usecase=NAME, task="binary", input_columns=FEATURES, classes=[0, 1])
            uri = log_model(model, X[train].iloc[:5], card=card)
        return {**metrics, "model_uri": uri, "run_id": run.info.run_id}

    def evaluate(self, model_uri: str, options: Any) -> dict[str, Any]:
        raise NotImplementedError


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API for the module (starting one takes ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, prefect_api: None, mirror: Any) -> type[TinyBleaching]:
    from earthops.pipelines import flows
    from earthops.usecases import _USECASES

    monkeypatch.setitem(_USECASES, NAME, f"{__name__}:TinyBleaching")
    monkeypatch.setattr(TinyBleaching, "calls", 0)
    monkeypatch.setattr(TinyBleaching, "failures_left", 0)
    flows.set_retry_delay(0)
    return TinyBleaching


def _runs(name: str = NAME) -> int:
    from earthops.registry.tracking import configure

    configure()
    if mlflow.get_experiment_by_name(name) is None:
        return 0
    return len(mlflow.search_runs(experiment_names=[name]))


def _versions() -> list:
    from earthops.registry import policy

    return [(v.name, v.version) for v in policy.list_versions()]


def test_rerun_on_unchanged_data_skips_training(tiny: type[TinyBleaching]) -> None:
    from earthops.pipelines.flows import run_pipeline
    from earthops.registry import policy

    first = run_pipeline(NAME)
    assert first["trained"] is True
    assert _runs() == 1 and tiny.calls == 1
    assert first["evaluation"]["gate_passed"] is True
    assert first["version"]["version"] == "1"
    # not approved: the policy refuses champion and says which rule
    assert first["promotion"]["promoted"] is False and first["promotion"]["rule"] == "approved"
    lineage = policy.version_info(NAME, 1).datasets
    assert lineage, "the registered version lost its data lineage"

    second = run_pipeline(NAME)
    assert second["trained"] is False
    assert tiny.calls == 1, "training ran again on unchanged data"
    assert _runs() == 1, "a second MLflow run was logged"
    assert second["metrics"]["run_id"] == first["metrics"]["run_id"]
    assert _versions() == [(NAME, "1")], "the rerun registered another version"
    assert second["version"]["reused"] is True

    third = run_pipeline(NAME, params={"C": 0.5}, promote=False)  # other options: new key
    assert third["trained"] is True and tiny.calls == 2 and _runs() == 2
    assert _versions() == [(NAME, "1"), (NAME, "2")]

    refreshed = run_pipeline(NAME, promote=False, refresh=True)  # ignore the cache on request
    assert refreshed["trained"] is True and tiny.calls == 3 and _runs() == 3


def test_transient_failure_is_retried(tiny: type[TinyBleaching]) -> None:
    from earthops.pipelines.flows import run_pipeline

    tiny.failures_left = 1
    result = run_pipeline(NAME, promote=False)
    assert tiny.calls == 2, "the failed training was not retried"
    assert result["trained"] is True and _runs() == 1
    assert _versions() == [(NAME, "1")]


def test_crash_before_registration_leaves_registry_unchanged(
    tiny: type[TinyBleaching], monkeypatch: pytest.MonkeyPatch
) -> None:
    from earthops.pipelines import steps
    from earthops.pipelines.flows import run_pipeline

    run_pipeline(NAME, promote=False)  # version 1 exists
    before = _versions()

    crashes = []

    def crash(usecase: str, metrics: dict[str, Any]) -> dict[str, Any]:
        crashes.append(usecase)
        raise RuntimeError("evaluation worker died")

    monkeypatch.setattr(steps, "evaluate", crash)
    with pytest.raises(RuntimeError, match="evaluation worker died"):
        run_pipeline(NAME, params={"C": 2.0}, promote=False)
    assert tiny.calls == 2  # the new training ran …
    assert _versions() == before  # … but nothing was registered
    assert len(crashes) == 1, "a bug (not an I/O error) must not be retried"


def test_crash_inside_registration_rolls_the_version_back(
    tiny: type[TinyBleaching], monkeypatch: pytest.MonkeyPatch
) -> None:
    from earthops.pipelines.flows import run_pipeline
    from earthops.registry import policy

    real = policy.version_info
    attempts = []

    def crash_after_create(name: str, version: Any) -> Any:
        attempts.append(version)
        raise ConnectionError("registry went away after creating the version")

    monkeypatch.setattr(policy, "version_info", crash_after_create)
    with pytest.raises(ConnectionError):
        run_pipeline(NAME, promote=False)
    assert len(attempts) == 3  # first try + 2 retries, each rolled back
    monkeypatch.setattr(policy, "version_info", real)
    assert _versions() == []


def test_bad_input_is_not_retried(
    tiny: type[TinyBleaching], monkeypatch: pytest.MonkeyPatch
) -> None:
    from earthops.errors import EarthOpsError
    from earthops.pipelines.flows import run_pipeline

    def no_inputs(self: Any, options: Any) -> list:
        raise EarthOpsError("bleaching-surveys: checksum mismatch")

    monkeypatch.setattr(TinyBleaching, "dataset_refs", no_inputs)
    with pytest.raises(EarthOpsError, match="checksum mismatch"):
        run_pipeline(NAME)
    assert tiny.calls == 0


def test_cli_pipeline_run(tiny: type[TinyBleaching], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from earthops.cli.app import app

    out = tmp_path / "result.json"
    args = ["pipeline", "run", NAME, "--fast", "--no-promote", "--out", str(out)]
    try:
        result = CliRunner().invoke(app, args)
    finally:  # the app's callback configured logging onto the runner's (now closed) stream
        from earthops.logs import configure_logging

        configure_logging()
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["trained"] is True and payload["version"]["version"] == "1"
    assert payload["promotion"] == {"promoted": False, "reason": "disabled"}
    assert payload["inputs"]["bleaching-surveys"]
    assert tiny.calls == 1


def test_main_job_runs_landed_use_cases_and_skips_missing_ones(
    tiny: type[TinyBleaching], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from earthops.cli import run
    from earthops.usecases import _USECASES

    monkeypatch.setitem(_USECASES, "not-landed", "earthops.usecases.not_landed:NotLanded")
    outcomes = [run._one(name, fast=True, draw=True) for name in ("not-landed", NAME)]
    assert outcomes[0]["status"] == "skipped" and "not available" in outcomes[0]["reason"]
    assert outcomes[1]["status"] == "ok" and outcomes[1]["map"] is None  # no map declared
    capsys.readouterr()
    run._summary(outcomes)
    out = capsys.readouterr().out
    assert "not-landed" in out and "skipped" in out
    line = next(row for row in out.splitlines() if row.startswith(f"│ {NAME}"))
    auroc = outcomes[1]["evaluation"]["value"]
    assert f"{auroc:.3f}" in line and "v1 staging @challenger" in line
    assert "refused: approved" in line
    assert "mlflow ui --backend-store-uri sqlite:///" in out


def test_deployments_file_names_the_environments() -> None:
    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    envs = {d["tags"][0] if d.get("tags") else None for d in deployments.values()}
    assert {"development", "staging", "production", "experimental"} <= envs
    for d in deployments.values():
        module, func = d["entrypoint"].split(":")
        assert (Path(__file__).parents[1] / module).is_file()
        assert func == "usecase_pipeline"
    prod = [d for d in deployments.values() if "production" in d["tags"]]
    assert prod and all(d["schedules"] and "cron" in d["schedules"][0] for d in prod)
    dev = [d for d in deployments.values() if "development" in d["tags"]]
    assert dev and all(not d.get("schedules") for d in dev)
    np.testing.assert_equal(len(deployments), len(spec["deployments"]))
