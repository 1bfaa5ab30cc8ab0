"""Dataset summaries (the first part of ``earthops run``) read every real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from earthops.data.summary import SUMMARIES, summarize
from earthops.errors import CatalogError


def test_every_catalog_dataset_has_a_summary() -> None:
    from earthops.data.catalog import CATALOG

    assert set(SUMMARIES) == set(CATALOG)


@pytest.mark.parametrize(
    ("name", "shape", "crs", "values"),
    [
        ("mcd12c1-2019", "1×3600×7200", "EPSG:4326", "17 classes, 0–16"),
        ("sinop-mod13q1-ndvi", "12×147×255", "MODIS sinusoidal", "NDVI"),
        ("crw-dhw-20210619", "1×3600×7200", "EPSG:4326", "… 59.46 °C-weeks"),
        ("mt-mod13q1-9classes", "1690 samples × 23 dates × 6 bands", "EPSG:4326", "9 classes"),
        ("bleaching-surveys", "21234 rows", "EPSG:4326", "years 1980–2016"),
    ],
)
def test_summary_lines_on_real_data(
    mirror: Path, name: str, shape: str, crs: str, values: str
) -> None:
    row = summarize(name)
    assert row.name == name
    assert row.shape.startswith(shape)
    assert row.crs.startswith(crs)
    assert values in row.values


def test_unknown_dataset_is_a_catalog_error() -> None:
    with pytest.raises(CatalogError, match="unknown dataset 'nope'"):
        summarize("nope")
