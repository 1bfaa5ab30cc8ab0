"""Maps: the COGs and PNGs the use cases draw under ``<home>/outputs`` — zoomable, with a
title, a legend naming the classes (or alert levels) or a colour bar, and the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import html

from earthops.dashboard import sources
from earthops.dashboard.pages import COLOURS, empty, graph, problem, section, slug
from earthops.settings import Settings

PATH, TITLE = "/maps", "Maps"
FILL = ("run `make run` (or `earthops run`) to draw the default maps into <home>/outputs, or "
        "`earthops predict-raster --model URI --input … --output <home>/outputs/NAME.tif`")  # fmt: skip


def _axes(found: sources.MapFile) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = found.data.shape[:2]
    left, right, bottom, top = found.extent or (0, cols, 0, rows)
    dx, dy = (right - left) / cols, (top - bottom) / rows
    return left + dx * (np.arange(cols) + 0.5), top - dy * (np.arange(rows) + 0.5)


def categorical(found: sources.MapFile) -> go.Figure:
    """Classes as a stepped colour scale; one legend entry per class present."""
    values = sorted(found.classes)
    index = {v: i for i, v in enumerate(values)}
    codes = np.full(found.data.shape, np.nan)
    for v, i in index.items():
        codes[found.data == v] = i
    colours = [found.colours.get(v, COLOURS[i % len(COLOURS)]) for i, v in enumerate(values)]
    n = max(len(values), 1)
    scale = [[edge, c] for i, c in enumerate(colours) for edge in (i / n, (i + 1) / n)]
    x, y = _axes(found)
    names = np.vectorize(lambda c: "" if np.isnan(c) else found.classes[values[int(c)]])(codes)
    figure = go.Figure(go.Heatmap(
        x=x, y=y, z=codes, zmin=-0.5, zmax=n - 0.5, colorscale=scale or "Greys",
        showscale=False, customdata=names, hovertemplate="%{customdata}<extra></extra>",
    ))  # fmt: skip
    for v, c in zip(values, colours, strict=True):
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=found.classes[v],
                                    marker={"color": c, "size": 12, "symbol": "square"}))  # fmt: skip
    return figure


def continuous(found: sources.MapFile) -> go.Figure:
    x, y = _axes(found)
    return go.Figure(go.Heatmap(
        x=x, y=y, z=found.data, colorscale="YlOrRd",
        colorbar={"title": {"text": found.band}},
    ))  # fmt: skip


def figure_of(found: sources.MapFile) -> go.Figure:
    if found.kind == "image":
        figure = go.Figure(go.Image(z=found.data))
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
    else:
        figure = categorical(found) if found.kind == "categorical" else continuous(found)
        figure.update_yaxes(scaleanchor="x", title="latitude")
        figure.update_xaxes(title="longitude")
    figure.update_layout(title=found.title, showlegend=found.kind == "categorical")
    return figure


def map_panel(found: sources.MapFile) -> html.Section:
    model = (f"drawn by {found.model}" if found.model
             else "model version: not recorded in the file")  # fmt: skip
    files = f"file {found.path.name}" + (f", PNG {found.png.name}" if found.png else "")
    fig = graph(figure_of(found), slug("map", found.path.stem), height=520)
    fig.figure.update_layout(legend={"orientation": "v", "y": 1, "x": 1.02})
    return section(found.title, fig, html.P(f"{model}; {files}", className="note"),
                   test_id=slug("map", found.path.stem))  # fmt: skip


def render(settings: Settings) -> list[Any]:
    found = sources.maps(settings)
    if found is None:
        return [empty("no maps yet", FILL)]
    maps, problems = found
    return [*(problem(p) for p in problems), *(map_panel(m) for m in maps)]
