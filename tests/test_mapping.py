"""Chunked raster classification: tiled == whole, nodata windows, COG + palette, signatures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr
from sklearn.ensemble import RandomForestClassifier

from earthops.data.rasters import read_sinop_cube
from earthops.errors import EarthOpsError, SignatureError
from earthops.models.mapping import (
    check_signature,
    class_encoding,
    classify_blocks,
    predict_raster,
    raster_signature,
)
from earthops.raster.cog import read_class_names, validate_cog


def _flat(block: np.ndarray) -> np.ndarray:
    """Pixels as rows, NaN → 0 (the RF below cannot take NaN)."""
    return np.nan_to_num(block.reshape(block.shape[0], -1).T)


class CountingModel:
    """Wraps a fitted classifier and counts the pixels it is asked about."""

    def __init__(self, model: RandomForestClassifier) -> None:
        self.model, self.classes_, self.pixels = model, model.classes_, 0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.pixels += len(X)
        return self.model.predict_proba(X)


@pytest.fixture(scope="module")
def sinop(mirror) -> xr.DataArray:
    return read_sinop_cube()


@pytest.fixture(scope="module")
def model(sinop: xr.DataArray) -> CountingModel:
    """String classes from mean NDVI on the real Sinop cube; an RF fitted on 2000 pixels."""
    X = _flat(sinop.values)
    mean = X.mean(axis=1)
    y = np.where(mean > 0.7, "dense", np.where(mean > 0.5, "mixed", "open"))
    pick = np.random.default_rng(0).choice(len(X), 2000, replace=False)
    rf = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(X[pick], y[pick])
    return CountingModel(rf)


def test_tiled_map_equals_whole_prediction_with_nodata_windows(
    sinop: xr.DataArray, model: CountingModel, tmp_path
) -> None:
    cube = sinop.copy()
    cube.values[:, :64, :64] = np.nan  # one whole window (block 64) is nodata
    cube.values[:, 100, 200] = np.nan  # one nodata pixel inside a window
    model.pixels = 0
    out = classify_blocks(
        cube.chunk({"time": -1, "y": 50, "x": 50}),
        _flat,
        model,
        tmp_path / "map.tif",
        legend={"dense": "Dense vegetation"},
        block_size=64,
        tags={"EARTHOPS_MODEL": "test"},
    )
    assert validate_cog(out).is_valid
    with rasterio.open(out) as src:
        band = src.read(1)
        assert (src.height, src.width) == (147, 255)
        assert src.crs == sinop.rio.crs
        assert src.transform.almost_equals(sinop.rio.transform())
        assert src.nodata == 0 and src.overviews(1)
        palette = src.colormap(1)
        assert src.tags()["EARTHOPS_MODEL"] == "test"
    names = read_class_names(out)
    assert names == {1: "Dense vegetation", 2: "mixed", 3: "open"}
    assert set(names) <= set(palette)
    whole = model.model.predict(_flat(cube.values))
    expected = np.array([0, 1, 2, 3])[np.searchsorted(["dense", "mixed", "open"], whole) + 1]
    valid = np.isfinite(cube.values).any(axis=0).ravel()
    expected = np.where(valid, expected, 0).reshape(147, 255)
    np.testing.assert_array_equal(band, expected)
    assert (band[:64, :64] == 0).all() and band[100, 200] == 0
    assert model.pixels == int(valid.sum())  # nodata pixels never reach the model


def test_probability_band_and_all_nodata_cube(
    sinop: xr.DataArray, model: CountingModel, tmp_path
) -> None:
    out = classify_blocks(sinop, _flat, model, tmp_path / "p.tif", with_probability=True)
    assert validate_cog(out).is_valid
    with rasterio.open(out) as src:
        assert src.count == 2 and src.descriptions[1] == "max_probability_pct"
        prob = src.read(2)
    assert prob.min() >= 100 // 3 and prob.max() <= 100
    empty = sinop.copy(data=np.full(sinop.shape, np.nan, np.float32))
    model.pixels = 0
    out = classify_blocks(empty, _flat, model, tmp_path / "empty.tif", block_size=100)
    with rasterio.open(out) as src:
        assert (src.read(1) == 0).all()
    assert model.pixels == 0


def test_signature_mismatches_name_the_problem(
    sinop: xr.DataArray, model: CountingModel, tmp_path
) -> None:
    sig = raster_signature(sinop, with_shape=True)
    assert sig["count"] == 12 and sig["shape"] == [147, 255] and sig["dim"] == "time"
    json.dumps(sig)
    check_signature(sinop, sig)
    with pytest.raises(SignatureError, match="11 time layer"):
        check_signature(sinop.isel(time=slice(0, 11)), sig)
    with pytest.raises(SignatureError, match="shape 200x147"):
        check_signature(sinop.isel(x=slice(0, 200)), sig)
    with pytest.raises(SignatureError, match="CRS EPSG:4326"):
        check_signature(sinop.rio.write_crs("EPSG:4326"), sig)
    shifted = sinop.assign_coords(time=sinop["time"].values + np.timedelta64(1, "D"))
    with pytest.raises(SignatureError, match="first difference"):
        check_signature(shifted, sig)
    with pytest.raises(SignatureError, match="11 time layer"):
        classify_blocks(
            sinop.isel(time=slice(1, None)), _flat, model, tmp_path / "x.tif", signature=sig
        )
    with pytest.raises(SignatureError, match=r"dims \(band, y, x\)"):
        check_signature(sinop.isel(time=0), sig)


def test_class_encoding_ints_and_strings() -> None:
    from earthops.data.legends import IGBP

    values, names, cmap, nodata = class_encoding([0, 5, 16], IGBP)
    assert list(values) == [0, 5, 16] and nodata == 255
    assert names[16] == IGBP.names()[16] and cmap[5] == IGBP.colormap()[5]
    values, names, _, nodata = class_encoding(["b", "a"])
    assert list(values) == [1, 2] and names == {1: "b", 2: "a"} and nodata == 0


def test_predict_raster_needs_a_usecase_in_the_metadata(tmp_path, monkeypatch) -> None:
    import earthops.registry.tracking as tracking

    monkeypatch.setattr(tracking, "model_metadata", lambda uri: {})
    with pytest.raises(EarthOpsError, match="no 'usecase'"):
        predict_raster("runs:/x/model", [tmp_path / "a.tif"], tmp_path / "o.tif")
    monkeypatch.setattr(tracking, "model_metadata", lambda uri: {"usecase": "nope"})
    with pytest.raises(EarthOpsError, match="unknown use case 'nope'"):
        predict_raster("runs:/x/model", [tmp_path / "a.tif"], tmp_path / "o.tif")


def test_lightgbm_map_labels_equal_lightgbm_predict(sinop: xr.DataArray, tmp_path) -> None:
    """The compiled LightGBM path (labels pruned early) maps exactly LightGBM's own labels."""
    from earthops.models.estimators import make_classifier

    X = _flat(sinop.values)
    mean = X.mean(axis=1)
    y = np.where(mean > 0.7, "dense", np.where(mean > 0.5, "mixed", "open"))
    pick = np.random.default_rng(1).choice(len(X), 3000, replace=False)
    clf = make_classifier("lightgbm", n_estimators=80, n_jobs=1).fit(X[pick], y[pick])
    assert clf._compiled() is not None
    own = clf.classes_[np.argmax(clf.estimator_.predict_proba(X), axis=1)]
    np.testing.assert_array_equal(clf.predict(X), own)
    out = classify_blocks(sinop, _flat, clf, tmp_path / "lgbm.tif", block_size=64)
    with rasterio.open(out) as src:
        band = src.read(1)
    expected = np.searchsorted(["dense", "mixed", "open"], own).reshape(band.shape) + 1
    np.testing.assert_array_equal(band, expected)
