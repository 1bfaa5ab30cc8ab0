"""Model input rows from a sample set, and the season-day encoding of their dates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from earthops.data.samples import SampleSet
from earthops.errors import DataError


def sample_rows(samples: SampleSet, bands: tuple[str, ...], index: tuple[int, ...]) -> np.ndarray:
    """Flat time-major rows ``(n, len(index) × len(bands))`` of ``samples``."""
    missing = [b for b in bands if b not in samples.bands]
    if missing:
        raise DataError(
            samples.ref.uri,
            f"bands {missing} missing; the model needs {list(bands)}",
            field="bands",
        )
    if samples.n_times <= max(index):
        raise DataError(
            samples.ref.uri,
            f"{samples.n_times} dates per sample; the model needs {max(index) + 1}",
            field="time_series",
        )
    cube = samples.array[:, list(index), :][:, :, [samples.bands.index(b) for b in bands]]
    return cube.reshape(len(cube), -1).astype(np.float32)


def season_day(dates: Any) -> np.ndarray:
    """Days since 1 September of the season each date belongs to (calendar-day matching)."""
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    start_year = np.where(d.month >= 9, d.year, d.year - 1)
    start = pd.to_datetime([f"{y}-09-01" for y in start_year])
    return np.asarray((d - start).days, dtype=np.int64)


def _season_names(days: np.ndarray) -> list[str]:
    base = pd.Timestamp("2013-09-01")  # non-leap reference season
    return [(base + pd.Timedelta(days=int(v))).strftime("%m-%d") for v in days]
