"""Generic xarray helpers: trailing sums and wrapping array-likes as DataArrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from earthops.features.thermal.config import ArrayLike


def _trailing_sum(x: xr.DataArray, window: int) -> xr.DataArray:
    """Sum over the trailing ``window`` steps (current one included; before the start = 0)."""
    csum = x.cumsum("time")
    return csum - csum.shift(time=window, fill_value=0)


def _as_dataarray(x: ArrayLike) -> tuple[xr.DataArray, Callable[[xr.DataArray], Any]]:
    """Wrap scalars, arrays and Series as DataArrays; the callable converts a result back."""
    if isinstance(x, xr.DataArray):
        return x, lambda d: d
    if isinstance(x, pd.Series):
        return (
            xr.DataArray(x.to_numpy(dtype=np.float64, na_value=np.nan), dims="index"),
            lambda d: pd.Series(d.values, index=x.index, name=x.name),
        )
    arr = np.asarray(x, dtype=np.float64)
    return xr.DataArray(arr), (lambda d: d.values) if arr.ndim else (lambda d: float(d.values))
