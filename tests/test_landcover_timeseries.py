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
from earthops.data.samples import read_mod13q1_samples
from earthops.errors import DataError, EarthOpsError, SignatureError
from earthops.raster.cog import read_class_names, validate_cog
from earthops.usecases import get_usecase
from earthops.usecases.base import CLASSIFICATION_KEYS, BBox, EvalOptions, TrainOptions

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
    choices = m["selection"]["choice_per_fold"]
    assert len(choices) == 3 and set(choices) <= set(m["models"])
    assert m["selected_plain_cv"] == m["models"][m["selected"]]
    if len(set(choices)) == 1:  # one candidate on every fold: the headline is its plain CV
        assert m["macro_f1"] == pytest.approx(m["models"][choices[0]]["macro_f1"], abs=1e-4)
    assert m["macro_f1"] <= max(v["macro_f1"] for v in m["models"].values()) + 0.02
    assert m["overall_accuracy"] > 0.85 and m["macro_f1"] > 0.8  # fast, 3 folds
    assert m["ndvi_sinop"]["overall_accuracy"] > 0.7
    json.dumps(m, allow_nan=False)
    # the spatial check: the real samples' Forest and Soy_Fallow each come from one small area
    spatial = m["spatial_check"]
    assert set(spatial["models"]) == set(spatial["random_folds"]) == {"rf", "svm"}
    assert {"Forest", "Soy_Fallow"} <= set(spatial["single_block_classes"])
    assert spatial["sites"]["Forest"]["places"] < spatial["sites"]["Forest"]["samples"]
    for kind, figures in spatial["models"].items():
        assert figures["recall"]["Forest"] == 0.0  # never in training when tested
        assert figures["overall_accuracy"] < spatial["random_folds"][kind]["overall_accuracy"]
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
    assert scored["training_sample_share"] == 1.0 and scored["holdout"] is False

    # the same places 28 years earlier (before MODIS; same leap-year cycle): held out
    def earlier(day: str) -> str:
        return f"{int(day[:4]) - 28}{day[4:]}"

    for rec in records[:40]:
        rec["start_date"], rec["end_date"] = earlier(rec["start_date"]), earlier(rec["end_date"])
        for step in rec["time_series"]:
            step["Index"] = earlier(step["Index"])
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(records[:40] + records[40:60]))
    mixed = uc.evaluate(uri, EvalOptions(dataset=moved))
    assert mixed["training_sample_share"] == round(20 / 60, 4) and mixed["holdout"] is False
    held_out = tmp_path / "held_out.json"
    held_out.write_text(json.dumps(records[:40]))
    assert uc.evaluate(uri, EvalOptions(dataset=held_out))["holdout"] is True

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


def test_train_on_a_users_samples_file(in_home: dict, tmp_path: Path) -> None:
    """``--dataset`` trains on the user's JSON: it is the run's lineage (with its SHA-256) and
    the model's training samples; bad files fail before a run is logged."""
    from earthops.data.identity import file_sha256
    from earthops.registry.tracking import configure, experiment_id, run_datasets

    uc = get_usecase("landcover-timeseries")
    shared = catalog.resolve_one("mt-mod13q1-9classes")
    records = json.loads(gzip.decompress(shared.read_bytes()))
    kept = [r for r in records if r["label"] in {"Cerrado", "Forest", "Pasture"}][::4]
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(kept))
    quick = {"spatial_block_deg": None, "with_map_model": False}
    m = uc.train(TrainOptions(fast=True, dataset=mine, params=quick))
    assert set(m["per_class"]) == {"Cerrado", "Forest", "Pasture"}
    assert m["n_samples"] == len(kept) and "ndvi_sinop" not in m
    assert run_datasets(m["run_id"]) == {"mine.json": file_sha256(mine)}
    scored = uc.evaluate(m["model_uri"], EvalOptions(dataset=mine))
    assert scored["training_sample_share"] == 1.0 and scored["holdout"] is False

    def n_runs() -> int:
        return len(configure().search_runs([experiment_id("landcover-timeseries")]))

    logged = n_runs()
    with pytest.raises(DataError, match=r"nowhere\.json.*not found"):
        uc.train(TrainOptions(fast=True, dataset=tmp_path / "nowhere.json", params=quick))
    rare = tmp_path / "rare.json"
    rare.write_text(json.dumps(kept + [r for r in records if r["label"] == "Soy_Corn"][:2]))
    with pytest.raises(DataError, match=r"rare\.json.*every class needs >= 3 samples"):
        uc.train(TrainOptions(fast=True, dataset=rare, params=quick))
    with pytest.raises(EarthOpsError, match="does not support --exclude-bbox"):
        uc.train(TrainOptions(fast=True, exclude_bboxes=[BBox.parse("-60,-15,-50,-10")]))
    assert n_runs() == logged >= 2  # nothing logged by the failures


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
    from earthops.models.tempcnn import TempCNNClassifier

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


def test_tempcnn_seed_ensemble_averages_members_deterministically() -> None:
    from earthops.models.tempcnn import TempCNNClassifier

    rng = np.random.default_rng(1)
    n, t, c = 120, 10, 2
    y = np.repeat(["a", "b", "c"], n // 3)
    base = {"a": np.sin, "b": np.cos, "c": lambda v: -np.sin(v)}
    series = np.stack([base[label](np.linspace(0, 3, t)) for label in y])[:, :, None]
    X = (series + rng.normal(0, 0.3, (n, t, c))).reshape(n, -1).astype(np.float32)
    params = {"n_dates": t, "n_channels": c, "filters": 8, "hidden": 16, "epochs": 4}
    params.update(shift=1, jitter=0.05, scale=0.05)
    model = TempCNNClassifier(n_members=3, seed=5, **params).fit(X, y)
    members = model.member_probas(X[:20])
    assert members.shape == (3, 20, 3) and len(model.states_) == 3
    np.testing.assert_allclose(model.predict_proba(X[:20]), members.mean(axis=0))
    assert not np.allclose(members[0], members[1])  # different seeds, different nets
    # member 0 of the ensemble is the single net with the same seed
    single = TempCNNClassifier(n_members=1, seed=5, **params).fit(X, y)
    np.testing.assert_array_equal(single.predict_proba(X[:20]), members[0])
    again = TempCNNClassifier(n_members=3, seed=5, **params).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X[:20]), model.predict_proba(X[:20]))
    with pytest.raises(ValueError, match="n_members"):
        TempCNNClassifier(n_members=0, **params).fit(X, y)


def test_tempcnn_hybrid_features_and_old_single_net_pickles() -> None:
    from earthops.models.tempcnn import TempCNNClassifier

    rng = np.random.default_rng(2)
    n, t, c, extra = 90, 8, 2, 5
    y = np.repeat(["a", "b", "c"], n // 3)
    X, X_test = rng.normal(size=(2, n, t * c + extra)).astype(np.float32)
    for rows in (X, X_test):  # flat series; only the first feature column separates classes
        rows[:, : t * c] = 0.0
        rows[:, t * c] += np.repeat([-4.0, 0.0, 4.0], n // 3)
    params = {"n_dates": t, "n_channels": c, "filters": 4, "hidden": 16, "epochs": 60, "lr": 1e-2}
    hybrid = TempCNNClassifier(with_features=True, batch_size=16, **params).fit(X, y)
    plain = TempCNNClassifier(batch_size=16, **params).fit(X, y)
    assert np.mean(hybrid.predict(X_test) == y) > 0.85
    assert np.mean(plain.predict(X_test) == y) < 0.5
    with pytest.raises(ValueError, match="columns"):
        hybrid.predict_proba(X[:, :-1])
    # a pickle of the former single-net class (flat Sequential weights in ``state_``) loads
    state = {k: v for k, v in plain.__getstate__().items() if k != "states_"}
    for key in ("kernel", "weight_decay", "shift", "scale", "jitter", "n_members"):
        state.pop(key)
    state.pop("feature_mean_"), state.pop("feature_std_"), state.pop("with_features")
    flat = {}
    for key, value in plain.states_[0].items():
        part, index, rest = key.split(".", 2)
        flat[f"{int(index) + (0 if part == 'conv' else 13)}.{rest}"] = value
    old = TempCNNClassifier.__new__(TempCNNClassifier)
    old.__setstate__({**state, "state_": flat})
    np.testing.assert_array_equal(old.predict_proba(X), plain.predict_proba(X))


def test_ltae_is_an_optional_member_of_the_cross_validation(mirror: Path) -> None:
    from earthops.data.samples import read_mod13q1_samples
    from earthops.features.timeseries import TimeSeriesFeatures
    from earthops.models.ltae import LTAEClassifier
    from earthops.usecases.landcover_timeseries import (
        TrainConfig,
        cross_validate,
        protocol_layout,
        sample_rows,
    )

    small = {"n_members": 1, "epochs": 10, "d_model": 32, "n_head": 4, "mlp": [64]}
    cfg = TrainConfig.from_options(
        TrainOptions(params={"models": ["rf", "ltae"], "n_folds": 3, "ltae_params": small})
    )
    assert cfg.ltae_params["with_features"] and cfg.ltae_params["epochs"] == 10
    s = read_mod13q1_samples(mirror / "landcover" / "matogrosso_mod13q1_9classes.json.gz")
    bands, index = protocol_layout("all-bands", s.bands, s.n_times)
    pick = np.random.default_rng(1).permutation(s.n_samples)[:450]
    X, y = sample_rows(s, bands, index)[pick], s.labels[pick]
    result = cross_validate(X, y, cfg, TimeSeriesFeatures(bands=bands, n_dates=len(index)))
    assert {"rf", "ltae", "stack", "vote"} <= set(result.metrics)
    assert result.metrics["ltae"]["overall_accuracy"] > 0.6  # 9 classes: chance is ~0.11
    member = cfg.member("ltae", {"n_dates": 23, "n_channels": 8})
    assert isinstance(member, LTAEClassifier) and member.d_model == 32 and member.n_channels == 8


def test_predict_records_equal_the_evaluate_path(in_home: dict) -> None:
    """Records of the shared samples' JSON, sent as predict requests, get the same classes as
    ``evaluate`` gives the same samples (one model call, the samples reader's layout)."""
    from earthops.registry.inference import load
    from earthops.usecases.landcover_timeseries.samples import sample_rows
    from earthops.usecases.landcover_timeseries.serving import SeriesRecord

    uc = get_usecase("landcover-timeseries")
    loaded = load(in_home["metrics"]["model_uri"], usecase="landcover-timeseries")
    shared = catalog.resolve_one("mt-mod13q1-9classes")
    raw = json.loads(gzip.decompress(shared.read_bytes()))[::37][:30]
    answers = uc.predict_records(loaded, [SeriesRecord.model_validate(r) for r in raw])

    subset = read_mod13q1_samples(shared, bands=tuple(loaded.meta["bands"]))
    X = sample_rows(subset, tuple(loaded.meta["bands"]), tuple(loaded.meta["date_index"]))
    expected = loaded.model.predict(X[::37][:30])
    assert [a.label for a in answers] == [str(v) for v in expected]
    for answer, record in zip(answers, raw, strict=True):
        assert answer.longitude == record["longitude"]
        assert max(answer.probabilities, key=answer.probabilities.get) == answer.label

    short = dict(raw[0], time_series=raw[0]["time_series"][:3])
    with pytest.raises(DataError, match="dates"):
        uc.predict_records(loaded, [SeriesRecord.model_validate(short)])
