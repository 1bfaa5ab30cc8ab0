"""One way to use a logged model: load by URI → predict a frame → labels and probabilities.

The server, ``predict-raster``, ``evaluate``, monitoring and the dashboard all call
:func:`load` and :meth:`LoadedModel.predict_frame`, so online and batch answers cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earthops.errors import EarthOpsError, SignatureError
from earthops.registry.card import ModelCard, card_from_metadata
from earthops.registry.tracking import configure, load_model, model_metadata

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Prediction:
    """Answers for the rows of one frame: ``labels`` (class values) and ``probabilities``
    ``(n, len(classes))`` in the card's class order."""

    labels: np.ndarray
    probabilities: np.ndarray
    classes: tuple[int | str, ...]

    @property
    def scores(self) -> np.ndarray:
        """P(positive class) for a binary task, else the top class's probability."""
        if len(self.classes) == 2:
            return self.probabilities[:, 1]
        return self.probabilities.max(axis=1)


@dataclass
class LoadedModel:
    """A logged model with its card and, for registry URIs, its registered name and version."""

    uri: str
    model: Any
    card: ModelCard
    name: str | None = None
    version: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    def predict_frame(self, frame: pd.DataFrame) -> Prediction:
        """Labels and probabilities of ``frame`` (columns: the card's ``input_columns``)."""
        missing = [c for c in self.card.input_columns if c not in frame.columns]
        if missing:
            raise SignatureError(
                f"model '{self.uri}': input lacks column(s) {missing[:5]}"
                f"{' …' if len(missing) > 5 else ''}; expected {len(self.card.input_columns)} "
                "columns as in the model card"
            )
        columns = self.card.input_columns
        # a frame already in the card's column order (the server's prepared records) goes in
        # as is: selecting the same columns again only copies it
        same = list(frame.columns) == list(columns)
        proba = np.asarray(self.model.predict_proba(frame if same else frame[columns]), float)
        classes = np.asarray(self.card.classes, dtype=object)
        if self.card.task == "binary":
            threshold = 0.5 if self.card.threshold is None else self.card.threshold
            picked = (proba[:, 1] >= threshold).astype(int)
        else:
            picked = np.argmax(proba, axis=1)
        labels = classes[picked]
        if all(isinstance(c, int) for c in self.card.classes):
            labels = labels.astype(np.int64)
        return Prediction(labels=labels, probabilities=proba, classes=tuple(self.card.classes))


def registry_ref(uri: str) -> tuple[str, str | None, str | None] | None:
    """``(name, alias, version)`` of a ``models:/NAME@ALIAS`` or ``models:/NAME/N`` URI."""
    match = _REGISTRY_URI.match(uri)
    if match is None:
        return None
    return match["name"], match["alias"], match["version"]


def resolve_version(uri: str) -> tuple[str | None, str | None]:
    """Registered ``(name, version)`` behind a registry URI (``(None, None)`` otherwise)."""
    ref = registry_ref(uri)
    if ref is None:
        return None, None
    name, alias, version = ref
    if version is not None:
        return name, version
    client = configure()
    try:
        return name, str(client.get_model_version_by_alias(name, alias).version)
    except Exception as exc:  # MlflowException for an unknown name or alias
        raise EarthOpsError(f"model '{uri}': no version has alias '{alias}' ({exc})") from None


def load(uri: str | Path, *, usecase: str | None = None) -> LoadedModel:
    """The model behind ``uri`` (any MLflow URI or a local model dir) with its card.

    ``usecase`` checks the card's use case. Registry aliases are resolved once, so the
    returned version is the one loaded even if the alias moves afterwards.
    """
    uri = str(uri)
    name, version = resolve_version(uri)
    pinned = f"models:/{name}/{version}" if name and version else uri
    meta = model_metadata(pinned)
    card = card_from_metadata(meta, uri)
    if usecase is not None and card.usecase != usecase:
        raise EarthOpsError(f"model '{uri}' is a {card.usecase} model; expected a {usecase} one")
    run_id = None
    if name and version:
        run_id = configure().get_model_version(name, version).run_id
    model = load_model(pinned)
    return LoadedModel(uri, model, card, name=name, version=version, meta=meta, run_id=run_id)


@dataclass(frozen=True)
class PreparedRecords:
    """Predict-request records made ready for one model: its input ``frame`` (one row per
    record), each record's ``region`` (for regional canary gates and drift) and ``context``
    (what the answer needs besides the prediction, e.g. the site's alert level)."""

    frame: pd.DataFrame
    regions: list[str | None]
    context: list[dict[str, Any]]

    def __post_init__(self) -> None:
        if not (len(self.frame) == len(self.regions) == len(self.context)):
            raise EarthOpsError("prepared records: frame, regions and context differ in length")

    def features(self) -> list[dict[str, Any]]:
        """The input rows as JSON-ready dicts (NaN → None), for the prediction log."""
        columns = [str(c) for c in self.frame.columns]
        values = [self.frame[c].tolist() for c in self.frame.columns]  # native scalars
        return [
            {
                k: None if isinstance(v, float) and v != v else v
                for k, v in zip(columns, row, strict=True)
            }
            for row in zip(*values, strict=True)
        ]


def rows_of(prediction: Prediction, start: int, stop: int) -> Prediction:
    """Rows ``start:stop`` of a prediction (a micro-batch split back per request)."""
    return Prediction(
        prediction.labels[start:stop], prediction.probabilities[start:stop], prediction.classes
    )
