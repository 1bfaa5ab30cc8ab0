"""``earthops run``: the main job on embedded defaults (what `make run` calls)."""

from __future__ import annotations

import typer
from rich.table import Table

from earthops.cli.common import console
from earthops.data import catalog


def register(app: typer.Typer) -> None:
    app.command("run")(main_job)


def main_job() -> None:
    """Verify every dataset and summarise it; later stages extend this into the full pipeline."""
    from earthops.data.summary import summarize_all

    results = catalog.verify()
    failed = [r for r in results if not r.ok]
    for r in failed:
        console.print(f"[bold red]FAIL[/] {r.dataset}: {r.problem}")
    if failed:
        raise typer.Exit(1)
    table = Table("dataset", "shape / rows", "CRS", "classes / value range", title="EarthOps datasets")
    for row in summarize_all():
        table.add_row(row.name, row.shape, row.crs, row.values)
    console.print(table)
