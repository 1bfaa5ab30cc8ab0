"""``earthops pipeline``: Prefect flows per use case, KFP v2 compilation, container steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earthops.cli.common import print_json, write_json

app = typer.Typer(help="Orchestrated pipelines (Prefect; KFP compile).", no_args_is_help=True)


@app.command("run")
def run(
    usecase: Annotated[
        str, typer.Argument(help="landcover-global | landcover-timeseries | reef-bleaching")
    ],
    fast: Annotated[bool, typer.Option(help="Reduced-cost training.")] = False,
    promote: Annotated[bool, typer.Option(help="Ask the promotion policy at the end.")] = True,
    refresh: Annotated[bool, typer.Option(help="Ignore cached features/training.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the result JSON here.")] = None,
) -> None:
    """ingest → features → train → evaluate → register → promote-if-policy, in-process.

    Runs on Prefect's ephemeral API (no server). A rerun on unchanged data reuses the cached
    training and registers nothing new.
    """
    from earthops.pipelines.flows import run_pipeline

    result = run_pipeline(usecase, fast=fast, promote=promote, refresh=refresh)
    summary = {k: v for k, v in result.items() if k != "inputs"}
    summary["inputs"] = {r["name"]: r["digest"] for r in result["inputs"]}
    write_json(summary, out)
    print_json(summary)


@app.command("compile")
def compile_(
    usecase: Annotated[
        str, typer.Argument(help="landcover-global | landcover-timeseries | reef-bleaching")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Pipeline YAML to write.")],
    target: Annotated[str, typer.Option(help="Orchestrator: kfp (Kubeflow Pipelines v2).")] = "kfp",
    pipeline: Annotated[
        str, typer.Option(help="training | retrain-on-drift (drift-check, then training).")
    ] = "training",
    image: Annotated[
        str | None, typer.Option(help="Image the components run (default: the project image).")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="KEY=VALUE set in every component (repeatable)."),
    ] = None,
) -> None:
    """Compile USECASE's pipeline for another orchestrator (KFP v2 IR YAML)."""
    from earthops.errors import EarthOpsError
    from earthops.pipelines import kfp

    if target != "kfp":
        raise EarthOpsError(f"unknown target '{target}' (supported: kfp)")
    pairs: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EarthOpsError(f"--env expects KEY=VALUE, got '{item}'")
        pairs[key] = value
    path = kfp.compile_pipeline(
        usecase, output, pipeline=pipeline, image=image or kfp.DEFAULT_IMAGE, env=pairs
    )
    print_json({"usecase": usecase, "target": target, "pipeline": pipeline, "output": str(path)})


@app.command("step", hidden=True)
def step(
    stage: Annotated[str, typer.Argument(help="ingest | features | train | evaluate | …")],
    usecase: Annotated[str, typer.Option(help="The use case.")],
    output: Annotated[Path, typer.Option("--output", help="Write the stage's JSON here.")],
    fast: Annotated[str, typer.Option(help="true | false (reduced-cost training).")] = "false",
    params: Annotated[str, typer.Option(help="Training parameters, JSON object.")] = "{}",
    promote: Annotated[str, typer.Option(help="true | false (ask the policy).")] = "true",
    refs: Annotated[str | None, typer.Option(help="Input refs, JSON (features, train).")] = None,
    metrics: Annotated[str | None, typer.Option(help="Training metrics, JSON.")] = None,
    report: Annotated[str | None, typer.Option(help="Evaluation report, JSON.")] = None,
    version: Annotated[str | None, typer.Option(help="Registered version, JSON.")] = None,
    model: Annotated[str | None, typer.Option(help="drift-check: MODEL_URI.")] = None,
    since: Annotated[str | None, typer.Option(help="drift-check: log window (7d).")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (empty: the settings').")
    ] = None,
    status_out: Annotated[
        Path | None, typer.Option(help="drift-check: write the status word here.")
    ] = None,
) -> None:
    """One pipeline stage with JSON inputs and a JSON output file (the KFP components)."""
    from earthops.pipelines import kfp

    kfp.use_tracking_uri(tracking_uri)
    result = kfp.run_step(
        stage,
        usecase,
        fast=kfp.as_bool(fast),
        params=params,
        promote=kfp.as_bool(promote),
        refs=refs,
        metrics=metrics,
        report=report,
        version=version,
        model=model,
        since=since,
    )
    if stage == "drift-check":
        if status_out is not None:
            status_out.parent.mkdir(parents=True, exist_ok=True)
            status_out.write_text(result["status"])
        result = result["report"] | {"status": result["status"]}
    write_json(result, output)
    print_json(result if stage != "drift-check" else {"status": result["status"]})
