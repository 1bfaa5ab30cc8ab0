"""``earthops features``: raster feature stacks and the Feast feature store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from earthops.cli.common import console, print_json
from earthops.errors import DataError

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


@app.command()
def apply() -> None:
    """Write the Feast repository, load site/survey features offline, register the views."""
    from earthops.featurestore import apply as apply_repo

    print_json(apply_repo())


@app.command()
def materialize(
    start: Annotated[str | None, typer.Option(help="ISO start (default 1970-01-01).")] = None,
    end: Annotated[str | None, typer.Option(help="ISO end (default now).")] = None,
) -> None:
    """Load the newest offline feature rows per site into the online store."""
    from earthops.featurestore import materialize as materialize_views

    print_json(materialize_views(_when(start, "--start"), _when(end, "--end")))


@app.command()
def get(site: Annotated[int, typer.Option("--site", help="Site_ID of a reef site.")]) -> None:
    """Print the online features of one site as JSON (non-zero exit for an unknown site)."""
    from earthops.featurestore import get_online

    print_json(get_online(site))


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DataError(option, f"{value!r} is not an ISO date/time") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
