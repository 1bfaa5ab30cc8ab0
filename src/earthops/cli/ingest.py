"""``earthops ingest``: streaming sensor ingestion."""

from __future__ import annotations

import typer

app = typer.Typer(help="Streaming ingestion into the feature store.", no_args_is_help=True)
