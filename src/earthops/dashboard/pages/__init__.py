"""Dashboard pages: each module has ``PATH``, ``TITLE`` and ``render(settings)``; the helpers
below draw the shared pieces (sections, tables, the empty-source and bad-source messages)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

#: one hue per series, in order (Plotly's default qualitative palette)
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")


def empty(source: str, fill: str) -> html.Div:
    """The empty-state message: which source is empty and what to run to fill it."""
    return html.Div(
        [html.Strong(f"{source}: "), html.Span(fill)], className="empty-state", role="status"
    )


def problem(text: str) -> html.Div:
    """A source that exists but cannot be read (the message names it and the fix)."""
    return html.Div(text, className="source-error", role="alert")


def section(title: str, *children: Any, test_id: str | None = None) -> html.Section:
    attrs = {"data-testid": test_id} if test_id else {}
    return html.Section([html.H3(title), *children], className="panel", **attrs)


def fmt(value: Any) -> str:
    """A table cell: 4 significant digits for floats, ISO minutes for times, '' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def table(frame: pd.DataFrame, columns: Sequence[str] | None = None, **attrs: Any) -> html.Table:
    """A plain HTML table of ``frame`` (selected ``columns``)."""
    columns = list(columns or frame.columns)
    head = html.Thead(html.Tr([html.Th(c) for c in columns]))
    body = html.Tbody(
        [html.Tr([html.Td(fmt(row[c])) for c in columns]) for _, row in frame.iterrows()]
    )
    return html.Table([head, body], className="data-table", **attrs)


def graph(figure: go.Figure, graph_id: str, height: int = 360) -> dcc.Graph:
    """A Plotly graph with the dashboard's layout defaults (zoom kept across refreshes)."""
    figure.update_layout(
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
        uirevision=graph_id,
        legend={"orientation": "h", "y": -0.2},
    )
    return dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False})


def lines(
    frame: pd.DataFrame, x: str, y: str, by: str, title: str, y_title: str, prefix: str = ""
) -> go.Figure:
    """One line (with markers) per value of ``by``, named ``prefix`` + value (default: ``by``
    and a space)."""
    figure = go.Figure()
    for i, (key, part) in enumerate(frame.groupby(by, sort=True)):
        figure.add_trace(
            go.Scatter(
                x=part[x], y=part[y], mode="lines+markers", name=f"{prefix or by + ' '}{key}",
                line={"color": COLOURS[i % len(COLOURS)]},
            )
        )  # fmt: skip
    figure.update_layout(title=title, yaxis_title=y_title, xaxis_title=x, showlegend=True)
    return figure


def slug(*parts: Iterable[str] | str) -> str:
    """A DOM-safe id from parts ('reef-bleaching', 'psi' → 'reef-bleaching-psi')."""
    text = "-".join(str(p) for p in parts)
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text).lower()
