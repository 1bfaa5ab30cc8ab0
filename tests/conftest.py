"""Test setup: real data from the shared mirror, an isolated EarthOps home per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("EARTHOPS_DATA_DIR", REPO.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("EARTHOPS_DATA_DIR", str(MIRROR))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The shared real-data mirror; tests that need it skip loudly if it is absent."""
    if not MIRROR.is_dir():
        pytest.skip(f"real-data mirror not found at {MIRROR}")
    return MIRROR


@pytest.fixture(autouse=True)
def earthops_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own EarthOps home (MLflow store, caches, outputs)."""
    from earthops.settings import get_settings

    home = tmp_path_factory.mktemp("earthops_home")
    monkeypatch.setenv("EARTHOPS_HOME", str(home))
    monkeypatch.setenv("EARTHOPS_DATA_DIR", str(MIRROR))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
