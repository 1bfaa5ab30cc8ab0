"""Prefect 3 flows: one pipeline per use case, composed from :mod:`earthops.pipelines.steps`.

Tasks retry on transient failures (I/O, network, a locked database) — not on bad input
(:class:`EarthOpsError`) nor on bugs;
features and training are cached on the input digests + options, with results persisted
under ``<home>/prefect/results``, so a rerun on unchanged data trains nothing. Registration
comes after training and evaluation and is atomic (see :func:`steps.register`), so a crash at
any step leaves no half-registered version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.context import TaskRunContext
from prefect.settings import (
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_RESULTS_PERSIST_BY_DEFAULT,
    temporary_settings,
)

from earthops.errors import EarthOpsError
from earthops.pipelines import steps
from earthops.settings import get_settings

RETRIES = 2
RETRY_DELAY_S = 10.0


def _transient_types() -> tuple[type[BaseException], ...]:
    """Failures worth retrying: I/O and network errors, a locked or unreachable database."""
    import httpx
    from sqlalchemy.exc import OperationalError

    return (OSError, TimeoutError, httpx.TransportError, OperationalError)


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures only; bad input (EarthOpsError) or a bug will not heal."""
    try:
        state.result()
    except EarthOpsError:
        return False
    except _transient_types():
        return True
    except Exception:
        return False
    return False


def _key(ctx: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key: task name + input digests + options + tracking store (never the data itself)."""
    digest = steps.inputs_digest(
        parameters["usecase"], parameters["refs"], parameters["fast"], parameters["params"]
    )
    return f"earthops-{ctx.task.name}-{digest}-{_store_tag()}"


def _store_tag() -> str:
    import hashlib

    return hashlib.sha256(get_settings().mlflow_tracking_uri.encode()).hexdigest()[:12]


_common: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAY_S,
    "retry_condition_fn": _transient,
}


@task(name="ingest", **_common)
def ingest_task(usecase: str, fast: bool, params: dict[str, Any]) -> list[dict[str, str]]:
    return steps.ingest(usecase, fast, params)


@task(name="features", cache_key_fn=_key, persist_result=True, **_common)
def features_task(
    usecase: str, refs: list[dict[str, str]], fast: bool, params: dict[str, Any]
) -> list[dict[str, str]]:
    return steps.features(usecase, refs, fast, params)


@task(name="train", cache_key_fn=_key, persist_result=True, **_common)
def train_task(
    usecase: str, refs: list[dict[str, str]], fast: bool, params: dict[str, Any]
) -> dict[str, Any]:
    # ``refs`` is unused by the body: it is the cache key (the data the training will read)
    return steps.train(usecase, fast, params)


@task(name="evaluate", **_common)
def evaluate_task(usecase: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return steps.evaluate(usecase, metrics)


@task(name="register", **_common)
def register_task(usecase: str, metrics: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    # ``report`` orders registration after a successful evaluation
    return steps.register(usecase, metrics)


@task(name="promote-if-policy", **_common)
def promote_task(version: dict[str, Any]) -> dict[str, Any]:
    return steps.promote_if_allowed(version["name"], version["version"])


TASKS = (ingest_task, features_task, train_task, evaluate_task, register_task, promote_task)


def set_retry_delay(seconds: float) -> None:
    """Retry delay of every pipeline task (tests use 0)."""
    for t in TASKS:
        t.retry_delay_seconds = seconds


@flow(name="earthops-pipeline", flow_run_name="{usecase}", log_prints=False)
def usecase_pipeline(
    usecase: str,
    fast: bool = False,
    params: dict[str, Any] | None = None,
    promote: bool = True,
    refresh: bool = False,
) -> dict[str, Any]:
    """ingest → features → train → evaluate → register → promote-if-policy for ``usecase``.

    ``refresh`` recomputes features and training even when the cache holds them.
    """
    params = params or {}
    refs = ingest_task(usecase, fast, params)
    feature_refs = features_task.with_options(refresh_cache=refresh)(usecase, refs, fast, params)
    trained = train_task.with_options(refresh_cache=refresh)(
        usecase, feature_refs, fast, params, return_state=True
    )
    metrics = trained.result()
    report = evaluate_task(usecase, metrics)
    version = register_task(usecase, metrics, report)
    promotion = promote_task(version) if promote else {"promoted": False, "reason": "disabled"}
    return {
        "usecase": usecase,
        "inputs": refs,
        "trained": trained.name != "Cached",
        "metrics": metrics,
        "evaluation": report,
        "version": version,
        "promotion": promotion,
    }


def results_dir() -> Path:
    path = get_settings().home_dir / "prefect" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def prefect_runtime() -> Iterator[None]:
    """Prefect settings for an in-process run: persisted results under the EarthOps home."""
    get_settings().export_service_env()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call
    with temporary_settings(
        {PREFECT_LOCAL_STORAGE_PATH: results_dir(), PREFECT_RESULTS_PERSIST_BY_DEFAULT: True}
    ):
        yield


def run_pipeline(
    usecase: str,
    *,
    fast: bool = False,
    params: dict[str, Any] | None = None,
    promote: bool = True,
    refresh: bool = False,
) -> dict[str, Any]:
    """Run one use case's pipeline in-process (Prefect's ephemeral API; no server to start)."""
    with prefect_runtime():
        result = usecase_pipeline(
            usecase, fast=fast, params=params or {}, promote=promote, refresh=refresh
        )
    return json.loads(json.dumps(result, default=str))
