"""Settings and constants of the CRW heat-stress computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: HotSpots at or above this (°C) accumulate into DHW and separate Watch from Warning.
HOTSPOT_THRESHOLD = 1.0
#: DHW (°C-weeks) at which Alert Levels 1..5 start (CRW v3.1).
DHW_ALERT_THRESHOLDS = (4.0, 8.0, 12.0, 16.0, 20.0)
#: CRW v3.1 Bleaching Alert Area level → name.
ALERT_LEVEL_NAMES: dict[int, str] = {
    0: "No Stress",
    1: "Bleaching Watch",
    2: "Bleaching Warning",
    3: "Bleaching Alert Level 1",
    4: "Bleaching Alert Level 2",
    5: "Bleaching Alert Level 3",
    6: "Bleaching Alert Level 4",
    7: "Bleaching Alert Level 5",
}
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAY = np.timedelta64(1, "D")
_ROUND = 6  # decimals for HotSpot (°C) and the DHW window sum (°C-days)

SSTLike = pd.Series | xr.DataArray
ArrayLike = float | np.ndarray | pd.Series | xr.DataArray


class ThermalConfig(BaseModel):
    """Settings of the CRW heat-stress computation (defaults: CRW 5 km v3.1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_start: int = Field(default=1985, description="First year of the climatology base period.")
    base_end: int = Field(default=2012, description="Last year (inclusive) of the base period.")
    recentre: bool = Field(default=False, description="CRW linear-regression re-centring of MMs.")
    recentre_year: float = Field(
        default=1988.2857, description="Year the regression is evaluated at."
    )
    min_month_coverage: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Fraction of a month's days a yearly monthly mean needs.",
    )
    min_base_coverage: float = Field(
        default=0.8, gt=0, le=1, description="Fraction of base years each calendar month needs."
    )
    dhw_window_days: int = Field(default=84, ge=1, description="DHW accumulation window (days).")
    dhw_max_missing: float = Field(
        default=0.1, ge=0, lt=1, description="Max missing fraction of the DHW window, else NaN."
    )
    rolling_windows: tuple[int, ...] = Field(
        default=(7, 30, 90), description="Trailing means (days)."
    )
    rolling_min_fraction: float = Field(
        default=0.8, gt=0, le=1, description="min_periods of a rolling mean, as a window fraction."
    )
    sst_range: tuple[float, float] = Field(default=(-2.0, 40.0), description="Plausible SST (°C).")

    @model_validator(mode="after")
    def _consistent(self) -> ThermalConfig:
        if self.base_end < self.base_start:
            raise ValueError(f"base_end {self.base_end} is before base_start {self.base_start}")
        if self.recentre and self.base_end == self.base_start:
            raise ValueError("recentre needs a base period of at least two years")
        if self.sst_range[0] >= self.sst_range[1]:
            raise ValueError(f"sst_range {self.sst_range} must be (low, high) with low < high")
        if any(w < 1 for w in self.rolling_windows) or len(set(self.rolling_windows)) != len(
            self.rolling_windows
        ):
            raise ValueError(
                f"rolling_windows must be distinct positive days, got {self.rolling_windows}"
            )
        return self

    @property
    def base_years(self) -> np.ndarray:
        return np.arange(self.base_start, self.base_end + 1)

    @property
    def dhw_min_valid(self) -> int:
        """Days of the DHW window that must have data."""
        return self.dhw_window_days - math.floor(self.dhw_window_days * self.dhw_max_missing)

    def rolling_min_periods(self, window: int) -> int:
        return max(1, math.ceil(window * self.rolling_min_fraction))
