"""The use-case contract: data + features + target + metrics + gate.

Generic layers (CLI, pipelines, registry) reach a use case only through this interface
and the name registry in :mod:`earthops.usecases`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from earthops.data.identity import DatasetRef
from earthops.errors import EarthOpsError
from earthops.models.param_check import ignored_params
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords

#: keys every classification use case's metrics JSON carries (DESIGN's CLI contract)
CLASSIFICATION_KEYS = frozenset(
    {"overall_accuracy", "macro_f1", "kappa", "per_class", "baseline", "model_uri", "run_id"}
)


@dataclass(frozen=True)
class BBox:
    """A lon/lat box in degrees: ``minx,miny,maxx,maxy``."""

    minx: float
    miny: float
    maxx: float
    maxy: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        try:
            minx, miny, maxx, maxy = (float(v) for v in text.split(","))
        except ValueError:
            raise EarthOpsError(
                f"bbox '{text}': expected 'minx,miny,maxx,maxy' in degrees (four numbers)"
            ) from None
        if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
            raise EarthOpsError(
                f"bbox '{text}': expected -180<=minx<maxx<=180 and -90<=miny<maxy<=90"
            )
        return cls(minx, miny, maxx, maxy)

    def contains(self, lon: Any, lat: Any) -> Any:
        """Boolean mask (works on scalars and numpy arrays)."""
        return (lon >= self.minx) & (lon <= self.maxx) & (lat >= self.miny) & (lat <= self.maxy)

    def __str__(self) -> str:
        return f"{self.minx},{self.miny},{self.maxx},{self.maxy}"


@dataclass
class TrainOptions:
    """What ``earthops train`` passes to a use case."""

    dataset: Path | None = None
    protocol: str | None = None
    exclude_bboxes: list[BBox] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    fast: bool = False  # reduced-cost run (smoke tests, make run on small machines)


def parse_params(text: str | None) -> dict[str, Any]:
    """``--params``: a JSON object inline, or ``@path`` to a JSON file; clear errors otherwise."""
    if not text:
        return {}
    source = "--params"
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise EarthOpsError(f"--params file '{path}' not found")
        source, text = str(path), path.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EarthOpsError(f"{source}: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise EarthOpsError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value


def merge_member_params(defaults: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every ``*_params`` object merged onto ``defaults``' dict of that name,
    so a partial override keeps the other defaults; a non-object is a clear error."""
    merged = dict(params)
    for key, value in params.items():
        if not (key.endswith("_params") and isinstance(getattr(defaults, key, None), dict)):
            continue
        if not isinstance(value, dict):
            raise EarthOpsError(f"params.{key}: expected an object, got {type(value).__name__}")
        merged[key] = {**getattr(defaults, key), **value}
    return merged


def members_to_check(
    fitted: Iterable[str], params: Mapping[str, Any], fields: Mapping[str, str]
) -> tuple[str, ...]:
    """The members a run fits and every member whose parameters (``fields``: kind -> params
    field) the user set: a misspelt parameter fails even for a member that ``train`` does not
    fit, since ``earthops tune`` fits its own."""
    return tuple(dict.fromkeys([*fitted, *(k for k, name in fields.items() if name in params)]))


def check_members(kinds: Iterable[str], build: Callable[[str], Any]) -> None:
    """Build every member once (cheap: no fitting), so that a misspelt member parameter is a
    clear error before any training starts rather than a traceback in the middle of it."""
    for kind in kinds:
        try:
            estimator = build(kind)
        except (TypeError, ValueError) as exc:
            raise EarthOpsError(f"params for member '{kind}': {exc}") from None
        ignored = ignored_params(estimator)
        if ignored:
            raise EarthOpsError(
                f"params for member '{kind}': unknown parameter(s) {ignored}, which the "
                "library would silently ignore"
            )


@dataclass
class EvalOptions:
    """What ``earthops evaluate`` passes to a use case."""

    dataset: Path | None = None
    protocol: str | None = None
    bboxes: list[BBox] = field(default_factory=list)


class UseCase(Protocol):
    """A domain problem EarthOps can train, evaluate, tune and gate."""

    name: str
    primary_metric: str
    #: minimum metric values a version must reach to become `challenger`
    gate: dict[str, float]

    def train(self, options: TrainOptions) -> dict[str, Any]:
        """Train with honest validation; log to MLflow; return the metrics JSON (DESIGN keys)."""
        ...

    def evaluate(self, model_uri: str, options: EvalOptions) -> dict[str, Any]:
        """Score a logged model on a labelled dataset in the use case's format."""
        ...

    def dataset_refs(self, options: TrainOptions) -> list[DatasetRef]:
        """References (name, uri, digest) of every input the training reads (cache keys, lineage)."""
        ...

    def predict_raster(
        self, model_uri: str, inputs: list[Path], output: Path, *, with_probability: bool = False
    ) -> Path:
        """Apply a logged model of this use case to raster input(s); write a COG; return its path."""
        ...

    # ---- the predict contract (``earthops serve``, ``earthops predict``) -------------
    #: one record of a predict request, and the answer for it (typed: the server's schema)
    request_model: type[BaseModel]
    response_model: type[BaseModel]

    def routing_key(self, record: BaseModel) -> str:
        """The key canary routing hashes, so one client (site, place) sees one model."""
        ...

    def prepare_records(self, model: LoadedModel, records: Sequence[BaseModel]) -> PreparedRecords:
        """Raw domain inputs → the model's input frame (feature-store / grid lookups), the
        region of each record and what the answer needs besides the prediction."""
        ...

    def respond(
        self, model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
    ) -> list[BaseModel]:
        """The typed answers of the prepared records."""
        ...

    def predict_records(self, model: LoadedModel, records: Sequence[BaseModel]) -> list[BaseModel]:
        """Answers for ``records`` in one model call (:func:`predict_records`)."""
        ...

    def readiness(self) -> str | None:
        """Why this use case cannot answer now (feature store unreachable…), or ``None``."""
        ...

    def example_record(self) -> BaseModel:
        """A real record to send (a surveyed site, a forest pixel, a shared sample)."""
        ...

    def serving_metric(
        self, y_true: Sequence[str], labels: Sequence[str], scores: Sequence[Any]
    ) -> float:
        """The primary metric on fed-back labels (text, as the prediction log stores them)."""
        ...


def predict_records(
    usecase: UseCase, model: LoadedModel, records: Sequence[BaseModel]
) -> list[BaseModel]:
    """The one predict path: prepare → one model call → typed answers (server and batch)."""
    prepared = usecase.prepare_records(model, records)
    return usecase.respond(model, prepared, model.predict_frame(prepared.frame))


class RecordContract:
    """Shared parts of the predict contract for use-case classes: the one predict path,
    always ready, and macro-F1 of the served labels against fed-back ones."""

    def predict_records(self, model: LoadedModel, records: Sequence[BaseModel]) -> list[BaseModel]:
        return predict_records(self, model, records)  # type: ignore[arg-type]

    def readiness(self) -> str | None:
        return None

    def serving_metric(
        self, y_true: Sequence[str], labels: Sequence[str], scores: Sequence[Any]
    ) -> float:
        from sklearn.metrics import f1_score

        truth = [str(v) for v in y_true]
        return float(f1_score(truth, [str(v) for v in labels], average="macro", zero_division=0))
