"""Registry and promotion policy on real MLflow runs and models (SQLite store per test).

A tiny use case (logistic regression on the real bleaching surveys, forward-in-time split)
is registered for the tests: fast, but with real trainings, logged models, dataset inputs
and an ``evaluate()`` the policy can re-score through.
"""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from earthops.data import catalog
from earthops.errors import DataError, EarthOpsError, PolicyError
from earthops.registry import approved, policy
from earthops.registry.card import ModelCard
from earthops.settings import get_settings
from earthops.usecases.base import EvalOptions, TrainOptions

NAME = "tiny-bleaching"
STRONG = [
    "SSTA_DHW",
    "Temp",
    "Turbidity",
    "Latitude_Degrees",
    "TSA_DHW_Standard_Deviation",
    "SSTA_Frequency_Standard_Deviation",
    "Temperature_Kelvin_Standard_Deviation",
]
MID = ["SSTA_DHW", "Temp", "Latitude_Degrees"]
WEAK_BUT_GATED = ["Latitude_Degrees"]  # passes the 0.6 gate, ~0.1 AUROC below STRONG
USELESS = ["Depth_m"]  # AUROC ≈ 0.5: fails the gate
RESCORE_AFTER = 2012  # evaluate(): fixed held-out years, independent of the training split


@lru_cache(maxsize=1)
def _surveys() -> pd.DataFrame:
    from earthops.data.tables import read_bleaching_surveys

    frame = read_bleaching_surveys()
    return frame.assign(target=(frame["avg.bleach"] > 10).astype(int))


class TinyBleaching:
    """Minimal use case honouring the UseCase protocol (real data, real MLflow logging)."""

    name = NAME
    primary_metric = "auroc"
    gate: ClassVar[dict[str, float]] = {"auroc": 0.6}

    def dataset_refs(self, options: TrainOptions) -> list[Any]:
        return [catalog.dataset_ref("bleaching-surveys")]

    def train(self, options: TrainOptions) -> dict[str, Any]:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from earthops.registry.tracking import (
            log_binary_curves,
            log_dataset_refs,
            log_metrics_dict,
            log_model,
            training_run,
        )

        features = list(options.params.get("features", STRONG))
        test_after = int(options.params.get("test_after", 2010))
        rows = _surveys()
        train, test = rows[rows.Date_Year <= test_after], rows[rows.Date_Year > test_after]
        model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=300))
        model.fit(train[features], train.target)
        score = model.predict_proba(test[features])[:, 1]
        metrics: dict[str, Any] = {
            "auroc": float(roc_auc_score(test.target, score)),
            "prevalence": float(test.target.mean()),
            "split": {"test_after": test_after, "test_rows": len(test)},
        }
        with training_run(NAME) as run:
            log_dataset_refs(self.dataset_refs(options))
            import mlflow

            mlflow.log_params({"features": ",".join(features), "test_after": test_after})
            log_binary_curves(test.target, score)
            uri = log_model(
                model,
                train[features].head(5),
                card=ModelCard(usecase=NAME, task="binary", input_columns=features, classes=[0, 1]),
                metadata={"usecase": NAME, "features": features},
            )
            log_metrics_dict(metrics)
        return {**metrics, "model_uri": uri, "run_id": run.info.run_id}

    def evaluate(self, model_uri: str, options: EvalOptions) -> dict[str, Any]:
        from sklearn.metrics import roc_auc_score

        from earthops.registry.tracking import load_model, model_metadata

        features = model_metadata(model_uri)["features"]
        rows = _surveys()
        test = rows[rows.Date_Year > RESCORE_AFTER]
        score = load_model(model_uri).predict_proba(test[features])[:, 1]
        return {
            "auroc": float(roc_auc_score(test.target, score)),
            "scope": f"bleaching surveys after {RESCORE_AFTER}",
            "rows": len(test),
        }


RECIPES: dict[str, dict[str, Any]] = {
    "strong": {"features": STRONG},
    "useless": {"features": USELESS},
    "weak": {"features": WEAK_BUT_GATED},
    "mid": {"features": MID},
    "strong_2008": {"features": STRONG, "test_after": 2008},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> dict[str, Any]:
    """Train every recipe once into a template store; each test starts from a copy of it."""
    home = tmp_path_factory.mktemp("registry_template")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EARTHOPS_HOME", str(home))
        get_settings.cache_clear()
        runs = {key: TinyBleaching().train(TrainOptions(params=p)) for key, p in RECIPES.items()}
    get_settings.cache_clear()
    return {"home": home, "runs": runs}


@pytest.fixture(autouse=True)
def store(trained: dict[str, Any], earthops_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the template MLflow store in this test's home, and the tiny use case."""
    from earthops import usecases

    shutil.copy(trained["home"] / "mlflow.db", earthops_home / "mlflow.db")
    monkeypatch.setitem(usecases._USECASES, NAME, f"{__name__}:TinyBleaching")


@pytest.fixture
def runs(trained: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics dicts (with model_uri and run_id) of the template trainings."""
    return trained["runs"]


def _champion() -> str | None:
    found = [v.version for v in policy.list_versions(NAME) if "champion" in v.aliases]
    return found[0] if found else None


# ------------------------------------------------------------------------------ register
def test_register_records_lineage_and_gate(runs: dict[str, dict[str, Any]]) -> None:
    strong_metrics = runs["strong"]
    strong = policy.register_version(NAME, strong_metrics)
    useless = policy.register_version(NAME, runs["useless"])

    surveys = catalog.dataset_ref("bleaching-surveys")
    assert strong.datasets == {surveys.name: surveys.digest}
    assert strong.run_id == strong_metrics["run_id"]
    assert strong.metrics["auroc"] == pytest.approx(strong_metrics["auroc"])
    assert (strong.stage, strong.aliases, strong.gate) == ("staging", ["challenger"], "passed")
    # the gate failed: stays in development, no alias; challenger stays on the good version
    assert useless.stage == "development" and useless.aliases == []
    assert useless.gate.startswith("failed: auroc=")
    listed = {v.version: v for v in policy.list_versions(NAME)}
    assert listed[strong.version].aliases == ["challenger"]
    assert strong.eval_set == useless.eval_set  # same data, same split
    with pytest.raises(EarthOpsError, match="run_id"):
        policy.register_version(NAME, {"model_uri": strong_metrics["model_uri"]})


def test_register_is_idempotent_per_run_and_leaves_nothing_half_done(
    monkeypatch: pytest.MonkeyPatch, runs: dict[str, dict[str, Any]]
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    first = policy.register_version(NAME, runs["strong"])
    assert policy.register_version(NAME, runs["strong"]).version == first.version
    # a version registered behind the policy's back is adopted, not duplicated
    raw = mlflow.register_model(runs["mid"]["model_uri"], NAME)
    adopted = policy.register_version(NAME, runs["mid"])
    assert adopted.version == str(raw.version)
    assert adopted.aliases == ["challenger"] and adopted.datasets

    # a crash while staging the new version removes it again
    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("injected crash")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", crash)
    with pytest.raises(RuntimeError, match="injected crash"):
        policy.register_version(NAME, runs["weak"])
    assert [v.version for v in policy.list_versions(NAME)] == [first.version, adopted.version]


def test_gate_threshold_override_from_settings(
    monkeypatch: pytest.MonkeyPatch, runs: dict[str, dict[str, Any]]
) -> None:
    monkeypatch.setenv("EARTHOPS_GATES", json.dumps({NAME: {"auroc": 0.99}}))
    get_settings.cache_clear()
    assert policy.gate_for(NAME) == ({"auroc": 0.99}, "auroc")
    info = policy.register_version(NAME, runs["strong"])
    assert info.aliases == [] and info.stage == "development"
    approved.approve(NAME, info.version)
    with pytest.raises(PolicyError, match="auroc=0.7") as refused:
        policy.promote(NAME, info.version)
    assert refused.value.rule == "gate"


# ------------------------------------------------------------------------------ policy matrix
def test_policy_matrix_and_rollback(runs: dict[str, dict[str, Any]]) -> None:
    v1 = policy.register_version(NAME, runs["strong"])
    v_useless = policy.register_version(NAME, runs["useless"])
    approved.approve(NAME, v_useless.version)

    # (a) gate refuses, even when approved
    refused = policy.promote_if_allowed(NAME, v_useless.version)
    assert (refused.promoted, refused.rule) == (False, "gate")
    assert "auroc=" in refused.reason

    # (b) not in the approved-models file
    with pytest.raises(PolicyError) as not_approved:
        policy.promote(NAME, v1.version)
    assert not_approved.value.rule == "approved"
    assert f"{NAME}@{v1.version}" in str(not_approved.value)
    assert _champion() is None

    # accept path: first champion
    approved.approve(NAME, v1.version)
    accepted = policy.promote(NAME, v1.version)
    assert accepted.promoted and accepted.previous_champion is None
    info = policy.version_info(NAME, v1.version)
    assert info.aliases == ["champion"] and info.stage == "production"

    # (c) regression > 0.02 on the same evaluation set
    weak = policy.register_version(NAME, runs["weak"])
    approved.approve(NAME, weak.version)
    assert v1.metrics["auroc"] - weak.metrics["auroc"] > 0.02
    with pytest.raises(PolicyError, match="regresses champion") as regressed:
        policy.promote(NAME, weak.version)
    assert regressed.value.rule == "no-regression"
    assert _champion() == v1.version

    # accept path with a champion: within the 0.02 tolerance
    mid = policy.register_version(NAME, runs["mid"])
    approved.approve(NAME, mid.version)
    assert mid.metrics["auroc"] >= v1.metrics["auroc"] - 0.02
    result = policy.promote(NAME, mid.version)
    assert result.promoted and result.previous_champion == v1.version
    assert result.compared_on is not None and result.compared_on.startswith("recorded")
    assert _champion() == mid.version
    by_version = {v.version: v for v in policy.list_versions(NAME)}
    assert by_version[v1.version].stage == "archived"
    assert "challenger" not in by_version[mid.version].aliases
    assert policy.champion_history(NAME) == [v1.version, mid.version]

    # rollback restores the previous champion, then there is none left
    restored = policy.rollback(NAME)
    assert restored.version == v1.version and restored.stage == "production"
    assert _champion() == v1.version
    assert policy.version_info(NAME, mid.version).stage == "archived"
    with pytest.raises(EarthOpsError, match="no previous champion"):
        policy.rollback(NAME)


def test_different_evaluation_sets_are_rescored_or_refused(
    runs: dict[str, dict[str, Any]],
) -> None:
    champion = policy.register_version(NAME, runs["strong"])
    candidate = policy.register_version(NAME, runs["strong_2008"])
    for v in (champion, candidate):
        approved.approve(NAME, v.version)
    policy.promote(NAME, champion.version)
    assert champion.eval_set != candidate.eval_set
    # recorded scores are on different test years: not comparable
    with pytest.raises(PolicyError) as refused:
        policy.promote(NAME, candidate.version, rescore=False)
    assert refused.value.rule == "same-evaluation-set"
    # re-scored on the use case's own held-out set, both are within tolerance
    result = policy.promote(NAME, candidate.version)
    assert result.promoted and result.compared_on.startswith("re-scored")
    case = TinyBleaching()
    expected = {
        f"v{v}": case.evaluate(f"models:/{NAME}/{v}", EvalOptions())["auroc"]
        for v in (candidate.version, champion.version)
    }
    assert result.scores == pytest.approx(expected)


def test_compare_reports_metric_diffs_and_digests(runs: dict[str, dict[str, Any]]) -> None:
    a = policy.register_version(NAME, runs["strong"])
    b = policy.register_version(NAME, runs["strong_2008"])
    diff = policy.compare(NAME, a.version, b.version)
    assert diff["metrics"]["auroc"]["diff"] == pytest.approx(
        b.metrics["auroc"] - a.metrics["auroc"]
    )
    digest = catalog.dataset_ref("bleaching-surveys").digest
    assert diff["datasets"] == {
        "v1": {"bleaching-surveys": digest},
        "v2": {"bleaching-surveys": digest},
    }
    assert diff["same_data"] is True and diff["same_eval_set"] is False
    with pytest.raises(EarthOpsError, match="has no version 99"):
        policy.compare(NAME, a.version, 99)
    with pytest.raises(EarthOpsError, match="no registered model 'nope'"):
        policy.list_versions("nope")


# ------------------------------------------------------------------------------ approved file
def test_approved_file_format(tmp_path: Path) -> None:
    path = tmp_path / "approved.txt"
    assert approved.read_approved(path) == set()  # missing file: nothing approved
    path.write_text("# reviewed list\n\nreef-bleaching@3  # ok\nlandcover-global@12\n")
    assert approved.read_approved(path) == {("reef-bleaching", "3"), ("landcover-global", "12")}
    assert approved.is_approved("reef-bleaching", 3, path)
    assert not approved.is_approved("reef-bleaching", 4, path)
    path.write_text("reef-bleaching@3\nreef-bleaching 4\n")
    with pytest.raises(DataError, match=r"approved.txt: line 2: 'reef-bleaching 4'"):
        approved.read_approved(path)


def test_approved_path_comes_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHOPS_APPROVED_MODELS", str(tmp_path / "review" / "ok.txt"))
    get_settings.cache_clear()
    written = approved.approve(NAME, 5)
    assert written == (tmp_path / "review" / "ok.txt").resolve()
    assert written.read_text() == f"{NAME}@5\n"


# ------------------------------------------------------------------------------ CLI
def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run the real console entry in-process (the tiny use case is only registered here)."""
    import sys

    from earthops.cli.app import main
    from earthops.cli.common import console

    monkeypatch.setattr(sys, "argv", ["earthops", *args])
    monkeypatch.setattr(console, "_width", 200)  # wide tables, as COLUMNS=200 in a terminal
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out + out.err


def test_cli_registry_commands(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, dict[str, Any]],
) -> None:
    code, out = _cli(monkeypatch, capsys, "train", NAME, "--register")
    assert code == 0, out
    assert '"registered"' in out
    first = policy.list_versions(NAME)[0]
    assert first.aliases == ["challenger"]
    second = policy.register_version(NAME, runs["mid"])

    code, out = _cli(monkeypatch, capsys, "registry", "promote", NAME, first.version)
    assert code == 1
    assert "rule 'approved'" in out and f"{NAME}@{first.version}" in out
    assert "Traceback" not in out

    for v in (first.version, second.version):
        approved.approve(NAME, v)
    code, out = _cli(monkeypatch, capsys, "registry", "promote", NAME, first.version)
    assert code == 0 and "promoted" in out
    code, out = _cli(monkeypatch, capsys, "registry", "promote", NAME, second.version)
    assert code == 0 and f"was version {first.version}" in out

    code, out = _cli(monkeypatch, capsys, "registry", "list", "--json")
    assert code == 0
    listed = {row["version"]: row for row in json.loads(out)}
    assert listed[second.version]["aliases"] == ["champion"]
    code, out = _cli(monkeypatch, capsys, "registry", "list")
    digest = catalog.dataset_ref("bleaching-surveys").digest
    assert code == 0 and digest[:12] in out

    code, out = _cli(
        monkeypatch, capsys, "registry", "compare", NAME, first.version, second.version
    )
    assert code == 0 and "auroc" in out and digest in out

    code, out = _cli(monkeypatch, capsys, "registry", "rollback", NAME)
    assert code == 0 and f"champion is version {first.version}" in out
    assert _champion() == first.version

    code, out = _cli(monkeypatch, capsys, "registry", "promote", NAME, "99")
    assert code == 1 and "has no version 99" in out


def test_confusion_matrix_artifact() -> None:
    import mlflow

    from earthops.registry.tracking import log_confusion_matrix, training_run

    truth = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0, 2])
    with training_run(NAME) as run:
        log_confusion_matrix(truth, pred, [0, 1, 2], names={0: "water", 1: "forest", 2: "crop"})
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))
    saved = json.loads((local / "confusion_matrix.json").read_text())
    assert saved == {
        "labels": ["water", "forest", "crop"],
        "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 2]],
    }
    assert (local / "confusion_matrix.png").stat().st_size > 0
    assert (local / "environment.txt").read_text().count("==") >= 3
