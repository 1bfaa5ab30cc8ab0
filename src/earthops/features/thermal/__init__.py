"""Coral heat stress after NOAA Coral Reef Watch (CRW 5 km v3.1 methodology).

Definitions (coralreefwatch.noaa.gov/product/5km/methodology.php), for a daily SST series
(``pd.Series`` on a DatetimeIndex) or a gridded cube (``xr.DataArray`` with a ``time`` dim,
numpy- or dask-backed; every step stays lazy on dask):

* **Monthly-mean climatology (MM)**: for each calendar month, the mean of that month's yearly
  means over the base period (CRW: 1985–2012). With ``recentre=True``, CRW's variant: a
  least-squares line through the yearly means (x = year) evaluated at ``recentre_year``
  (1988.2857). A yearly monthly mean needs ``min_month_coverage`` of its days; a calendar
  month needs valid means in ``min_base_coverage`` of the base years.
* **MMM**: the maximum of the 12 monthly means.
* **HotSpot** = max(SST − MMM, 0) (rounded to 1e-6 °C so that ``≥ 1`` is not decided by binary
  representation error).
* **DHW** (°C-weeks) = Σ HotSpot over the trailing ``dhw_window_days`` (84) days, counting only
  HotSpots ≥ 1 °C, ÷ 7. The window ends on (includes) the current day and never looks ahead.
  Gaps: a missing day contributes 0; if more than ``dhw_max_missing`` of the window is missing
  (days before the series start count as missing) DHW is NaN.
* **Bleaching Alert Area** (v3.1; :data:`ALERT_LEVEL_NAMES`): 0 No Stress (HS ≤ 0), 1 Watch
  (0 < HS < 1), 2 Warning (HS ≥ 1, DHW < 4), 3–7 Alert Level 1–5 (HS ≥ 1 and DHW ≥ 4, 8, 12,
  16, 20). Levels are floats; NaN where the inputs do not decide the level.
* **SST anomaly** = SST − MM of the day's calendar month; trailing rolling means of SST.

Series input is normalised by :func:`validate_sst_series` (see there); a cube by the same rules,
except that repeated timestamps are always an error and a dask cube's SST range is checked
when it is computed. Outputs are daily-regular: gaps come back as NaN rows, counted in
``attrs["gap_days"]``. Everything is vectorised: running sums are cumulative-sum differences
(float64), monthly means come from the same cumulative sums.
"""

from earthops.features.thermal.climatology import maximum_monthly_mean, monthly_climatology
from earthops.features.thermal.config import (
    ALERT_LEVEL_NAMES,
    DHW_ALERT_THRESHOLDS,
    HOTSPOT_THRESHOLD,
    MONTH_NAMES,
    ArrayLike,
    SSTLike,
    ThermalConfig,
)
from earthops.features.thermal.crw import (
    alert_level,
    alert_level_from_dhw,
    alert_level_names,
    degree_heating_weeks,
    hotspot,
    rolling_means,
    sst_anomaly,
)
from earthops.features.thermal.daily import validate_sst_series
from earthops.features.thermal.tables import thermal_features, thermal_features_grid

__all__ = [
    "ALERT_LEVEL_NAMES",
    "DHW_ALERT_THRESHOLDS",
    "HOTSPOT_THRESHOLD",
    "MONTH_NAMES",
    "ArrayLike",
    "SSTLike",
    "ThermalConfig",
    "alert_level",
    "alert_level_from_dhw",
    "alert_level_names",
    "degree_heating_weeks",
    "hotspot",
    "maximum_monthly_mean",
    "monthly_climatology",
    "rolling_means",
    "sst_anomaly",
    "thermal_features",
    "thermal_features_grid",
    "validate_sst_series",
]
