"""Containers of the training sample and of the area-proportional probe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Sample:
    rows: np.ndarray
    cols: np.ndarray
    y: np.ndarray
    X: np.ndarray
    chips: np.ndarray | None = None


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
