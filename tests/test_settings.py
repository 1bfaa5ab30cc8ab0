"""Settings: one object, EARTHOPS_ env prefix, derived store locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from earthops.errors import EarthOpsError
from earthops.settings import Settings, get_settings
from earthops.usecases.base import BBox


def test_defaults_derive_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EARTHOPS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.home_dir == (tmp_path / ".earthops").resolve()
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / '.earthops' / 'mlflow.db'}"
    assert s.approved_models_path.name == "approved_models.txt"
    assert s.optuna_storage_url.startswith("sqlite:///")


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHOPS_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("EARTHOPS_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("EARTHOPS_APPROVED_MODELS", str(tmp_path / "approved.txt"))
    monkeypatch.setenv("EARTHOPS_DASK_SCHEDULER", "tcp://127.0.0.1:8786")
    get_settings.cache_clear()
    s = get_settings()
    assert s.home_dir == (tmp_path / "h").resolve()
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5999"
    assert s.approved_models_path == (tmp_path / "approved.txt").resolve()
    assert s.dask_scheduler == "tcp://127.0.0.1:8786"


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "10,0,5,5", "-200,0,0,10", "0,-95,10,10"])
def test_bad_bbox_is_a_clear_error(text: str) -> None:
    with pytest.raises(EarthOpsError, match=f"bbox '{text}'"):
        BBox.parse(text)


def test_bbox_contains() -> None:
    box = BBox.parse("-10,-5,10,5")
    assert box.contains(0.0, 0.0) and not box.contains(11.0, 0.0)
    assert str(box) == "-10.0,-5.0,10.0,5.0"
