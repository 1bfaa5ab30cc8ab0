"""``earthops features``: raster feature stacks and the Feast feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earthops.cli.common import console

app = typer.Typer(help="Feature stacks and the feature store.", no_args_is_help=True)


@app.command()
def raster(
    input_: Annotated[list[Path], typer.Option("--input", help="Input raster(s), same grid.")],
    output: Annotated[Path, typer.Option("--output", help="Output COG (.tif).")],
    spec: Annotated[Path | None, typer.Option(help="Feature spec (YAML/JSON).")] = None,
) -> None:
    """Compute a feature stack (indices, neighbourhood stats, GLCM texture) as a COG."""
    from earthops.features.stack import features_raster

    path = features_raster(list(input_), output, spec)
    console.print(f"[green]wrote[/] {path}")
