"""L-TAE classifier: fit/predict contract, determinism per seed, pickles, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from earthops.models.ltae import LTAEClassifier

N_DATES, N_CHANNELS = 10, 2
SMALL = {
    "n_dates": N_DATES,
    "n_channels": N_CHANNELS,
    "encoder": (8,),
    "d_model": 16,
    "n_head": 4,
    "d_k": 4,
    "mlp": (16,),
    "hidden": 16,
    "batch_size": 16,
}


def _series(n: int, seed: int, extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose series differ by the timing of a bump (+ ``extra`` noise columns)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(["early", "mid", "late"], n // 3)
    peak = {"early": 2.0, "mid": 5.0, "late": 8.0}
    t = np.arange(N_DATES)
    bump = np.stack([np.exp(-0.5 * (t - peak[label]) ** 2) for label in y])
    cube = bump[:, :, None] + rng.normal(0, 0.15, (n, N_DATES, N_CHANNELS))
    flat = np.concatenate([cube.reshape(n, -1), rng.normal(size=(n, extra))], axis=1)
    return flat.astype(np.float32), y


def test_ltae_learns_bump_timing_deterministically_and_pickles_without_torch() -> None:
    X, y = _series(150, 0)
    X_test, y_test = _series(90, 1)
    model = LTAEClassifier(epochs=15, lr=5e-3, seed=3, **SMALL).fit(X, y)
    assert list(model.classes_) == ["early", "late", "mid"]
    proba = model.predict_proba(X_test)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(model.predict(X_test) == y_test) > 0.85
    again = LTAEClassifier(epochs=15, lr=5e-3, seed=3, **SMALL).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X_test), proba)
    other = LTAEClassifier(epochs=15, lr=5e-3, seed=4, **SMALL).fit(X, y)
    assert not np.allclose(other.predict_proba(X_test), proba)
    blob = pickle.dumps(model)
    assert b"torch" not in blob  # weights are numpy arrays, no torch objects
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(X_test), proba)
    assert clone(model).get_params()["d_model"] == 16


def test_ltae_seed_ensemble_and_hybrid_feature_branch() -> None:
    X, y = _series(90, 2, extra=3)
    X[:, : N_DATES * N_CHANNELS] = 0.0  # flat series: only the first feature separates classes
    X[:, N_DATES * N_CHANNELS] += np.repeat([-4.0, 0.0, 4.0], 30)
    X_test = X.copy()
    X_test[:, N_DATES * N_CHANNELS + 1 :] = np.random.default_rng(9).normal(size=(90, 2))
    params = {**SMALL, "epochs": 20, "lr": 1e-2, "seed": 5}
    hybrid = LTAEClassifier(with_features=True, n_members=2, **params).fit(X, y)
    members = hybrid.member_probas(X_test[:10])
    assert members.shape == (2, 10, 3) and len(hybrid.states_) == 2
    np.testing.assert_allclose(hybrid.predict_proba(X_test[:10]), members.mean(axis=0))
    single = LTAEClassifier(with_features=True, n_members=1, **params).fit(X, y)
    np.testing.assert_array_equal(single.predict_proba(X_test[:10]), members[0])
    assert np.mean(hybrid.predict(X_test) == y) > 0.85
    plain = LTAEClassifier(**params).fit(X, y)  # ignores the feature columns
    assert np.mean(plain.predict(X_test) == y) < 0.6


def test_ltae_bad_input() -> None:
    X, y = _series(30, 3, extra=2)
    with pytest.raises(ValueError, match="not fitted"):
        LTAEClassifier(**SMALL).predict(X)
    with pytest.raises(ValueError, match="divisible"):
        LTAEClassifier(**{**SMALL, "n_head": 3}, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="n_members"):
        LTAEClassifier(**SMALL, n_members=0).fit(X, y)
    model = LTAEClassifier(**SMALL, epochs=1, with_features=True).fit(X, y)
    with pytest.raises(ValueError, match="columns"):
        model.predict_proba(X[:, :5])
    with pytest.raises(ValueError, match="columns"):
        model.predict_proba(np.c_[X, X[:, :1]])  # a feature column the model was not fitted on
