"""Containers of a training run's inputs, its sample and its area-proportional probe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earthops.features.global_grid import FeatureGrid
from earthops.usecases.base import BBox
from earthops.usecases.landcover_global.config import TrainConfig


@dataclass(frozen=True)
class _Inputs:
    """What every stage of a training run reads and none changes: the config, the label
    raster, the land mask (:func:`~.area.land_mask`), the feature grid and the boxes kept out
    of training (``--exclude-bbox``)."""

    cfg: TrainConfig
    labels: np.ndarray
    land: np.ndarray
    grid: FeatureGrid
    exclude: Sequence[BBox] = ()


@dataclass
class _Sample:
    """The training pixels: the class-balanced sample, then any area-proportional extras."""

    rows: np.ndarray
    cols: np.ndarray
    y: np.ndarray
    X: np.ndarray
    chips: np.ndarray | None = None
    n_balanced: int | None = None  # the first n rows are the class-balanced sample (None: all)

    @property
    def balanced(self) -> np.ndarray:
        """Mask of the class-balanced rows (the headline's evaluation sample)."""
        mask = np.zeros(len(self.y), dtype=bool)
        mask[: len(self.y) if self.n_balanced is None else self.n_balanced] = True
        return mask

    @property
    def has_extras(self) -> bool:
        return self.n_balanced is not None and self.n_balanced < len(self.y)


@dataclass
class _Probe:
    """Area-proportional probe: a simple random sample of the map population.

    The population is every land pixel (some Köppen-Geiger land) of the protocol's classes in
    a block that has a fold; ``priors[k]`` re-weight the probabilities of the model trained
    without fold ``k`` from its training-sample class shares to the population's shares
    outside fold ``k`` (all that model may know).
    """

    rows: np.ndarray
    cols: np.ndarray
    y: np.ndarray
    X: np.ndarray
    fold: np.ndarray
    priors: np.ndarray  # (n_folds, classes): population share / training-sample share
    population: int
    prior_shift: np.ndarray  # (classes,): the same over every fold (for the final model)
    chips: np.ndarray | None = None
