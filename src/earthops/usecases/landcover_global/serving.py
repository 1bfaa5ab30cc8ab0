"""The global land-cover predict contract: a place (``lon``, ``lat``: features read from the
cached global feature grid, as maps read them) or an explicit feature vector → IGBP class,
class probabilities and the outside-gate verdict where the model has one."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from earthops.data.legends import KOPPEN
from earthops.errors import SignatureError
from earthops.features.global_grid import (
    FeatureGrid,
    GridSpec,
    extract_chips,
    flatten_chips,
    lonlat_to_pixel,
    pixel_lonlat,
)
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords


class PixelRecord(BaseModel):
    """A place on the 0.05° global grid, or the model's features given explicitly."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    features: dict[str, float] | None = Field(
        None, description="the model card's input columns → value (instead of lon/lat)"
    )

    @model_validator(mode="after")
    def _one_input(self) -> PixelRecord:
        has_place = self.lon is not None and self.lat is not None
        if has_place == (self.features is not None) or (self.lon is None) != (self.lat is None):
            raise ValueError("give either both 'lon' and 'lat', or 'features'")
        return self


class LandCoverAnswer(BaseModel):
    """The land-cover class of one pixel."""

    class_code: int
    class_name: str
    probabilities: dict[str, float] = Field(description="class name → probability")
    outside_gate: bool | None = Field(
        description="the gate puts the pixel in none of the model's classes (None: no gate)"
    )
    p_outside: float | None
    lon: float | None
    lat: float | None
    model_name: str | None
    model_version: str | None


@lru_cache(maxsize=4)
def _grid(spec_json: str) -> FeatureGrid:
    from earthops.features.global_grid import load_feature_grid

    return load_feature_grid(GridSpec.from_metadata(spec_json))


def grid_for(model: LoadedModel) -> FeatureGrid:
    """The cached feature grid the model was trained on (built on first use)."""
    import json

    signature = model.card.raster_signature or {}
    if "grid_spec" not in signature:
        raise SignatureError(f"model '{model.uri}': its card has no grid_spec to read pixels")
    return _grid(json.dumps(signature["grid_spec"], sort_keys=True))


def prepare(model: LoadedModel, records: Sequence[PixelRecord]) -> PreparedRecords:
    """Grid features at each place (same reads as the map), or the given vectors."""
    columns = model.card.input_columns
    frame = pd.DataFrame(np.nan, index=range(len(records)), columns=columns, dtype=np.float32)
    places = [i for i, r in enumerate(records) if r.features is None]
    coords: list[tuple[float | None, float | None]] = [(r.lon, r.lat) for r in records]
    if places:
        grid = grid_for(model)
        lon = np.array([records[i].lon for i in places])
        lat = np.array([records[i].lat for i in places])
        rows, cols = lonlat_to_pixel(lon, lat)
        frame.loc[places, grid.feature_names] = grid.values(rows, cols)
        chips = [c for c in columns if c.startswith("chip_")]
        if chips:  # a ViT member: the Blue Marble chip around each pixel, as the map reads it
            size = round((len(chips) / 3) ** 0.5)
            frame.loc[places, chips] = flatten_chips(extract_chips(rows, cols, size))
        centre_lon, centre_lat = pixel_lonlat(rows, cols)
        for k, i in enumerate(places):
            coords[i] = (float(centre_lon[k]), float(centre_lat[k]))
    for i, record in enumerate(records):
        if record.features is not None:
            _put_features(frame, i, record.features, columns)
    regions = [_koppen_group(frame, i) for i in range(len(records))]
    return PreparedRecords(frame, regions, [{"lon": x, "lat": y} for x, y in coords])


def _put_features(
    frame: pd.DataFrame, i: int, values: dict[str, float], columns: list[str]
) -> None:
    unknown = sorted(set(values) - set(columns))
    missing = [c for c in columns if c not in values]
    if unknown or missing:
        raise SignatureError(
            f"features: unknown {unknown[:5]}, missing {missing[:5]}; expected the model "
            f"card's {len(columns)} input columns"
        )
    frame.loc[i, columns] = [values[c] for c in columns]


def _koppen_group(frame: pd.DataFrame, i: int) -> str | None:
    if "koppen" not in frame.columns:
        return None
    value = frame.at[i, "koppen"]
    if not np.isfinite(value) or value <= 0:
        return "sea"
    return KOPPEN.names().get(int(value))


def respond(
    model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
) -> list[LandCoverAnswer]:
    estimator: Any = model.model
    gate = getattr(estimator, "has_outside_gate", False)
    p_out = None
    if gate:
        features = prepared.frame[list(estimator.feature_names)].to_numpy(np.float32)
        p_out = estimator.outside_proba(features)
    names = [model.card.class_name(c) for c in model.card.classes]
    answers = []
    for i, ctx in enumerate(prepared.context):
        code = int(prediction.labels[i])
        answers.append(
            LandCoverAnswer(
                class_code=code,
                class_name=model.card.class_name(code),
                probabilities=dict(
                    zip(names, map(float, prediction.probabilities[i]), strict=True)
                ),
                outside_gate=None if p_out is None else bool(p_out[i] > estimator.gate_threshold),
                p_outside=None if p_out is None else float(p_out[i]),
                lon=ctx["lon"],
                lat=ctx["lat"],
                model_name=model.name,
                model_version=model.version,
            )
        )
    return answers
