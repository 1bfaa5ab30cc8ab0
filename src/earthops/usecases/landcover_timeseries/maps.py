"""Maps: classify an NDVI cube (Sinop, one file per date) with the logged NDVI model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from earthops.errors import EarthOpsError, SignatureError
from earthops.usecases.landcover_timeseries.config import DATE_TOLERANCE_DAYS, NAME
from earthops.usecases.landcover_timeseries.samples import _season_names, season_day


def predict_cube(
    model_uri: str, inputs: list[Path], output: Path, *, with_probability: bool = False
) -> Path:
    """Classify an NDVI cube (one file per date) into a COG with the class palette."""
    from earthops.data.rasters import read_sinop_cube
    from earthops.models.mapping import classify_blocks
    from earthops.registry.inference import load

    loaded = load(model_uri, usecase=NAME)
    meta = loaded.meta
    signature = meta.get("raster_signature")
    if not signature:
        raise SignatureError(
            f"model '{model_uri}' has no raster signature; train it with protocol "
            "ndvi-sinop (or all-bands with the map model) to map a cube"
        )
    if not inputs:
        raise EarthOpsError("predict-raster needs the NDVI files of the cube (one per date)")
    cube = read_sinop_cube(inputs)
    names = _match_dates(season_day(cube["time"].values), meta["raster_signature"]["names"])
    model = loaded.model
    map_model = model if meta.get("protocol") == "ndvi-sinop" else model.map_model
    if map_model is None:
        raise SignatureError(f"model '{model_uri}' carries no NDVI map model")
    n = int(cube.sizes["time"])

    def featurize(block: np.ndarray) -> np.ndarray:
        return block.reshape(block.shape[0], -1).T

    return classify_blocks(
        cube,
        featurize,
        map_model,
        output,
        legend={c: c for c in map_model.classes_},
        with_probability=with_probability,
        signature=signature,
        layer_names=names,
        source=f"NDVI cube ({n} files, {Path(inputs[0]).parent})",
        min_valid_layers=max(1, n // 2),
        description="land_cover",
        tags={"EARTHOPS_MODEL": model_uri, "EARTHOPS_USECASE": NAME},
    )


def _match_dates(days: np.ndarray, expected: list[str]) -> list[str]:
    """Cube dates as the model's season names when within the tolerance, else their own."""
    ref = pd.Timestamp("2013-09-01")
    want = {n: (pd.Timestamp(f"{2013 if n >= '09' else 2014}-{n}") - ref).days for n in expected}
    out = []
    for d in days:
        close = [n for n, w in want.items() if abs(int(d) - w) <= DATE_TOLERANCE_DAYS]
        out.append(close[0] if close else _season_names(np.array([d]))[0])
    return out
