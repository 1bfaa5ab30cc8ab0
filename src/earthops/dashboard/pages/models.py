"""Models: per use case its registered versions (aliases, stage, gate, approval, lineage), the
gains over the use case's baseline, and the champion beside the challenger."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import html

from earthops.dashboard import sources
from earthops.dashboard.pages import COLOURS, empty, graph, section, slug, table
from earthops.settings import Settings

PATH, TITLE = "/models", "Models"
FILL = "run `earthops train USECASE --register` (or `make run`) to register a model"
#: metric-name pieces that mark a comparison with the use case's baseline
BASELINE_MARKS = ("gain_vs_", "baseline_")


def _short(datasets: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v[:12]}" for k, v in sorted(datasets.items())) or "—"


def versions_table(own: pd.DataFrame, usecase: str) -> html.Table:
    shown = own.assign(
        aliases=[", ".join(a) or "—" for a in own["aliases"]],
        approved=["yes" if a else "no" for a in own["approved"]],
        datasets=[_short(d) for d in own["datasets"]],
        metrics=[len(m) for m in own["metrics"]],
    )
    columns = ["version", "aliases", "stage", "gate", "approved", "created", "datasets"]
    return table(shown, columns, id=slug(usecase, "versions"))


def baseline_figure(own: pd.DataFrame, usecase: str) -> Any:
    """Gains over the baseline (``*_gain_vs_*``) and baseline scores per version."""
    figure = go.Figure()
    for i, row in enumerate(own.head(6).itertuples()):
        keys = sorted(k for k in row.metrics if any(m in k for m in BASELINE_MARKS))
        if keys:
            figure.add_trace(
                go.Bar(x=keys, y=[row.metrics[k] for k in keys], name=f"v{row.version}",
                       marker_color=COLOURS[i % len(COLOURS)])
            )  # fmt: skip
    if not figure.data:
        return html.P("no baseline comparison among the registered metrics", className="note")
    figure.add_hline(y=0, line_dash="dash", line_color="grey")
    figure.update_layout(title=f"{usecase}: against the baseline", barmode="group")
    return graph(figure, slug(usecase, "baseline"), height=320)


def side_by_side(versions: pd.DataFrame, usecase: str) -> list[Any]:
    """Champion vs challenger: metrics as grouped bars and a table with the differences."""
    pair = sources.champion_challenger(versions, usecase)
    if pair is None:
        holders = versions[versions["name"] == usecase]["aliases"].sum()
        missing = [a for a in ("champion", "challenger") if a not in holders]
        return [empty("champion vs challenger", f"no {' and no '.join(missing)} alias yet; "
                      "`earthops registry promote` / register a new gated version")]  # fmt: skip
    rows = pd.DataFrame(
        [{"metric": k, **v} for k, v in pair["metrics"].items()]
    ).rename(columns={"v1": f"champion v{pair['champion']}",
                      "v2": f"challenger v{pair['challenger']}", "diff": "challenger − champion"})  # fmt: skip
    scores = rows[rows.iloc[:, 1:3].abs().max(axis=1) <= 1]  # scores; thresholds etc. in the table
    figure = go.Figure()
    for i, column in enumerate(rows.columns[1:3]):
        figure.add_trace(go.Bar(x=scores["metric"], y=scores[column], name=column,
                                marker_color=COLOURS[i]))  # fmt: skip
    figure.update_layout(title=f"{usecase}: champion vs challenger", barmode="group")
    same = "same data" if pair["same_data"] else "different data"
    evalset = "same evaluation set" if pair["same_eval_set"] else "different evaluation sets"
    return [
        graph(figure, slug(usecase, "versus"), height=340),
        html.P(f"lineage: {same}, {evalset}", className="note"),
        table(rows, id=slug(usecase, "compare")),
    ]


def render(settings: Settings) -> list[Any]:
    versions = sources.registry_versions(settings)
    if versions is None:
        return [empty("MLflow registry is empty", FILL)]
    out: list[Any] = []
    for usecase, own in versions.groupby("name", sort=True):
        out.append(
            section(
                f"{usecase}",
                versions_table(own, str(usecase)),
                baseline_figure(own, str(usecase)),
                *side_by_side(versions, str(usecase)),
                test_id=slug("models", usecase),
            )
        )
    return out
