"""Feast objects of the ReefGuard feature repository (entity ``site`` and its feature views).

TTLs are per view, because a view's TTL bounds both what ``get_historical_features`` joins (the
newest row at most TTL before the event) and what counts as fresh online:

* ``site_covariates`` — static per site (position, distance to shore, turbidity, ocean, realm),
  stamped at the site's first survey; TTL 0 (never expires).
* ``survey_features`` — per site and survey year (surveys carry only a year: stamped at the
  nominal survey date ``YYYY-07-01T00:00Z``); TTL 366 days, so a training row joins the site's
  survey of that year, never a later one and never one older than a year.
* ``sst_stream`` — thermal features of the daily SST stream (online; TTL = settings
  ``online_ttl_hours``, 8 h): what ``get --site`` serves.
* ``sst_history`` — the same rows, offline only, TTL 3 days: the latest daily reading at or
  before a training event (an 8 h TTL would join nothing for events between readings).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String

from earthops.featurestore.offline import TABLES

PROJECT = "earthops"
SITE = "site"
SITE_KEY = "site_id"
SURVEY_MONTH_DAY = "07-01"
SURVEY_TTL = timedelta(days=366)
SST_HISTORY_TTL = timedelta(days=3)

ONLINE_VIEWS = ("site_covariates", "survey_features", "sst_stream")


def _dtype(arrow_type: object) -> PrimitiveFeastType:
    text = str(arrow_type)
    if text == "string":
        return String
    if text == "int64":
        return Int64
    return Float64


def _source(data: Path, table: str) -> FileSource:
    return FileSource(
        name=f"{table}_source",
        path=str(data / f"{table}.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )


def _fields(table: str) -> list[Field]:
    return [Field(name=c, dtype=_dtype(t)) for c, t in TABLES[table].items()]


def build_objects(data: Path, online_ttl_hours: float = 8.0) -> dict[str, object]:
    """Entity and feature views over the Parquet tables in ``data`` (name → Feast object)."""
    site = Entity(
        name=SITE,
        join_keys=[SITE_KEY],
        value_type=ValueType.INT64,
        description="Reef survey site (Site_ID of the bleaching-survey table).",
    )
    sst_source = _source(data, "sst_features")
    views = [
        FeatureView(
            name="site_covariates",
            entities=[site],
            ttl=timedelta(0),
            schema=_fields("site_covariates"),
            source=_source(data, "site_covariates"),
            online=True,
            description="Static site covariates from the survey table.",
        ),
        FeatureView(
            name="survey_features",
            entities=[site],
            ttl=SURVEY_TTL,
            schema=_fields("survey_features"),
            source=_source(data, "survey_features"),
            online=True,
            description="Survey-time heat stress and site state, per site and survey year.",
        ),
        FeatureView(
            name="sst_stream",
            entities=[site],
            ttl=timedelta(hours=online_ttl_hours),
            schema=_fields("sst_features"),
            source=sst_source,
            online=True,
            description="Daily SST thermal features (CRW method) fed by the sensor stream.",
        ),
        FeatureView(
            name="sst_history",
            entities=[site],
            ttl=SST_HISTORY_TTL,
            schema=_fields("sst_features"),
            source=sst_source,
            online=False,
            description="The SST stream features for point-in-time training joins.",
        ),
    ]
    return {"site": site, **{v.name: v for v in views}}


def online_feature_refs() -> list[str]:
    """``view:feature`` references that ``get --site`` serves."""
    return [f"{view}:{col}" for view in ONLINE_VIEWS for col in TABLES[_table(view)]]


def _table(view: str) -> str:
    return "sst_features" if view.startswith("sst_") else view
