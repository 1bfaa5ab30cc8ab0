"""``earthops train | evaluate | predict-raster | tune``: generic over use cases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earthops.cli.common import console, print_json, write_json
from earthops.usecases import get_usecase
from earthops.usecases.base import BBox, EvalOptions, TrainOptions, parse_params

MetricsOut = Annotated[Path | None, typer.Option("--metrics-out", help="Write metrics JSON here.")]


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(evaluate)
    app.command("predict-raster")(predict_raster)
    app.command()(tune)


def train(
    usecase: Annotated[
        str, typer.Argument(help="landcover-global | landcover-timeseries | reef-bleaching")
    ],
    dataset: Annotated[
        Path | None, typer.Option(help="Labelled dataset (default: catalog).")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Use-case protocol, e.g. igbp7, igbp17.")
    ] = None,
    exclude_bbox: Annotated[
        list[str] | None, typer.Option("--exclude-bbox", help="minx,miny,maxx,maxy; repeatable.")
    ] = None,
    register_model: Annotated[
        bool, typer.Option("--register", help="Register the model version.")
    ] = False,
    fast: Annotated[bool, typer.Option(help="Reduced-cost run.")] = False,
    params: Annotated[
        str | None,
        typer.Option(
            help='Use-case params as a JSON object or @file, e.g. \'{"decision": "area"}\'.'
        ),
    ] = None,
    metrics_out: MetricsOut = None,
) -> None:
    """Train a use case with honest validation, log it to MLflow, print the metrics."""
    options = TrainOptions(
        dataset=dataset,
        protocol=protocol,
        exclude_bboxes=[BBox.parse(b) for b in exclude_bbox or []],
        params=parse_params(params),
        fast=fast,
    )
    metrics = get_usecase(usecase).train(options)
    if register_model:  # registration is the registry's job (policy tags, gate → challenger)
        from earthops.registry.policy import register_version

        info = register_version(usecase, metrics)
        metrics["registered"] = {"version": info.version, "aliases": info.aliases}
    write_json(metrics, metrics_out)
    print_json(metrics)


def evaluate(
    usecase: Annotated[str, typer.Argument(help="Use case name.")],
    model: Annotated[
        str, typer.Option("--model", help="MODEL_URI (models:/name@champion, runs:/…).")
    ],
    dataset: Annotated[
        Path | None, typer.Option(help="Labelled dataset in the use case's format.")
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="Use-case protocol.")] = None,
    bbox: Annotated[
        list[str] | None, typer.Option("--bbox", help="Score inside this region.")
    ] = None,
    metrics_out: MetricsOut = None,
) -> None:
    """Score a logged model on a labelled dataset."""
    options = EvalOptions(
        dataset=dataset, protocol=protocol, bboxes=[BBox.parse(b) for b in bbox or []]
    )
    metrics = get_usecase(usecase).evaluate(model, options)
    write_json(metrics, metrics_out)
    print_json(metrics)


def predict_raster(
    model: Annotated[str, typer.Option("--model", help="MODEL_URI.")],
    input_: Annotated[list[Path], typer.Option("--input", help="Input raster(s) or cube files.")],
    output: Annotated[Path, typer.Option("--output", help="Output Cloud-Optimized GeoTIFF.")],
    probability: Annotated[bool, typer.Option(help="Add a max-probability band.")] = False,
) -> None:
    """Classify a raster or cube chunk by chunk into a Cloud-Optimized GeoTIFF."""
    from earthops.models.mapping import predict_raster as run_prediction

    path = run_prediction(model, list(input_), output, with_probability=probability)
    console.print(f"[green]wrote[/] {path}")


def tune(
    usecase: Annotated[str, typer.Argument(help="Use case name.")],
    trials: Annotated[int, typer.Option(help="Number of Optuna trials.")] = 20,
    study: Annotated[str | None, typer.Option(help="Study name (default: USECASE-METRIC).")] = None,
    fast: Annotated[bool, typer.Option(help="Reduced-cost problem (smaller sample).")] = False,
    storage: Annotated[
        str | None, typer.Option(help="Optuna RDB URL (default: settings, SQLite).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampler seed (default: per worker).")] = None,
) -> None:
    """Bayesian (TPE) tuning with pruning; each trial a nested MLflow run.

    Run the same command in several processes with one ``--study`` and ``--storage`` to share it.
    """
    from earthops.models.tuning import tune as run_tuning

    result = run_tuning(
        usecase, n_trials=trials, study_name=study, fast=fast, storage_url=storage, seed=seed
    )
    print_json(result)
