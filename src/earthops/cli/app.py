"""The ``earthops`` command: a thin typer app over the library."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from earthops.cli import (
    dashboard,
    data,
    features,
    ingest,
    models,
    monitor,
    pipeline,
    registry,
    run,
    serve,
)
from earthops.cli.common import console
from earthops.errors import EarthOpsError
from earthops.logs import configure_logging
from earthops.settings import get_settings

app = typer.Typer(
    name="earthops",
    help="EarthOps: MLOps for Earth-observation models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(registry.app, name="registry")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(ingest.app, name="ingest")
app.add_typer(monitor.app, name="monitor")
models.register(app)
run.register(app)
serve.register(app)
dashboard.register(app)


@app.callback()
def _setup() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    settings.export_service_env()


def main() -> None:
    """Console-script entry: user errors print one clear line, no traceback, exit 1."""
    try:
        code = app(standalone_mode=False)
    except EarthOpsError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
