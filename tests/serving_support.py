"""Shared setup of the serving tests: a home with a real registered reef model and a
materialized Feast online store (``served_home``), a per-test copy of it (``home``), and
helpers reading real survey rows and Prometheus text.

Imported by ``test_serving.py`` (the app in-process) and ``test_serving_reliability.py``
(the real ``earthops serve`` subprocess); pytest puts ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from earthops.settings import get_settings
from earthops.usecases import get_usecase
from earthops.usecases.base import TrainOptions

NAME = "reef-bleaching"
SMALL = {
    "test_after": 2008,
    "inner_folds": 2,
    "xgboost": {"n_estimators": 30},
    "lightgbm": {"n_estimators": 30},
}
#: the fast model is weak; the test gate lets the canary's promotion reach the policy
GATES = {NAME: {"auroc": 0.5, "auroc_gain_vs_dhw": -1.0, "f1_gain_vs_dhw": -1.0}}
TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> dict[str, Any]:
    """A home with one trained reef model registered twice (v1 champion, v2 spare) and the
    Feast online store materialized from the real survey table."""
    import mlflow

    from earthops.featurestore import apply, materialize
    from earthops.registry.policy import promote, register_version
    from earthops.registry.tracking import configure

    home = tmp_path_factory.mktemp("serve_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHOPS_HOME", str(home))
        mp.setenv("EARTHOPS_GATES", json.dumps(GATES))
        get_settings.cache_clear()
        metrics = get_usecase(NAME).train(TrainOptions(fast=True, params=dict(SMALL)))
        (home / "approved_models.txt").write_text(f"{NAME}@1\n{NAME}@2\n{NAME}@3\n")
        register_version(NAME, metrics)
        promote(NAME, "1", rescore=False)
        client = configure()
        spare = mlflow.register_model(metrics["model_uri"], NAME)
        for key, value in client.get_model_version(NAME, "1").tags.items():  # same lineage
            if key != "stage":
                client.set_model_version_tag(NAME, spare.version, key, value)
        apply()
        materialize()
    get_settings.cache_clear()
    return {"home": home, "metrics": metrics}


@pytest.fixture
def home(served_home: dict[str, Any], earthops_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the served home per test (registry state changes in canary tests)."""
    import shutil

    shutil.copytree(served_home["home"], earthops_home, dirs_exist_ok=True)
    monkeypatch.setenv("EARTHOPS_GATES", json.dumps(GATES))
    monkeypatch.setenv("EARTHOPS_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("EARTHOPS_CANARY_WINDOW_SECONDS", "1")
    monkeypatch.setenv("EARTHOPS_CANARY_MIN_REQUESTS", "40")
    monkeypatch.setenv("EARTHOPS_SERVE_POLL_SECONDS", "0.2")
    get_settings.cache_clear()
    return earthops_home


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one series of a Prometheus exposition text (summed over other labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _later_rows(n: int = 25) -> pd.DataFrame:
    """Real survey rows of years the model never saw (2013–2016), prepared as evaluate does."""
    from earthops.data.tables import read_bleaching_surveys
    from earthops.features.reef_features import prepare_surveys

    rows, _ = prepare_surveys(read_bleaching_surveys())
    later = rows[rows["Date_Year"] > 2012]
    return later.sample(n, random_state=3).reset_index(drop=True)


def _covariates(row: pd.Series, columns: list[str]) -> dict[str, Any]:
    out = {}
    for col in columns:
        value = row[col]
        if isinstance(value, float) and np.isnan(value):
            continue
        out[col] = value.item() if hasattr(value, "item") else value
    return out


def _sites(n: int) -> list[int]:
    from earthops.featurestore import known_sites

    return [int(s) for s in known_sites()[:n]]
