"""Bleaching-risk heat-map of a CRW DHW grid (COG + PNG): DHW grid model or CRW alert level."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from earthops.errors import DataError, EarthOpsError
from earthops.features.reef_features import DHW_COLUMN
from earthops.features.thermal import ALERT_LEVEL_NAMES, alert_level_from_dhw
from earthops.logs import get_logger

from .config import NAME
from .model import PICKLE_MODULE, DhwGridModel, ReefRiskModel, _load_reef_model

log = get_logger(__name__)

#: CRW Bleaching Alert Area colours (levels 0..7 of :data:`ALERT_LEVEL_NAMES`)
ALERT_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (200, 250, 250),
    1: (255, 240, 0),
    2: (250, 170, 10),
    3: (240, 0, 0),
    4: (150, 0, 0),
    5: (110, 0, 60),
    6: (80, 0, 110),
    7: (40, 0, 80),
}
ALERT_NODATA = 255
HEATMAP_BLOCK_ROWS = 256
_PNG_MAX_WIDTH = 1800


@dataclass(frozen=True)
class Heatmap:
    """What :func:`risk_heatmap` wrote: the COG, the PNG beside it, and summary statistics."""

    __module__ = PICKLE_MODULE

    cog: Path
    png: Path
    mode: str
    stats: dict[str, float | int]


def _grid_risk_block(dhw: np.ndarray, *, model: DhwGridModel) -> np.ndarray:
    """Bleaching probability for one ``(band=1, rows, cols)`` DHW block; NaN stays NaN."""
    values = dhw[0]
    out = np.full(values.shape, np.nan, dtype=np.float32)
    valid = np.isfinite(values)
    if valid.any():
        frame = pd.DataFrame({DHW_COLUMN: values[valid]})
        out[valid] = model.predict_proba(frame)[:, 1].astype(np.float32)
    return out[None]


def _alert_block(dhw: np.ndarray) -> np.ndarray:
    levels = alert_level_from_dhw(dhw)
    return np.where(np.isfinite(levels), levels, ALERT_NODATA).astype(np.uint8)


def _heatmap_png(cog: Path, png: Path, *, mode: str, title: str) -> Path:
    """Decimated read of the COG (its overviews: bounded memory) → a PNG heat-map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.colors import BoundaryNorm, ListedColormap

    with rasterio.open(cog) as src:
        scale = max(1, int(np.ceil(src.width / _PNG_MAX_WIDTH)))
        shape = (max(1, src.height // scale), max(1, src.width // scale))
        data = src.read(1, out_shape=shape, masked=True)
        b = src.bounds
    fig, ax = plt.subplots(figsize=(12, 6.4), dpi=150)
    ax.set_facecolor("#d9d9d9")  # land / nodata
    extent = (b.left, b.right, b.bottom, b.top)
    if mode == "alert":
        colours = [np.array(ALERT_COLOURS[k]) / 255 for k in sorted(ALERT_COLOURS)]
        cmap = ListedColormap(colours)
        norm = BoundaryNorm(np.arange(-0.5, len(colours) + 0.5), cmap.N)
        image = ax.imshow(data, extent=extent, cmap=cmap, norm=norm, interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, ticks=sorted(ALERT_COLOURS), shrink=0.8)
        bar.ax.set_yticklabels([ALERT_LEVEL_NAMES[k] for k in sorted(ALERT_COLOURS)], fontsize=7)
    else:
        image = ax.imshow(
            data, extent=extent, cmap="YlOrRd", vmin=0, vmax=1, interpolation="nearest"
        )
        fig.colorbar(image, ax=ax, shrink=0.8, label="bleaching probability")
    ax.set_title(title)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


def risk_heatmap(
    output: str | Path,
    *,
    dhw: str | Path | None = None,
    model_uri: str | None = None,
    model: ReefRiskModel | None = None,
    with_alert_band: bool = False,
    block_rows: int = HEATMAP_BLOCK_ROWS,
) -> Heatmap:
    """Bleaching-risk heat-map of a NOAA CRW DHW grid: a COG plus a PNG beside it.

    ``dhw``: a CRW DHW NetCDF (default: catalog ``crw-dhw-20210619``), read by
    :func:`earthops.data.rasters.read_crw_dhw` (land, ice and fill masked → nodata).
    With a reef model (``model`` or ``model_uri``), band ``bleaching_risk`` is its DHW-driven
    grid model (:class:`DhwGridModel`, monotone in DHW) as float32 probability (nodata NaN);
    ``with_alert_band`` adds ``crw_alert_level``. Without a model, the single band is the CRW
    alert level from DHW (uint8 0–7 with the CRW palette, nodata 255). The output is computed
    ``block_rows`` rows at a time (dask) and written as a COG chunk by chunk.
    """
    import dask.array as dsa
    import xarray as xr

    from earthops.data.rasters import read_crw_dhw
    from earthops.raster.cog import write_cog

    output = Path(output)
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise EarthOpsError(f"heat-map output '{output}': expected a .tif path (COG)")
    if model is None and model_uri is not None:
        model = _load_reef_model(model_uri)
    grid = read_crw_dhw(dhw)
    if "time" in grid.dims:
        raise DataError(str(dhw or "crw-dhw"), "several times; expected one DHW day", field="time")
    when = (
        str(np.datetime_as_string(grid["time"].values, unit="D")) if "time" in grid.coords else ""
    )
    lazy = grid.data if isinstance(grid.data, dsa.Array) else dsa.from_array(grid.values)
    lazy = lazy.rechunk((1, block_rows, -1))
    tags = {"EARTHOPS_USECASE": NAME, "DHW_DATE": when}
    if model is not None:
        risk = dsa.map_blocks(
            _grid_risk_block,
            lazy,
            model=model.grid_model_,
            dtype=np.float32,
        )
        bands, names = [risk], ["bleaching_risk"]
        if with_alert_band:
            alert = dsa.map_blocks(
                lambda d: alert_level_from_dhw(d).astype(np.float32), lazy, dtype=np.float32
            )
            bands.append(alert)
            names.append("crw_alert_level")
        data = dsa.concatenate(bands, axis=0)
        out = xr.DataArray(
            data, dims=("band", "y", "x"), coords={"band": names, "y": grid["y"], "x": grid["x"]}
        )
        out = out.rio.write_crs(grid.rio.crs).rio.write_transform(grid.rio.transform())
        write_cog(
            out, output, nodata=float("nan"), tags={**tags, "MODE": "model"}, show_progress=False
        )
        mode = "model"
    else:
        data = dsa.map_blocks(_alert_block, lazy, dtype=np.uint8)
        out = xr.DataArray(
            data,
            dims=("band", "y", "x"),
            coords={"band": ["crw_alert_level"], "y": grid["y"], "x": grid["x"]},
        )
        out = out.rio.write_crs(grid.rio.crs).rio.write_transform(grid.rio.transform())
        write_cog(
            out,
            output,
            nodata=ALERT_NODATA,
            colormap=ALERT_COLOURS,
            class_names=ALERT_LEVEL_NAMES,
            tags={**tags, "MODE": "alert"},
            show_progress=False,
        )
        mode = "alert"
    title = (
        f"Coral bleaching {'probability (DHW model)' if mode == 'model' else 'CRW alert level'}"
        f" — CRW DHW {when}"
    )
    png = _heatmap_png(output, output.with_suffix(".png"), mode=mode, title=title)
    stats = _heatmap_stats(output, mode)
    log.info("reef heat-map written", cog=str(output), png=str(png), mode=mode, **stats)
    return Heatmap(output, png, mode, stats)


def _heatmap_stats(cog: Path, mode: str) -> dict[str, float | int]:
    import rasterio

    with rasterio.open(cog) as src:
        ov = src.overviews(1)
        factor = ov[0] if ov else 1
        data = src.read(1, out_shape=(src.height // factor, src.width // factor), masked=True)
    valid = data.compressed().astype(np.float64)
    stats: dict[str, float | int] = {"valid_fraction": float(valid.size / max(data.size, 1))}
    if valid.size:
        stats["p90"] = float(np.quantile(valid, 0.9))
        stats["max"] = float(valid.max())
    if mode == "alert":
        stats["alert_ge_1_fraction"] = float((valid >= 3).mean()) if valid.size else 0.0
    return stats
