"""Serving: requests/s, error rate and latency p50/p95/p99 per model version over time (from
the prediction log), the realised canary split, and the server's canary state."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from earthops.dashboard import sources
from earthops.dashboard.pages import COLOURS, empty, graph, lines, problem, section, slug, table
from earthops.settings import Settings

PATH, TITLE = "/serving", "Serving"
FILL = "run `earthops serve` and send requests to POST /v1/USECASE/predict"


def latency_figure(series: pd.DataFrame, usecase: str) -> go.Figure:
    figure = go.Figure()
    for i, (version, part) in enumerate(series.groupby("model_version", sort=True)):
        colour = COLOURS[i % len(COLOURS)]
        for column, dash in (("p50_ms", "dot"), ("p95_ms", "solid"), ("p99_ms", "dash")):
            figure.add_trace(
                go.Scatter(x=part["time"], y=part[column], mode="lines+markers",
                           name=f"v{version} {column[:3]}", line={"color": colour, "dash": dash})
            )  # fmt: skip
    figure.update_layout(title=f"{usecase}: model latency (ms)", yaxis_title="ms")
    return figure


def usecase_panel(log: pd.DataFrame, usecase: str) -> html.Section:
    own = log[log["usecase"] == usecase]
    series = sources.serving_series(own)
    shares = sources.arm_shares(own)
    total = own.loc[own["arm"] != "shadow", "request_id"].nunique()
    errors = (own["status"] == "error").mean()
    summary = html.P(
        f"{total} requests logged from {own['time'].min():%Y-%m-%d %H:%M:%S} to "
        f"{own['time'].max():%Y-%m-%d %H:%M:%S} UTC; error rate {errors:.2%}",
        className="note",
    )
    return section(
        usecase,
        summary,
        graph(lines(series, "time", "requests_per_s", "model_version",
                    f"{usecase}: requests/s", "requests/s", "v"), slug(usecase, "rps")),
        graph(lines(series, "time", "error_rate", "model_version",
                    f"{usecase}: error rate", "share of requests", "v"), slug(usecase, "errors")),
        graph(latency_figure(series, usecase), slug(usecase, "latency")),
        html.H4("realised split (prediction log)"),
        table(shares, ["arm", "model_version", "requests", "share"], id=slug(usecase, "split")),
        test_id=slug("serving", usecase),
    )  # fmt: skip


def _verdict(canary: dict[str, Any] | None) -> str:
    if not canary:
        return "no canary running"
    last = canary.get("last_verdict") or {}
    if not last:
        return f"observing since {canary.get('started_at', '?')}: no verdict yet"
    reasons = "; ".join(last.get("reasons") or [])
    head = f"{last.get('action')} at {last.get('at') or '?'} ({last.get('compared', 0)} compared)"
    return f"{head}: {reasons}" if reasons else head


def canary_panel(settings: Settings) -> html.Section:
    """The server's ``/v1/models``: arms, weights, window and the latest verdict."""
    window = (f"canary settings of this environment (the server's may differ): observation "
              f"window {settings.canary_window_seconds:g} s, at least "
              f"{settings.canary_min_requests} compared requests")  # fmt: skip
    try:
        served = sources.server_models(settings)
    except sources.SourceError as exc:
        return section("canary", problem(str(exc)), html.P(window, className="note"))
    if served is None:
        fill = (
            "set EARTHOPS_SERVER_URL to the running `earthops serve` (e.g. http://127.0.0.1:8000)"
        )
        return section("canary", empty("model server not configured", fill),
                       html.P(window, className="note"))  # fmt: skip
    rows = []
    for uc in served:
        arms = ", ".join(f"{a['alias']} v{a['version']}" + ("" if a["loaded"] else " (not loaded)")
                         for a in uc["arms"])  # fmt: skip
        rows.append({"usecase": uc["usecase"], "arms": arms,
                     "challenger weight": uc["challenger_weight"], "shadow": uc["shadow"],
                     "latest verdict": _verdict(uc.get("canary"))})  # fmt: skip
    frame = pd.DataFrame(rows)
    return section("canary", table(frame, id="canary-table"), html.P(window, className="note"),
                   test_id="serving-canary")  # fmt: skip


def render(settings: Settings) -> list[Any]:
    try:
        log = sources.predictions(settings)
    except sources.SourceError as exc:
        return [problem(str(exc)), canary_panel(settings)]
    if log is None:
        return [empty("no predictions yet", FILL), canary_panel(settings)]
    panels = [usecase_panel(log, str(u)) for u in sorted(log["usecase"].unique())]
    return [canary_panel(settings), *panels]
