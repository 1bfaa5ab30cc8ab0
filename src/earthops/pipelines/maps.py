"""Maps the main job draws with a freshly trained model: which catalog inputs, which file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from earthops.data import catalog
from earthops.logs import get_logger
from earthops.settings import get_settings
from earthops.usecases import get_usecase

log = get_logger(__name__)


@dataclass(frozen=True)
class MapSpec:
    """Catalog datasets a use case's ``predict_raster`` reads, and the output file name."""

    title: str
    datasets: tuple[str, ...]
    filename: str


#: the reduced-cost maps of ``earthops run`` (landcover-global decimates the 0.05° grid)
DEFAULT_MAPS: dict[str, MapSpec] = {
    "landcover-timeseries": MapSpec(
        "Sinop land cover", ("sinop-mod13q1-ndvi",), "sinop_landcover.tif"
    ),
    "landcover-global": MapSpec("global IGBP map", ("bmng-2004",), "global_igbp.tif"),
    "reef-bleaching": MapSpec("reef risk heat-map", ("crw-dhw-20210619",), "reef_risk.tif"),
}


def render_map(usecase: str, model_uri: str, output_dir: Path | None = None) -> Path | None:
    """Apply ``model_uri`` to the use case's default map inputs; the COG path (None: no map)."""
    spec = DEFAULT_MAPS.get(usecase)
    if spec is None:
        log.info("no default map", usecase=usecase)
        return None
    uc = get_usecase(usecase)
    if not callable(getattr(uc, "predict_raster", None)):
        log.warning("use case has no predict_raster yet; map skipped", usecase=usecase)
        return None
    inputs = [path for name in spec.datasets for path in catalog.resolve(name)]
    output = (output_dir or get_settings().outputs_dir) / spec.filename
    output.parent.mkdir(parents=True, exist_ok=True)
    log.info("drawing map", usecase=usecase, map=spec.title, output=str(output))
    return uc.predict_raster(model_uri, inputs, output)
