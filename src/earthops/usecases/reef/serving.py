"""The reef predict contract: a site id (features from the Feast online store) and optional
survey covariates that override them → bleaching probability, decision and CRW alert level.

The model input is the survey table's columns (as ``evaluate`` scores them): the site's
static covariates and its latest survey-time features come from the online store; the alert
level is the CRW level of the site's latest streamed DHW (``sst_stream``), else of the
survey-time DHW used as model input.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from earthops.features.reef_features import (
    DHW_COLUMN,
    OCEAN_COLUMN,
    REALM_COLUMN,
    YEAR_COLUMN,
)
from earthops.features.thermal import ALERT_LEVEL_NAMES, alert_level_from_dhw
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords

#: online feature → (survey column, factor) of the model input
ONLINE_TO_SURVEY: dict[str, tuple[str, float]] = {
    "latitude": ("Latitude_Degrees", 1.0),
    "longitude": ("Longitude_Degrees", 1.0),
    "distance_to_shore_km": ("Distance_to_Shore", 1000.0),
    "turbidity": ("Turbidity", 1.0),
    "survey_sst": ("Temp", 1.0),
    "survey_dhw": (DHW_COLUMN, 1.0),
    "survey_dhw_sd": ("TSA_DHW_Standard_Deviation", 1.0),
    "survey_sst_sd": ("Temperature_Kelvin_Standard_Deviation", 1.0),
    "survey_ssta_freq_sd": ("SSTA_Frequency_Standard_Deviation", 1.0),
    "survey_depth_m": ("Depth_m", 1.0),
    "survey_coral_cover": ("Coral", 1.0),
}
_TEXT = {"ocean": OCEAN_COLUMN, "realm": REALM_COLUMN}


class SurveyCovariates(BaseModel):
    """Explicit survey covariates (the shared survey table's columns); each overrides the
    online store's value for the site."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    Temp: float | None = Field(None, ge=-5, le=45, description="SST at survey, °C")
    SSTA_DHW: float | None = Field(None, ge=0, le=100, description="degree heating weeks")
    TSA_DHW_Standard_Deviation: float | None = Field(None, ge=0)
    Temperature_Kelvin_Standard_Deviation: float | None = Field(None, ge=0)
    SSTA_Frequency_Standard_Deviation: float | None = Field(None, ge=0)
    Depth_m: float | None = Field(None, ge=0, le=200)
    Latitude_Degrees: float | None = Field(None, ge=-90, le=90)
    Longitude_Degrees: float | None = Field(None, ge=-180, le=180)
    Distance_to_Shore: float | None = Field(None, ge=0, description="metres")
    Turbidity: float | None = Field(None, ge=0)
    Coral: float | None = Field(None, ge=0, le=100, description="coral cover, %")
    Date_Year: int | None = Field(None, ge=1980, le=2100)
    Ocean_Name: str | None = Field(None, min_length=1)
    Realm_Name: str | None = Field(None, min_length=1)


class ReefRecord(BaseModel):
    """One reef site to score."""

    model_config = ConfigDict(extra="forbid")

    site_id: int = Field(ge=0, description="Site_ID of the bleaching-survey table")
    covariates: SurveyCovariates | None = None


class ReefAnswer(BaseModel):
    """Bleaching risk of one site."""

    site_id: int
    probability: float = Field(description="calibrated P(bleaching ≥ the model's % threshold)")
    bleaching: bool = Field(description="the decision at the model's threshold")
    threshold: float
    dhw: float | None = Field(description="the site's latest DHW (stream, else survey)")
    alert_level: int | None = Field(description="NOAA CRW alert level 0..7 of that DHW")
    alert_name: str | None
    realm: str | None
    model_name: str | None
    model_version: str | None


def online_survey_row(site_id: int) -> tuple[dict[str, Any], float | None]:
    """The site's online features as survey columns, and its latest streamed DHW."""
    from earthops.featurestore import get_online

    return _survey_row(get_online(site_id))


def online_survey_rows(site_ids: Sequence[int]) -> list[tuple[dict[str, Any], float | None]]:
    """:func:`online_survey_row` of each site from one online-store call (a request's
    records); a site without online features fails as :func:`get_online` fails for it."""
    if len(site_ids) <= 1:
        return [online_survey_row(s) for s in site_ids]
    from earthops.featurestore import get_online
    from earthops.featurestore.definitions import SITE_KEY, online_feature_refs
    from earthops.featurestore.store import _clean, _online_call, feature_store

    refs = online_feature_refs()
    response = _online_call(
        "get_online_features",
        feature_store().get_online_features,
        features=refs,
        entity_rows=[{SITE_KEY: int(s)} for s in site_ids],
    ).to_dict()
    names = [ref.split(":", 1)[1] for ref in refs]
    out = []
    for i, site in enumerate(site_ids):
        features = {k: v[i] for k, v in response.items() if k != SITE_KEY}
        if all(v is None for v in features.values()):
            get_online(int(site))  # raises the single-site error (unknown / not materialized)
        online = {SITE_KEY: int(site), **{n: _clean(features.get(n)) for n in names}}
        out.append(_survey_row(online))
    return out


def _survey_row(online: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    row: dict[str, Any] = {}
    for name, (column, factor) in ONLINE_TO_SURVEY.items():
        value = online.get(name)
        row[column] = np.nan if value is None else float(value) * factor
    for name, column in _TEXT.items():
        row[column] = online.get(name)
    stream_dhw = online.get("dhw")
    return row, None if stream_dhw is None else float(stream_dhw)


def prepare(model: LoadedModel, records: Sequence[ReefRecord]) -> PreparedRecords:
    """Model input rows: online features, overridden by explicit covariates."""
    rows, context = [], []
    online = online_survey_rows([record.site_id for record in records])
    for record, (row, stream_dhw) in zip(records, online, strict=True):
        if record.covariates is not None:
            row.update(record.covariates.model_dump(exclude_none=True))
        if row.get(YEAR_COLUMN) is None:  # not a model feature; chips would use it
            row[YEAR_COLUMN] = dt.datetime.now(dt.UTC).year
        rows.append(row)
        survey_dhw = row.get(DHW_COLUMN)
        dhw = stream_dhw if stream_dhw is not None else survey_dhw
        context.append({"site_id": record.site_id, "dhw": _finite(dhw)})
    frame = pd.DataFrame.from_records(rows, columns=model.card.input_columns)
    return PreparedRecords(frame, [r.get(REALM_COLUMN) for r in rows], context)


def respond(
    model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
) -> list[ReefAnswer]:
    threshold = 0.5 if model.card.threshold is None else model.card.threshold
    answers = []
    levels = _alert_levels([ctx["dhw"] for ctx in prepared.context])
    scores = prediction.scores
    for i, ctx in enumerate(prepared.context):
        dhw = ctx["dhw"]
        level = levels[i]
        answers.append(
            ReefAnswer(
                site_id=ctx["site_id"],
                probability=float(scores[i]),
                bleaching=bool(prediction.labels[i] == 1),
                threshold=threshold,
                dhw=dhw,
                alert_level=level,
                alert_name=None if level is None else ALERT_LEVEL_NAMES[level],
                realm=prepared.regions[i],
                model_name=model.name,
                model_version=model.version,
            )
        )
    return answers


def _alert_levels(dhws: Sequence[float | None]) -> list[int | None]:
    """The CRW alert level of each DHW (None stays None), in one vectorised call."""
    values = np.array([np.nan if d is None else d for d in dhws], dtype=np.float64)
    levels = alert_level_from_dhw(values)
    return [None if np.isnan(v) else int(v) for v in levels]


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
