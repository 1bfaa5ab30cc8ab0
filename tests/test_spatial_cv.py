"""Spatial block CV of point samples (generated fixtures: the mechanism, not a headline)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.neighbors import KNeighborsClassifier

from earthops.errors import EarthOpsError
from earthops.models.spatial_cv import lonlat_blocks, sampling_sites, spatial_block_cv


class _BlockRecorder(ClassifierMixin, BaseEstimator):
    """1-NN that records which blocks (column 0 of X) it was trained and tested on."""

    log: ClassVar[list[tuple[set[int], set[int]]]] = []

    def fit(self, X: np.ndarray, y: np.ndarray) -> _BlockRecorder:
        self.train_blocks_ = set(X[:, 0].astype(int).tolist())
        self.knn_ = KNeighborsClassifier(n_neighbors=1).fit(X[:, 1:], y)
        self.classes_ = self.knn_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        _BlockRecorder.log.append((self.train_blocks_, set(X[:, 0].astype(int).tolist())))
        return self.knn_.predict(X[:, 1:])


def _samples(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes a/b spread over a 4°×4° area (told apart by feature 0); class c at one site."""
    n = 400
    coords = rng.uniform([-56.0, -14.0], [-52.0, -10.0], size=(n, 2))
    y = np.where(rng.random(n) < 0.5, "a", "b").astype(object)
    site = rng.choice(n, 60, replace=False)
    coords[site] = np.array([-53.93, -12.04]) + rng.normal(0, 0.002, size=(60, 2))
    y[site] = "c"
    signal = np.where(y == "a", 0.0, 1.0) + rng.normal(0, 0.1, n)
    signal[y == "c"] = 0.5 + rng.normal(0, 0.02, 60)  # c: unmistakable once seen
    return coords, y.astype(str), signal


def test_blocks_group_by_cell_and_reject_a_bad_size() -> None:
    coords = np.array([[-55.1, -12.1], [-55.4, -12.3], [-54.9, -12.1], [-55.1, -11.9]])
    blocks = lonlat_blocks(coords, 0.5)
    assert blocks[0] == blocks[1] and len({blocks[0], blocks[2], blocks[3]}) == 3
    assert np.unique(lonlat_blocks(coords, 10.0)).size == 1
    with pytest.raises(EarthOpsError, match="block size must be > 0"):
        lonlat_blocks(coords, 0.0)


def test_a_block_is_never_split_and_a_one_site_class_is_named() -> None:
    rng = np.random.default_rng(3)
    coords, y, signal = _samples(rng)
    blocks = lonlat_blocks(coords, 0.5)
    X = np.column_stack([blocks, signal])
    _BlockRecorder.log = []
    out = spatial_block_cv(
        X, y, coords, lambda kind: _BlockRecorder(), ["nn"], n_folds=4, block_deg=0.5, seed=1
    )
    assert len(_BlockRecorder.log) == 4
    for train_blocks, test_blocks in _BlockRecorder.log:
        assert not train_blocks & test_blocks
    assert out["single_block_classes"] == ["c"]
    assert out["sites"]["c"]["blocks"] == 1 and out["sites"]["c"]["samples"] == 60
    assert out["n_blocks"] == np.unique(blocks).size
    recall = out["models"]["nn"]["recall"]
    assert recall["c"] == 0.0  # never in training when its block is tested
    assert recall["a"] > 0.9 and recall["b"] > 0.9
    assert out["models"]["nn"]["overall_accuracy"] < 0.9
    assert out["models"]["nn"]["overall_accuracy_multi_block"] > 0.9  # a and b only


def test_sites_count_places_not_revisits() -> None:
    coords = np.array([[-55.0, -12.0], [-55.0, -12.0], [-55.0, -12.0], [-50.0, -10.0]])
    y = np.array(["forest", "forest", "forest", "soy"])
    sites = sampling_sites(coords, y, lonlat_blocks(coords, 0.5))
    assert sites["forest"] == {"samples": 3, "places": 1, "blocks": 1}
    assert sites["soy"] == {"samples": 1, "places": 1, "blocks": 1}


def test_too_few_blocks_is_a_clear_error() -> None:
    coords = np.tile([[-55.0, -12.0]], (20, 1)) + np.linspace(0, 0.01, 20)[:, None]
    y = np.array(["a", "b"] * 10)
    with pytest.raises(EarthOpsError, match=r"needs >= 5 blocks of 0.5°.*span 1"):
        spatial_block_cv(np.zeros((20, 1)), y, coords, lambda kind: None, ["rf"])
