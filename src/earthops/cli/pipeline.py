"""``earthops pipeline``: Prefect flows per use case."""

from __future__ import annotations

import typer

app = typer.Typer(help="Orchestrated pipelines (Prefect).", no_args_is_help=True)
