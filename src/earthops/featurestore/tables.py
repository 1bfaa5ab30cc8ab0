"""Feature rows for the offline store: site covariates, survey-time features, SST features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from earthops.errors import DataError
from earthops.features.thermal import ThermalConfig, rolling_means, thermal_features
from earthops.featurestore.definitions import SURVEY_MONTH_DAY
from earthops.logs import get_logger

log = get_logger(__name__)


def survey_timestamp(years: pd.Series) -> pd.Series:
    """Nominal survey time of a survey year (``YYYY-07-01T00:00Z``)."""
    return pd.to_datetime(years.astype(int).astype(str) + f"-{SURVEY_MONTH_DAY}", utc=True)


def site_covariates(surveys: pd.DataFrame) -> pd.DataFrame:
    """One row per site: static covariates, stamped at the site's first survey."""
    frame = surveys.assign(event_timestamp=survey_timestamp(surveys["Date_Year"]))
    grouped = frame.sort_values("event_timestamp").groupby("Site_ID", sort=True)
    first = grouped.first()
    out = pd.DataFrame(
        {
            "site_id": first.index.astype("int64"),
            "event_timestamp": first["event_timestamp"].to_numpy(),
            "latitude": first["Latitude_Degrees"].to_numpy(float),
            "longitude": first["Longitude_Degrees"].to_numpy(float),
            "distance_to_shore_km": first["Distance_to_Shore"].to_numpy(float) / 1000.0,
            "turbidity": grouped["Turbidity"].mean().to_numpy(float),
            "ocean": first["Ocean_Name"].astype(str).to_numpy(),
            "realm": first["Realm_Name"].astype(str).to_numpy(),
        }
    )
    return out


def survey_features(surveys: pd.DataFrame) -> pd.DataFrame:
    """One row per site and survey year: means over that year's samples."""
    frame = surveys.assign(event_timestamp=survey_timestamp(surveys["Date_Year"]))
    columns = {
        "Temp": "survey_sst",
        "SSTA_DHW": "survey_dhw",
        "TSA_DHW_Standard_Deviation": "survey_dhw_sd",
        "Temperature_Kelvin_Standard_Deviation": "survey_sst_sd",
        "SSTA_Frequency_Standard_Deviation": "survey_ssta_freq_sd",
        "Depth_m": "survey_depth_m",
        "Coral": "survey_coral_cover",
    }
    grouped = frame.groupby(["Site_ID", "event_timestamp"], sort=True)
    out = grouped[list(columns)].mean().rename(columns=columns)
    out["survey_samples"] = grouped.size().astype("int64")
    out = out.reset_index().rename(columns={"Site_ID": "site_id"})
    return out


def sst_feature_rows(
    raw: pd.DataFrame, stamps: pd.Series | None = None, config: ThermalConfig | None = None
) -> pd.DataFrame:
    """Thermal features of one site's stored raw SST rows, at ``stamps`` (default: all rows).

    The whole stored series is used (trailing windows, no lookahead). Without enough history for
    the CRW climatology (base period 1985–2012), only the rolling means are filled and anomaly,
    HotSpot, DHW and alert level are NaN (logged).
    """
    if raw.empty:
        return pd.DataFrame()
    sites = raw["site_id"].unique()
    if len(sites) != 1:
        raise DataError("sst_daily", f"expected one site's rows, got sites {list(sites)[:5]}")
    series = pd.Series(
        raw["sst"].to_numpy(float),
        index=pd.DatetimeIndex(pd.to_datetime(raw["event_timestamp"], utc=True)),
        name="sst",
    ).sort_index()
    config = config or ThermalConfig()
    try:
        feats = thermal_features(series, config)
    except DataError as exc:
        if "base period" not in str(exc) and "climatology" not in str(exc):
            raise
        log.info("no CRW climatology yet; rolling means only", site=int(sites[0]), why=str(exc))
        feats = rolling_means(series, config)
        feats.insert(0, "sst", series.reindex(feats.index).to_numpy())
        for col in ("anomaly", "hotspot", "dhw", "alert_level"):
            feats[col] = np.nan
    feats.index = (
        feats.index.tz_convert("UTC") if feats.index.tz else feats.index.tz_localize("UTC")
    )
    wanted = pd.DatetimeIndex(
        pd.to_datetime(stamps if stamps is not None else series.index, utc=True)
    )
    rows = feats.reindex(wanted.floor("D") + (feats.index[0] - feats.index[0].floor("D")))
    rows.index = wanted
    out = rows.reset_index(names="event_timestamp")
    out.insert(0, "site_id", int(sites[0]))
    return out


def load_surveys(path: str | Path | None = None) -> pd.DataFrame:
    from earthops.data.tables import read_bleaching_surveys

    return read_bleaching_surveys(path)
