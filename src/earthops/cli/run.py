"""``earthops run``: the main job on embedded defaults (what `make run` calls).

1. verify every dataset and summarise it;
2. run the Prefect pipeline of every landed use case (reduced cost), in-process;
3. draw each use case's map with the model just trained;
4. print metrics against baselines, registered versions and aliases, and the MLflow UI command;
5. start the model server for a few seconds and send it one request per use case.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from earthops.cli.common import console
from earthops.data import catalog
from earthops.errors import EarthOpsError
from earthops.logs import get_logger

log = get_logger(__name__)


def register(app: typer.Typer) -> None:
    app.command("run")(main_job)


def main_job(
    full: Annotated[bool, typer.Option(help="Full-cost trainings instead of fast ones.")] = False,
    maps: Annotated[bool, typer.Option(help="Draw each use case's map.")] = True,
    serve: Annotated[
        bool, typer.Option(help="End by serving each model and sending it one request.")
    ] = True,
    usecase: Annotated[
        list[str] | None, typer.Option("--usecase", help="Only these use cases (repeatable).")
    ] = None,
) -> None:
    """Verify the data, run every use case's pipeline end to end, print the summary."""
    _datasets()
    outcomes = [_one(name, fast=not full, draw=maps) for name in _selected(usecase)]
    _summary(outcomes)
    if serve:
        _serve_check(outcomes)
    if any(o["status"] == "failed" for o in outcomes):
        raise typer.Exit(1)


def _datasets() -> None:
    from earthops.data.summary import summarize_all

    results = catalog.verify()
    failed = [r for r in results if not r.ok]
    for r in failed:
        console.print(f"[bold red]FAIL[/] {r.dataset}: {r.problem}")
    if failed:
        raise typer.Exit(1)
    table = Table(
        "dataset", "shape / rows", "CRS", "classes / value range", title="EarthOps datasets"
    )
    for row in summarize_all():
        table.add_row(row.name, row.shape, row.crs, row.values)
    console.print(table)


def _serve_check(outcomes: list[dict[str, Any]]) -> None:
    from earthops.cli.serve_check import print_answers, serve_check

    try:
        print_answers(serve_check(outcomes))
    except Exception as exc:  # the trainings above stand; say why serving did not
        log.error("serve check failed", error=f"{type(exc).__name__}: {exc}")
        console.print(f"[bold red]serve check failed:[/] {type(exc).__name__}: {exc}")


def _selected(only: list[str] | None) -> list[str]:
    from earthops.usecases import names

    known = names()
    unknown = sorted(set(only or []) - set(known))
    if unknown:
        raise EarthOpsError(f"unknown use case(s) {unknown}; expected some of {known}")
    return [n for n in known if not only or n in only]


def _one(name: str, *, fast: bool, draw: bool) -> dict[str, Any]:
    """Pipeline (+ map) of one use case; a missing or failing use case is reported, not fatal."""
    from earthops.pipelines.flows import run_pipeline
    from earthops.pipelines.maps import render_map
    from earthops.usecases import get_usecase

    try:
        get_usecase(name)
    except EarthOpsError as exc:
        log.warning("use case skipped", usecase=name, reason=str(exc))
        return {"usecase": name, "status": "skipped", "reason": str(exc)}
    console.rule(f"[bold]{name}")
    try:
        result = run_pipeline(name, fast=fast)
    except Exception as exc:  # one broken use case must not hide the others' results
        log.error("pipeline failed", usecase=name, error=f"{type(exc).__name__}: {exc}")
        return {"usecase": name, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    result["status"] = "ok"
    result["map"] = None
    if draw:
        try:
            result["map"] = render_map(name, result["metrics"]["model_uri"])
        except Exception as exc:
            log.warning("map skipped", usecase=name, error=f"{type(exc).__name__}: {exc}")
            result["map_error"] = f"{type(exc).__name__}: {exc}"
    return result


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"


def _summary(outcomes: list[dict[str, Any]]) -> None:
    from earthops.registry import policy
    from earthops.settings import get_settings

    table = Table(title="EarthOps main job")
    table.add_column("use case", no_wrap=True)
    for header in ("metric", "model", "baseline", "gate", "trained", "version", "promotion"):
        table.add_column(header)
    notes: list[str] = []
    for o in outcomes:
        if o["status"] != "ok":
            table.add_row(o["usecase"], "—", "—", "—", "—", "—", "—", o["status"])
            notes.append(f"  {o['usecase']} {o['status']}: {o['reason']}")
            continue
        ev, version, promo = o["evaluation"], o["version"], o["promotion"]
        try:
            info = policy.version_info(version["name"], version["version"])
            label = f"v{info.version} {info.stage}" + (
                f" @{','.join(info.aliases)}" if info.aliases else ""
            )
        except EarthOpsError:
            label = f"v{version['version']}"
        if promo.get("promoted"):
            promotion = "champion"
        else:
            promotion = f"refused: {promo.get('rule')}" if promo.get("rule") else "—"
            if promo.get("reason"):
                notes.append(f"  {o['usecase']} promotion: {promo['reason']}")
        table.add_row(
            o["usecase"],
            str(ev["primary_metric"]),
            _fmt(ev["value"]),
            _fmt(ev["baseline"]),
            "pass" if ev["gate_passed"] else "fail",
            "yes" if o["trained"] else "cached",
            label,
            promotion,
        )
        notes.append(f"  {o['usecase']} map: {o['map'] or o.get('map_error', 'none')}")
    # a log file or CI pipe gets 80 columns by default: too narrow for this table
    (console if console.is_terminal else Console(width=120)).print(table)
    if notes:
        console.print("\n".join(notes), soft_wrap=True, highlight=False)
    settings = get_settings()
    console.print(
        f"Registry: earthops registry list — approved-models file {settings.approved_models_path}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"MLflow UI: [bold]mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}[/] "
        "then open http://127.0.0.1:5000",
        soft_wrap=True,
        highlight=False,
    )
