"""Class legends of the categorical products: IGBP land cover, Köppen main groups, CRW alerts.

A :class:`Legend` maps integer class values to names and colours. It travels with a raster as
plain list attributes (``legend``, ``class_values``, ``class_names``, ``class_colors``) so that
it survives NetCDF/GeoTIFF round trips, and gives the ``{value: name}`` / ``{value: RGB}`` dicts
that :func:`earthops.raster.cog.write_cog` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class LegendClass:
    """One class: its integer value, name and colour (``#rrggbb``)."""

    value: int
    name: str
    color: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        h = self.color.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@dataclass(frozen=True)
class Legend:
    """An ordered set of classes; ``nodata`` is the value that marks 'no class'."""

    name: str
    classes: tuple[LegendClass, ...]
    nodata: int | None = None

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(c.value for c in self.classes)

    def names(self) -> dict[int, str]:
        """``{value: name}``."""
        return {c.value: c.name for c in self.classes}

    def colormap(self) -> dict[int, tuple[int, int, int]]:
        """``{value: (r, g, b)}``."""
        return {c.value: c.rgb for c in self.classes}

    def name_of(self, value: int) -> str:
        """The class name of ``value`` (KeyError for a value outside the legend)."""
        return self.names()[int(value)]

    def to_attrs(self) -> dict[str, Any]:
        """Attributes for a DataArray (lists only, so they survive file round trips)."""
        attrs: dict[str, Any] = {
            "legend": self.name,
            "class_values": list(self.values),
            "class_names": [c.name for c in self.classes],
            "class_colors": [c.color for c in self.classes],
        }
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Legend | None:
        """The legend stored by :meth:`to_attrs` (None when the attributes hold none)."""
        if "class_values" not in attrs or "class_names" not in attrs:
            return None
        values = [int(v) for v in np.atleast_1d(attrs["class_values"])]
        names = [str(n) for n in np.atleast_1d(attrs["class_names"])]
        colors = [
            str(c) for c in np.atleast_1d(attrs.get("class_colors", ["#000000"] * len(values)))
        ]
        classes = tuple(LegendClass(v, n, c) for v, n, c in zip(values, names, colors, strict=True))
        return cls(name=str(attrs.get("legend", "custom")), classes=classes)


def _legend(name: str, rows: list[tuple[int, str, str]], nodata: int | None) -> Legend:
    return Legend(name, tuple(LegendClass(v, n, c) for v, n, c in rows), nodata)


#: MODIS IGBP (MCD12C1/MCD12Q1 Type 1), water as 0 as in the CMG product; the usual MODIS colours.
IGBP = _legend(
    "igbp",
    [
        (0, "water", "#1c0dff"),
        (1, "evergreen needleleaf forest", "#05450a"),
        (2, "evergreen broadleaf forest", "#086a10"),
        (3, "deciduous needleleaf forest", "#54a708"),
        (4, "deciduous broadleaf forest", "#78d203"),
        (5, "mixed forest", "#009900"),
        (6, "closed shrublands", "#c6b044"),
        (7, "open shrublands", "#dcd159"),
        (8, "woody savannas", "#dade48"),
        (9, "savannas", "#fbff13"),
        (10, "grasslands", "#b6ff05"),
        (11, "permanent wetlands", "#27ff87"),
        (12, "croplands", "#c24f44"),
        (13, "urban", "#a5a5a5"),
        (14, "cropland/natural mosaic", "#ff6d4c"),
        (15, "snow and ice", "#69fff8"),
        (16, "barren", "#f9ffa4"),
    ],
    nodata=255,
)

#: Köppen-Geiger main groups (Beck et al. 2018, simplified), colours of each group's lead class.
KOPPEN = _legend(
    "koppen",
    [
        (1, "tropical", "#0000ff"),
        (2, "arid", "#ff0000"),
        (3, "temperate", "#c8ff50"),
        (4, "cold", "#00ffff"),
        (5, "polar", "#b2b2b2"),
    ],
    nodata=0,
)

#: NOAA Coral Reef Watch Bleaching Alert Area levels (v3.1, seven plus three levels).
CRW_ALERT = _legend(
    "crw_alert",
    [
        (0, "No Stress", "#c8fafa"),
        (1, "Bleaching Watch", "#fff000"),
        (2, "Bleaching Warning", "#faaa0a"),
        (3, "Alert Level 1", "#f00000"),
        (4, "Alert Level 2", "#960000"),
        (5, "Alert Level 3", "#640000"),
        (6, "Alert Level 4", "#500050"),
        (7, "Alert Level 5", "#3c003c"),
    ],
    nodata=255,
)

#: DHW thresholds (°C-weeks) opening Alert Levels 1..5 once HotSpot >= 1.
CRW_ALERT_DHW_THRESHOLDS: tuple[float, ...] = (4.0, 8.0, 12.0, 16.0, 20.0)

LEGENDS: dict[str, Legend] = {lg.name: lg for lg in (IGBP, KOPPEN, CRW_ALERT)}


def get_legend(name: str) -> Legend:
    """A legend by name (``igbp``, ``koppen``, ``crw_alert``)."""
    try:
        return LEGENDS[name]
    except KeyError:
        raise KeyError(f"unknown legend '{name}'; known: {', '.join(sorted(LEGENDS))}") from None


def legend_of(obj: Any) -> Legend | None:
    """The legend attached to a DataArray (or any object with ``attrs``), if any."""
    attrs = getattr(obj, "attrs", {})
    name = attrs.get("legend")
    if isinstance(name, str) and name in LEGENDS:
        return LEGENDS[name]
    return Legend.from_attrs(attrs)


def crw_alert_level(hotspot: ArrayLike, dhw: ArrayLike) -> np.ndarray:
    """CRW Bleaching Alert Area level (0..7, :data:`CRW_ALERT`) from HotSpot and DHW (°C, °C-weeks).

    No Stress: HS <= 0; Watch: 0 < HS < 1; Warning: HS >= 1 and DHW < 4; Alert Level k (k=1..5):
    HS >= 1 and DHW >= 4·k. NaN in either input gives ``CRW_ALERT.nodata``.
    """
    hs = np.asarray(hotspot, dtype=np.float64)
    d = np.asarray(dhw, dtype=np.float64)
    hs, d = np.broadcast_arrays(hs, d)
    level = np.zeros(hs.shape, dtype=np.uint8)
    level[(hs > 0) & (hs < 1)] = 1
    stressed = hs >= 1
    level[stressed] = 2
    for k, threshold in enumerate(CRW_ALERT_DHW_THRESHOLDS, start=3):
        level[stressed & (d >= threshold)] = k
    level[np.isnan(hs) | np.isnan(d)] = 255
    return level
