"""``earthops monitor drift`` on a real fast-trained reef model (surveys <= 2012): exit codes
0/1/2 as the report computes them, JSON/HTML reports, the prevalence-shift block, the
prediction log as the current window, and bad input as one error line (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from earthops.monitoring.drift import DriftReport

TRAIN_UNTIL = 2012


@pytest.fixture(scope="module")
def reef(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One fast training run on the <= 2012 surveys in a module home; CSVs carved by year."""
    from conftest import MIRROR
    from earthops.settings import get_settings
    from earthops.usecases.base import TrainOptions
    from earthops.usecases.reef import ReefBleaching
    from test_reef import SMALL, SURVEYS

    if not (MIRROR / SURVEYS).is_file():
        pytest.skip(f"real survey table not found at {MIRROR / SURVEYS}")
    frame = pd.read_csv(MIRROR / SURVEYS, na_values=["NA"], low_memory=False)
    out = tmp_path_factory.mktemp("monitor_surveys")
    paths = {"train": out / "train.csv", "later": out / "later.csv", "fill": out / "fill.csv"}
    frame[frame["Date_Year"] <= TRAIN_UNTIL].to_csv(paths["train"], index=False, na_rep="NA")
    later = frame[frame["Date_Year"] > TRAIN_UNTIL]
    later.to_csv(paths["later"], index=False, na_rep="NA")
    later.assign(Turbidity=-9999.0).to_csv(paths["fill"], index=False, na_rep="NA")
    home = tmp_path_factory.mktemp("monitor_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHOPS_HOME", str(home))
        get_settings.cache_clear()
        options = TrainOptions(dataset=paths["train"], fast=True, params=dict(SMALL))
        metrics = ReefBleaching().train(options)
    get_settings.cache_clear()
    return {"home": home, "uri": metrics["model_uri"], **paths}


def _in_process_status(reef: dict, path: Path, monkeypatch: pytest.MonkeyPatch) -> DriftReport:
    """drift_report on the same inputs, computed here (not through the CLI)."""
    from earthops.monitoring.artifacts import load_reference_profile
    from earthops.monitoring.drift import DriftConfig, drift_report
    from earthops.registry.inference import load
    from earthops.settings import get_settings
    from earthops.usecases.reef.tracking import monitoring_window

    monkeypatch.setenv("EARTHOPS_HOME", str(reef["home"]))
    get_settings.cache_clear()
    model = load(str(reef["uri"]))
    profile = load_reference_profile(model)
    window = monitoring_window(path, model.card.input_columns, DriftConfig().fill_values)
    scores = pd.Series(model.predict_frame(window["rows"]).scores)
    return drift_report(
        profile,
        window["frame"],
        predictions=scores,
        labels=window["labels"],
        clusters=window["clusters"],
    )


def _drift(run_cli: Callable, reef: dict, *args: str):
    return run_cli(
        "monitor", "drift", "reef-bleaching", "--model", str(reef["uri"]), *args, home=reef["home"]
    )


def test_training_years_exit_with_the_computed_status_and_write_reports(
    run_cli: Callable, reef: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    proc = _drift(
        run_cli, reef, "--dataset", str(reef["train"]), "--json", str(out_json),
        "--html", str(out_html),
    )  # fmt: skip
    expected = _in_process_status(reef, Path(reef["train"]), monkeypatch)
    assert proc.returncode == expected.status, proc.stdout + proc.stderr
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr
    payload = json.loads(out_json.read_text())
    assert (
        payload["status"] == expected.status == DriftReport.from_json(out_json.read_text()).status
    )
    assert payload["n_drifted"] == expected.n_drifted
    assert {"usecase", "model", "source", "prior_shift"} <= set(payload)
    assert "Date_Year" not in {row["feature"] for row in payload["features"]}
    prior = payload["prior_shift"]
    assert prior["prevalence_estimate"] == pytest.approx(prior["train_prevalence"], abs=0.02)
    text = out_html.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Prevalence shift" in text
    assert "status" in proc.stdout


def test_later_years_drift_with_prior_shift_figures(
    run_cli: Callable, reef: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_json = tmp_path / "later.json"
    args = ("--dataset", str(reef["later"]), "--json", str(out_json), "--by-region")
    proc = _drift(run_cli, reef, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _in_process_status(reef, Path(reef["later"]), monkeypatch).status == 1
    payload = json.loads(out_json.read_text())
    assert payload["dataset_drift"] or payload["predictions"]["drifted"]
    assert payload["regions"]  # --by-region: the Realm_Name table
    prior = payload["prior_shift"]
    for key in ("prevalence_estimate", "adjusted_threshold", "prevalence", "train_prevalence"):
        assert isinstance(prior[key], float)
    assert (
        set(prior["estimated_f1"])
        == set(prior["realised_f1"])
        == {
            "model_threshold",
            "adjusted_threshold",
        }
    )
    assert "prevalence:" in proc.stdout and "CBPE F1" in proc.stdout


def test_a_column_of_fill_values_is_a_data_quality_exit_2(
    run_cli: Callable, reef: dict, tmp_path: Path
) -> None:
    out_json = tmp_path / "fill.json"
    proc = _drift(run_cli, reef, "--dataset", str(reef["fill"]), "--json", str(out_json))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    payload = json.loads(out_json.read_text())
    issues = {(q["feature"], q["kind"]) for q in payload["quality"]}
    assert ("Turbidity", "fill_values") in issues
    assert payload["fill_values"] == {"Turbidity": payload["n_rows"]}


def test_the_prediction_log_is_the_default_window(
    run_cli: Callable, reef: dict, tmp_path: Path
) -> None:
    from earthops.data.tables import read_bleaching_surveys
    from earthops.features.reef_features import prepare_surveys
    from earthops.registry.inference import PreparedRecords
    from earthops.serving.predictionlog import PredictionLog, PredictionRecord
    from earthops.usecases.reef.tracking import _input_columns

    rows, _ = prepare_surveys(read_bleaching_surveys(reef["later"]), reef["later"])
    rows = rows.sample(400, random_state=0)

    frame = rows[_input_columns(rows)].reset_index(drop=True)
    features = PreparedRecords(frame, [None] * len(frame), [{}] * len(frame)).features()
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    now = datetime.now(UTC)
    with PredictionLog(log_url) as log:
        log.append_many(
            PredictionRecord(
                time=now, request_id=f"r{i}", usecase="reef-bleaching", model_name="m",
                model_version="1", arm="champion", features=f, output={}, label=None,
                score=None, latency_ms=1.0, region=rows["Realm_Name"].iloc[i],
            )
            for i, f in enumerate(features)
        )  # fmt: skip
    env = {"EARTHOPS_PREDICTION_LOG_URL": log_url}
    out_json = tmp_path / "log.json"
    proc = run_cli(
        "monitor", "drift", "reef-bleaching", "--model", str(reef["uri"]), "--since", "1h",
        "--json", str(out_json), home=reef["home"], env=env,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    payload = json.loads(out_json.read_text())
    assert payload["n_rows"] == 400 and payload["source"].startswith("prediction log")
    assert payload["quality"] == []  # the logged features are the profiled columns (+ year)
    empty = run_cli(
        "monitor", "drift", "reef-bleaching", "--model", str(reef["uri"]), "--from-log",
        "--since", "2999-01-01", home=reef["home"], env=env,
    )  # fmt: skip
    assert empty.returncode == 1 and "no logged reef-bleaching predictions" in empty.stdout


def _model_without_profile(home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from earthops.registry.card import ModelCard
    from earthops.registry.tracking import log_model, training_run
    from earthops.settings import get_settings

    monkeypatch.setenv("EARTHOPS_HOME", str(home))
    get_settings.cache_clear()
    X = pd.DataFrame({"SSTA_DHW": np.arange(20.0)})
    model = LogisticRegression().fit(X, np.arange(20) % 2)
    card = ModelCard(usecase="reef-bleaching", task="binary", input_columns=["SSTA_DHW"],
                     classes=[0, 1], threshold=0.5)  # fmt: skip
    with training_run("reef-bleaching"):
        return log_model(model, X, card=card)


def test_bad_input_is_one_error_line_and_exit_1(
    run_cli: Callable, reef: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_text('a,b\n1,"2\n3\n')
    bare = _model_without_profile(tmp_path / "bare_home", monkeypatch)
    cases = [
        (("--dataset", str(tmp_path / "missing.csv")), reef["home"], "no such file"),
        (("--dataset", str(garbage)), reef["home"], "garbage.csv"),
        (("--dataset", str(reef["later"]), "--from-log"), reef["home"], "not both"),
        (("--since", "yesterday"), reef["home"], "ISO 8601"),
    ]
    for args, home, message in cases:
        proc = run_cli("monitor", "drift", "reef-bleaching", "--model", str(reef["uri"]), *args,
                       home=home)  # fmt: skip
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert message in proc.stdout and "Traceback" not in proc.stderr, (args, proc.stdout)
    for argv, home, message in [
        (("monitor", "drift", "atlantis"), reef["home"], "unknown use case"),
        (("monitor", "drift", "reef-bleaching", "--model", bare), tmp_path / "bare_home",
         "retrain it"),
        (("monitor", "drift", "reef-bleaching", "--dataset", str(reef["later"])), reef["home"],
         "champion"),
    ]:  # fmt: skip
        proc = run_cli(*argv, home=home)
        assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
        assert message in proc.stdout and "Traceback" not in proc.stderr, (argv, proc.stdout)
