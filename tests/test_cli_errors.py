"""The CLI contract for bad input: one clear line naming what was wrong, exit 1, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import CliRunner


def _clean_failure(out: object, *needles: str) -> None:
    text = out.stdout + out.stderr  # type: ignore[attr-defined]
    assert out.returncode == 1, text  # type: ignore[attr-defined]
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text


def test_corrupt_raster_is_named(tmp_path: Path, run_cli: CliRunner) -> None:
    bad = tmp_path / "scene.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    out = run_cli("features", "raster", "--input", str(bad), "--output", str(tmp_path / "o.tif"))
    _clean_failure(out, "scene.tif")
    assert not (tmp_path / "o.tif").exists()


def test_missing_input_file_is_named(tmp_path: Path, run_cli: CliRunner) -> None:
    out = run_cli(
        "features", "raster", "--input", str(tmp_path / "nowhere.tif"), "--output", "o.tif"
    )
    _clean_failure(out, "nowhere.tif")


def test_unknown_use_case(run_cli: CliRunner) -> None:
    _clean_failure(run_cli("train", "crop-yield"), "unknown use case 'crop-yield'")


def test_malformed_bbox(run_cli: CliRunner) -> None:
    out = run_cli("evaluate", "landcover-global", "--model", "runs:/x/model", "--bbox", "1,2,3")
    _clean_failure(out, "bbox '1,2,3'")


def test_malformed_params(tmp_path: Path, run_cli: CliRunner) -> None:
    out = run_cli("train", "landcover-global", "--params", '{"decision": "area"')
    _clean_failure(out, "--params: not valid JSON")
    listed = tmp_path / "params.json"
    listed.write_text('["decision", "area"]')
    _clean_failure(
        run_cli("train", "landcover-global", "--params", f"@{listed}"), "expected a JSON object"
    )
    out = run_cli("train", "landcover-global", "--params", '{"decision": "bayes"}')
    _clean_failure(out, "params.decision 'bayes'")


def test_bad_member_params_fail_before_training(run_cli: CliRunner) -> None:
    ts = ("train", "landcover-timeseries", "--params")
    out = run_cli(*ts, '{"models": ["rf", "ltae"], "ltae_params": {"bogus": 1}}')
    _clean_failure(out, "params for member 'ltae'")
    _clean_failure(run_cli(*ts, '{"rf_params": [500]}'), "params.rf_params: expected an object")
    out = run_cli("train", "landcover-global", "--params", '{"rf_params": {"n_trees": 10}}')
    _clean_failure(out, "params for member 'rf'")
    _clean_failure(run_cli(*ts, '{"spatial_block_deg": -1}'), "params.spatial_block_deg -1")
    out = run_cli(*ts, '{"spatial_models": ["rf", "knn"]}')
    _clean_failure(out, "params.spatial_models ('rf', 'knn')")
