"""Benchmarks: collect ``bench_*.py``, read the shared real-data mirror, isolated EarthOps home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("EARTHOPS_DATA_DIR", REPO.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("EARTHOPS_DATA_DIR", str(MIRROR))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Benchmark modules are named ``bench_*.py`` (pytest only collects ``test_*.py`` itself)."""
    named = file_path.suffix == ".py" and file_path.name.startswith("bench_")
    if named and not parent.session.isinitpath(file_path):  # explicit paths: pytest's own
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(autouse=True)
def earthops_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    from earthops.settings import get_settings

    home = tmp_path_factory.mktemp("earthops_home")
    monkeypatch.setenv("EARTHOPS_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
