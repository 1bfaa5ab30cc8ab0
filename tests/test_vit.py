"""ViTClassifier: learns, sklearn contract, determinism, pickling, clear errors."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest

from earthops.models.vit import ViTClassifier

SMALL = {"dim": 32, "depth": 2, "heads": 4, "epochs": 6, "batch_size": 64, "lr": 3e-3}


def _pattern_chips(n: int, seed: int = 0, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Three classes: a bright vertical stripe, a bright horizontal stripe, or noise only."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 0.3, size=(n, 2, size, size)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for i, cls in enumerate(y):
        pos = rng.integers(0, size)
        if cls == 0:
            X[i, 0, :, pos] += 2.0
        elif cls == 1:
            X[i, 0, pos, :] += 2.0
    return X, y


def test_learns_separable_pattern_with_string_labels() -> None:
    X, y = _pattern_chips(600)
    names = np.array(["vertical", "horizontal", "noise"])[y]
    # orientation is the signal here, so no flip/rot90 augmentation
    model = ViTClassifier(**{**SMALL, "epochs": 10}, patch_size=4, augment=False).fit(X, names)
    assert set(model.classes_) == {"vertical", "horizontal", "noise"}
    Xt, yt = _pattern_chips(300, seed=1)
    pred = model.predict(Xt)
    assert pred.dtype.kind in "US" or pred.dtype == object
    assert np.mean(pred == np.array(["vertical", "horizontal", "noise"])[yt]) > 0.9
    proba = model.predict_proba(Xt)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], pred)


def test_binary_odd_size_and_nan_chips() -> None:
    X, y = _pattern_chips(300, size=7)
    X[0, 1, 0, 0] = np.nan
    yb = (y == 0).astype(int)
    model = ViTClassifier(**{**SMALL, "epochs": 3}, patch_size=4).fit(X, yb)
    assert list(model.classes_) == [0, 1]
    proba = model.predict_proba(X)
    assert proba.shape == (300, 2) and np.isfinite(proba).all()


def test_deterministic_and_pickle_round_trip() -> None:
    X, y = _pattern_chips(200)
    params = {**SMALL, "epochs": 2, "patch_size": 4}
    a = ViTClassifier(**params, seed=3).fit(X, y)
    b = ViTClassifier(**params, seed=3).fit(X, y)
    c = ViTClassifier(**params, seed=4).fit(X, y)
    pa, pb = a.predict_proba(X), b.predict_proba(X)
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, c.predict_proba(X))
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        clone = loads(dumps(a))
        np.testing.assert_array_equal(clone.predict_proba(X), pa)
    assert "_module_cache" not in pickle.loads(pickle.dumps(a)).__dict__


def test_bad_input_shapes_raise_clear_errors() -> None:
    X, y = _pattern_chips(50)
    with pytest.raises(ValueError, match=r"\(n, channels, height, width\)"):
        ViTClassifier(**SMALL).fit(X.reshape(50, -1), y)
    with pytest.raises(ValueError, match="labels"):
        ViTClassifier(**SMALL).fit(X, y[:10])
    with pytest.raises(ValueError, match="divisible"):
        ViTClassifier(dim=30, heads=4).fit(X, y)
    model = ViTClassifier(**{**SMALL, "epochs": 1}).fit(X, y)
    with pytest.raises(ValueError, match="fitted on"):
        model.predict_proba(X[:, :1])
