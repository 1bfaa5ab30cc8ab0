"""Use cases by name; the only modules that know a domain live here."""

from __future__ import annotations

from importlib import import_module

from earthops.errors import EarthOpsError
from earthops.usecases.base import UseCase

_USECASES: dict[str, str] = {
    "landcover-global": "earthops.usecases.landcover_global:GlobalLandCover",
    "landcover-timeseries": "earthops.usecases.landcover_timeseries:TimeSeriesLandCover",
    "reef-bleaching": "earthops.usecases.reef:ReefBleaching",
}


def names() -> list[str]:
    return sorted(_USECASES)


def get_usecase(name: str) -> UseCase:
    """Instantiate the use case registered as ``name``."""
    try:
        target = _USECASES[name]
    except KeyError:
        raise EarthOpsError(
            f"unknown use case '{name}'; expected one of: {', '.join(names())}"
        ) from None
    module_name, cls_name = target.split(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise EarthOpsError(f"use case '{name}' is not available in this build") from None
        raise
    return getattr(module, cls_name)()
