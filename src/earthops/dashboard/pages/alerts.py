"""Alerts: the recent alert records (Alertmanager → ``POST /v1/alerts``), their state and what
they triggered (a retraining run, a debounce, a failure)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from earthops.dashboard import sources
from earthops.dashboard.pages import COLOURS, empty, graph, problem, section, table
from earthops.settings import Settings

PATH, TITLE = "/alerts", "Alerts"
FILL = ("point Alertmanager at the server's POST /v1/alerts (deploy/alertmanager/alertmanager.yml)"
        " and run `earthops serve` with Prometheus scraping it")  # fmt: skip
ACTION_COLOURS = {"recorded": COLOURS[0], "debounced": "#999999", "retraining": COLOURS[4],
                  "retrained": COLOURS[2], "retrain_failed": COLOURS[1]}  # fmt: skip


def _triggered(detail: dict[str, Any] | None) -> str:
    """What the alert's action came to: the run / version, the error, or the reason."""
    if not detail:
        return ""
    keys = ("run_id", "version", "model_version", "error", "reason")
    found = {k: detail[k] for k in keys if detail.get(k) is not None}
    return ", ".join(f"{k}={v}" for k, v in found.items()) or json.dumps(detail)[:160]


def timeline(frame: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for action, part in frame.groupby("action", sort=True):
        figure.add_trace(go.Scatter(
            x=part["received_at"], y=part["alertname"], mode="markers", name=str(action),
            marker={"size": 11, "color": ACTION_COLOURS.get(str(action), COLOURS[3])},
            text=part["usecase"], hovertemplate="%{y} (%{text})<br>%{x}<extra></extra>",
        ))  # fmt: skip
    figure.update_layout(title="alerts received (colour: what they triggered)", showlegend=True)
    return figure


def render(settings: Settings) -> list[Any]:
    try:
        frame = sources.alerts(settings)
    except sources.SourceError as exc:
        return [problem(str(exc))]
    if frame is None:
        return [empty("no alerts recorded yet", FILL)]
    frame = frame.assign(
        triggered=[_triggered(d) for d in frame["detail"]],
        summary=[a.get("summary", "") for a in frame["annotations"]],
    )
    columns = ["received_at", "alertname", "usecase", "status", "severity", "action",
               "triggered", "summary"]  # fmt: skip
    firing = int((frame["status"] == "firing").sum())
    return [
        section(
            f"{len(frame)} recent alerts, {firing} firing",
            graph(timeline(frame), "alerts-timeline", height=300),
            table(frame, columns, id="alerts-table"),
            test_id="alerts",
        ),
        html.P(f"from {settings.home_dir / 'alerts.db'}", className="note"),
    ]
