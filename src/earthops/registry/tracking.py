"""MLflow tracking helpers: one place that knows the store, experiments, lineage and model logging."""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from earthops.data.identity import DatasetRef
from earthops.errors import EarthOpsError
from earthops.registry.card import ModelCard, card_metadata
from earthops.settings import Settings, get_settings

MODEL_ARTIFACT = "model"
_MAX_INPUT_DIGEST = 36  # MLflow's limit on a dataset input's digest
_ENV_PACKAGES = (
    "earthops",
    "numpy",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "torch",
    "mlflow",
    "optuna",
    "prefect",
    "feast",
    "rasterio",
    "xarray",
    "dask",
    "numba",
)


def configure(settings: Settings | None = None) -> MlflowClient:
    """Point MLflow at the configured tracking/registry store and return a client."""
    settings = settings or get_settings()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri or settings.mlflow_tracking_uri)
    return MlflowClient()


def experiment_id(name: str, settings: Settings | None = None) -> str:
    """Id of experiment ``name`` (created with artifacts under the EarthOps home if new)."""
    settings = settings or get_settings()
    client = configure(settings)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        location = (settings.mlflow_artifact_root / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


@contextmanager
def training_run(
    usecase: str,
    *,
    run_name: str | None = None,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run in the use case's experiment, with environment info logged."""
    exp = experiment_id(usecase)
    all_tags = {"earthops.usecase": usecase, **(tags or {})}
    with mlflow.start_run(
        experiment_id=exp, run_name=run_name, nested=nested, tags=all_tags
    ) as run:
        if not nested:
            log_environment()
        yield run


def log_environment() -> None:
    """Python, platform and key package versions as tags plus a requirements artifact."""
    versions: dict[str, str] = {}
    for pkg in _ENV_PACKAGES:
        try:
            versions[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            continue
    mlflow.set_tags(
        {
            "env.python": sys.version.split()[0],
            "env.platform": platform.platform(),
            "env.cpu_count": str(os.cpu_count()),
            **{f"env.{k}": v for k, v in versions.items()},
        }
    )
    mlflow.log_text("\n".join(f"{k}=={v}" for k, v in sorted(versions.items())), "environment.txt")


def log_dataset_refs(refs: list[DatasetRef], context: str = "training") -> None:
    """Log dataset references as MLflow dataset inputs (lineage: model version → data digest).

    MLflow caps a dataset-input digest at 36 characters, so a longer one (SHA-256) is logged
    there as its first 32 hex digits; the ``earthops.datasets`` tag keeps the full digests.
    """
    for ref in refs:
        source = HTTPDatasetSource(url=ref.uri if "://" in ref.uri else Path(ref.uri).as_uri())
        digest = ref.digest if len(ref.digest) <= _MAX_INPUT_DIGEST else ref.digest[:32]
        mlflow.log_input(MetaDataset(source=source, name=ref.name, digest=digest), context=context)
    mlflow.set_tag(
        "earthops.datasets", json.dumps({r.name: r.digest for r in refs}, sort_keys=True)
    )


def run_datasets(run_id: str) -> dict[str, str]:
    """Lineage of a run: ``{dataset name: digest}`` (full SHA-256 where the run recorded it).

    Read from the ``earthops.datasets.sha256`` / ``earthops.datasets`` tags, else from the
    run's MLflow dataset inputs.
    """
    run = configure().get_run(run_id)
    for tag in ("earthops.datasets.sha256", "earthops.datasets"):
        if tag in run.data.tags:
            return dict(json.loads(run.data.tags[tag]))
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return {d.dataset.name: d.dataset.digest for d in inputs}


def log_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    labels: list[Any],
    *,
    names: Mapping[Any, str] | None = None,
    artifact: str = "confusion_matrix",
) -> None:
    """Confusion matrix (rows = truth) as ``<artifact>.json`` and a ``<artifact>.png`` heat map."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=labels)
    ticks = [str((names or {}).get(label, label)) for label in labels]
    mlflow.log_dict({"labels": ticks, "matrix": matrix.tolist()}, f"{artifact}.json")
    fig, ax = _figure(max(4.0, 0.45 * len(labels) + 2))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(ticks)), ticks, rotation=90)
    ax.set_yticks(range(len(ticks)), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    _log_figure(fig, f"{artifact}.png")


def log_binary_curves(y_true: Any, score: Any, *, artifact: str = "curves") -> None:
    """ROC and precision-recall curves of a binary score: ``<artifact>.json`` and ``.png``."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = np.asarray(y_true).astype(int), np.asarray(score, dtype=float)
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    mlflow.log_dict(
        {
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
            "pr": {"precision": precision.tolist(), "recall": recall.tolist()},
        },
        f"{artifact}.json",
    )
    fig, (roc, pr) = _figure(4.0, ncols=2)
    roc.plot(fpr, tpr)
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.plot(recall, precision)
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    _log_figure(fig, f"{artifact}.png")


def _figure(size: float, ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(size * ncols, size))


def _log_figure(fig: Any, name: str) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    mlflow.log_figure(fig, name)
    plt.close(fig)


def log_metrics_dict(metrics: Mapping[str, Any], prefix: str = "") -> None:
    """Log every numeric leaf of a (nested) metrics dict; the full JSON as an artifact."""
    flat: dict[str, float] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, bool | np.bool_):
            return
        elif isinstance(node, int | float | np.integer | np.floating) and np.isfinite(node):
            flat[_metric_key(key)] = float(node)

    walk(metrics, prefix)
    if flat:
        mlflow.log_metrics(flat)
    mlflow.log_dict(dict(metrics), f"{prefix or 'metrics'}.json")


def _metric_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-/ " else "_" for c in key)


def log_model(
    model: Any,
    input_example: pd.DataFrame | np.ndarray,
    *,
    card: ModelCard,
    output_example: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Log a fitted sklearn-compatible estimator with its model card, signature and input
    example; return its URI. ``metadata`` adds use-case keys beside the card."""
    example = (
        input_example.iloc[:5] if isinstance(input_example, pd.DataFrame) else input_example[:5]
    )
    if output_example is None:
        output_example = model.predict(example)
    signature = infer_signature(example, output_example)
    info = mlflow.sklearn.log_model(
        sk_model=model,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=example,
        serialization_format="cloudpickle",
        metadata={**dict(metadata or {}), **card_metadata(card)},
        pip_requirements=model_requirements(),
    )
    return info.model_uri


#: what a logged model needs to load (the earthops package itself is installed beside them)
_MODEL_PACKAGES = ("numpy", "pandas", "scikit-learn", "lightgbm", "xgboost", "torch", "cloudpickle")


@functools.lru_cache(maxsize=1)
def model_requirements() -> tuple[str, ...]:
    """Pinned requirements of a logged model, from this environment.

    Given explicitly so MLflow does not infer them (it loads the model in a subprocess,
    several seconds per model).
    """
    pins = []
    for pkg in _MODEL_PACKAGES:
        try:
            pins.append(f"{pkg}=={importlib_metadata.version(pkg)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return tuple(pins)


def load_model(uri: str) -> Any:
    """Load an estimator from any URI MLflow resolves (models:/name@alias, runs:/…, a local dir)."""
    configure()
    try:
        return mlflow.sklearn.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise EarthOpsError(f"cannot load model '{uri}': {exc.message}") from None
    except OSError as exc:
        raise EarthOpsError(f"cannot load model '{uri}': {exc}") from None


def model_metadata(uri: str) -> dict[str, Any]:
    """The ``metadata`` dict stored with a logged model (feature names, classes, use case…)."""
    local = Path(uri)
    if local.is_dir() and (local / "MLmodel").is_file():  # a copied model folder
        return dict(mlflow.models.Model.load(local / "MLmodel").metadata or {})
    configure()
    try:
        info = mlflow.models.get_model_info(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise EarthOpsError(f"cannot read model '{uri}': {exc.message}") from None
    return dict(info.metadata or {})
