"""The FastAPI application of ``earthops serve``.

Endpoints: ``POST /v1/{usecase}/predict`` and ``/feedback``, ``GET /healthz``, ``/readyz``,
``/metrics`` (Prometheus text), ``/v1/models``, and the admin endpoints under ``/v1/admin``
(bearer token ``EARTHOPS_ADMIN_TOKEN``). A client's mistake is a 4xx naming what was wrong:
422 for a bad payload (the field, in FastAPI's validation-error shape), 400 for a body that
is not decodable, 413 for an oversize body, 404 for an unknown site or record id; 503 while a
use case has no champion or its feature store is unreachable.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from earthops.errors import EarthOpsError, UnknownEntityError
from earthops.logs import get_logger
from earthops.serving import api
from earthops.serving.control import ServerControl
from earthops.serving.service import Servable
from earthops.settings import Settings

log = get_logger(__name__)


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.max_bytes)(scope, receive, send)


class _TooLarge(Exception):
    pass


#: FastAPI's answer to a body it cannot decode (not UTF-8 text, say): documented where a body is read
UNDECODABLE = {400: {"model": api.Problem, "description": "body not decodable"}}


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over the {limit}-byte limit"}, status_code=413)


def create_app(control: ServerControl, settings: Settings) -> FastAPI:
    """The app over a :class:`ServerControl` (pool, router, service, controller)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        control.start(stop)
        try:
            yield
        finally:
            stop.set()
            await control.close()

    app = FastAPI(
        title="EarthOps model server",
        version="1",
        lifespan=lifespan,
        description=__doc__,
        responses={413: {"model": api.Problem}},
    )
    _errors(app)
    _health(app, control)
    for name, servable in control.service.usecases.items():
        _predict_routes(app, control, name, servable, settings.serve_max_records)
    _admin_routes(app, control, settings)
    app.add_middleware(BodyLimit, max_bytes=settings.serve_max_body_bytes)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(UnknownEntityError)
    async def _unknown(_: Request, exc: UnknownEntityError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(EarthOpsError)
    async def _bad_input(_: Request, exc: EarthOpsError) -> JSONResponse:
        """A record the use case cannot read (bad values, wrong columns): the client's. The
        body has the shape of FastAPI's validation errors, the one documented 422 schema.
        An unreachable feature store is the server's state: 503."""
        from earthops.featurestore.store import OnlineStoreError  # imports Feast: lazily

        if isinstance(exc, OnlineStoreError):
            return JSONResponse({"detail": str(exc)}, status_code=503)
        field = getattr(exc, "field", None)
        error = {
            "loc": ["body", *([field] if field else [])],
            "msg": str(exc),
            "type": "value_error",
        }
        return JSONResponse({"detail": [error]}, status_code=422)


def _health(app: FastAPI, control: ServerControl) -> None:
    @app.get("/healthz", response_model=api.Health, tags=["health"])
    async def healthz() -> api.Health:
        """The process is up."""
        return api.Health(status="ok")

    @app.get(
        "/readyz",
        response_model=api.Ready,
        responses={503: {"model": api.Ready}},
        tags=["health"],
    )
    async def readyz() -> Any:
        """Models loaded and feature stores reachable; 503 with the reasons otherwise."""
        problems = await asyncio.to_thread(control.problems)
        if problems:
            return JSONResponse(
                api.Ready(status="not ready", problems=problems).model_dump(), status_code=503
            )
        return api.Ready(status="ready")

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition text (all workers in multiprocess mode)."""
        body, content_type = control.service.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models", response_model=api.ModelsOut, tags=["models"])
    async def models() -> api.ModelsOut:
        """Served versions per use case: aliases, traffic weights, data digests, canary state."""
        return await asyncio.to_thread(control.describe)


def _predict_routes(
    app: FastAPI, control: ServerControl, name: str, servable: Servable, max_records: int
) -> None:
    request_model, response_model = api.predict_models(
        name, servable.request_model, servable.response_model, max_records
    )
    unavailable = {"model": api.Problem, "description": "no champion loaded, or store down"}

    async def predict(
        body: request_model,  # type: ignore[valid-type]
        x_request_id: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        if control.service.pool.get(name).champion is None:
            raise HTTPException(503, f"{name}: no champion model is loaded")
        answer = await control.service.predict(name, body.records, x_request_id)
        return {"usecase": name, **answer.__dict__}

    # the request model is built at run time: give FastAPI the class, not its name
    predict.__annotations__["body"] = request_model

    app.post(
        f"/v1/{name}/predict",
        response_model=response_model,
        responses={**UNDECODABLE, 404: {"model": api.Problem}, 503: unavailable},
        tags=[name],
        summary=f"Predict {name}",
        description=f"Answer {name} records in one model call ({servable.request_model.__doc__})",
    )(predict)

    async def feedback(body: api.Feedback) -> api.FeedbackStored:
        stored = await asyncio.to_thread(control.service.feedback, body.request_id, body.label)
        if not stored:
            raise HTTPException(404, f"no logged prediction with request id '{body.request_id}'")
        return api.FeedbackStored(request_id=body.request_id, stored=True)

    app.post(
        f"/v1/{name}/feedback",
        response_model=api.FeedbackStored,
        responses={**UNDECODABLE, 404: {"model": api.Problem}},
        tags=[name],
        summary=f"True label for a {name} prediction",
    )(feedback)


def _admin_routes(app: FastAPI, control: ServerControl, settings: Settings) -> None:
    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        if not token:
            raise HTTPException(403, "admin endpoints are disabled (set EARTHOPS_ADMIN_TOKEN)")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(authorization[7:].strip(), token):
            raise HTTPException(403, "wrong admin token")

    guard = [Depends(authorised)]
    problems = {401: {"model": api.Problem}, 403: {"model": api.Problem}}

    def check(usecase: str) -> None:
        if usecase not in control.service.usecases:
            raise HTTPException(404, f"unknown use case '{usecase}'")

    @app.post(
        "/v1/admin/{usecase}/weights",
        response_model=api.SplitOut,
        dependencies=guard,
        responses={**problems, **UNDECODABLE, 404: {"model": api.Problem}},
        tags=["admin"],
    )
    async def set_weights(usecase: str, body: api.Weights) -> api.SplitOut:
        """Set the challenger's traffic share and/or shadow mode."""
        check(usecase)
        return control.set_split(usecase, body.challenger, body.shadow)

    @app.post(
        "/v1/admin/{usecase}/{action}",
        response_model=api.AdminResult,
        dependencies=guard,
        responses={**problems, 404: {"model": api.Problem}},
        tags=["admin"],
    )
    async def act(usecase: str, action: str) -> api.AdminResult:
        """``promote`` the challenger (registry policy applies), ``rollback`` it, or ``reload``."""
        check(usecase)
        if action not in ("promote", "rollback", "reload"):
            raise HTTPException(404, f"unknown admin action '{action}'")
        return await asyncio.to_thread(control.admin, usecase, action)
