"""The pipeline's steps as plain library functions (the Prefect flow only composes them).

ingest → features → train → evaluate → register → promote-if-policy. Every step takes and
returns JSON-friendly values so that Prefect can persist and cache them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import metadata
from typing import Any

from earthops.data.identity import DatasetRef
from earthops.errors import EarthOpsError
from earthops.logs import get_logger
from earthops.usecases import get_usecase
from earthops.usecases.base import TrainOptions

log = get_logger(__name__)


def options_for(fast: bool, params: dict[str, Any] | None) -> TrainOptions:
    """The TrainOptions a pipeline run trains with (registration is the pipeline's own step)."""
    return TrainOptions(fast=fast, params=dict(params or {}))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ------------------------------------------------------------------------------ ingest
def ingest(usecase: str, fast: bool, params: dict[str, Any] | None) -> list[dict[str, str]]:
    """Resolve every input of the use case through the catalog; return refs with digests."""
    refs = get_usecase(usecase).dataset_refs(options_for(fast, params))
    if not refs:
        raise EarthOpsError(f"use case '{usecase}' declares no input datasets")
    log.info("pipeline.ingest", usecase=usecase, inputs={r.name: r.short for r in refs})
    return [r.to_dict() for r in refs]


def inputs_digest(
    usecase: str, refs: list[dict[str, str]], fast: bool, params: dict[str, Any] | None
) -> str:
    """Cache key of a training: use case, input digests, options and the code version."""
    try:
        version = metadata.version("earthops")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout without install
        version = "unknown"
    payload = {
        "usecase": usecase,
        "inputs": sorted((r["name"], r["digest"]) for r in refs),
        "fast": bool(fast),
        "params": params or {},
        "earthops": version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------ features
def features(
    usecase: str, refs: list[dict[str, str]], fast: bool, params: dict[str, Any] | None
) -> list[dict[str, str]]:
    """Materialise features when the use case has a separate feature step; else pass inputs on.

    A use case with ``build_features(options) -> list[DatasetRef]`` gets it called here; the
    others compute their features inside ``train`` from the same (digested) inputs.
    """
    uc = get_usecase(usecase)
    hook = getattr(uc, "build_features", None)
    if not callable(hook):
        log.info("pipeline.features", usecase=usecase, mode="inside train")
        return refs
    built: list[DatasetRef] = hook(options_for(fast, params))
    log.info("pipeline.features", usecase=usecase, built={r.name: r.short for r in built})
    return refs + [r.to_dict() for r in built]


# ------------------------------------------------------------------------------ train
def train(usecase: str, fast: bool, params: dict[str, Any] | None) -> dict[str, Any]:
    """Train (honest validation inside the use case); the metrics JSON with model_uri, run_id."""
    metrics = get_usecase(usecase).train(options_for(fast, params))
    missing = {"model_uri", "run_id"} - set(metrics)
    if missing:
        raise EarthOpsError(f"use case '{usecase}' train() returned no {sorted(missing)}")
    return _jsonable(metrics)


# ------------------------------------------------------------------------------ evaluate
def evaluate(usecase: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Held-out metrics against the effective gate and the baseline (no data is re-read)."""
    from earthops.registry.policy import gate_failures, gate_for, scalar_metrics

    gate, primary = gate_for(usecase)
    flat = scalar_metrics(metrics)
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), dict) else {}
    failures = gate_failures(flat, gate)
    report = {
        "primary_metric": primary,
        "value": flat.get(primary),
        "baseline": baseline.get(primary),
        "gate": gate,
        "gate_failures": failures,
        "gate_passed": not failures,
    }
    log.info(
        "pipeline.evaluate",
        usecase=usecase,
        metric=primary,
        value=report["value"],
        baseline=report["baseline"],
        gate_passed=report["gate_passed"],
    )
    return report


# ------------------------------------------------------------------------------ register
def _versions_of_run(run_id: str) -> list[tuple[str, str]]:
    from earthops.registry.tracking import configure

    client = configure()
    return [(mv.name, str(mv.version)) for mv in client.search_model_versions(f"run_id='{run_id}'")]


def as_dict(obj: Any) -> dict[str, Any]:
    """A policy result (dataclass, pydantic model or plain object) as a JSON-friendly dict."""
    if obj is None:
        return {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = dataclasses.asdict(obj)
    elif hasattr(obj, "model_dump"):
        data = obj.model_dump()
    elif isinstance(obj, dict):
        data = dict(obj)
    else:
        data = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return _jsonable(data)


def register(usecase: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Register the trained run as a model version, atomically and idempotently.

    A run that already has a version (a rerun on unchanged data) is not registered twice;
    if registration fails half-way, versions it created for the run are deleted again.
    """
    from mlflow.exceptions import MlflowException

    from earthops.registry import policy
    from earthops.registry.tracking import configure

    run_id = metrics["run_id"]
    client = configure()
    try:
        client.get_run(run_id)
    except MlflowException:
        raise EarthOpsError(
            f"{usecase}: cached training refers to MLflow run {run_id}, which the tracking store "
            "no longer has; rerun with --refresh"
        ) from None
    existing = _versions_of_run(run_id)
    if existing:
        name, version = existing[0]
        log.info("pipeline.register", usecase=usecase, version=version, reused=True)
        return {**as_dict(policy.version_info(name, version)), "reused": True}
    try:
        info = policy.register_version(usecase, metrics)
    except BaseException:
        for name, version in _versions_of_run(run_id):
            log.warning("pipeline.register rolled back", name=name, version=version)
            client.delete_model_version(name, version)
        raise
    data = as_dict(info)
    data.setdefault("run_id", run_id)
    data["reused"] = False
    log.info("pipeline.register", usecase=usecase, version=data.get("version"), reused=False)
    return data


# ------------------------------------------------------------------------------ promote
def promote_if_allowed(name: str, version: str | int) -> dict[str, Any]:
    """Ask the promotion policy; a refusal is a normal outcome (rule and reason recorded)."""
    from earthops.registry import policy

    result = as_dict(policy.promote_if_allowed(name, version))
    log.info(
        "pipeline.promote",
        name=name,
        version=version,
        promoted=result.get("promoted"),
        rule=result.get("rule"),
        reason=result.get("reason"),
    )
    return result
