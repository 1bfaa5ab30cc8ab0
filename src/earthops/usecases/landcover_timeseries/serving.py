"""The time-series land-cover predict contract: one MOD13Q1 series in the shared samples'
JSON shape (``longitude``, ``latitude``, ``time_series: [{Index, ndvi, evi, …}]``) → class
and probabilities. Records are parsed and laid out by the same code that reads the samples
file for ``evaluate``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from earthops.data.samples import samples_from_records
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords
from earthops.usecases.landcover_timeseries.samples import sample_rows


class TimeStep(BaseModel):
    """One date of a series: ``Index`` (YYYY-MM-DD) and one number per band."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    __pydantic_extra__: dict[str, float] = Field(init=False)

    Index: str = Field(min_length=10, description="the date, YYYY-MM-DD")


class SeriesRecord(BaseModel):
    """A MOD13Q1 time series of one place (a record of the shared samples' JSON; its other
    keys, e.g. ``coverage``, ``label2``, ``cluster`` of sits exports, are ignored)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    longitude: float = Field(ge=-180, le=180)
    latitude: float = Field(ge=-90, le=90)
    start_date: str | None = None
    end_date: str | None = None
    label: str | None = Field(None, description="ignored (the samples' label, if any)")
    time_series: list[TimeStep] = Field(min_length=1, max_length=1000)


class SeriesAnswer(BaseModel):
    """The land-cover class of one series."""

    label: str
    probabilities: dict[str, float] = Field(description="class → probability")
    longitude: float
    latitude: float
    model_name: str | None
    model_version: str | None


def prepare(model: LoadedModel, records: Sequence[SeriesRecord]) -> PreparedRecords:
    """Flat time-major rows of the model's bands and dates, as ``evaluate`` builds them."""
    bands = tuple(model.meta["bands"])
    index = tuple(model.meta["date_index"])
    raw = [r.model_dump(exclude_none=True) for r in records]
    samples = samples_from_records(raw, "<request>", bands=bands, labelled=False)
    frame = pd.DataFrame(sample_rows(samples, bands, index), columns=model.card.input_columns)
    regions = [_block(r.longitude, r.latitude) for r in records]
    context = [{"longitude": r.longitude, "latitude": r.latitude} for r in records]
    return PreparedRecords(frame, regions, context)


def _block(lon: float, lat: float) -> str:
    """The 10° block of a place (``lat0,lon0`` of its south-west corner)."""
    return f"{math.floor(lat / 10) * 10},{math.floor(lon / 10) * 10}"


def respond(
    model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
) -> list[SeriesAnswer]:
    classes = [str(c) for c in model.card.classes]
    return [
        SeriesAnswer(
            label=str(prediction.labels[i]),
            probabilities=dict(zip(classes, map(float, prediction.probabilities[i]), strict=True)),
            model_name=model.name,
            model_version=model.version,
            **ctx,
        )
        for i, ctx in enumerate(prepared.context)
    ]
