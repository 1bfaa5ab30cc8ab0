"""Kubeflow Pipelines v2: the EarthOps stages as container components of the project image.

Two pipelines per use case, compiled to KFP IR YAML (``earthops pipeline compile USECASE
--target kfp``):

* ``training``: ingest → features → train → evaluate → register → promote-if-policy, the
  same steps (:mod:`earthops.pipelines.steps`) and order as the Prefect flow;
* ``retrain-on-drift``: drift-check of the champion, and the training pipeline only when the
  check reports drift (a data-quality failure does not retrain: the data is the problem).

Every component runs ``earthops pipeline step STAGE …`` in the project image: inputs come
as JSON strings on the command line, the output is a JSON file KFP passes on as an output
parameter. The image name is a compile-time parameter (KFP fixes images in the IR), with
:data:`DEFAULT_IMAGE` as default; the stores are selected by ``EARTHOPS_*`` variables
(``--env`` at compile time, a ConfigMap on the cluster) and the ``tracking_uri`` run parameter.
The ``kfp`` SDK is imported only when compiling; running a step needs only EarthOps.
"""

# No ``from __future__ import annotations``: KFP reads the components' annotations
# (``dsl.OutputPath(str)``) as objects.
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from earthops.errors import EarthOpsError

#: Image the components run, unless ``compile_pipeline(image=…)`` names another.
DEFAULT_IMAGE = "earthops/earthops:0.1.0"
#: The training stages, in order (KFP task names).
TRAINING_STAGES = ("ingest", "features", "train", "evaluate", "register", "promote-if-policy")
#: Stages of the step runner (``earthops pipeline step``).
STEPS = (*TRAINING_STAGES, "drift-check")
PIPELINES = ("training", "retrain-on-drift")
RETRIES = 2
DRIFT_STATUS = {0: "no-drift", 1: "drift", 2: "data-quality"}


# ------------------------------------------------------------------------------ step runner
def _json(value: str | None, what: str, default: Any = None) -> Any:
    if value is None or value == "":
        return default
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise EarthOpsError(f"pipeline step: --{what} is not valid JSON ({exc.msg})") from None


def as_bool(value: str | bool) -> bool:
    """A KFP boolean as rendered on a command line ("true"/"false")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise EarthOpsError(f"pipeline step: expected true/false, got '{value}'")


def use_tracking_uri(uri: str | None) -> None:
    """Point this process at another MLflow tracking server (empty: keep the settings')."""
    if not uri:
        return
    from earthops.settings import get_settings

    os.environ["EARTHOPS_TRACKING_URI"] = uri
    os.environ["MLFLOW_TRACKING_URI"] = uri
    get_settings.cache_clear()


def run_step(
    stage: str,
    usecase: str,
    *,
    fast: bool = False,
    params: str | None = None,
    promote: bool = True,
    refs: str | None = None,
    metrics: str | None = None,
    report: str | None = None,
    version: str | None = None,
    model: str | None = None,
    since: str | None = None,
) -> Any:
    """Run one pipeline stage with JSON-string inputs; return its JSON-friendly result."""
    from earthops.pipelines import steps

    options = _json(params, "params", {})
    if stage == "ingest":
        return steps.ingest(usecase, fast, options)
    if stage == "features":
        return steps.features(usecase, _json(refs, "refs", []), fast, options)
    if stage == "train":
        # ``refs`` orders training after the features (and is what the data digests are)
        return steps.train(usecase, fast, options)
    if stage == "evaluate":
        return steps.evaluate(usecase, _need(metrics, "metrics"))
    if stage == "register":
        return steps.register(usecase, _need(metrics, "metrics"))
    if stage == "promote-if-policy":
        if not promote:
            return {"promoted": False, "reason": "disabled"}
        info = _need(version, "version")
        return steps.promote_if_allowed(info["name"], info["version"])
    if stage == "drift-check":
        return drift_check(usecase, model or None, since or None)
    raise EarthOpsError(f"pipeline step: unknown stage '{stage}' (one of {', '.join(STEPS)})")


def _need(value: str | None, what: str) -> Any:
    data = _json(value, what)
    if data is None:
        raise EarthOpsError(f"pipeline step: --{what} is required for this stage")
    return data


def drift_check(usecase: str, model: str | None, since: str | None) -> dict[str, Any]:
    """The drift report of the champion (or ``model``) with ``status`` as a word."""
    from earthops.cli.monitor import monitor_drift, parse_since

    report, payload = monitor_drift(usecase, model, since=parse_since(since))
    return {"status": DRIFT_STATUS.get(report.status, "error"), "report": payload}


# ------------------------------------------------------------------------------ components
def _components(image: str) -> dict[str, Any]:
    """The container components, each running ``earthops pipeline step`` in ``image``."""
    from kfp import dsl

    def step(stage: str, *args: Any) -> Any:
        return dsl.ContainerSpec(
            image=image, command=["earthops", "pipeline", "step", stage], args=list(args)
        )

    @dsl.container_component
    def ingest(
        usecase: str, fast: bool, params: dict, tracking_uri: str, refs: dsl.OutputPath(str)
    ):
        """Resolve the use case's inputs through the catalog; refs with content digests."""
        return step(
            "ingest", "--usecase", usecase, "--fast", fast, "--params", params,
            "--tracking-uri", tracking_uri, "--output", refs,
        )  # fmt: skip

    @dsl.container_component
    def features(
        usecase: str,
        refs: str,
        fast: bool,
        params: dict,
        tracking_uri: str,
        feature_refs: dsl.OutputPath(str),
    ):
        """Materialise the features (or pass the inputs on when training computes them)."""
        return step(
            "features", "--usecase", usecase, "--refs", refs, "--fast", fast,
            "--params", params, "--tracking-uri", tracking_uri, "--output", feature_refs,
        )  # fmt: skip

    @dsl.container_component
    def train(
        usecase: str,
        refs: str,
        fast: bool,
        params: dict,
        tracking_uri: str,
        metrics: dsl.OutputPath(str),
    ):
        """Train with honest validation; the metrics JSON with model_uri and run_id."""
        return step(
            "train", "--usecase", usecase, "--refs", refs, "--fast", fast,
            "--params", params, "--tracking-uri", tracking_uri, "--output", metrics,
        )  # fmt: skip

    @dsl.container_component
    def evaluate(usecase: str, metrics: str, tracking_uri: str, report: dsl.OutputPath(str)):
        """Held-out metrics against the gate and the baseline."""
        return step(
            "evaluate", "--usecase", usecase, "--metrics", metrics,
            "--tracking-uri", tracking_uri, "--output", report,
        )  # fmt: skip

    @dsl.container_component
    def register(
        usecase: str, metrics: str, report: str, tracking_uri: str, version: dsl.OutputPath(str)
    ):
        """Register the trained run as a model version (atomic, idempotent)."""
        return step(
            "register", "--usecase", usecase, "--metrics", metrics, "--report", report,
            "--tracking-uri", tracking_uri, "--output", version,
        )  # fmt: skip

    @dsl.container_component
    def promote_if_policy(
        usecase: str, version: str, promote: bool, tracking_uri: str, result: dsl.OutputPath(str)
    ):
        """Ask the promotion policy (a refusal is a normal outcome, its rule recorded)."""
        return step(
            "promote-if-policy", "--usecase", usecase, "--version", version,
            "--promote", promote, "--tracking-uri", tracking_uri, "--output", result,
        )  # fmt: skip

    @dsl.container_component
    def drift_check(
        usecase: str,
        model: str,
        since: str,
        tracking_uri: str,
        status: dsl.OutputPath(str),
        report: dsl.OutputPath(str),
    ):
        """Drift of the served model's inputs: status no-drift | drift | data-quality."""
        return step(
            "drift-check", "--usecase", usecase, "--model", model, "--since", since,
            "--tracking-uri", tracking_uri, "--output", report, "--status-out", status,
        )  # fmt: skip

    return {
        "ingest": ingest,
        "features": features,
        "train": train,
        "evaluate": evaluate,
        "register": register,
        "promote-if-policy": promote_if_policy,
        "drift-check": drift_check,
    }


def _configure(task: Any, env: Mapping[str, str], *, cache: bool, retries: int = RETRIES) -> Any:
    for key, value in sorted(env.items()):
        task.set_env_variable(key, value)
    task.set_caching_options(cache)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="10s", backoff_factor=2.0)
    return task


# ------------------------------------------------------------------------------ pipelines
def training_pipeline(
    usecase: str, *, image: str = DEFAULT_IMAGE, env: Mapping[str, str] | None = None
) -> Any:
    """The KFP pipeline ingest → … → promote-if-policy of ``usecase`` (its default)."""
    from kfp import dsl

    c = _components(image)
    env = dict(env or {})

    @dsl.pipeline(
        name=f"earthops-{usecase}",
        description=f"EarthOps {usecase}: ingest → features → train → evaluate → register → "
        "promote-if-policy.",
    )
    def pipeline(
        usecase: str = usecase,
        fast: bool = False,
        params: dict = {},  # noqa: B006 - KFP reads the literal default
        promote: bool = True,
        tracking_uri: str = "",
    ):
        common = {"usecase": usecase, "tracking_uri": tracking_uri}
        # ingest is never cached: it is the step that notices new data (the digests);
        # features and training are cached by KFP on those digests, as in the Prefect flow
        ing = _configure(c["ingest"](fast=fast, params=params, **common), env, cache=False)
        feat = _configure(
            c["features"](refs=ing.outputs["refs"], fast=fast, params=params, **common),
            env,
            cache=True,
        )
        tr = _configure(
            c["train"](refs=feat.outputs["feature_refs"], fast=fast, params=params, **common),
            env,
            cache=True,
        )
        tr.set_cpu_limit("4").set_memory_limit("16G").set_memory_request("4G")
        ev = _configure(c["evaluate"](metrics=tr.outputs["metrics"], **common), env, cache=False)
        reg = _configure(
            c["register"](metrics=tr.outputs["metrics"], report=ev.outputs["report"], **common),
            env,
            cache=False,
        )
        _configure(
            c["promote-if-policy"](version=reg.outputs["version"], promote=promote, **common),
            env,
            cache=False,
        )

    return pipeline


def retrain_on_drift_pipeline(
    usecase: str, *, image: str = DEFAULT_IMAGE, env: Mapping[str, str] | None = None
) -> Any:
    """drift-check of the champion; on drift, the training pipeline (with promotion)."""
    from kfp import dsl

    c = _components(image)
    env = dict(env or {})
    training = training_pipeline(usecase, image=image, env=env)

    @dsl.pipeline(
        name=f"earthops-{usecase}-retrain-on-drift",
        description=f"EarthOps {usecase}: drift-check of the champion, retrain when it drifted.",
    )
    def pipeline(
        usecase: str = usecase,
        model: str = "",
        since: str = "7d",
        fast: bool = False,
        params: dict = {},  # noqa: B006 - KFP reads the literal default
        promote: bool = True,
        tracking_uri: str = "",
    ):
        check = _configure(
            c["drift-check"](usecase=usecase, model=model, since=since, tracking_uri=tracking_uri),
            env,
            cache=False,
            retries=1,
        )
        with dsl.If(check.outputs["status"] == "drift", name="drifted"):
            retrain = training(
                usecase=usecase,
                fast=fast,
                params=params,
                promote=promote,
                tracking_uri=tracking_uri,
            )
            retrain.set_caching_options(False)  # its own tasks cache what may be cached

    return pipeline


def compile_pipeline(
    usecase: str,
    output: Path,
    *,
    pipeline: str = "training",
    image: str = DEFAULT_IMAGE,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Compile ``usecase``'s ``training`` or ``retrain-on-drift`` pipeline to KFP IR YAML."""
    from earthops.usecases import get_usecase

    get_usecase(usecase)  # an unknown use case is a clear error, not a pipeline for it
    if pipeline not in PIPELINES:
        raise EarthOpsError(f"unknown pipeline '{pipeline}' (one of {', '.join(PIPELINES)})")
    bad = [k for k in (env or {}) if not k.replace("_", "").isalnum()]
    if bad:
        raise EarthOpsError(f"--env: not an environment variable name: {', '.join(bad)}")
    try:
        from kfp import compiler
    except ImportError:
        raise EarthOpsError('KFP target needs the kfp SDK: pip install "kfp>=2.7"') from None
    build = training_pipeline if pipeline == "training" else retrain_on_drift_pipeline
    func = build(usecase, image=image, env=env)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=func, package_path=str(output))
    return output
