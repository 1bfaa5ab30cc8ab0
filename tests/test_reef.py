"""reef-bleaching use case on the real survey table: forward-in-time grouped validation, the NOAA
DHW baseline on the same rows, a loadable logged model, evaluation on later years, bad CSVs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import f1_score, roc_auc_score

from earthops.errors import DataError, EarthOpsError
from earthops.features.reef_features import (
    bleaching_target,
    extract_chips,
    open_grid,
    prepare_surveys,
)
from earthops.usecases.base import EvalOptions, TrainOptions
from earthops.usecases.reef import (
    METRIC_KEYS,
    ReefBleaching,
    ReefConfig,
    ReefRiskModel,
    best_f1_threshold,
    forward_split,
)

SURVEYS = "reef/global_bleaching_surveys_1980_2016.csv"
TRAIN_UNTIL = 2012  # the carved training file; evaluation on the later years 2013–2016
VALIDATE_AFTER = 2008
SMALL = {
    "test_after": VALIDATE_AFTER,
    "inner_folds": 2,
    "xgboost": {"n_estimators": 30},
    "lightgbm": {"n_estimators": 30},
}


@pytest.fixture(scope="module")
def surveys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real table carved by year: ``train`` (≤ 2012) and ``later`` (2013–2016) CSVs."""
    from conftest import MIRROR

    source = MIRROR / SURVEYS
    if not source.is_file():
        pytest.skip(f"real survey table not found at {source}")
    frame = pd.read_csv(source, na_values=["NA"], keep_default_na=True, low_memory=False)
    out = tmp_path_factory.mktemp("surveys")
    paths = {"full": source, "train": out / "train.csv", "later": out / "later.csv"}
    frame[frame["Date_Year"] <= TRAIN_UNTIL].to_csv(paths["train"], index=False, na_rep="NA")
    frame[frame["Date_Year"] > TRAIN_UNTIL].to_csv(paths["later"], index=False, na_rep="NA")
    return paths


@pytest.fixture(scope="module")
def trained(
    surveys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict, Path]]:
    """One small training run on the ≤ 2012 file; the logged model copied to a local dir (so
    every test, each with its own EarthOps home, can load it by path)."""
    import mlflow

    from earthops.settings import get_settings

    home = tmp_path_factory.mktemp("reef_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHOPS_HOME", str(home))
        get_settings.cache_clear()
        options = TrainOptions(dataset=surveys["train"], fast=True, params=dict(SMALL))
        metrics = ReefBleaching().train(options)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=metrics["model_uri"], dst_path=str(home / "model_copy")
        )
    get_settings.cache_clear()
    yield metrics, Path(local)


def _prepared(path: Path) -> pd.DataFrame:
    from earthops.data.tables import read_bleaching_surveys

    rows, _ = prepare_surveys(read_bleaching_surveys(path), path)
    return rows.reset_index(drop=True)


# ------------------------------------------------------------------------------ splitting
def test_forward_split_groups_sites_and_looks_only_forward(surveys: dict[str, Path]) -> None:
    rows = _prepared(surveys["full"])
    years, sites = rows["Date_Year"].to_numpy(), rows["Site_ID"].to_numpy()
    for origin, horizon in ((2004, 2), (2010, None), (2013, 1)):
        train, test, dropped = forward_split(years, sites, origin, horizon)
        assert train.size and test.size
        assert years[train].max() <= origin < years[test].min()
        assert horizon is None or years[test].max() <= origin + horizon
        assert not set(sites[train]) & set(sites[test])
        later = (years > origin) & (years <= origin + (horizon or 100))
        assert dropped == later.sum() - test.size > 0  # re-surveyed sites really were dropped


def test_inner_origins_stay_inside_the_training_years() -> None:
    config = ReefConfig(test_after=2010, inner_folds=3, inner_horizon=2)
    assert config.origins() == [2004, 2006, 2008]
    assert config.origins(2016) == [2010, 2012, 2014]
    assert all(o + config.inner_horizon <= 2010 for o in config.origins())
    with pytest.raises(EarthOpsError, match="unknown_param"):
        ReefConfig.from_options(TrainOptions(params={"unknown_param": 1}))


def test_per_fold_f1_threshold_is_not_set_by_one_large_fold() -> None:
    rng = np.random.default_rng(0)
    # fold 0: a large mass-bleaching period (80 % positive, weak scores) — pooled F1 would say
    # "everything positive"; fold 1 and 2: usual years where a mid threshold is best
    big_y = rng.random(4000) < 0.8
    big_p = np.clip(0.3 + 0.1 * big_y + rng.normal(0, 0.2, 4000), 0, 1)
    small_y = rng.random(1000) < 0.2
    small_p = np.clip(0.2 + 0.5 * small_y + rng.normal(0, 0.1, 1000), 0, 1)
    y = np.concatenate([big_y, small_y, small_y]).astype(int)
    p = np.concatenate([big_p, small_p, small_p])
    folds = np.repeat([0, 1, 2], [4000, 1000, 1000])
    pooled, per_fold = best_f1_threshold(y, p), best_f1_threshold(y, p, folds)
    assert per_fold > pooled
    assert f1_score(small_y, small_p >= per_fold) > f1_score(small_y, small_p >= pooled) + 0.1


# ------------------------------------------------------------------------------ training
def test_train_writes_design_keys_and_a_loadable_model(
    trained: tuple[dict, Path], surveys: dict[str, Path]
) -> None:
    metrics, model_dir = trained
    for key in (*METRIC_KEYS, "baseline", "model_uri", "run_id"):
        assert key in metrics
    assert set(METRIC_KEYS) <= set(metrics["baseline"])
    assert metrics["model_uri"].startswith("models:/") and metrics["run_id"]
    split = metrics["split"]
    assert min(split["test_years"]) > VALIDATE_AFTER and max(split["test_years"]) == TRAIN_UNTIL
    assert split["test_rows_dropped_seen_sites"] > 0
    assert 0.5 < metrics["auroc"] <= 1 and 0 <= metrics["brier"] <= 1
    assert metrics["logged_model"]["train_years"][1] == TRAIN_UNTIL  # refitted on every year

    from mlflow.models import Model

    from earthops.registry.tracking import load_model

    model = load_model(str(model_dir))
    assert isinstance(model, ReefRiskModel) and model.train_until_ == TRAIN_UNTIL
    assert Model.load(str(model_dir)).metadata["usecase"] == "reef-bleaching"
    rows = _prepared(surveys["later"]).head(50)
    p = model.predict_proba(rows)[:, 1]
    assert p.shape == (50,) and np.all((p >= 0) & (p <= 1)) and np.ptp(p) > 0
    assert np.all((model.predict_severity(rows) >= 0) & (model.predict_severity(rows) <= 100))


def test_baseline_is_the_dhw_rule_on_exactly_the_validation_rows(
    trained: tuple[dict, Path], surveys: dict[str, Path]
) -> None:
    metrics, _ = trained
    rows = _prepared(surveys["train"])
    _, test, _ = forward_split(
        rows["Date_Year"].to_numpy(), rows["Site_ID"].to_numpy(), VALIDATE_AFTER
    )
    held = rows.iloc[test]
    y = bleaching_target(held).to_numpy()
    rule = (held["SSTA_DHW"].to_numpy() >= 4.0).astype(int)
    base = metrics["baseline"]
    assert base["n"] == metrics["split"]["test_rows"] == len(held)
    assert base["auroc"] == pytest.approx(roc_auc_score(y, rule))
    assert base["f1"] == pytest.approx(f1_score(y, rule))
    assert metrics["auroc_gain_vs_dhw"] == pytest.approx(metrics["auroc"] - base["auroc"])


# ------------------------------------------------------------------------------ evaluation
def test_evaluate_later_years_csv_through_the_cli(
    trained: tuple[dict, Path], surveys: dict[str, Path], run_cli, tmp_path: Path
) -> None:
    _, model_dir = trained
    out = tmp_path / "eval.json"
    result = run_cli(
        "evaluate", "reef-bleaching", "--model", str(model_dir),
        "--dataset", str(surveys["later"]), "--metrics-out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(out.read_text())
    later = _prepared(surveys["later"])
    assert metrics["rows"]["scored"] == len(later) == metrics["baseline"]["n"]
    assert set(METRIC_KEYS) <= set(metrics) and set(METRIC_KEYS) <= set(metrics["baseline"])
    y = bleaching_target(later).to_numpy()
    assert metrics["baseline"]["auroc"] == pytest.approx(
        roc_auc_score(y, later["SSTA_DHW"].to_numpy() >= 4.0)
    )
    assert metrics["auroc"] > metrics["baseline"]["auroc"]  # the model ranks better than the rule


def _bad_csv(source: Path, tmp_path: Path, edit) -> Path:
    frame = pd.read_csv(source, na_values=["NA"], keep_default_na=True, low_memory=False).head(300)
    path = tmp_path / "bad.csv"
    edit(frame).to_csv(path, index=False, na_rep="NA")
    return path


def test_bad_csv_fails_with_the_column_named(
    trained: tuple[dict, Path], surveys: dict[str, Path], tmp_path: Path
) -> None:
    _, model_dir = trained
    use = ReefBleaching()

    def evaluate(path: Path) -> dict:
        return use.evaluate(str(model_dir), EvalOptions(dataset=path))

    cases = {
        "Turbidity": lambda f: f.drop(columns=["Turbidity"]),
        "avg.bleach": lambda f: f.assign(
            **{"avg.bleach": f["avg.bleach"].where(f.index != 7, 150.0)}
        ),
        "Latitude_Degrees": lambda f: f.assign(
            Latitude_Degrees=f["Latitude_Degrees"].where(f.index != 11, 95.0)
        ),
    }
    for column, edit in cases.items():
        with pytest.raises(DataError) as err:
            evaluate(_bad_csv(surveys["later"], tmp_path, edit))
        assert err.value.field == column or column in str(err.value), str(err.value)

    # unknown realm names: rejected and counted, the other rows scored (model and rule alike)
    atlantis = _bad_csv(
        surveys["later"],
        tmp_path,
        lambda f: f.assign(Realm_Name=f["Realm_Name"].where(f.index % 10 != 3, "Atlantis")),
    )
    metrics = evaluate(atlantis)
    assert metrics["rows"]["rejected"]["unknown_Realm_Name"] == 30
    assert metrics["rows"]["scored"] == metrics["baseline"]["n"] <= 270
    all_unknown = _bad_csv(surveys["later"], tmp_path, lambda f: f.assign(Realm_Name="Atlantis"))
    with pytest.raises(DataError, match="no usable survey rows"):
        evaluate(all_unknown)

    # rows without the heat-stress input are rejected and counted; the rest are scored
    gappy = _bad_csv(
        surveys["later"], tmp_path, lambda f: f.assign(SSTA_DHW=f["SSTA_DHW"].where(f.index >= 5))
    )
    metrics = evaluate(gappy)
    assert metrics["rows"]["rejected"]["missing_SSTA_DHW"] == 5
    assert (
        metrics["rows"]["scored"] == metrics["rows"]["read"] - metrics["rows"]["rejected"]["total"]
    )


# ------------------------------------------------------------------------------ ViT branch
def _generated_cube(path: Path, years: range, box: tuple[float, float, float, float]) -> Path:
    """A small yearly SST/DHW cube (time, lat, lon) over ``box`` = (lat0, lat1, lon0, lon1)."""
    rng = np.random.default_rng(7)
    lat = np.arange(box[0], box[1], 0.25) + 0.125
    lon = np.arange(box[2], box[3], 0.25) + 0.125
    times = pd.to_datetime([f"{y}-12-31" for y in years])
    shape = (len(times), lat.size, lon.size)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 0.05, shape), axis=1), axis=2)
    dhw = np.clip(smooth - smooth.mean() + rng.gamma(1.5, 1.5, (len(times), 1, 1)), 0, None)
    sst = 27.0 + 0.3 * dhw + rng.normal(0, 0.2, shape)
    xr.Dataset(
        {
            "dhw": (("time", "lat", "lon"), dhw.astype(np.float32)),
            "sst": (("time", "lat", "lon"), sst.astype(np.float32)),
        },
        coords={"time": times, "lat": lat, "lon": lon},
    ).to_netcdf(path)
    return path


def test_chips_come_from_the_last_grid_time_not_after_the_survey(tmp_path: Path) -> None:
    cube = open_grid(_generated_cube(tmp_path / "cube.nc", range(2000, 2003), (10, 12, -80, -78)))
    times = np.array(["2001-06-30", "2002-12-31", "1999-12-31"], dtype="datetime64[ns]")
    chips = extract_chips(cube, [11.0, 11.0, 11.0], [-79.0, -79.0, -79.0], size=4, times=times)
    want_2000 = extract_chips(cube.isel(time=[0]), [11.0], [-79.0], size=4)[0]
    want_2002 = extract_chips(cube.isel(time=[2]), [11.0], [-79.0], size=4)[0]
    np.testing.assert_array_equal(chips[0], want_2000)  # mid-2001 → the 2000 year-end field
    np.testing.assert_array_equal(chips[1], want_2002)
    assert np.isnan(chips[2]).all()  # before the cube's first time: no chip


def test_vit_branch_trains_on_chips_of_a_generated_cube(
    surveys: dict[str, Path], tmp_path: Path
) -> None:
    box = (12.0, 22.0, -90.0, -75.0)
    frame = pd.read_csv(surveys["train"], na_values=["NA"], keep_default_na=True, low_memory=False)
    inside = (
        frame["Latitude_Degrees"].between(box[0], box[1])
        & frame["Longitude_Degrees"].between(box[2], box[3])
        & frame["Date_Year"].between(2002, 2012)
    )
    csv = tmp_path / "caribbean.csv"
    frame[inside].to_csv(csv, index=False, na_rep="NA")
    cube = _generated_cube(tmp_path / "cube.nc", range(2001, 2013), box)
    vit = {"epochs": 2, "dim": 16, "depth": 1, "heads": 2, "patch_size": 4, "batch_size": 256}
    params = {
        **SMALL,
        "candidates": ["xgboost"],
        "grid": cube,
        "chip_size": 8,
        "vit": vit,
        "refit_all": False,
    }
    metrics = ReefBleaching().train(TrainOptions(dataset=csv, fast=True, params=params))
    assert "vit" in metrics["comparison"]["inner_oof"]
    assert "vit" in metrics["comparison"]["test_fold_report_only"]
    assert "stack" in metrics["comparison"]["inner_oof"]  # XGBoost + ViT stacking candidate

    from earthops.registry.tracking import load_model

    model = load_model(metrics["model_uri"])
    assert model.vit_ is not None and model.grid_path_ == str(cube)
    rows = _prepared(csv).head(20)
    probs = model.member_probabilities(rows)
    assert list(probs.columns) == ["xgboost", "vit"]
    assert probs["vit"].between(0, 1).all() and probs["vit"].std() > 0


def test_forward_test_roc_curve_is_logged_and_matches_the_auroc(
    trained: tuple[dict, Path],
) -> None:
    import json

    from mlflow.tracking import MlflowClient

    metrics, model_dir = trained
    home = next(p for p in model_dir.parents if (p / "mlflow.db").exists())
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    local = client.download_artifacts(metrics["run_id"], "forward_test_curves.json", str(home))
    roc = json.loads(Path(local).read_text())["roc"]
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics["auroc"], abs=1e-6)
