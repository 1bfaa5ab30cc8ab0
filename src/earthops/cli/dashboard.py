"""``earthops dashboard``: the monitoring web app (models, serving, drift, maps, alerts)."""

from __future__ import annotations

from typing import Annotated

import typer

from earthops.cli.common import console


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8050,
) -> None:
    """Serve the dashboard over the registry, prediction log, drift reports, alerts and maps.

    Pages refresh every EARTHOPS_DASHBOARD_REFRESH_SECONDS; set EARTHOPS_SERVER_URL to a
    running `earthops serve` for its canary state. Drift reports are read from
    <home>/outputs/drift/*.json (`earthops monitor drift USECASE --json FILE`).
    """
    from earthops.dashboard.app import create_app
    from earthops.settings import get_settings

    settings = get_settings()
    app = create_app(settings)
    console.print(f"dashboard on http://{host}:{port}/ (home {settings.home_dir})", highlight=False)
    app.run(host=host, port=port, debug=False)
