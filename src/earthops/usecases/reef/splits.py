"""Grouped forward-in-time split: later years, sites unseen in training."""

from __future__ import annotations

import numpy as np


def forward_split(
    years: np.ndarray,
    sites: np.ndarray,
    origin: int,
    horizon: int | None = None,
    *,
    train_from: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Grouped forward-in-time split: train years ≤ ``origin``; test years in
    ``(origin, origin + horizon]`` (all later years without ``horizon``) minus the rows whose
    site is in training. Returns positional ``(train, test, dropped_test_rows)``."""
    years = np.asarray(years)
    sites = np.asarray(sites)
    train = years <= origin
    if train_from is not None:
        train &= years >= train_from
    test = years > origin
    if horizon is not None:
        test &= years <= origin + horizon
    seen = np.isin(sites, np.unique(sites[train]))
    dropped = int((test & seen).sum())
    return np.flatnonzero(train), np.flatnonzero(test & ~seen), dropped
