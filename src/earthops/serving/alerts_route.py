"""``POST /v1/alerts`` (Alertmanager's webhook) and ``GET /v1/alerts`` on the model server.

``POST /v1/alerts`` takes Alertmanager's webhook body (version 4,
:class:`~earthops.monitoring.alerts.AlertmanagerWebhook`; 422 naming the field when it is
malformed), records every alert and answers 202 at once: a retraining that a firing drift
alert triggers (:class:`~earthops.monitoring.alerts.RetrainPolicy`) runs in a background
thread and its result is stored with the alert. ``GET /v1/alerts`` lists the latest alerts,
newest first, with what each triggered (``?usecase=``, ``?alertname=``, ``?limit=``).

With ``token`` both endpoints require ``Authorization: Bearer <token>`` (Alertmanager:
``http_config.authorization.credentials_file``); without, they are open, like ``/metrics``:
bind the server to a private address then.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel

from earthops.monitoring.alerts import (
    Action,
    AlertIntake,
    AlertmanagerWebhook,
    AlertStore,
    RetrainPolicy,
    Status,
    StoredAlert,
)


class AlertAction(BaseModel):
    """What one alert of the notification triggered."""

    id: int
    fingerprint: str
    alertname: str
    usecase: str | None
    status: Status
    action: Action


class AlertsAccepted(BaseModel):
    """The 202 answer to a notification."""

    received: int
    actions: list[AlertAction]


def _guard(token: str | None) -> list:
    if not token:
        return []

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(authorization[7:].strip(), token):
            raise HTTPException(403, "wrong alerts token")

    return [Depends(authorised)]


def add_alert_routes(
    app: FastAPI, store: AlertStore, policy: RetrainPolicy, *, token: str | None = None
) -> AlertIntake:
    """Register the two endpoints; returns the intake (``app.state.alert_intake`` too)."""
    intake = AlertIntake(store, policy)
    app.state.alert_intake = intake
    guard = _guard(token)

    @app.post(
        "/v1/alerts",
        status_code=202,
        response_model=AlertsAccepted,
        dependencies=guard,
        tags=["alerts"],
    )
    def receive_alerts(body: AlertmanagerWebhook) -> AlertsAccepted:
        """Alertmanager webhook: record the alerts, start the retrainings they trigger."""
        handled = intake.handle(body)
        actions = [AlertAction.model_validate(h, from_attributes=True) for h in handled]
        return AlertsAccepted(received=len(handled), actions=actions)

    @app.get("/v1/alerts", response_model=list[StoredAlert], dependencies=guard, tags=["alerts"])
    def list_alerts(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        usecase: str | None = None,
        alertname: str | None = None,
    ) -> list[StoredAlert]:
        """The latest alerts, newest first, with the action each triggered."""
        return store.recent(limit, usecase=usecase, alertname=alertname)

    return intake
