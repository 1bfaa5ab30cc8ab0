"""Typed request and response models of the server's HTTP API (the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

#: integer fields of a request: JSON-safe integers (exact as a double in every JSON parser,
#: and within the 64 bits the feature stores and the log hold)
SAFE_INT = (-(2**53 - 1), 2**53 - 1)


class Problem(BaseModel):
    """An error answer: what was wrong."""

    detail: str


class Feedback(BaseModel):
    """A true label for a logged prediction (its record id: the request id for one record)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=200)
    label: str = Field(min_length=1, max_length=200)


class FeedbackStored(BaseModel):
    request_id: str
    stored: bool


class Weights(BaseModel):
    """Admin: the challenger's traffic share and shadow mode of one use case."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no false as 0.0, no 0.0 as false

    challenger: float | None = Field(None, ge=0, le=1)
    shadow: bool | None = None


class SplitOut(BaseModel):
    usecase: str
    challenger_weight: float
    shadow: bool


class ArmOut(BaseModel):
    alias: str
    version: str | None
    loaded: bool
    error: str | None
    datasets: dict[str, str] = Field(default_factory=dict)


class UseCaseOut(BaseModel):
    usecase: str
    model_name: str
    arms: list[ArmOut]
    challenger_weight: float
    shadow: bool
    canary: dict[str, Any] | None = None


class ModelsOut(BaseModel):
    usecases: list[UseCaseOut]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    problems: list[str] = Field(default_factory=list)


class AdminResult(BaseModel):
    usecase: str
    action: str
    done: bool
    detail: str
    result: dict[str, Any] = Field(default_factory=dict)


def predict_models(
    usecase: str, record: type[BaseModel], answer: type[BaseModel], max_records: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request and response models of ``POST /v1/{usecase}/predict``."""
    slug = "".join(part.title() for part in usecase.split("-"))
    record = _safe_int_record(record)
    request = create_model(
        f"{slug}PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )
    response = create_model(
        f"{slug}PredictResponse",
        request_id=(str, ...),
        record_ids=(list[str], ...),
        usecase=(str, ...),
        arm=(str, Field(description="champion or challenger")),
        model_name=(str | None, ...),
        model_version=(str | None, ...),
        predictions=(list[answer], ...),  # type: ignore[valid-type]
    )
    return request, response


def _safe_int_record(record: type[BaseModel]) -> type[BaseModel]:
    """``record`` with its top-level ``int`` fields bounded to :data:`SAFE_INT` where unbounded:
    a larger id is a 422 naming the field, not an overflow deep in the feature store (a 500)."""
    bounded: dict[str, Any] = {}
    for name, info in record.model_fields.items():
        if info.annotation is not int:
            continue
        low = any(hasattr(m, "ge") or hasattr(m, "gt") for m in info.metadata)
        high = any(hasattr(m, "le") or hasattr(m, "lt") for m in info.metadata)
        if not (low and high):
            bounds = Field(ge=None if low else SAFE_INT[0], le=None if high else SAFE_INT[1])
            bounded[name] = (Annotated[int, bounds], info)
    if not bounded:
        return record
    return create_model(record.__name__, __base__=record, __doc__=record.__doc__, **bounded)
