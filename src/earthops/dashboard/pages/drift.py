"""Drift: per-feature PSI and KS over time with the thresholds drawn, the dataset drift share,
estimated (label-free, CBPE) against realised performance, and the per-region table — all
values as the drift reports hold them (``earthops monitor drift --json``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from earthops.dashboard import sources
from earthops.dashboard.pages import COLOURS, empty, graph, lines, problem, section, slug, table
from earthops.settings import Settings

PATH, TITLE = "/drift", "Drift"
REGION_ROWS = 30


def fill(settings: Settings) -> str:
    folder = sources.drift_dir(settings)
    return (f"run `earthops monitor drift USECASE --json {folder}/USECASE_$(date +%Y%m%dT%H%M).json` "
            "(add --by-region for the region table)")  # fmt: skip


def latest_psi_figure(latest: pd.DataFrame, usecase: str) -> go.Figure:
    latest = latest.sort_values("psi", ascending=False, na_position="last")
    colours = [COLOURS[1] if d else COLOURS[0] for d in latest["drifted"]]
    figure = go.Figure(go.Bar(x=latest["feature"], y=latest["psi"], marker_color=colours,
                              name="PSI (red: drifted)"))  # fmt: skip
    threshold = float(latest["psi_threshold"].iloc[0])
    figure.add_hline(y=threshold, line_dash="dash", line_color=COLOURS[1],
                     annotation_text=f"PSI threshold {threshold:g}")  # fmt: skip
    figure.update_layout(title=f"{usecase}: PSI per feature, latest report", yaxis_title="PSI",
                         showlegend=True)  # fmt: skip
    return figure


def over_time(features: pd.DataFrame, usecase: str, column: str) -> go.Figure:
    figure = lines(features.dropna(subset=[column]), "time", column, "feature",
                   f"{usecase}: {column.upper()} over time", column.upper())  # fmt: skip
    if column == "psi" and not features.empty:
        figure.add_hline(y=float(features["psi_threshold"].iloc[-1]), line_dash="dash",
                         line_color="grey", annotation_text="threshold")  # fmt: skip
    return figure


def performance_figure(datasets: pd.DataFrame, usecase: str) -> Any:
    """Estimated F1 (CBPE, label-free) against realised F1 where labels arrived."""
    known = datasets.dropna(subset=["estimated_f1"], how="all")
    if known["estimated_f1"].isna().all():
        return html.P("no label-free performance estimate in the reports (binary models with "
                      "a score profile only)", className="note")  # fmt: skip
    figure = go.Figure()
    for i, column in enumerate(("estimated_f1", "realised_f1")):
        if known[column].notna().any():
            figure.add_trace(go.Scatter(x=known["time"], y=known[column], mode="lines+markers",
                                        name=column.replace("_", " "),
                                        line={"color": COLOURS[i]}))  # fmt: skip
    figure.update_layout(title=f"{usecase}: estimated vs realised F1", yaxis_title="F1")
    return graph(figure, slug(usecase, "performance"), height=300)


def regions_table(report: Any, usecase: str) -> Any:
    frame = report.to_frame("regions")
    if frame.empty:
        return html.P("no per-region table in the latest report (run with --by-region)",
                      className="note")  # fmt: skip
    frame = frame.sort_values(["drifted", "psi"], ascending=False).head(REGION_ROWS)
    columns = ["region", "feature", "n_cur", "psi", "p_adjusted", "drifted"]
    return table(frame, columns, id=slug(usecase, "regions"))


def usecase_panel(reports: sources.DriftReports, usecase: str) -> html.Section:
    features = sources.drift_features(reports)
    features = features[features["usecase"] == usecase]
    datasets = sources.drift_datasets(reports)
    datasets = datasets[datasets["usecase"] == usecase]
    last = datasets.iloc[-1]
    latest_file = [f for f in reports.files if f.usecase == usecase][-1]
    latest = features[features["file"] == last["file"]]
    verdict = "DATASET DRIFT" if last["dataset_drift"] else "no dataset drift"
    share = html.P(
        f"latest report {last['file']} ({last['time']:%Y-%m-%d %H:%M} UTC, {last['n_rows']} rows"
        f" of {last['source'] or 'data'}): {verdict} — drifted share {last['drifted_share']:.2f} "
        f"vs threshold {last['drift_share_threshold']:.2f}, status {last['status']}",
        className="verdict", **{"data-testid": slug(usecase, "verdict")},
    )  # fmt: skip
    share_fig = lines(datasets.assign(series="drifted share"), "time", "drifted_share", "series",
                      f"{usecase}: dataset drift share", "share of features")  # fmt: skip
    share_fig.add_hline(y=float(last["drift_share_threshold"]), line_dash="dash",
                        line_color="grey", annotation_text="threshold")  # fmt: skip
    columns = ["feature", "kind", "psi", "ks", "p_adjusted", "drifted", "alert"]
    return section(
        usecase, share,
        graph(latest_psi_figure(latest, usecase), slug(usecase, "psi-latest")),
        table(latest, columns, id=slug(usecase, "features")),
        graph(over_time(features, usecase, "psi"), slug(usecase, "psi-time")),
        graph(over_time(features, usecase, "ks"), slug(usecase, "ks-time")),
        graph(share_fig, slug(usecase, "share"), height=280),
        performance_figure(datasets, usecase),
        html.H4("per-region drift (latest report)"),
        regions_table(latest_file.report, usecase),
        test_id=slug("drift", usecase),
    )  # fmt: skip


def render(settings: Settings) -> list[Any]:
    reports = sources.drift_reports(settings)
    if reports is None:
        return [empty("no drift reports yet", fill(settings))]
    out: list[Any] = [problem(p) for p in reports.problems]
    if not reports.files:
        return [*out, empty("no readable drift reports", fill(settings))]
    for usecase in sorted({f.usecase for f in reports.files}):
        out.append(usecase_panel(reports, usecase))
    return out
