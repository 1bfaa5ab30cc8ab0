"""landcover-timeseries: fast train end to end, evaluate, the Sinop map, bad input."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthops.data import catalog
from earthops.errors import DataError, EarthOpsError, SignatureError
from earthops.raster.cog import read_class_names, validate_cog
from earthops.usecases import get_usecase
from earthops.usecases.base import CLASSIFICATION_KEYS, EvalOptions, TrainOptions

CLASSES = {
    "Cerrado",
    "Fallow_Cotton",
    "Forest",
    "Pasture",
    "Soy_Corn",
    "Soy_Cotton",
    "Soy_Fallow",
    "Soy_Millet",
    "Soy_Sunflower",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> dict:
    """One fast training run (all-bands protocol + the NDVI map model) in its own home."""
    from earthops.settings import get_settings

    home = tmp_path_factory.mktemp("ts_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("EARTHOPS_HOME", str(home))
    get_settings.cache_clear()
    metrics = get_usecase("landcover-timeseries").train(TrainOptions(fast=True))
    yield {"metrics": metrics, "home": home}
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture
def in_home(trained: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    from earthops.settings import get_settings

    monkeypatch.setenv("EARTHOPS_HOME", str(trained["home"]))
    get_settings.cache_clear()
    return trained


def test_fast_train_writes_design_metrics_and_a_loadable_model(in_home: dict) -> None:
    from earthops.registry.tracking import load_model, model_metadata

    m = in_home["metrics"]
    assert set(m) >= CLASSIFICATION_KEYS
    assert set(m["per_class"]) == CLASSES
    assert {"overall_accuracy", "macro_f1", "kappa", "per_class"} <= set(m["baseline"])
    assert m["baseline"]["overall_accuracy"] == pytest.approx(
        m["models"]["rf"]["overall_accuracy"], abs=1e-4
    )
    assert m["selected"] in m["models"] and "stack" in m["models"]
    assert m["macro_f1"] == pytest.approx(
        max(v["macro_f1"] for v in m["models"].values()), abs=0.01
    )
    assert m["overall_accuracy"] > 0.85 and m["macro_f1"] > 0.8  # fast, 3 folds
    assert m["ndvi_sinop"]["overall_accuracy"] > 0.7
    json.dumps(m, allow_nan=False)
    meta = model_metadata(m["model_uri"])
    assert meta["usecase"] == "landcover-timeseries" and set(meta["classes"]) == CLASSES
    assert meta["n_dates"] == 23 and meta["raster_signature"]["count"] == 12
    model = load_model(m["model_uri"])
    rows = np.zeros((2, len(meta["input_columns"])), np.float32) + 0.3
    assert set(model.predict(rows)) <= CLASSES
    assert model.predict_proba(rows).shape == (2, 9)


def test_evaluate_shared_json_and_clear_errors(in_home: dict, tmp_path: Path) -> None:
    uc = get_usecase("landcover-timeseries")
    uri = in_home["metrics"]["model_uri"]
    shared = catalog.resolve_one("mt-mod13q1-9classes")
    # a 300-sample subset of the shared file, plain JSON (the format users bring)
    records = json.loads(gzip.decompress(shared.read_bytes()))
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps(records[::5][:300]))
    scored = uc.evaluate(uri, EvalOptions(dataset=subset))
    assert scored["n_samples"] == 300 and scored["unknown_labels"] == []
    assert {"overall_accuracy", "macro_f1", "kappa", "per_class"} <= set(scored)
    assert scored["overall_accuracy"] > 0.9  # samples seen in training: near perfect

    bad = tmp_path / "bad.json"
    bad.write_text('[{"longitude": -55, "latitude": -12, "label": "Forest", "time_series": [')
    with pytest.raises(DataError, match="malformed JSON"):
        uc.evaluate(uri, EvalOptions(dataset=bad))
    no_band = tmp_path / "no_band.json"
    rec = records[0]
    rec = {
        **rec,
        "time_series": [{"Index": s["Index"], "ndvi": s["ndvi"]} for s in rec["time_series"]],
    }
    no_band.write_text(json.dumps([rec]))
    with pytest.raises(DataError, match="evi"):
        uc.evaluate(uri, EvalOptions(dataset=no_band))
    with pytest.raises(EarthOpsError, match="unknown protocol"):
        uc.train(TrainOptions(protocol="nope"))


def test_sinop_map_is_a_cog_with_the_classes(in_home: dict, tmp_path: Path) -> None:
    from earthops.models.mapping import predict_raster

    files = catalog.resolve("sinop-mod13q1-ndvi")
    assert len(files) == 12
    out = predict_raster(
        in_home["metrics"]["model_uri"], files, tmp_path / "sinop.tif", with_probability=False
    )
    assert validate_cog(out).is_valid
    with rasterio.open(out) as src:
        assert (src.height, src.width) == (147, 255)
        band = src.read(1)
        palette = src.colormap(1)
        assert src.overviews(1)
    names = read_class_names(out)
    assert set(names.values()) == CLASSES
    assert set(names) <= set(palette)
    present = set(np.unique(band)) - {0}
    assert present <= set(names) and len(present) >= 3  # a real map, not one class


def test_wrong_cube_raises_signature_error(in_home: dict, tmp_path: Path) -> None:
    from earthops.models.mapping import predict_raster

    files = catalog.resolve("sinop-mod13q1-ndvi")
    uri = in_home["metrics"]["model_uri"]
    with pytest.raises(SignatureError, match="11 time layer"):
        predict_raster(uri, files[:11], tmp_path / "x.tif")
    # same count, a date moved by a month: the layers no longer match the model's dates
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in files:
        shutil.copy(f, moved / f.name)
    last = sorted(moved.iterdir())[-1]
    last.rename(moved / last.name.replace("2014-08-29", "2014-08-01"))
    with pytest.raises(SignatureError, match="08-01"):
        predict_raster(uri, sorted(moved.iterdir()), tmp_path / "y.tif")


def test_tempcnn_member_learns_real_series_and_pickles(mirror: Path) -> None:
    import pickle

    from earthops.data.samples import read_mod13q1_samples
    from earthops.features.timeseries import TimeSeriesFeatures
    from earthops.usecases.landcover_timeseries import TempCNNClassifier

    s = read_mod13q1_samples(bands=("ndvi", "evi"))
    X = TimeSeriesFeatures(bands=s.bands, n_dates=23, derived=False).fit_transform(
        s.array.reshape(s.n_samples, -1)
    )
    rng = np.random.default_rng(0)
    order = rng.permutation(s.n_samples)
    train, test = order[:500], order[500:900]
    params = {"n_dates": 23, "n_channels": 2, "filters": 16, "hidden": 64, "epochs": 12}
    model = TempCNNClassifier(**params).fit(X[train], s.labels[train])
    acc = np.mean(model.predict(X[test]) == s.labels[test])
    assert acc > 0.75, acc
    again = TempCNNClassifier(**params).fit(X[train], s.labels[train])
    proba = model.predict_proba(X[test])
    np.testing.assert_array_equal(proba, again.predict_proba(X[test]))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict_proba(X[test]), proba)
    with pytest.raises(ValueError, match="columns"):
        model.predict_proba(X[:, :10])
