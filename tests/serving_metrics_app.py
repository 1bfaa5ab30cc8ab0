"""Test-only ASGI app for ``test_serving_metrics``: run under ``uvicorn --workers 2``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from earthops.serving.metrics import ServingMetrics, mark_process_dead

metrics = ServingMetrics()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    metrics.set_model("landcover", "champion", "1")
    yield
    mark_process_dead(os.getpid())


app = FastAPI(lifespan=lifespan)


@app.post("/hit")
def hit() -> dict[str, int]:
    metrics.observe_request("landcover", "1", "champion", "ok", 0.004)
    return {"pid": os.getpid()}


@app.get("/metrics")
def scrape() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
