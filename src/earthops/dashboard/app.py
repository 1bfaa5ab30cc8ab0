"""The Dash app: a navigation bar, one page per route, refreshed every
``settings.dashboard_refresh_seconds`` (the maps page only on navigation)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import dash
from dash import Input, Output, dcc, html

from earthops.dashboard.pages import alerts, drift, maps, models, problem, serving
from earthops.dashboard.sources import now
from earthops.logs import get_logger
from earthops.settings import Settings

log = get_logger(__name__)

PAGES: tuple[ModuleType, ...] = (models, serving, drift, maps, alerts)
#: pages not redrawn by the refresh interval (redrawing resets nothing, but costs a raster read)
STATIC_PAGES = frozenset({maps.PATH})

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
nav { background: #1f3b57; padding: 0.6em 1em; display: flex; gap: 1.2em; align-items: center; }
nav a { color: #e8eef4; text-decoration: none; font-weight: 600; }
nav a:hover { text-decoration: underline; }
nav .brand { color: #fff; font-size: 1.1em; margin-right: 1em; }
main { padding: 0.5em 1.5em 2em; }
.panel { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; padding: 0.5em 1em;
         margin: 1em 0; }
.data-table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
.data-table th, .data-table td { border: 1px solid #dde3ea; padding: 2px 8px; text-align: left; }
.data-table th { background: #f0f4f8; }
.empty-state { background: #eef5ff; border-left: 4px solid #4a7bd0; padding: 0.8em 1em;
               margin: 1em 0; }
.source-error { background: #fff1f0; border-left: 4px solid #d0463a; padding: 0.8em 1em;
                margin: 1em 0; }
.note, .updated { color: #667; font-size: 0.85em; }
.verdict { font-weight: 600; }
"""

INDEX = (
    """<!DOCTYPE html>
<html lang="en"><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}
<style>"""
    + STYLE
    + """</style></head>
<body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""
)


def _page(path: str | None) -> ModuleType:
    for page in PAGES:
        if path == page.PATH:
            return page
    return models


def render_page(page: ModuleType, settings: Settings) -> list[Any]:
    """The page's components; an unexpected failure is one message, never a traceback."""
    try:
        body = page.render(settings)
    except Exception as exc:
        log.exception("dashboard page failed", page=page.PATH)
        body = [problem(f"the {page.TITLE} page could not be drawn: {type(exc).__name__}: {exc}")]
    stamp = f"updated {now():%Y-%m-%d %H:%M:%S} UTC · refresh every "
    stamp += f"{settings.dashboard_refresh_seconds:g} s"
    title = html.H2(page.TITLE, id="page-title", **{"data-page": page.PATH})
    return [title, html.P(stamp, className="updated"), *body]


def _router(settings: Settings) -> Callable[[str | None, int | None], list[Any]]:
    def route(path: str | None, _ticks: int | None) -> list[Any]:
        page = _page(path)
        if dash.ctx.triggered_id == "refresh" and page.PATH in STATIC_PAGES:
            raise dash.exceptions.PreventUpdate
        return render_page(page, settings)

    return route


def create_app(settings: Settings) -> dash.Dash:
    """The dashboard over ``settings``' home, registry, prediction log and server."""
    app = dash.Dash(
        __name__,
        title="EarthOps dashboard",
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    app.index_string = INDEX
    nav = html.Nav(
        [html.Span("EarthOps", className="brand")]
        + [dcc.Link(p.TITLE, href=p.PATH, id=f"nav-{p.PATH.strip('/')}") for p in PAGES]
    )
    app.layout = html.Div([
        dcc.Location(id="url"),
        dcc.Interval(id="refresh", interval=int(settings.dashboard_refresh_seconds * 1000)),
        nav,
        html.Main(id="page"),
    ])  # fmt: skip
    app.callback(
        Output("page", "children"), Input("url", "pathname"), Input("refresh", "n_intervals")
    )(_router(settings))
    return app
