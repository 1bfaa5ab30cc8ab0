"""Typed request and response models of the server's HTTP API (the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model


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

    model_config = ConfigDict(extra="forbid")

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
