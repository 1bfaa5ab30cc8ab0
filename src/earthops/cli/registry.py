"""``earthops registry``: list, promote, rollback, compare (over :mod:`earthops.registry.policy`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from earthops.cli.common import console, print_json

app = typer.Typer(help="Model registry with a promotion policy.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _digests(datasets: dict[str, str]) -> str:
    return "\n".join(f"{k}:{v[:12]}" for k, v in sorted(datasets.items())) or "-"


def _headline_metrics(name: str) -> list[str]:
    """Primary metric then gate metrics of the use case ``name`` (empty when unknown)."""
    from earthops.errors import EarthOpsError
    from earthops.registry.policy import gate_for

    try:
        gate, primary = gate_for(name)
    except EarthOpsError:
        return []
    return [primary, *(k for k in gate if k != primary)]


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Registered model (use case).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Registered versions with aliases, stage, gate, primary metrics and lineage digests."""
    from earthops.registry.policy import list_versions

    versions = list_versions(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    table = Table("name", "version", "aliases", "stage", "gate", "metrics", "data digests", "run")
    for v in versions:
        keys = _headline_metrics(v.name) or sorted(k for k in v.metrics if "." not in k)[:4]
        metrics = " ".join(f"{k}={v.metrics[k]:.3f}" for k in keys if k in v.metrics)
        table.add_row(
            v.name,
            v.version,
            ",".join(v.aliases) or "-",
            v.stage,
            v.gate.split(":")[0],
            metrics or "-",
            _digests(v.datasets),
            (v.run_id or "-")[:12],
        )
    console.print(table if versions else "no registered versions")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model (use case).")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    no_rescore: Annotated[
        bool, typer.Option("--no-rescore", help="Refuse instead of re-scoring on a common set.")
    ] = False,
) -> None:
    """Challenger → champion if the gate, approved list and no-regression rules hold.

    A refusal exits 1 and names the rule (gate | approved | same-evaluation-set | no-regression).
    """
    from earthops.registry.policy import promote as run_promote

    result = run_promote(name, version, rescore=not no_rescore)
    console.print(f"[green]promoted[/] {result.reason}", highlight=False)
    if result.scores:
        scores = ", ".join(f"{k}={v:.4f}" for k, v in result.scores.items())
        console.print(f"{result.primary_metric}: {scores} ({result.compared_on})", highlight=False)


@app.command()
def rollback(name: Annotated[str, typer.Argument(help="Registered model (use case).")]) -> None:
    """Restore the previous champion."""
    from earthops.registry.policy import rollback as run_rollback

    info = run_rollback(name)
    console.print(
        f"[green]rolled back[/] {name}: champion is version {info.version}", highlight=False
    )


@app.command()
def compare(
    name: Annotated[str, typer.Argument(help="Registered model (use case).")],
    v1: Annotated[str, typer.Argument(help="First version.")],
    v2: Annotated[str, typer.Argument(help="Second version.")],
    as_json: JsonFlag = False,
) -> None:
    """Metric differences (V2 − V1) and the data digests of both versions."""
    from earthops.registry.policy import compare as run_compare

    diff = run_compare(name, v1, v2)
    if as_json:
        print_json(diff)
        return
    table = Table("metric", f"v{diff['v1']}", f"v{diff['v2']}", "diff", title=f"{name}")
    for key, row in diff["metrics"].items():
        cells = [("-" if row[c] is None else f"{row[c]:.4f}") for c in ("v1", "v2", "diff")]
        table.add_row(key, *cells)
    console.print(table)
    data = Table("dataset", f"v{diff['v1']} digest", f"v{diff['v2']} digest", title="data")
    for ds in sorted(set(diff["datasets"]["v1"]) | set(diff["datasets"]["v2"])):
        data.add_row(ds, diff["datasets"]["v1"].get(ds, "-"), diff["datasets"]["v2"].get(ds, "-"))
    console.print(data)
    same = "same" if diff["same_eval_set"] else "different"
    console.print(f"evaluation sets: {same} ({diff['eval_set']['v1']} / {diff['eval_set']['v2']})")
