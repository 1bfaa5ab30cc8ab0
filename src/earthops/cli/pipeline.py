"""``earthops pipeline``: Prefect flows per use case."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earthops.cli.common import print_json, write_json

app = typer.Typer(help="Orchestrated pipelines (Prefect).", no_args_is_help=True)


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
