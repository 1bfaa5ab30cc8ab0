"""Compiled LightGBM trees: bitwise-equal scores, equal labels (also pruned), fallbacks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from earthops.models import compiled_trees as ct
from earthops.models.estimators import make_classifier


def _data(n: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy classes from a few features; feature 0 has NaNs (NaN-type splits)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    score = X[:, :3] @ rng.normal(size=(3, n_classes)) + rng.normal(0, 0.7, (n, n_classes))
    y = np.argmax(score, axis=1)
    X[rng.random(n) < 0.1, 0] = np.nan
    X[:, 4] = np.round(X[:, 4])  # ties on thresholds' neighbours
    return X, y


def _query(X: np.ndarray, seed: int = 1) -> np.ndarray:
    """Held-out rows plus edge values: NaN where training had none (None-type splits), ±inf,
    zeros and the training values themselves (exactly on the bin edges)."""
    rng = np.random.default_rng(seed)
    Q = np.concatenate([X, rng.normal(0, 2, X.shape).astype(np.float32)])
    Q[rng.random(len(Q)) < 0.05, 1] = np.nan
    Q[:50, 2] = np.inf
    Q[50:100, 2] = -np.inf
    Q[100:150, 3] = 0.0
    Q[150:200, 3] = np.float32(-1e-36)  # LightGBM reads |x| <= 1e-35 as 0
    return Q


@pytest.mark.parametrize("n_classes", [2, 5])
def test_scores_are_bitwise_lightgbm(n_classes: int) -> None:
    X, y = _data(3000, n_classes)
    lgbm = LGBMClassifier(n_estimators=60, num_leaves=15, n_jobs=1, verbose=-1).fit(X, y)
    model = ct.compile_lightgbm(lgbm.booster_)
    assert model is not None and model.n_out == (1 if n_classes == 2 else n_classes)
    Q = _query(X)
    raw = lgbm.booster_.predict(Q, raw_score=True, num_threads=1).reshape(len(Q), -1)
    np.testing.assert_array_equal(model.raw_score(Q), raw)
    np.testing.assert_array_equal(model.raw_score(Q.astype(np.float64), n_threads=2), raw)
    proba = lgbm.predict_proba(Q)
    np.testing.assert_allclose(model.predict_proba(Q), proba, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(model.predict_index(Q), np.argmax(proba, axis=1))


def test_pruned_labels_equal_full_argmax_and_do_prune() -> None:
    X, y = _data(4000, 4, seed=3)
    lgbm = LGBMClassifier(n_estimators=120, num_leaves=15, n_jobs=1, verbose=-1).fit(X, y)
    model = ct.compile_lightgbm(lgbm.booster_)
    assert model is not None
    Q = _query(X, seed=4)
    full = model.raw_score(Q)
    codes = model.encode(Q)
    out = np.zeros_like(full)
    done = np.zeros(len(Q), dtype=bool)
    rem_min, rem_max = model._remaining()
    ct._raw(
        codes, 255, model.nodes, model.left, model.right, model.roots, model.leaf_values,
        model.n_out, 512, rem_min, rem_max, 0, 1, ct._SLACK_ABS, ct._SLACK_REL,
        np.zeros(model.n_out), out, done,
    )  # fmt: skip
    assert 0.2 < done.mean() < 1.0  # most rows settle early, some need every tree
    np.testing.assert_array_equal(out[~done], full[~done])
    np.testing.assert_array_equal(np.argmax(out[done], 1), np.argmax(full[done], 1))
    np.testing.assert_array_equal(model.predict_index(Q), np.argmax(lgbm.predict_proba(Q), 1))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_weighted_labels_equal_the_argmax_of_weighted_probabilities(n_classes: int) -> None:
    """A prior correction (class weights, one of them 0) on the early-stopping path."""
    X, y = _data(4000, n_classes, seed=8)
    lgbm = LGBMClassifier(n_estimators=120, num_leaves=15, n_jobs=1, verbose=-1).fit(X, y)
    model = ct.compile_lightgbm(lgbm.booster_)
    assert model is not None
    Q = _query(X, seed=9)
    proba = lgbm.predict_proba(Q)
    weight = np.array([3.0, 0.2, 0.0, 1.5][:n_classes])
    expected = np.argmax(proba * weight, axis=1)
    assert (expected != np.argmax(proba, axis=1)).mean() > 0.05  # the weights matter
    np.testing.assert_array_equal(model.predict_index(Q, class_weight=weight), expected)
    np.testing.assert_array_equal(model.predict_index(Q, 2, np.ones(n_classes)), proba.argmax(1))
    labels = np.array(["crop", "forest", "water", "urban"])[:n_classes][y]
    clf = make_classifier("lightgbm", n_estimators=120, num_leaves=15, n_jobs=1).fit(X, labels)
    reference = clf.estimator_.predict_proba(Q) * weight
    np.testing.assert_array_equal(
        clf.predict_weighted(Q, weight), clf.classes_[np.argmax(reference, axis=1)]
    )
    with pytest.raises(ValueError, match="class_weight has 1 values"):
        clf.predict_weighted(Q, [1.0])


def test_label_encoded_lightgbm_uses_the_compiled_trees_and_pickles_without_them() -> None:
    X, y = _data(2000, 3, seed=5)
    labels = np.array(["crop", "forest", "water"])[y]
    clf = make_classifier("lightgbm", n_estimators=40, n_jobs=1).fit(X, labels)
    Q = _query(X, seed=6)
    reference = clf.estimator_.predict_proba(Q)
    np.testing.assert_allclose(clf.predict_proba(Q), reference, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(clf.predict(Q), clf.classes_[np.argmax(reference, axis=1)])
    assert clf.__dict__["_compiled_trees"] is not None
    restored = pickle.loads(pickle.dumps(clf))
    assert "_compiled_trees" not in restored.__dict__
    assert clf.__dict__["_compiled_trees"] is not None  # pickling left the live model alone
    np.testing.assert_array_equal(restored.predict(Q), clf.predict(Q))
    clf.fit(X[:1000], labels[:1000])  # a refit drops the compiled copy of the old model
    np.testing.assert_allclose(clf.predict_proba(Q), clf.estimator_.predict_proba(Q), atol=1e-15)


def test_unsupported_models_fall_back_to_lightgbm() -> None:
    X, y = _data(2000, 3, seed=7)
    X[:, 5] = np.random.default_rng(0).integers(0, 6, len(X))
    cat = LGBMClassifier(n_estimators=20, n_jobs=1, verbose=-1)
    cat.fit(X, y, categorical_feature=[5])
    assert ct.compile_lightgbm(cat.booster_) is None
    clf = make_classifier("lightgbm", n_estimators=20, n_jobs=1, objective="multiclassova")
    clf.fit(X, y)
    assert clf._compiled() is None
    np.testing.assert_array_equal(clf.predict_proba(X), clf.estimator_.predict_proba(X))
    rf = make_classifier("rf", n_estimators=5, n_jobs=1).fit(np.nan_to_num(X), y)
    assert rf._compiled() is None
