"""``earthops ingest``: streaming sensor ingestion."""

from __future__ import annotations

from typing import Annotated

import typer

from earthops.cli.common import print_json

app = typer.Typer(help="Streaming ingestion into the feature store.", no_args_is_help=True)


@app.command()
def stream(
    source: Annotated[str, typer.Option(help="HTTP(S) JSON endpoint (ERDDAP style) or a CSV.")],
    speed: Annotated[float, typer.Option(help="CSV replay rate, records/s (0: no pacing).")] = 0.0,
    site: Annotated[int | None, typer.Option(help="Site_ID the records belong to.")] = None,
    max_records: Annotated[int | None, typer.Option(help="Stop after this many records.")] = None,
    max_seconds: Annotated[float, typer.Option(help="Stop after this many seconds.")] = 600.0,
    poll_interval: Annotated[float, typer.Option(help="Seconds between HTTP polls.")] = 1.0,
    idle_polls: Annotated[int, typer.Option(help="Stop after N polls with nothing new.")] = 3,
) -> None:
    """Validate records, append them to the offline store, keep online features fresh."""
    from earthops.ingest import run_stream

    report = run_stream(
        source,
        site_id=site,
        speed=speed,
        max_records=max_records,
        max_seconds=max_seconds,
        poll_interval=poll_interval,
        idle_polls=idle_polls,
    )
    print_json(report.to_dict())
