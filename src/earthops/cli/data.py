"""``earthops data``: list, fetch and verify catalog datasets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from earthops.cli.common import console, print_json
from earthops.data import catalog

app = typer.Typer(help="Named datasets: list, fetch, verify.", no_args_is_help=True)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the datasets in the catalog."""
    entries = list(catalog.CATALOG.values())
    if as_json:
        print_json(
            [
                {
                    "name": e.name,
                    "title": e.title,
                    "kind": e.kind,
                    "files": [asdict(f) for f in e.files],
                    "citation": e.citation,
                    "source": e.source,
                    "license": e.license,
                }
                for e in entries
            ]
        )
        return
    table = Table("name", "kind", "files", "title")
    for e in entries:
        table.add_row(e.name, e.kind, str(len(e.files)), e.title)
    console.print(table)


@app.command()
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Dataset names (default: all).")] = None,
) -> None:
    """Resolve datasets: local mirror first, else download into the cache (checksums verified)."""
    for name in names or list(catalog.CATALOG):
        paths = catalog.resolve(name)
        console.print(f"[green]ok[/] {name}: {len(paths)} file(s) at {paths[0].parent}")


@app.command()
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Dataset names (default: all).")] = None,
) -> None:
    """Verify every file's SHA-256; exit non-zero if any fails."""
    results = catalog.verify(names or None)
    failed = [r for r in results if not r.ok]
    for r in results:
        mark = "[green]ok[/]  " if r.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {r.dataset}: {r.path}" + (f" — {r.problem}" if r.problem else ""))
    console.print(f"{len(results) - len(failed)} ok, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)
