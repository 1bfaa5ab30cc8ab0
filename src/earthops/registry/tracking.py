"""MLflow tracking helpers: one place that knows the store, experiments, lineage and model logging."""

from __future__ import annotations

import json
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
from earthops.settings import Settings, get_settings

MODEL_ARTIFACT = "model"
_ENV_PACKAGES = (
    "earthops", "numpy", "pandas", "scikit-learn", "lightgbm", "xgboost", "torch",
    "mlflow", "optuna", "prefect", "feast", "rasterio", "xarray", "dask", "numba",
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
            **{f"env.{k}": v for k, v in versions.items()},
        }
    )
    mlflow.log_text("\n".join(f"{k}=={v}" for k, v in sorted(versions.items())), "environment.txt")


def log_dataset_refs(refs: list[DatasetRef], context: str = "training") -> None:
    """Log dataset references as MLflow dataset inputs (lineage: model version → data digest)."""
    for ref in refs:
        source = HTTPDatasetSource(url=ref.uri if "://" in ref.uri else Path(ref.uri).as_uri())
        mlflow.log_input(MetaDataset(source=source, name=ref.name, digest=ref.digest), context=context)
    mlflow.set_tag(
        "earthops.datasets", json.dumps({r.name: r.digest for r in refs}, sort_keys=True)
    )


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
    output_example: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Log a fitted sklearn-compatible estimator with signature and input example; return its URI."""
    example = input_example.iloc[:5] if isinstance(input_example, pd.DataFrame) else input_example[:5]
    if output_example is None:
        output_example = model.predict(example)
    signature = infer_signature(example, output_example)
    info = mlflow.sklearn.log_model(
        sk_model=model,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=example,
        serialization_format="cloudpickle",
        metadata=dict(metadata or {}),
    )
    return info.model_uri


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
    configure()
    try:
        info = mlflow.models.get_model_info(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise EarthOpsError(f"cannot read model '{uri}': {exc.message}") from None
    return dict(info.metadata or {})
