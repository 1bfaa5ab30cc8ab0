"""Test setup: real data from the shared mirror, an isolated EarthOps home per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("EARTHOPS_DATA_DIR", REPO.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("EARTHOPS_DATA_DIR", str(MIRROR))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The shared real-data mirror; tests that need it skip loudly if it is absent."""
    if not MIRROR.is_dir():
        pytest.skip(f"real-data mirror not found at {MIRROR}")
    return MIRROR


@pytest.fixture(autouse=True)
def earthops_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets its own EarthOps home (MLflow store, caches, outputs)."""
    from earthops.settings import get_settings

    home = tmp_path_factory.mktemp("earthops_home")
    monkeypatch.setenv("EARTHOPS_HOME", str(home))
    monkeypatch.setenv("EARTHOPS_DATA_DIR", str(MIRROR))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(earthops_home: Path) -> CliRunner:
    """Run ``earthops ARGS…`` in a subprocess (the real console entry: exit codes, no traceback).

    Keyword arguments: ``home`` and ``data_dir`` override the EarthOps home and the mirror;
    ``env`` adds variables; ``timeout`` (s) bounds the run.
    """

    def run(
        *args: str,
        home: Path | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "EARTHOPS_DATA_DIR": str(data_dir or MIRROR),
            "EARTHOPS_HOME": str(home or earthops_home),
            "COLUMNS": "200",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            **(env or {}),
        }
        code = "from earthops.cli.app import main; main()"
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )

    return run
