"""``earthops serve``: the model server (FastAPI + uvicorn) over the registry's aliases."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from earthops.cli.common import console
from earthops.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def create_app():
    """The server app for the use cases in ``EARTHOPS_SERVE_USECASES`` (settings)."""
    from earthops.serving.app import create_app as build
    from earthops.serving.control import ServerControl
    from earthops.usecases import get_usecase, names

    settings = get_settings()
    chosen = settings.serve_usecases or names()
    usecases = {name: get_usecase(name) for name in chosen}
    return build(ServerControl(usecases, settings), settings)


def serve(
    usecase: Annotated[
        list[str] | None, typer.Option("--usecase", help="Serve only these (repeatable).")
    ] = None,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve `models:/USECASE@champion` (and `@challenger` as a canary) over HTTP."""
    import uvicorn

    from earthops.usecases import get_usecase

    for name in usecase or []:
        get_usecase(name)  # an unknown name is a clear error before anything starts
    settings = get_settings()
    if usecase:
        os.environ["EARTHOPS_SERVE_USECASES"] = json.dumps(usecase)
    if workers > 1:
        from earthops.serving.metrics import prepare_multiprocess_dir

        path = prepare_multiprocess_dir(settings.home_dir / "prometheus-multiproc")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    get_settings.cache_clear()
    console.print(f"serving on http://{host}:{port} (docs: /docs, metrics: /metrics)")
    uvicorn.run(
        "earthops.cli.serve:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
