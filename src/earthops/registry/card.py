"""The model card: one typed description every logged EarthOps model carries.

It is stored in the MLflow model's ``metadata`` under :data:`CARD_KEY`; the server,
``predict-raster``, ``evaluate``, monitoring and the dashboard read the card, never the use
cases' own metadata keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from earthops.errors import EarthOpsError

CARD_KEY = "earthops_card"
CARD_VERSION = 1
#: artifact folder (under the run) of the files a model needs besides its pickle (grids…)
ARTIFACTS_DIR = "model_artifacts"


class ModelCard(BaseModel):
    """What a caller needs to feed a logged model and read its answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = CARD_VERSION
    usecase: str
    task: Literal["binary", "multiclass"]
    #: columns of the frame :meth:`LoadedModel.predict_frame` expects, in order
    input_columns: list[str]
    #: class values in the order of the probability columns
    classes: list[int | str]
    class_names: dict[str, str] = Field(default_factory=dict)
    #: binary tasks: decision threshold on P(classes[1])
    threshold: float | None = None
    #: gridded input the model maps (bands, CRS, resolution…), when it maps rasters
    raster_signature: dict[str, Any] | None = None
    #: run-relative artifact path of the reference profile monitoring reads
    reference_profile: str | None = None
    #: name → run-relative artifact path of files the model needs (e.g. a grid)
    artifacts: dict[str, str] = Field(default_factory=dict)

    def class_name(self, value: int | str) -> str:
        return self.class_names.get(str(value), str(value))


def card_metadata(card: ModelCard) -> dict[str, Any]:
    """The card as the ``metadata`` entry :func:`~earthops.registry.tracking.log_model` writes."""
    return {CARD_KEY: card.model_dump(mode="json")}


def card_from_metadata(metadata: dict[str, Any], uri: str) -> ModelCard:
    """The card of a logged model; a model logged before cards is a clear error."""
    raw = metadata.get(CARD_KEY)
    if raw is None:
        usecase = metadata.get("usecase", "USECASE")
        raise EarthOpsError(
            f"model '{uri}' was logged before EarthOps model cards (no '{CARD_KEY}' in its "
            f"metadata); retrain it: earthops train {usecase} --register"
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as exc:
        raise EarthOpsError(
            f"model '{uri}': invalid model card ({exc.errors()[0]['msg']})"
        ) from None
