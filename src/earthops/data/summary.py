"""One-line summaries of every catalog dataset (what ``earthops run`` prints first).

Each summary reads the dataset through its real reader, at reduced cost where the file is
large (the 1 km Köppen-Geiger raster is read decimated), so a summary also proves that the
reader accepts the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import xarray as xr

from earthops.data import catalog
from earthops.data.legends import legend_of
from earthops.logs import track


@dataclass(frozen=True)
class DatasetSummary:
    """Shape (or rows), CRS and classes / value range of one dataset."""

    name: str
    shape: str
    crs: str
    values: str


def _crs(da: xr.DataArray) -> str:
    crs = da.rio.crs
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    proj = crs.to_dict().get("proj")
    return {"sinu": "MODIS sinusoidal"}.get(str(proj), f"+proj={proj}" if proj else "custom")


def _range(values: np.ndarray, unit: str = "") -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "all nodata"
    suffix = f" {unit}" if unit else ""
    return f"{float(finite.min()):.4g} … {float(finite.max()):.4g}{suffix}"


def _classes(da: xr.DataArray) -> str:
    legend = legend_of(da)
    data = np.asarray(da.values)
    if legend is not None and legend.nodata is not None:
        data = data[data != legend.nodata]
    present = np.unique(data)
    text = f"{present.size} classes, {int(present.min())}–{int(present.max())}"
    return f"{text} ({legend.name})" if legend is not None else text


def _shape(da: xr.DataArray) -> str:
    return "×".join(str(n) for n in da.shape)


def _mcd12c1() -> DatasetSummary:
    from earthops.data.rasters import read_mcd12c1

    da = read_mcd12c1()
    return DatasetSummary("mcd12c1-2019", _shape(da), _crs(da), _classes(da))


def _bmng() -> DatasetSummary:
    from earthops.data.rasters import read_bmng

    da = read_bmng()
    return DatasetSummary("bmng-2004", _shape(da), _crs(da), f"RGB {_range(da.values)}")


def _koppen() -> DatasetSummary:
    from earthops.data.rasters import read_koppen

    da = read_koppen(out_shape=(1800, 3600))
    return DatasetSummary("koppen-geiger", "43200×21600 (read 1/12)", _crs(da), _classes(da))


def _mod13q1_samples() -> DatasetSummary:
    from earthops.data.samples import read_mod13q1_samples

    samples = read_mod13q1_samples()
    shape = f"{samples.n_samples} samples × {samples.n_times} dates × {len(samples.bands)} bands"
    names = samples.classes
    classes = f"{len(names)} classes ({names[0]} … {names[-1]})"
    return DatasetSummary("mt-mod13q1-9classes", shape, "EPSG:4326 (points)", classes)


def _sinop() -> DatasetSummary:
    from earthops.data.rasters import read_sinop_cube

    cube = read_sinop_cube()
    return DatasetSummary(
        "sinop-mod13q1-ndvi", _shape(cube), _crs(cube), f"NDVI {_range(cube.values)}"
    )


def _surveys() -> DatasetSummary:
    from earthops.data.tables import read_bleaching_surveys

    frame = read_bleaching_surveys()
    years = f"{int(frame['Date_Year'].min())}–{int(frame['Date_Year'].max())}"
    values = f"avg.bleach {_range(frame['avg.bleach'].to_numpy(float))} %, years {years}"
    shape = f"{len(frame)} rows, {frame['Site_ID'].nunique()} sites"
    return DatasetSummary("bleaching-surveys", shape, "EPSG:4326 (points)", values)


def _coraltemp() -> DatasetSummary:
    from earthops.data.tables import read_coraltemp_csv

    frame = read_coraltemp_csv()
    span = f"{frame.index.min():%Y-%m-%d} … {frame.index.max():%Y-%m-%d}"
    return DatasetSummary(
        "coraltemp-honolii",
        f"{len(frame)} days ({span})",
        "EPSG:4326 (point)",
        f"SST {_range(frame['sst'].to_numpy(float), '°C')}",
    )


def _crw_dhw() -> DatasetSummary:
    from earthops.data.rasters import read_crw_dhw

    da = read_crw_dhw()
    return DatasetSummary(
        "crw-dhw-20210619", _shape(da), _crs(da), f"DHW {_range(np.asarray(da.values), '°C-weeks')}"
    )


SUMMARIES: dict[str, Callable[[], DatasetSummary]] = {
    "mcd12c1-2019": _mcd12c1,
    "bmng-2004": _bmng,
    "koppen-geiger": _koppen,
    "mt-mod13q1-9classes": _mod13q1_samples,
    "sinop-mod13q1-ndvi": _sinop,
    "bleaching-surveys": _surveys,
    "coraltemp-honolii": _coraltemp,
    "crw-dhw-20210619": _crw_dhw,
}


def summarize(name: str) -> DatasetSummary:
    """The summary of catalog dataset ``name`` (read through its reader)."""
    catalog.entry(name)  # unknown names: the catalog's clear error
    return SUMMARIES[name]()


def summarize_all() -> Iterator[DatasetSummary]:
    """Summaries of every catalog dataset, with a progress bar."""
    yield from (summarize(name) for name in track(list(catalog.CATALOG), "reading datasets"))
