"""Model registry with a promotion policy: register, promote, rollback, compare, list.

Registered-model name == use-case name. State lives in MLflow (no side files):

* aliases ``challenger`` / ``champion`` (MLflow stages are deprecated and not used);
* version tag ``stage``: ``development`` (registered) → ``staging`` (gate held, challenger) →
  ``production`` (champion) → ``archived`` (replaced or rolled back);
* version tags ``earthops.datasets`` (lineage, JSON ``{name: digest}``), ``earthops.eval_set``
  (digest of the evaluation set), ``earthops.gate`` and ``metric.<key>`` (scalar metrics);
* registered-model tag ``earthops.champion_history``: JSON list of champion versions, oldest
  first — what :func:`rollback` walks back.

Promotion rules, checked in this order (a refusal raises :class:`PolicyError` naming it):

``gate``
    every metric of the use case's gate (``UseCase.gate``, overridden per metric by
    ``settings.gates[usecase]``) is at least its threshold;
``approved``
    ``NAME@VERSION`` is listed in the approved-models file (see :mod:`.approved`);
``same-evaluation-set``
    the candidate and the current champion can be compared on one evaluation set: their
    recorded ``earthops.eval_set`` digests are equal, or — when they differ — both models
    are re-scored through the use case's ``evaluate(model_uri, EvalOptions(protocol=…))``
    on its default held-out data and both re-scorings report the same evaluation identity
    (scope, source, protocol, row counts). Otherwise the promotion is refused;
``no-regression``
    the candidate's primary metric is not lower than the champion's by more than
    ``settings.max_regression`` (0.02) on that set (primary metrics are higher-is-better).

Rollback is not policy-checked: it restores the previous champion from the history.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from earthops.errors import EarthOpsError, PolicyError
from earthops.logs import get_logger
from earthops.registry.approved import approved_path, is_approved
from earthops.registry.tracking import configure, run_datasets
from earthops.settings import get_settings

log = get_logger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
STAGES = ("development", "staging", "production", "archived")
TAG_STAGE = "stage"
TAG_REJECTED = "earthops.rejected_reason"
TAG_DATASETS = "earthops.datasets"
TAG_EVAL_SET = "earthops.eval_set"
TAG_GATE = "earthops.gate"
TAG_PROTOCOL = "earthops.protocol"
TAG_RUN = "earthops.run_id"
TAG_HISTORY = "earthops.champion_history"
METRIC_PREFIX = "metric."
#: keys of a metrics dict that describe *which* rows were scored (digested into eval_set)
EVAL_KEYS = ("eval_set", "split", "validation", "protocol", "scope", "source", "bboxes")
#: keys of an ``evaluate()`` result that identify its evaluation set (re-scoring)
RESCORE_KEYS = ("eval_set", "scope", "source", "protocol", "bboxes", "rows", "n", "support")


# ------------------------------------------------------------------------------ results
@dataclass
class VersionInfo:
    """One registered version as the registry CLI shows it."""

    name: str
    version: str
    aliases: list[str]
    stage: str
    run_id: str | None
    source: str
    datasets: dict[str, str]
    eval_set: str | None
    metrics: dict[str, float]
    gate: str
    created_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PromotionResult:
    """Outcome of a promotion attempt; ``rule`` names the refusing rule when not promoted."""

    name: str
    version: str
    promoted: bool
    rule: str | None = None
    reason: str = ""
    previous_champion: str | None = None
    primary_metric: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    compared_on: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ gate
def gate_for(usecase: str) -> tuple[dict[str, float], str]:
    """The effective gate (use case's, overridden by ``settings.gates``) and primary metric."""
    from earthops.usecases import get_usecase

    case = get_usecase(usecase)
    gate = {**dict(case.gate), **get_settings().gates.get(usecase, {})}
    return gate, case.primary_metric


def gate_failures(metrics: Mapping[str, float], gate: Mapping[str, float]) -> list[str]:
    """Human-readable reasons the gate does not hold (empty when it holds)."""
    failures = []
    for key, minimum in gate.items():
        value = metrics.get(key)
        if value is None or not math.isfinite(value):
            failures.append(f"{key} missing (need >= {minimum})")
        elif value < minimum:
            failures.append(f"{key}={value:.4f} < {minimum}")
    return failures


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Top-level finite numeric values of a metrics dict (bools and nested values skipped)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def eval_set_digest(usecase: str, datasets: Mapping[str, str], metrics: Mapping[str, Any]) -> str:
    """Digest of the evaluation set a metrics dict was computed on: use case, data, split."""
    payload = {
        "usecase": usecase,
        "datasets": dict(sorted(datasets.items())),
        **{k: metrics[k] for k in EVAL_KEYS if k in metrics},
    }
    return _digest(payload)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ register
def register_version(usecase: str, metrics: Mapping[str, Any]) -> VersionInfo:
    """Register ``metrics['model_uri']`` as a new version of ``usecase`` (see module doc).

    The version gets stage=development plus lineage/metric tags; when the gate holds it
    becomes ``challenger`` with stage=staging. A failure after the version was created
    deletes it again (no half-registered versions). Idempotent per training run: a run
    already registered by this function returns its version; one registered without the
    policy's tags is adopted (tagged and gated) instead of registered twice.
    """
    missing = [k for k in ("model_uri", "run_id") if not metrics.get(k)]
    if missing:
        raise EarthOpsError(
            f"cannot register {usecase}: metrics lack {', '.join(missing)} "
            "(expected the dict a use case's train() returns)"
        )
    gate, _primary = gate_for(usecase)
    client = configure()
    datasets = run_datasets(str(metrics["run_id"]))
    flat = scalar_metrics(metrics)
    failures = gate_failures(flat, gate)
    tags = {
        TAG_STAGE: "development",
        TAG_DATASETS: json.dumps(datasets, sort_keys=True),
        TAG_EVAL_SET: eval_set_digest(usecase, datasets, metrics),
        TAG_RUN: str(metrics["run_id"]),
        TAG_GATE: "passed" if not failures else "failed: " + "; ".join(failures),
        **{f"{METRIC_PREFIX}{k}": repr(v) for k, v in flat.items()},
    }
    if isinstance(metrics.get("protocol"), str):
        tags[TAG_PROTOCOL] = metrics["protocol"]
    _ensure_model(client, usecase)
    existing = _version_of_run(client, usecase, str(metrics["run_id"]))
    if existing is not None and existing.tags.get(TAG_RUN):  # re-run: idempotent
        log.info("already registered", name=usecase, version=str(existing.version))
        return _info(client, existing)
    if existing is None:
        version = str(mlflow.register_model(str(metrics["model_uri"]), usecase, tags=tags).version)
    else:  # registered by someone else without the policy's tags: adopt it
        version = str(existing.version)
        for key, value in tags.items():
            client.set_model_version_tag(usecase, version, key, value)
    try:
        if not failures:
            client.set_model_version_tag(usecase, version, TAG_STAGE, "staging")
            client.set_registered_model_alias(usecase, CHALLENGER, version)
    except BaseException:
        if existing is None:
            client.delete_model_version(usecase, version)
        raise
    log.info(
        "registered", name=usecase, version=version, gate=tags[TAG_GATE], challenger=not failures
    )
    return version_info(usecase, version)


def _version_of_run(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return client.get_model_version(name, found[0].version) if found else None


def _ensure_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, tags={TAG_HISTORY: "[]"})
        except MlflowException:  # created concurrently
            client.get_registered_model(name)


# ------------------------------------------------------------------------------ promote
def promote(name: str, version: str | int, *, rescore: bool = True) -> PromotionResult:
    """Make ``name`` version ``version`` the champion if every rule holds; else PolicyError."""
    client = configure()
    candidate = _get_version(client, name, version)
    v = str(candidate.version)
    gate, primary = gate_for(name)
    metrics = _metrics(client, candidate)
    failures = gate_failures(metrics, gate)
    if failures:
        raise PolicyError("gate", f"{name} version {v}: " + "; ".join(failures))
    if not is_approved(name, v):
        raise PolicyError(
            "approved",
            f"{name}@{v} is not listed in the approved-models file {approved_path()} "
            f"(a reviewer adds the line '{name}@{v}')",
        )
    champion = _alias(client, name, CHAMPION)
    result = PromotionResult(name, v, True, primary_metric=primary)
    if champion is not None and str(champion.version) == v:
        result.reason = f"{name} version {v} is already the champion"
        return result
    if champion is not None:
        cand, champ, basis = _scores_on_one_set(client, name, candidate, champion, primary, rescore)
        result.scores = {f"v{v}": cand, f"v{champion.version}": champ}
        result.compared_on = basis
        allowed = get_settings().max_regression
        if cand < champ - allowed:
            raise PolicyError(
                "no-regression",
                f"{name} version {v} {primary}={cand:.4f} regresses champion version "
                f"{champion.version} ({champ:.4f}) by {champ - cand:.4f} > {allowed} "
                f"on the same evaluation set ({basis})",
            )
        result.previous_champion = str(champion.version)
    _make_champion(client, name, v, str(champion.version) if champion else None)
    result.reason = f"{name} version {v} is champion" + (
        f" (was version {result.previous_champion})" if result.previous_champion else ""
    )
    log.info("promoted", name=name, version=v, previous=result.previous_champion)
    return result


def promote_if_allowed(name: str, version: str | int, *, rescore: bool = True) -> PromotionResult:
    """:func:`promote` that reports a refusal in the result instead of raising."""
    try:
        return promote(name, version, rescore=rescore)
    except PolicyError as exc:
        log.info("promotion refused", name=name, version=str(version), rule=exc.rule)
        return PromotionResult(name, str(version), False, rule=exc.rule, reason=str(exc))


def _scores_on_one_set(
    client: MlflowClient,
    name: str,
    candidate: ModelVersion,
    champion: ModelVersion,
    primary: str,
    rescore: bool,
) -> tuple[float, float, str]:
    """Primary metric of both versions on one evaluation set, and how it was obtained."""
    cand_set = candidate.tags.get(TAG_EVAL_SET)
    champ_set = champion.tags.get(TAG_EVAL_SET)
    cand_m, champ_m = _metrics(client, candidate), _metrics(client, champion)
    if cand_set and cand_set == champ_set and primary in cand_m and primary in champ_m:
        return cand_m[primary], champ_m[primary], f"recorded, eval set {cand_set[:12]}"
    why = (
        f"versions {candidate.version} and {champion.version} were scored on different "
        f"evaluation sets ({(cand_set or 'unknown')[:12]} vs {(champ_set or 'unknown')[:12]})"
    )
    if not rescore:
        raise PolicyError("same-evaluation-set", why + "; re-scoring disabled")
    cand_r, champ_r = _rescore(name, candidate, why), _rescore(name, champion, why)
    cand_id, champ_id = _rescore_identity(cand_r), _rescore_identity(champ_r)
    if cand_id != champ_id:
        raise PolicyError(
            "same-evaluation-set",
            why + f"; re-scoring used different sets too ({cand_id[:12]} vs {champ_id[:12]})",
        )
    for label, res in (("candidate", cand_r), ("champion", champ_r)):
        if not isinstance(res.get(primary), int | float):
            raise PolicyError("same-evaluation-set", f"{why}; re-scored {label} lacks {primary}")
    return float(cand_r[primary]), float(champ_r[primary]), f"re-scored, eval set {cand_id[:12]}"


def _rescore(name: str, mv: ModelVersion, why: str) -> dict[str, Any]:
    from earthops.usecases import get_usecase
    from earthops.usecases.base import EvalOptions

    uri = f"models:/{name}/{mv.version}"
    log.info("re-scoring for promotion", model=uri)
    try:
        return get_usecase(name).evaluate(uri, EvalOptions(protocol=mv.tags.get(TAG_PROTOCOL)))
    except EarthOpsError as exc:
        raise PolicyError("same-evaluation-set", f"{why}; re-scoring {uri} failed: {exc}") from None


def _rescore_identity(result: Mapping[str, Any]) -> str:
    return _digest({k: result[k] for k in RESCORE_KEYS if k in result})


def _make_champion(client: MlflowClient, name: str, version: str, previous: str | None) -> None:
    history = _history(client, name)
    if previous is not None and (not history or history[-1] != previous):
        history.append(previous)
    history.append(version)
    client.set_registered_model_tag(name, TAG_HISTORY, json.dumps(history))
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, TAG_STAGE, "production")
    if previous is not None:
        client.set_model_version_tag(name, previous, TAG_STAGE, "archived")
    challenger = _alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


# ------------------------------------------------------------------------------ rollback
def rollback(name: str) -> VersionInfo:
    """Restore the previous champion (from the champion history); the current one is archived."""
    client = configure()
    _get_model(client, name)
    current = _alias(client, name, CHAMPION)
    history = _history(client, name)
    if current is not None:
        while history and history[-1] == str(current.version):
            history.pop()
    while history and not _exists(client, name, history[-1]):
        history.pop()
    if not history:
        raise EarthOpsError(
            f"{name}: no previous champion to roll back to"
            + (f" (current champion: version {current.version})" if current else "")
        )
    previous = history[-1]
    client.set_registered_model_tag(name, TAG_HISTORY, json.dumps(history))
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, previous, TAG_STAGE, "production")
    if current is not None:
        client.set_model_version_tag(name, current.version, TAG_STAGE, "archived")
    log.info("rolled back", name=name, champion=previous, was=current.version if current else None)
    return version_info(name, previous)


def reject_challenger(name: str, version: str | int, reason: str) -> VersionInfo:
    """A canary's rollback: ``version`` loses the ``challenger`` alias (when it holds it), is
    tagged ``stage=rejected`` and keeps the reason (tag ``earthops.rejected_reason``)."""
    client = configure()
    mv = _get_version(client, name, version)
    v = str(mv.version)
    challenger = _alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == v:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_model_version_tag(name, v, TAG_STAGE, "rejected")
    client.set_model_version_tag(name, v, TAG_REJECTED, reason[:5000])
    log.info("challenger rejected", name=name, version=v, reason=reason)
    return version_info(name, v)


# ------------------------------------------------------------------------------ compare / list
def compare(name: str, v1: str | int, v2: str | int) -> dict[str, Any]:
    """Metric differences (v2 − v1) and the data digests of two versions."""
    client = configure()
    a, b = _get_version(client, name, v1), _get_version(client, name, v2)
    ma, mb = _metrics(client, a), _metrics(client, b)
    da, db = _datasets(client, a), _datasets(client, b)
    rows = {}
    for key in sorted(set(ma) | set(mb)):
        x, y = ma.get(key), mb.get(key)
        rows[key] = {"v1": x, "v2": y, "diff": None if x is None or y is None else y - x}
    return {
        "name": name,
        "v1": str(a.version),
        "v2": str(b.version),
        "metrics": rows,
        "datasets": {"v1": da, "v2": db},
        "same_data": da == db,
        "eval_set": {"v1": a.tags.get(TAG_EVAL_SET), "v2": b.tags.get(TAG_EVAL_SET)},
        "same_eval_set": bool(a.tags.get(TAG_EVAL_SET))
        and a.tags.get(TAG_EVAL_SET) == b.tags.get(TAG_EVAL_SET),
    }


def list_versions(name: str | None = None) -> list[VersionInfo]:
    """Every registered version (of ``name``), with aliases, stage and lineage digests."""
    client = configure()
    if name is not None:
        _get_model(client, name)
    query = f"name='{name}'" if name else ""
    versions = client.search_model_versions(query) if query else client.search_model_versions()
    infos = [_info(client, client.get_model_version(mv.name, mv.version)) for mv in versions]
    return sorted(infos, key=lambda i: (i.name, int(i.version)))


def version_info(name: str, version: str | int) -> VersionInfo:
    """One version's :class:`VersionInfo`."""
    client = configure()
    return _info(client, _get_version(client, name, version))


def champion_history(name: str) -> list[str]:
    """Champion versions, oldest first (the rollback stack)."""
    client = configure()
    _get_model(client, name)
    return _history(client, name)


# ------------------------------------------------------------------------------ internals
def _info(client: MlflowClient, mv: ModelVersion) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        aliases=sorted(mv.aliases or []),
        stage=mv.tags.get(TAG_STAGE, "development"),
        run_id=mv.run_id or mv.tags.get(TAG_RUN),
        source=mv.source,
        datasets=_datasets(client, mv),
        eval_set=mv.tags.get(TAG_EVAL_SET),
        metrics=_metrics(client, mv),
        gate=mv.tags.get(TAG_GATE, "unknown"),
        created_ms=mv.creation_timestamp,
    )


def _get_model(client: MlflowClient, name: str) -> Any:
    try:
        return client.get_registered_model(name)
    except MlflowException:
        raise EarthOpsError(f"no registered model '{name}'") from None


def _get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    text = str(version).removeprefix("v")
    if not text.isdigit():
        raise EarthOpsError(f"version '{version}': expected a registry version number")
    _get_model(client, name)
    try:
        return client.get_model_version(name, text)
    except MlflowException:
        raise EarthOpsError(f"{name} has no version {text}") from None


def _exists(client: MlflowClient, name: str, version: str) -> bool:
    try:
        client.get_model_version(name, version)
    except MlflowException:
        return False
    return True


def _alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _history(client: MlflowClient, name: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(TAG_HISTORY, "[]")
    return [str(v) for v in json.loads(raw)]


def _metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    tagged = {
        k.removeprefix(METRIC_PREFIX): float(v)
        for k, v in mv.tags.items()
        if k.startswith(METRIC_PREFIX)
    }
    if tagged or not mv.run_id:
        return tagged
    return dict(client.get_run(mv.run_id).data.metrics)


def _datasets(client: MlflowClient, mv: ModelVersion) -> dict[str, str]:
    if TAG_DATASETS in mv.tags:
        return dict(json.loads(mv.tags[TAG_DATASETS]))
    run_id = mv.run_id or mv.tags.get(TAG_RUN)
    return run_datasets(run_id) if run_id else {}
