"""Validation of stream records: one pydantic model per SST reading, counted rejections."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from earthops.features.thermal import ThermalConfig

_SST_LOW, _SST_HIGH = ThermalConfig().sst_range
#: Column names accepted for the SST value (ERDDAP CoralTemp ``CRW_SST``, buoys ``sst``…).
SST_NAMES = ("sst", "CRW_SST", "sea_surface_temperature", "wtmp", "WTMP")


class SSTRecord(BaseModel):
    """One daily SST reading at a reef site (°C, UTC)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    site_id: int = Field(ge=0)
    time: datetime
    sst: float = Field(ge=_SST_LOW, le=_SST_HIGH, description="Sea-surface temperature, °C.")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=360)

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("sst", "latitude", "longitude", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return None
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("NaN is not a value")
        if isinstance(value, str) and value.strip().lower() in ("nan", "na"):
            raise ValueError("missing value")
        return value


@dataclass
class Rejections:
    """Rejected records counted by reason (``field: problem``), with a few examples."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(example)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_reason": dict(self.counts), "examples": self.examples}


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "record"
    return f"{where}: {err.get('msg', 'invalid')}"


def validate_record(
    raw: dict[str, Any], site_id: int | None, rejections: Rejections, where: str
) -> SSTRecord | None:
    """An :class:`SSTRecord` from a raw mapping, or None (the rejection is counted)."""
    data = dict(raw)
    value = next((data[n] for n in SST_NAMES if n in data), None)
    data["sst"] = value
    if site_id is not None:
        data["site_id"] = site_id
    elif "site_id" not in data:
        for alias in ("Site_ID", "site"):
            if alias in data:
                data["site_id"] = data[alias]
                break
    try:
        return SSTRecord.model_validate(data)
    except ValidationError as exc:
        reason = _reason(exc)
        rejections.add(reason, f"{where}: {reason} (got {raw!r})"[:300])
        return None
