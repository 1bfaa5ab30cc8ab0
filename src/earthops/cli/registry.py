"""``earthops registry``: list, promote, rollback, compare (filled in by the registry module)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Model registry with a promotion policy.", no_args_is_help=True)
