"""``landcover-global`` end to end on real data (MCD12C1, Blue Marble, Köppen-Geiger).

One fast training run (lean feature grid over Africa + Europe, small models) is shared by the
module: it excludes a Central-African box, and the tests check metrics keys, the logged model,
block folds, the exclusion, regional evaluation, the COG map and the bad-input paths.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import structlog
from rasterio.transform import from_bounds

from earthops.cli.app import main
from earthops.data.legends import IGBP
from earthops.errors import DataError, EarthOpsError, SignatureError
from earthops.features.global_grid import GridSpec, cache_root, load_feature_grid, pixel_lonlat
from earthops.raster.cog import read_class_names, validate_cog
from earthops.registry.tracking import load_model
from earthops.settings import get_settings
from earthops.usecases import get_usecase
from earthops.usecases.base import CLASSIFICATION_KEYS, BBox, EvalOptions, TrainOptions
from earthops.usecases.landcover_global import (
    OUTSIDE,
    OUTSIDE_PIXELS,
    TRAINING_PIXELS,
    TrainConfig,
    block_folds,
    block_ids,
    in_bboxes,
    land_mask,
    outside_classes,
    read_labels,
    sample_pixels,
)
from earthops.usecases.landcover_global.outside import THRESHOLD

REGION = (-20.0, -35.0, 60.0, 40.0)  # Africa + Europe: ~50 blocks of 10°
EXCLUDED = BBox.parse("10,-5,25,10")  # Congo basin: evergreen broadleaf forest
GRID = {"region": list(REGION), "windows": [5, 15, 31], "water_windows": [15, 61]}
PARAMS: dict[str, Any] = {
    "grid": GRID,
    "models": ["rf", "lightgbm"],
    "rf_params": {"n_estimators": 40},
    "lgbm_params": {"n_estimators": 40},
    "n_per_class": 200,
}


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("landcover_global_home")


@pytest.fixture(autouse=True)
def shared_home(earthops_home: Path, module_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One EarthOps home (grid cache, MLflow store) for the whole module."""
    monkeypatch.setenv("EARTHOPS_HOME", str(module_home))
    get_settings.cache_clear()
    return module_home


@pytest.fixture(scope="module")
def trained(module_home: Path, mirror: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHOPS_HOME", str(module_home))
        get_settings.cache_clear()
        options = TrainOptions(
            protocol="igbp7", fast=True, exclude_bboxes=[EXCLUDED], params=dict(PARAMS)
        )
        metrics = get_usecase("landcover-global").train(options)
    get_settings.cache_clear()
    return metrics


def _write_labels(path: Path, labels: np.ndarray) -> Path:
    """``labels`` as a uint8 GeoTIFF on the global grid of its shape (nodata 255)."""
    height, width = labels.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=1, dtype="uint8",
        crs="EPSG:4326", transform=from_bounds(-180, -90, 180, 90, width, height), nodata=255,
        compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(labels, 1)
    return path


def _training_pixels(metrics: dict[str, Any], artifact: str = TRAINING_PIXELS) -> pd.DataFrame:
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=metrics["run_id"], artifact_path=artifact)
    return pd.read_csv(path)


def test_fast_train_writes_design_keys_and_a_loadable_model(trained: dict[str, Any]) -> None:
    assert set(trained) >= CLASSIFICATION_KEYS
    for key in ("overall_accuracy", "macro_f1", "kappa"):
        assert 0.0 <= trained[key] <= 1.0
        assert 0.0 <= trained["baseline"][key] <= 1.0
    assert trained["baseline"]["model"] == "rf"
    assert set(trained["per_class"]) <= {
        "water", "evergreen needleleaf forest", "evergreen broadleaf forest",
        "deciduous needleleaf forest", "deciduous broadleaf forest", "mixed forest",
        "closed shrublands",
    }  # fmt: skip
    assert trained["selected_model"] in trained["comparison"]
    assert len(trained["selection"]["choice_per_fold"]) == 3  # selection never sees its fold
    assert "stacking" in trained["comparison"]  # the stacking comparison is recorded
    assert trained["validation"]["n_folds"] == 3 and trained["validation"]["block_deg"] == 10.0
    assert trained["macro_f1"] > 0.5  # far from chance (1/7) even at smoke size

    import mlflow

    confusion = mlflow.artifacts.load_dict(f"runs:/{trained['run_id']}/confusion_matrix.json")
    matrix = np.asarray(confusion["matrix"])
    assert matrix.shape == (7, 7) and confusion["labels"][0] == "water"
    assert np.trace(matrix) / matrix.sum() == pytest.approx(trained["overall_accuracy"], abs=1e-4)

    model = load_model(trained["model_uri"])
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    rows, cols = np.array([1500, 2000]), np.array([3700, 4000])
    pred = model.predict(grid.sample(rows, cols))
    assert set(pred.tolist()) <= set(range(7))


def test_block_folds_never_split_a_block(trained: dict[str, Any]) -> None:
    pixels = _training_pixels(trained)
    blocks = block_ids(pixels["row"].to_numpy(), pixels["col"].to_numpy())
    per_block = pd.Series(pixels["fold"].to_numpy()).groupby(blocks).nunique()
    assert per_block.max() == 1
    assert pixels["fold"].nunique() == 3
    # and directly, on a real sample with many blocks
    labels = read_labels()
    r, c = sample_pixels(labels, range(7), 150, seed=3)
    y = labels[r, c]
    b = block_ids(r, c)
    folds = block_folds(y, b, n_folds=5, seed=3)
    assert pd.Series(folds).groupby(b).nunique().max() == 1
    assert set(folds.tolist()) == set(range(5))


def test_excluded_box_never_in_training(trained: dict[str, Any]) -> None:
    pixels = _training_pixels(trained)
    lon, lat = pixels["lon"].to_numpy(), pixels["lat"].to_numpy()
    assert not EXCLUDED.contains(lon, lat).any()
    assert BBox(*REGION).contains(lon, lat).all()  # the lean grid's region
    # the box does hold trainable pixels: without the exclusion some are drawn
    labels = read_labels()
    r, c = sample_pixels(labels, range(7), 200, seed=42, include=[BBox(*REGION)])
    assert in_bboxes(r, c, [EXCLUDED]).any()


def test_train_on_a_users_label_raster(mirror: Path, tmp_path: Path) -> None:
    """``--dataset`` trains on the user's labels (another year, a corrected map): training
    pixels come only from where it has labels, and the run's lineage names it by digest."""
    from earthops.data.identity import file_sha256
    from earthops.registry.tracking import run_datasets

    usecase = get_usecase("landcover-global")
    labels = read_labels()
    mine = np.full_like(labels, 255)
    r0, r1, c0, c1 = 1000, 2100, 3400, 4400  # 10 W..40 E, 15 S..40 N: inside REGION
    mine[r0:r1, c0:c1] = labels[r0:r1, c0:c1]
    raster = _write_labels(tmp_path / "my_labels.tif", mine)
    params = {**PARAMS, "models": ["rf"], "outside_gate": False}
    metrics = usecase.train(
        TrainOptions(protocol="igbp7", fast=True, dataset=raster, params=dict(params))
    )
    pixels = _training_pixels(metrics)
    assert pixels["row"].between(r0, r1 - 1).all() and pixels["col"].between(c0, c1 - 1).all()
    np.testing.assert_array_equal(
        pixels["label"].to_numpy(), labels[pixels["row"].to_numpy(), pixels["col"].to_numpy()]
    )
    lineage = run_datasets(metrics["run_id"])
    assert lineage["labels"] == file_sha256(raster) and "mcd12c1-2019" not in lineage
    with pytest.raises(DataError, match=r"nowhere\.tif"):
        usecase.train(TrainOptions(fast=True, dataset=tmp_path / "nowhere.tif", params=params))


def test_land_only_default_samples_every_class_on_land(trained: dict[str, Any]) -> None:
    """By default the class-balanced sample is drawn from land: water is lakes and coasts."""
    pixels = _training_pixels(trained)
    land = land_mask(load_feature_grid(GridSpec.model_validate(GRID)))
    assert land[pixels["row"].to_numpy(), pixels["col"].to_numpy()].all()
    assert (pixels["label"] == 0).sum() > 0  # water still sampled: lakes, rivers, coasts
    assert trained["on_land"]["n_open_water"] == 0
    assert trained["on_land"]["overall_accuracy"] == pytest.approx(
        trained["overall_accuracy"], abs=1e-4
    )
    assert "on land" in trained["validation"]["sampling"]

    # the open sea, never sampled, is water by the land mask; land pixels are the members'
    model = load_model(trained["model_uri"])
    assert model.sea_class == 0
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    rows, cols = sample_pixels(read_labels(), [0], 500, seed=5, include=[BBox(*REGION)])
    sea = ~land[rows, cols]
    assert sea.any() and (~sea).any()
    features = grid.values(rows, cols)
    labels, proba = model.predict_arrays(features), model.proba_arrays(features)
    assert (labels[sea] == 0).all() and (proba[sea, 0] == 1.0).all()
    model.sea_class = None  # the members alone: the same on land
    np.testing.assert_array_equal(model.predict_arrays(features)[~sea], labels[~sea])
    np.testing.assert_allclose(model.proba_arrays(features)[~sea], proba[~sea])
    with pytest.raises(EarthOpsError, match="params.land_only 'yes'"):
        TrainConfig.from_options(TrainOptions(params={"land_only": "yes"}))


def test_on_land_figures_leave_out_the_open_ocean(mirror: Path) -> None:
    """Without ``land_only`` water comes mostly from the open ocean, which is easy;
    ``on_land`` scores the headline without those rows."""
    from earthops.usecases.landcover_global import land_mask

    metrics = get_usecase("landcover-global").train(
        TrainOptions(protocol="igbp7", fast=True, params={**PARAMS, "land_only": False})
    )
    on_land = metrics["on_land"]
    pixels = _training_pixels(metrics)
    land = land_mask(load_feature_grid(GridSpec.model_validate(GRID)))
    ocean = ~land[pixels["row"].to_numpy(), pixels["col"].to_numpy()]
    assert on_land["n_open_water"] == int(ocean.sum()) > 0
    assert set(pixels["label"][ocean]) == {0}  # only water lies off land
    assert on_land["n_samples"] + on_land["n_open_water"] == metrics["n_samples"]
    assert on_land["overall_accuracy"] < metrics["overall_accuracy"]
    assert 0.0 <= on_land["baseline"]["overall_accuracy"] <= 1.0

    # no sea class here, yet the gate (trained on land) never calls the open sea other land
    model = load_model(metrics["model_uri"])
    assert model.sea_class is None and model.has_outside_gate
    rows, cols = pixels["row"].to_numpy()[ocean], pixels["col"].to_numpy()[ocean]
    features = load_feature_grid(GridSpec.model_validate(GRID)).values(rows, cols)
    assert not model.outside_arrays(features).any()
    assert not model.outside_proba(features).any()
    scored = get_usecase("landcover-global").evaluate(metrics["model_uri"], EvalOptions())
    assert scored["population"].startswith("class-balanced: ")  # open ocean included


def test_area_proportional_probe_samples_the_map_population(trained: dict[str, Any]) -> None:
    """The map-user estimate: land pixels of held-out blocks, never the excluded box."""
    from earthops.usecases.landcover_global import _Sample, land_mask, probe_sample
    from earthops.usecases.landcover_global.area import map_population
    from earthops.usecases.landcover_global.samples import _Inputs

    area = trained["area_proportional"]
    assert area["n_samples"] == 6000 and area["population_pixels"] > area["n_samples"]
    assert area["model_decision"] == "balanced"  # the default rule of the logged model
    for rule in ("balanced_decision", "prior_corrected"):
        assert 0.3 < area[rule]["overall_accuracy"] <= 1.0  # a real model, not chance (1/7)

    pixels = _training_pixels(trained)
    labels = read_labels()
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    rows, cols = pixels["row"].to_numpy(), pixels["col"].to_numpy()
    y, folds = pixels["label"].to_numpy(), pixels["fold"].to_numpy()
    data = _Sample(rows, cols, y, grid.values(rows, cols))
    cfg = TrainConfig.from_options(TrainOptions(protocol="igbp7", fast=True, params=dict(PARAMS)))
    inputs = _Inputs(cfg, labels, land_mask(grid), grid, [EXCLUDED])
    probe = probe_sample(inputs, map_population(inputs, data, folds), data, folds)
    assert land_mask(grid)[probe.rows, probe.cols].all()
    assert not in_bboxes(probe.rows, probe.cols, [EXCLUDED]).any()
    assert np.isin(probe.y, range(7)).all()
    fold_of_block = dict(zip(block_ids(rows, cols).tolist(), folds.tolist(), strict=False))
    assert all(
        fold_of_block[b] == f
        for b, f in zip(block_ids(probe.rows, probe.cols), probe.fold, strict=True)
    )
    # the probe follows the map's class shares, not the balanced sample's 1/7 each
    shares = np.bincount(probe.y, minlength=7) / probe.y.size
    assert shares.max() > 0.25 and shares.min() < 0.05
    # prior correction: population share / sample share, zero for classes never drawn
    assert probe.priors.shape == (3, 7) and (probe.priors >= 0).all()


def test_area_decision_reweights_probabilities_to_the_map_class_mix(
    trained: dict[str, Any],
) -> None:
    from earthops.usecases.landcover_global import decide

    model = load_model(trained["model_uri"])
    assert model.decision == "balanced" and len(model.prior_shift) == 7
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    rows, cols = sample_pixels(read_labels(), range(7), 30, seed=9, include=[BBox(*REGION)])
    X = grid.values(rows, cols)
    raw = model.proba_arrays(X)
    shift = np.array([4.0, 1.0, 0.1, 1.0, 1.0, 1.0, 0.5])
    model.decision, model.prior_shift = "area", shift.tolist()
    shifted = model.proba_arrays(X)
    np.testing.assert_allclose(shifted.sum(axis=1), 1.0)
    expected = decide(raw, range(7), shift)
    np.testing.assert_array_equal(model.classes_[np.argmax(shifted, axis=1)], expected)
    assert (expected == 0).sum() >= (decide(raw, range(7)) == 0).sum()  # water favoured
    with pytest.raises(EarthOpsError, match="params.decision 'bayes'"):
        TrainConfig.from_options(TrainOptions(params={"decision": "bayes"}))


def test_evaluate_inside_the_excluded_box(trained: dict[str, Any]) -> None:
    usecase = get_usecase("landcover-global")
    metrics = usecase.evaluate(trained["model_uri"], EvalOptions(bboxes=[EXCLUDED]))
    assert {"overall_accuracy", "macro_f1", "kappa", "per_class"} <= set(metrics)
    assert metrics["bboxes"] == [str(EXCLUDED)]
    assert metrics["population"] == "every labelled pixel on land in the boxes"
    assert metrics["n_samples"] > 1000  # every labelled igbp7 pixel in the box
    assert "evergreen broadleaf forest" in metrics["per_class"]
    assert 0.0 <= metrics["overall_accuracy"] <= 1.0
    assert metrics["holdout"] is True and metrics["training_area_share"] == 0.0

    # the outside gate in the box: the igbp7 pixels it keeps, the other land it catches
    gate = metrics["outside_gate"]
    assert gate["n_inside"] == metrics["n_samples"] and gate["n_outside"] > 1000
    model = load_model(trained["model_uri"])
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    labels = read_labels()
    rows, cols = np.nonzero(land_mask(grid) & np.isin(labels, range(7, 17)))
    boxed = in_bboxes(rows, cols, [EXCLUDED])
    caught = model.outside_arrays(grid.values(rows[boxed], cols[boxed]))
    assert gate["n_outside"] == min(boxed.sum(), 50_000)
    assert gate["outside_caught"] == pytest.approx(caught.mean(), abs=0.01)
    assert gate["outside_caught"] > 0.5 and gate["inside_kept"] > 0.5

    # the map over all land in the box, as a user would score the written map pixel by pixel
    rows, cols = np.nonzero(land_mask(grid) & np.isin(labels, range(17)))
    boxed = in_bboxes(rows, cols, [EXCLUDED])
    X, truth = grid.values(rows[boxed], cols[boxed]), labels[rows[boxed], cols[boxed]]
    truth = np.where(truth < 7, truth, OUTSIDE)
    forced = model.predict_arrays(X)
    drawn = np.where(model.outside_arrays(X), OUTSIDE, forced)
    figures = gate["map"]
    assert figures["population_pixels"] == {
        "inside": int((truth < 7).sum()),
        "outside": int((truth == OUTSIDE).sum()),
    }
    # evaluate thins the box's 51 000 igbp7 pixels to 50 000: an estimate, close to exact
    assert figures["with_gate"]["overall_accuracy"] == pytest.approx(
        np.mean(drawn == truth), abs=2e-3
    )
    assert figures["without_gate"]["overall_accuracy"] == pytest.approx(
        np.mean(forced == truth), abs=2e-3
    )
    assert figures["with_gate"]["overall_accuracy"] > figures["without_gate"]["overall_accuracy"]


def test_evaluate_defaults_to_the_held_out_region_and_flags_overlap(
    trained: dict[str, Any],
) -> None:
    usecase = get_usecase("landcover-global")
    default = usecase.evaluate(trained["model_uri"], EvalOptions())
    assert default["bboxes"] == [str(EXCLUDED)]  # nothing given: where it never trained
    assert default["holdout"] is True
    inside = usecase.evaluate(trained["model_uri"], EvalOptions(bboxes=[EXCLUDED]))
    assert default["n_samples"] == inside["n_samples"]
    assert default["overall_accuracy"] == inside["overall_accuracy"]

    # a box half over the training area: the score is flagged, with the share it overlaps
    straddling = BBox.parse("17.5,-5,32.5,10")
    mixed = usecase.evaluate(trained["model_uri"], EvalOptions(bboxes=[straddling]))
    assert mixed["holdout"] is False
    assert 0.3 < mixed["training_area_share"] < 0.7


def test_evaluate_scores_labelled_csv_and_geotiff_datasets(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    usecase = get_usecase("landcover-global")
    model = load_model(trained["model_uri"])
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    labels = read_labels()
    rows, cols = np.nonzero(land_mask(grid) & (labels < 17))
    boxed = in_bboxes(rows, cols, [EXCLUDED])
    rows, cols = rows[boxed][::3], cols[boxed][::3]  # points on a third of the box's land
    lon, lat = pixel_lonlat(rows, cols)
    y = labels[rows, cols].astype(np.int64)
    points = tmp_path / "points.csv"
    pd.DataFrame({"lon": lon, "lat": lat, "label": y}).to_csv(points, index=False)

    scored = usecase.evaluate(trained["model_uri"], EvalOptions(dataset=points))
    inside = y < 7
    assert scored["source"] == str(points) and scored["n_samples"] == inside.sum()
    X = grid.values(rows, cols)
    forced = model.predict_arrays(X)
    assert scored["overall_accuracy"] == pytest.approx(np.mean(forced[inside] == y[inside]), 1e-4)
    assert scored["holdout"] is True
    # every point is scored, so the map figure over the points is exact
    truth = np.where(inside, y, OUTSIDE)
    drawn = np.where(model.outside_arrays(X), OUTSIDE, forced)
    figures = scored["outside_gate"]["map"]
    assert figures["population_pixels"] == {"inside": inside.sum(), "outside": (~inside).sum()}
    assert figures["with_gate"]["overall_accuracy"] == pytest.approx(np.mean(drawn == truth), 1e-4)

    # a label raster on the CMG grid, labelled only inside the box: a class-balanced sample
    # of it lies in the box, and stands for no area (rates only, no map figure)
    boxed_labels = np.full_like(labels, 255)
    r0, r1, c0, c1 = 1600, 1900, 3800, 4100  # 10..25 E, -5..10 N
    boxed_labels[r0:r1, c0:c1] = labels[r0:r1, c0:c1]
    raster = _write_labels(tmp_path / "labels.tif", boxed_labels)
    sampled = usecase.evaluate(trained["model_uri"], EvalOptions(dataset=raster))
    assert sampled["source"] == str(raster) and sampled["population"].startswith("class-balanced")
    assert sampled["training_area_share"] == 0.0 and sampled["holdout"] is True
    assert "map" not in sampled["outside_gate"] and sampled["outside_gate"]["n_outside"] > 0

    # bad datasets: clear errors naming what is wrong
    (tmp_path / "no_label.csv").write_text("lon,lat\n10,0\n")
    with pytest.raises(DataError, match=r"missing columns \['label'\]"):
        usecase.evaluate(trained["model_uri"], EvalOptions(dataset=tmp_path / "no_label.csv"))
    (tmp_path / "bad_row.csv").write_text("lon,lat,label\n10,0,2\n12,north,2\n")
    with pytest.raises(DataError, match=r"1 row\(s\).*first: data row 2"):
        usecase.evaluate(trained["model_uri"], EvalOptions(dataset=tmp_path / "bad_row.csv"))
    with pytest.raises(DataError, match="not found"):
        usecase.evaluate(trained["model_uri"], EvalOptions(dataset=tmp_path / "missing.csv"))
    small = _write_labels(tmp_path / "small.tif", np.zeros((50, 100), np.uint8))  # off the grid
    with pytest.raises(DataError, match="expected a 7200x3600 label raster.*got 100x50"):
        usecase.evaluate(trained["model_uri"], EvalOptions(dataset=small))


def test_bad_protocol_and_bbox_are_clear_errors(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(EarthOpsError, match="unknown protocol 'igbp9'.*igbp7, igbp17"):
        TrainConfig.from_options(TrainOptions(protocol="igbp9"))
    with pytest.raises(EarthOpsError, match="minx,miny,maxx,maxy"):
        BBox.parse("10,20,30")
    with pytest.raises(EarthOpsError, match="minx<maxx"):
        BBox.parse("30,0,10,10")
    usecase = get_usecase("landcover-global")
    with pytest.raises(EarthOpsError, match="no labelled pixels"):  # outside the grid region
        usecase.evaluate(trained["model_uri"], EvalOptions(bboxes=[BBox.parse("100,0,110,10")]))
    with pytest.raises(EarthOpsError, match="needs classes"):
        usecase.evaluate(trained["model_uri"], EvalOptions(protocol="igbp17"))
    with pytest.raises(DataError, match="outside the feature grid"):
        load_feature_grid(GridSpec.model_validate(GRID)).values(np.array([10]), np.array([10]))
    monkeypatch.setattr(
        sys, "argv", ["earthops", "train", "landcover-global", "--protocol", "igbp9"]
    )
    saved = structlog.get_config()  # the CLI points logging at the captured streams
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        structlog.configure(**saved)
    assert exit_info.value.code == 1
    printed = capsys.readouterr()
    assert "unknown protocol 'igbp9'" in printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err


def test_map_is_a_valid_cog_with_palette(trained: dict[str, Any], tmp_path: Path) -> None:
    usecase = get_usecase("landcover-global")
    out = usecase.predict_raster(trained["model_uri"], [], tmp_path / "igbp.tif")
    report = validate_cog(out)
    assert report.is_valid, report.errors
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.overviews(1)
        assert ds.crs.to_epsg() == 4326
        left, bottom, right, top = ds.bounds
        assert (left, bottom, right, top) == pytest.approx(REGION, abs=0.2)
        cmap = ds.colormap(1)
        mapped = ds.read(1)
    values = np.unique(mapped)
    assert set(values.tolist()) - {255} <= {*range(7), OUTSIDE}
    assert len(set(values.tolist()) - {255, OUTSIDE}) >= 4  # a real map, not one class
    names = read_class_names(out)
    assert names[0] == "water" and names[2] == "evergreen broadleaf forest"
    assert names[OUTSIDE] == "other land (none of the igbp7 classes)"
    assert cmap[2][:3] != cmap[0][:3] and cmap[OUTSIDE][:3] == (190, 190, 190)
    with rasterio.open(out) as ds:  # the Sahara (barren, open shrubland) is none of igbp7's
        r0, c0 = ds.index(-5.0, 28.0)
        r1, c1 = ds.index(25.0, 15.0)
    assert np.mean(mapped[r0:r1, c0:c1] == OUTSIDE) > 0.9

    prob = usecase.predict_raster(
        trained["model_uri"], [], tmp_path / "igbp_p.tif", with_probability=True
    )
    assert validate_cog(prob).is_valid
    with rasterio.open(prob) as ds:
        assert ds.count == 2 and ds.descriptions == ("igbp", "max_probability_pct")
        classes, p = ds.read(1), ds.read(2)
    assert 0 < p.max() <= 100
    assert (p[classes == OUTSIDE] >= np.floor(100 * THRESHOLD)).all()  # the gate's P(outside)
    np.testing.assert_array_equal(classes, mapped)  # both decision paths agree


def test_outside_gate_is_block_validated_on_the_other_classes(trained: dict[str, Any]) -> None:
    gate = trained["outside_gate"]
    assert gate["classes"] == list(outside_classes("igbp7")) == list(range(7, 17))
    assert outside_classes("igbp17") == ()
    pixels = _training_pixels(trained, OUTSIDE_PIXELS)
    assert len(pixels) == gate["n_outside"] > 0
    assert set(pixels["label"]) <= set(range(7, 17)) and pixels["label"].nunique() >= 5
    lon, lat = pixels["lon"].to_numpy(), pixels["lat"].to_numpy()
    assert not EXCLUDED.contains(lon, lat).any() and BBox(*REGION).contains(lon, lat).all()
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    land = land_mask(grid)
    assert land[pixels["row"].to_numpy(), pixels["col"].to_numpy()].all()
    # drawn by area: each class as common as on the land they were drawn from
    labels = read_labels()
    rows, cols = np.nonzero(land & np.isin(labels, range(7, 17)))
    drawable = in_bboxes(rows, cols, [BBox(*REGION)]) & ~in_bboxes(rows, cols, [EXCLUDED])
    population = labels[rows[drawable], cols[drawable]]
    shares = pixels["label"].value_counts(normalize=True)
    for cls in range(7, 17):
        share = np.mean(population == cls)
        four_se = 4 * np.sqrt(share * (1 - share) / len(pixels)) + 1e-3
        assert shares.get(cls, 0.0) == pytest.approx(share, abs=four_se), cls
    # one fold per block, shared with the class sample's pixels in that block
    both = pd.concat([_training_pixels(trained), pixels])
    blocks = block_ids(both["row"].to_numpy(), both["col"].to_numpy())
    assert (pd.Series(both["fold"].to_numpy()).groupby(blocks).nunique() == 1).all()
    assert gate["block_cv"]["overall_accuracy"] > 0.7

    # the map figures: forced labels are right on the protocol's land only (the probe)
    m = gate["map"]
    share, kept, caught = m["outside_share"], m["inside_kept"], m["outside_caught"]
    inside, outside = m["population_pixels"]["inside"], m["population_pixels"]["outside"]
    assert inside == trained["area_proportional"]["population_pixels"]
    assert share == pytest.approx(outside / (inside + outside), abs=1e-4)
    probe = trained["area_proportional"]["balanced_decision"]["overall_accuracy"]
    assert m["without_gate"]["overall_accuracy"] == pytest.approx((1 - share) * probe, abs=1e-3)
    gated = m["with_gate"]["overall_accuracy"]  # kept-and-correct lies between the bounds
    assert gated <= (1 - share) * min(kept, probe) + share * caught + 1e-3
    assert gated >= (1 - share) * max(kept + probe - 1, 0) + share * caught - 1e-3
    assert gated > m["without_gate"]["overall_accuracy"] + 0.5  # most of the land is outside


def test_outside_gate_flags_land_pixels_and_leaves_class_labels_alone(
    trained: dict[str, Any],
) -> None:
    model = load_model(trained["model_uri"])
    assert model.has_outside_gate
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    labels = read_labels()
    rows, cols = sample_pixels(labels, range(17), 150, seed=9, include=[BBox(*REGION)])
    X, y = grid.values(rows, cols), labels[rows, cols]
    flagged, p_outside = model.outside_arrays(X), model.outside_proba(X)
    assert model.gate_threshold == THRESHOLD != 0.5  # the logged model carries its threshold
    np.testing.assert_array_equal(flagged, p_outside > THRESHOLD)  # labels == probabilities
    sea = ~land_mask(grid)[rows, cols]
    assert sea.any() and not flagged[sea].any() and (p_outside[sea] == 0).all()
    other = np.isin(y, outside_classes("igbp7")) & ~sea
    assert flagged[other].mean() > flagged[~other & ~sea].mean() + 0.4
    labelled = model.predict_arrays(X)
    assert set(labelled.tolist()) <= set(range(7))  # the class model never says "other"
    gate, model.outside_gate = model.outside_gate, None
    assert not model.has_outside_gate and not model.outside_arrays(X).any()
    np.testing.assert_array_equal(model.predict_arrays(X), labelled)
    model.outside_gate = gate
    del model.__dict__["outside_threshold"]  # logged before the threshold was stored
    assert model.gate_threshold == 0.5
    np.testing.assert_array_equal(model.outside_arrays(X), p_outside > 0.5)
    del model.__dict__["outside_gate"]  # a model logged before the gate
    assert not model.has_outside_gate and not model.outside_proba(X).any()
    with pytest.raises(EarthOpsError, match="params.outside_gate 'yes'"):
        TrainConfig.from_options(TrainOptions(params={"outside_gate": "yes"}))


def test_map_from_user_inputs_reads_their_pixels(
    trained: dict[str, Any], mirror: Path, tmp_path: Path
) -> None:
    """``--input`` rasters replace the catalog's: the catalog file itself reuses the cached
    grid, a lossless GeoTIFF copy of its pixels gives the same map from a grid of its own, and
    other pixels give another map."""
    usecase = get_usecase("landcover-global")
    uri, catalog_bmng = trained["model_uri"], mirror / "modis" / "bmng_2004_5400x2700.jpg"
    base = usecase.predict_raster(uri, [], tmp_path / "catalog.tif")
    grids = {p.name for p in cache_root().iterdir()}
    same = usecase.predict_raster(uri, [catalog_bmng], tmp_path / "same.tif")
    assert {p.name for p in cache_root().iterdir()} == grids  # same content: cached grid
    with rasterio.open(catalog_bmng) as src:
        rgb = src.read()
    profile = {
        "driver": "GTiff", "width": 5400, "height": 2700, "count": 3, "dtype": "uint8",
        "crs": "EPSG:4326", "transform": from_bounds(-180, -90, 180, 90, 5400, 2700),
    }  # fmt: skip
    copy, darker = tmp_path / "bmng_copy.tif", tmp_path / "bmng_darker.tif"
    with rasterio.open(copy, "w", **profile) as dst:
        dst.write(rgb)
    with rasterio.open(darker, "w", **profile) as dst:
        dst.write(rgb // 2)
    from_copy = usecase.predict_raster(uri, [copy], tmp_path / "copy.tif")
    from_darker = usecase.predict_raster(uri, [darker], tmp_path / "darker.tif")
    assert len({p.name for p in cache_root().iterdir()} - grids) == 2  # one grid per source
    assert validate_cog(from_darker).is_valid

    def read(path: Path) -> np.ndarray:
        with rasterio.open(path) as ds:
            return ds.read(1)

    expected = read(base)
    np.testing.assert_array_equal(read(same), expected)
    np.testing.assert_array_equal(read(from_copy), expected)
    changed = read(from_darker) != expected
    assert changed[expected != 255].mean() > 0.05  # the model saw the darker colours


def test_mismatched_map_inputs_raise_signature_error(
    trained: dict[str, Any], mirror: Path, tmp_path: Path
) -> None:
    usecase = get_usecase("landcover-global")
    uri, out = trained["model_uri"], tmp_path / "never.tif"
    mcd = mirror / "modis" / "MCD12C1.A2019001.006.2020220162300.tif"
    with pytest.raises(SignatureError, match=r"koppen-geiger\): shape 7200x3600"):
        usecase.predict_raster(uri, [mcd], out)
    wrong_crs = tmp_path / "rgb_3857.tif"
    with rasterio.open(
        wrong_crs, "w", driver="GTiff", width=5400, height=2700, count=3, dtype="uint8",
        crs="EPSG:3857", transform=from_bounds(-2e7, -1e7, 2e7, 1e7, 5400, 2700),
        compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(np.zeros((3, 2700, 5400), dtype=np.uint8))
    with pytest.raises(SignatureError, match="CRS EPSG:3857; the model expects EPSG:4326"):
        usecase.predict_raster(uri, [wrong_crs], out)
    two_band = tmp_path / "two.tif"
    with rasterio.open(
        two_band, "w", driver="GTiff", width=8, height=8, count=2, dtype="uint8"
    ) as dst:
        dst.write(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(SignatureError, match="2 band"):
        usecase.predict_raster(uri, [two_band], out)
    bmng = mirror / "modis" / "bmng_2004_5400x2700.jpg"
    with pytest.raises(SignatureError, match=r"a second bmng-2004 input \(first: .*bmng_2004"):
        usecase.predict_raster(uri, [bmng, bmng], out)
    assert not out.exists()


def test_vit_member_reads_blue_marble_chips(mirror: Path) -> None:
    """A model with a ViT member takes the flattened chips from its input table."""
    from earthops.features.global_grid import chip_columns, extract_chips, flatten_chips
    from earthops.models.vit import ViTClassifier
    from earthops.usecases.landcover_global import GlobalLandCoverModel, _vit_input

    labels = read_labels()
    rows, cols = sample_pixels(labels, (0, 2, 6), 60, seed=5)
    y = labels[rows, cols]
    chips = extract_chips(rows, cols, 8)
    assert chips.shape == (rows.size, 3, 8, 8) and chips.dtype == np.uint8
    vit = ViTClassifier(patch_size=4, dim=16, depth=1, heads=2, epochs=2, batch_size=64)
    model = GlobalLandCoverModel(
        members={"vit": vit.fit(_vit_input(chips), y)},
        feature_names=["lat"],
        classes=[0, 2, 6],
        chip_size=8,
    )
    table = pd.concat(
        [
            pd.DataFrame({"lat": np.zeros(rows.size)}),
            pd.DataFrame(flatten_chips(chips), columns=chip_columns(8)),
        ],
        axis=1,
    )
    proba = model.predict_proba(table)
    assert proba.shape == (rows.size, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(EarthOpsError, match="chips are required"):
        model.proba_arrays(np.zeros((2, 1), dtype=np.float32))


def test_grid_block_reads_regular_and_irregular_indexes_alike(mirror: Path) -> None:
    """``block`` (strided read for evenly spaced rows/cols, gather otherwise) == ``values``."""
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    r0, _, c0, _ = grid.spec.window()
    for rows, cols in (
        (np.arange(r0 + 1, r0 + 41, 4), np.arange(c0 + 2, c0 + 302, 3)),  # regular: slices
        (np.array([r0 + 5, r0 + 6, r0 + 90]), np.array([c0 + 1, c0 + 50, c0 + 51])),  # gather
        (np.array([r0 + 7]), np.arange(c0, c0 + 10, 2)),
    ):
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        expected = grid.values(rr.ravel(), cc.ravel())
        np.testing.assert_array_equal(grid.block(rows, cols), expected)


def test_grid_koppen_context_is_the_window_mean_of_the_group_fractions(mirror: Path) -> None:
    """The Köppen-Geiger context layers are stored in place: each equals the moving-window
    mean of its group's stored fraction (interior pixels, where no window is cut by an edge)."""
    from scipy.ndimage import uniform_filter

    grid = load_feature_grid(GridSpec.model_validate(GRID))
    names = grid.spec.stored_names()
    assert grid.spec.koppen_windows == (15, 61, 121, 241)  # the default
    for group in ("arid", "cold"):
        fraction = np.asarray(grid.data[names.index(f"koppen_{group}")], dtype=np.float64)
        assert 0 < fraction.mean() < 1
        for window in (15, 241):
            stored = np.asarray(grid.data[names.index(f"koppen_{group}_mean_w{window}")])
            expected = uniform_filter(fraction, size=window, mode="constant")
            inner = (slice(window, -window), slice(window, -window))
            np.testing.assert_allclose(stored[inner], expected[inner], atol=1e-5)


def test_grid_spec_of_an_older_model_has_no_koppen_context() -> None:
    """Model metadata written before ``koppen_windows`` existed maps to the grid those models
    were trained on: no context layers (and a cache key of its own)."""
    stored = GridSpec(koppen_windows=()).model_dump(mode="json")
    stored.pop("koppen_windows")
    old = GridSpec.from_metadata(stored)
    assert old.koppen_windows == ()
    assert not any("koppen" in n and "_mean_w" in n for n in old.feature_names())
    assert GridSpec.from_metadata(json.dumps(stored)) == old
    assert old.key() != GridSpec().key()
    assert len(GridSpec().feature_names()) == len(old.feature_names()) + 5 * 4


def test_area_proportional_metrics_of_an_empty_probe_has_no_scores() -> None:
    """A grid region without land pixels of the protocol: the section says so, no crash."""
    from earthops.usecases.landcover_global import _Probe, area_proportional_metrics

    none = np.zeros(0, dtype=np.int64)
    probe = _Probe(none, none, none, np.zeros((0, 3), np.float32), none, np.ones((3, 2)), 0, none)
    area = area_proportional_metrics(probe, np.zeros((0, 2)), [0, 1], "balanced")
    assert area["n_samples"] == 0 and area["population_pixels"] == 0
    assert "balanced_decision" not in area and "prior_corrected" not in area


def test_area_proportional_extras_train_the_map_not_the_headline(mirror: Path) -> None:
    """``n_random``: land pixels drawn in proportion to area join training; the headline is
    still scored on the class-balanced rows, with the balanced decision shifted back."""
    from earthops.usecases.landcover_global import balance_shift, land_mask

    params = {**PARAMS, "n_random": 3000}
    options = TrainOptions(protocol="igbp7", fast=True, exclude_bboxes=[EXCLUDED], params=params)
    metrics = get_usecase("landcover-global").train(options)
    pixels = _training_pixels(metrics)
    n_extra = metrics["validation"]["n_area_proportional"]
    assert n_extra == 3000 and "area-proportional" in metrics["validation"]["sampling"]
    assert metrics["n_samples"] == len(pixels) - n_extra  # headline: balanced rows only
    extras = pixels.iloc[-n_extra:]
    rows, cols = extras["row"].to_numpy(), extras["col"].to_numpy()
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    assert land_mask(grid)[rows, cols].all()
    assert not in_bboxes(rows, cols, [EXCLUDED]).any()
    assert not pixels.duplicated(["row", "col"]).any()  # no pixel drawn twice
    # drawn from the probe's population: blocks of the balanced sample, in their block's fold
    blocks = block_ids(pixels["row"].to_numpy(), pixels["col"].to_numpy())
    assert set(blocks[-n_extra:]) <= set(blocks[:-n_extra])
    assert (pd.Series(pixels["fold"].to_numpy()).groupby(blocks).nunique() == 1).all()
    shares = np.bincount(extras["label"], minlength=7) / n_extra  # the map's mix, not 1/7
    assert shares.max() > 0.25 and shares.min() < 0.05

    model = load_model(metrics["model_uri"])
    assert model.decision == "balanced"
    shift = np.asarray(model.balance_shift)
    np.testing.assert_allclose(shift, balance_shift(pixels["label"].to_numpy(), range(7)))
    np.testing.assert_array_equal(model.decision_shift, shift)
    X = grid.values(rows[:200], cols[:200])
    model.balance_shift = None
    raw = model.proba_arrays(X)
    model.balance_shift = shift.tolist()
    np.testing.assert_array_equal(
        model.predict_arrays(X), model.classes_[np.argmax(raw * shift, axis=1)]
    )
    area = metrics["area_proportional"]
    assert 0.3 < area["balanced_decision"]["overall_accuracy"] <= 1.0


def test_balance_shift_units() -> None:
    from earthops.usecases.landcover_global import balance_shift

    shift = balance_shift(np.array([0, 0, 1, 2]), [0, 1, 2, 3])
    np.testing.assert_allclose(shift, [0.5, 1.0, 1.0, 0.0])  # (1/4) / share; unseen -> 0
    with pytest.raises(EarthOpsError, match="params.n_random -5"):
        TrainConfig.from_options(TrainOptions(params={"n_random": -5}))


def test_area_decision_defaults_to_area_proportional_extras() -> None:
    from earthops.usecases.landcover_global.config import AREA_EXTRAS

    def n_random(fast: bool = False, **params: Any) -> int:
        return TrainConfig.from_options(TrainOptions(fast=fast, params=params)).n_random

    assert n_random() == 0 and n_random(decision="balanced") == 0
    assert n_random(decision="area") == AREA_EXTRAS > 0
    assert n_random(fast=True, decision="area") == AREA_EXTRAS // 10
    assert n_random(decision="area", n_random=0) == 0  # an explicit count wins


def test_area_decision_run_selects_on_the_map_probe(mirror: Path) -> None:
    params = {**PARAMS, "decision": "area"}
    metrics = get_usecase("landcover-global").train(
        TrainOptions(protocol="igbp7", fast=True, params=params)
    )
    assert "area-proportional probe" in metrics["selection"]["rule"]
    assert metrics["validation"]["n_area_proportional"] > 0  # the area rule's default extras
    area = metrics["area_proportional"]
    assert area["model_decision"] == "area"
    # the Bayes correction is what a map's class mix rewards; a fast run's probabilities are
    # rough, so it may gain nothing there, but a shift the wrong way would cost many points
    assert (
        area["prior_corrected"]["overall_accuracy"]
        >= area["balanced_decision"]["overall_accuracy"] - 0.01
    )
    model = load_model(metrics["model_uri"])
    np.testing.assert_array_equal(model.decision_shift, model.prior_shift)
    gate_map = metrics["outside_gate"]["map"]  # the gate's figures follow the model's decision
    assert gate_map["without_gate"]["overall_accuracy"] == pytest.approx(
        (1 - gate_map["outside_share"]) * area["prior_corrected"]["overall_accuracy"], abs=1e-3
    )

    # a map model is scored, by default, on the map's own class mix: a simple random sample
    # of the land pixels, whose class shares are those of the whole population
    from earthops.data.legends import IGBP
    from earthops.usecases.landcover_global import land_mask

    scored = get_usecase("landcover-global").evaluate(metrics["model_uri"], EvalOptions())
    assert scored["population"].startswith("area-proportional")
    grid = load_feature_grid(GridSpec.model_validate(GRID))
    labels = read_labels()
    rows, cols = np.nonzero(land_mask(grid) & np.isin(labels, range(7)))
    inside = in_bboxes(rows, cols, [BBox(*REGION)])
    population = labels[rows[inside], cols[inside]]
    names = IGBP.names()
    for cls in range(7):
        support = scored["per_class"].get(names[cls], {}).get("support", 0)
        expected = np.mean(population == cls)
        assert abs(support / scored["n_samples"] - expected) < 0.01, names[cls]
    o_rows, o_cols = np.nonzero(land_mask(grid) & np.isin(labels, range(7, 17)))
    assert scored["outside_gate"]["map"]["population_pixels"] == {
        "inside": population.size,  # the random sample stands for every land pixel
        "outside": int(in_bboxes(o_rows, o_cols, [BBox(*REGION)]).sum()),
    }


def test_predict_records_equal_the_evaluate_path_at_the_same_pixels(
    trained: dict[str, Any],
) -> None:
    """The serving contract: lon/lat records get the grid's features at their pixel and the
    same class (and gate verdict) as ``evaluate``'s ``predict_arrays`` on those features; an
    explicit feature vector gets the same answer as its place."""
    from earthops.features.global_grid import lonlat_to_pixel
    from earthops.registry.inference import load
    from earthops.usecases.landcover_global.serving import PixelRecord

    usecase = get_usecase("landcover-global")
    loaded = load(trained["model_uri"], usecase="landcover-global")
    rng = np.random.default_rng(5)
    lon = rng.uniform(REGION[0] + 1, REGION[2] - 1, 40)
    lat = rng.uniform(REGION[1] + 1, REGION[3] - 1, 40)
    records = [PixelRecord(lon=x, lat=y) for x, y in zip(lon, lat, strict=True)]
    answers = usecase.predict_records(loaded, records)

    grid = load_feature_grid(GridSpec.model_validate(GRID))
    rows, cols = lonlat_to_pixel(lon, lat)
    features = grid.values(rows, cols)
    expected = loaded.model.predict_arrays(features)
    assert [a.class_code for a in answers] == expected.tolist()
    outside = loaded.model.outside_arrays(features)
    assert [a.outside_gate for a in answers] == outside.tolist()
    for answer in answers:
        assert answer.class_name == IGBP.names()[answer.class_code]
        assert sum(answer.probabilities.values()) == pytest.approx(1.0)

    explicit = dict(zip(grid.feature_names, features[0].tolist(), strict=True))
    again = usecase.predict_records(loaded, [PixelRecord(features=explicit)])[0]
    assert again.class_code == answers[0].class_code
    assert again.probabilities == pytest.approx(answers[0].probabilities)
    with pytest.raises(SignatureError, match="missing"):
        usecase.predict_records(loaded, [PixelRecord(features={"koppen": 1.0})])
    with pytest.raises(ValueError, match="either both"):
        PixelRecord(lon=1.0)
