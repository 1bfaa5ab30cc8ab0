"""Data catalog: every real dataset by a stable name, with files, SHA-256, citation and source.

Resolution reads the local mirror (``settings.data_dir``) first, else downloads the file from
its public source into the cache with pooch. A file whose checksum differs is never used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pooch

from earthops.data.identity import DatasetRef, file_sha256, files_digest
from earthops.errors import CatalogError, ChecksumError, DataError
from earthops.logs import get_logger
from earthops.settings import Settings, get_settings

log = get_logger(__name__)

_SITS_DATA = "https://raw.githubusercontent.com/e-sensing/sits/master/inst/extdata/raster/mod13q1/"


@dataclass(frozen=True)
class CatalogFile:
    """One file of a dataset: path relative to the mirror root, checksum, public URL."""

    path: str
    sha256: str
    url: str


@dataclass(frozen=True)
class CatalogEntry:
    """A named dataset."""

    name: str
    title: str
    kind: str
    files: tuple[CatalogFile, ...]
    citation: str
    source: str
    license: str = "public domain"
    extra: dict[str, str] = field(default_factory=dict)


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in [
        CatalogEntry(
            name="mcd12c1-2019",
            title="MODIS MCD12C1 C6 land cover 2019, IGBP majority class, 0.05 deg CMG",
            kind="raster",
            files=(
                CatalogFile(
                    "modis/MCD12C1.A2019001.006.2020220162300.tif",
                    "a253c7643966d99580dacc890fedbe78417ca0dcb4c45845b41b838369c975ad",
                    "https://e4ftl01.cr.usgs.gov/MOTA/MCD12C1.006/2019.01.01/"
                    "MCD12C1.A2019001.006.2020220162300.tif",
                ),
            ),
            citation="Friedl, M., Sulla-Menashe, D. (2019). MCD12C1 MODIS/Terra+Aqua Land Cover "
            "Type Yearly L3 Global 0.05Deg CMG V006. NASA LP DAAC. doi:10.5067/MODIS/MCD12C1.006",
            source="NASA LP DAAC (GeoTIFF as redistributed for ECOSTRESS Collection 2)",
            license="Apache-2.0",
        ),
        CatalogEntry(
            name="bmng-2004",
            title="NASA Blue Marble Next Generation true colour, 2004, 5400x2700",
            kind="raster",
            files=(
                CatalogFile(
                    "modis/bmng_2004_5400x2700.jpg",
                    "10f5389b365d7ece89f68a73ce5653fb5692145fde181fc64596d0d87cb89bb8",
                    "https://eoimages.gsfc.nasa.gov/images/imagerecords/74000/74092/"
                    "world.200407.3x5400x2700.jpg",
                ),
            ),
            citation="NASA Earth Observatory, Blue Marble Next Generation (Stöckli et al. 2005).",
            source="NASA Visible Earth",
        ),
        CatalogEntry(
            name="koppen-geiger",
            title="Köppen-Geiger climate main groups, 1 km (simplified)",
            kind="raster",
            files=(
                CatalogFile(
                    "landcover/koppen_geiger_simplified_1km.tif",
                    "5b76454fd5e12d01fe0882172a0aacd70acb7725e2aa38a07181bb8a1f06ef7d",
                    "https://figshare.com/ndownloader/files/12407516",
                ),
            ),
            citation="Beck, H.E. et al. (2018). Present and future Köppen-Geiger climate "
            "classification maps at 1-km resolution. Sci. Data 5:180214.",
            source="figshare (Beck et al. 2018), main groups",
            license="CC BY 4.0",
        ),
        CatalogEntry(
            name="mt-mod13q1-9classes",
            title="Mato Grosso MOD13Q1 labelled time series, 9 classes",
            kind="samples",
            files=(
                CatalogFile(
                    "landcover/matogrosso_mod13q1_9classes.json.gz",
                    "e7a6fadc593c94b84db56ebf30a872f6f8006df78fff2c774620a89219d45e3a",
                    "https://github.com/e-sensing/sitsdata/raw/master/data/"
                    "matogrosso_mod13q1_9classes.json.gz",
                ),
            ),
            citation="Picoli, M.C.A. et al. (2018). Big earth observation time series analysis "
            "for monitoring Brazilian agriculture. ISPRS J. 145:328-339.",
            source="sits / sitsdata (e-sensing)",
            license="GPL-2.0",
        ),
        CatalogEntry(
            name="sinop-mod13q1-ndvi",
            title="Sinop (Mato Grosso) MOD13Q1 NDVI cube, 12 dates 2013-09..2014-08",
            kind="cube",
            files=(
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2013-09-14.jp2",
                    "5c1c1e731e21798e517fd6d475ce50616fe08a739367aaa6777fa3cdc35a3fd8",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2013-09-14.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2013-10-16.jp2",
                    "45059447b73f050bc6bcf69c5c38e9438fa4dc62738e9445060898883fd62efe",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2013-10-16.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2013-11-17.jp2",
                    "5ef3f6bc032f126522a481e1055127f649bb4d33cffffbf6a50b069a906f20fd",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2013-11-17.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2013-12-19.jp2",
                    "a554fcfd6586da05ff71558b5d93780c6c95400daf2052db871247ee4f24200d",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2013-12-19.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-01-17.jp2",
                    "8dc872f9a66da8cd935efc895c59439dc41b627ac3498c1a4ab37ea9c7e3a9c3",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-01-17.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-02-18.jp2",
                    "7019bc050a17fc9c39971067e21dd52b64c9b8b98d5421d626eed4338e9b9135",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-02-18.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-03-22.jp2",
                    "64648b2bf976b9d483ac38e2abad2983b4e399cd9c1ac2bbd3c187a083a0dea7",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-03-22.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-04-23.jp2",
                    "7b91c8ec88f33477667f89a365225ea22b9cedfb7c75ed75d991dd0b349a3c51",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-04-23.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-05-25.jp2",
                    "1127b38afc5264d99cc894c68faa5e81497f0e89bad2d996773fb1e527b50749",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-05-25.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-06-26.jp2",
                    "a15c97267e0ed56b94cba922cad497d90987696688fbc65bb2caf8c88e9cad4e",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-06-26.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-07-28.jp2",
                    "966c8eb99cd6dd0c301c01639a9c18c95fd4ca87751ca9c76d06d295adcf72de",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-07-28.jp2",
                ),
                CatalogFile(
                    "landcover/sinop_mod13q1_ndvi/TERRA_MODIS_012010_NDVI_2014-08-29.jp2",
                    "ce97c9cc6116efddc4986074fcb698f55465bb9c5dfc60e608bbe0a5c976dd40",
                    _SITS_DATA + "TERRA_MODIS_012010_NDVI_2014-08-29.jp2",
                ),
            ),
            citation="Didan, K. (2015). MOD13Q1 MODIS/Terra Vegetation Indices 16-Day L3 Global "
            "250m SIN Grid V006. doi:10.5067/MODIS/MOD13Q1.006 (as shipped with sits)",
            source="sits package example cube",
            license="GPL-2.0",
        ),
        CatalogEntry(
            name="bleaching-surveys",
            title="Global coral-bleaching surveys 1980-2016 with covariates",
            kind="table",
            files=(
                CatalogFile(
                    "reef/global_bleaching_surveys_1980_2016.csv",
                    "c81a3dcff4a553af5b891bffbf34296e904a4cccab49d37b7d2257169f725721",
                    "https://raw.githubusercontent.com/rvanwoesik/"
                    "Oceanic_differences_in_coral_bleaching/main/Global_bleaching_data.csv",
                ),
            ),
            citation="van Woesik, R. et al. (2023). Oceanic differences in coral-bleaching "
            "responses to marine heatwaves. Sci. Total Environ.; BCO-DMO 773466.",
            source="BCO-DMO 773466 / rvanwoesik on GitHub",
            license="CC BY 4.0",
        ),
        CatalogEntry(
            name="coraltemp-honolii",
            title="NOAA CRW CoralTemp daily SST at Honoli'i, Hawai'i, 1985-2021",
            kind="table",
            files=(
                CatalogFile(
                    "reef/coraltemp_sst_daily_honolii_1985_2021.csv",
                    "cd325ab4d1af789667b65216744c452cc066db9bcdb7d1be80da10e40810898c",
                    "https://coastwatch.pfeg.noaa.gov/erddap/griddap/NOAA_DHW.csv?"
                    "CRW_SST%5B(1985-11-09T12:00:00Z):1:(2021-11-09T12:00:00Z)%5D"
                    "%5B(19.775)%5D%5B(-155.075)%5D",
                ),
            ),
            citation="NOAA Coral Reef Watch (2019). CoralTemp v3.1 daily global 5 km SST.",
            source="NOAA CRW via ERDDAP",
        ),
        CatalogEntry(
            name="crw-dhw-20210619",
            title="NOAA CRW daily global 5 km Degree Heating Week v3.1, 2021-06-19",
            kind="netcdf",
            files=(
                CatalogFile(
                    "reef/ct5km_dhw_v3.1_20210619.nc",
                    "0770d5e2ade0e3e85cf25ef251eec89f001aabd7c337c5d4bc763ae320a4dc95",
                    "https://www.star.nesdis.noaa.gov/pub/socd/mecb/crw/data/5km/v3.1_op/nc/"
                    "v1.0/daily/dhw/2021/ct5km_dhw_v3.1_20210619.nc",
                ),
            ),
            citation="NOAA Coral Reef Watch (2018). Daily Global 5 km Satellite Coral Bleaching "
            "Degree Heating Week Product v3.1.",
            source="NOAA CRW",
        ),
    ]
}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of verifying one file of the catalog."""

    dataset: str
    path: str
    ok: bool
    problem: str = ""


def entry(name: str) -> CatalogEntry:
    """The catalog entry for ``name``, or a clear error listing the known names."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise CatalogError(f"unknown dataset '{name}'; known datasets: {known}") from None


def _check(path: Path, expected: str) -> None:
    if not path.is_file():
        raise DataError(path, "file is missing")
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumError(
            path, f"SHA-256 mismatch (expected {expected[:16]}…, got {actual[:16]}…); file not used"
        )


def _resolve_file(item: CatalogFile, settings: Settings) -> Path:
    if settings.data_dir is not None:
        local = (settings.data_dir / item.path).expanduser()
        if local.exists():
            _check(local, item.sha256)
            return local.resolve()
    cache = settings.download_cache
    target = cache / item.path
    if target.exists():
        _check(target, item.sha256)
        return target
    log.info("downloading", file=item.path, url=item.url)
    try:
        fetched = pooch.retrieve(
            url=item.url,
            known_hash=f"sha256:{item.sha256}",
            fname=Path(item.path).name,
            path=target.parent,
            progressbar=False,
        )
    except ValueError as exc:  # pooch raises ValueError on hash mismatch
        raise ChecksumError(target, str(exc)) from exc
    except Exception as exc:
        raise DataError(item.url, f"download failed ({type(exc).__name__}: {exc})") from exc
    return Path(fetched)


def resolve(name: str, settings: Settings | None = None) -> list[Path]:
    """Verified local paths of every file of dataset ``name`` (mirror first, else download)."""
    settings = settings or get_settings()
    return [_resolve_file(item, settings) for item in entry(name).files]


def resolve_one(name: str, settings: Settings | None = None) -> Path:
    """The single verified file of a one-file dataset."""
    paths = resolve(name, settings)
    if len(paths) != 1:
        raise CatalogError(f"dataset '{name}' has {len(paths)} files; use resolve()")
    return paths[0]


def dataset_ref(name: str, settings: Settings | None = None) -> DatasetRef:
    """Reference (name, uri, digest) of a catalog dataset, from its catalog checksums."""
    cat = entry(name)
    paths = resolve(name, settings)
    digest = cat.files[0].sha256 if len(paths) == 1 else files_digest(paths)
    uri = str(paths[0] if len(paths) == 1 else paths[0].parent)
    return DatasetRef(name=name, uri=uri, digest=digest)


def verify(
    names: Iterable[str] | None = None, settings: Settings | None = None
) -> list[VerifyResult]:
    """Check every file of the named datasets (all by default); never raises for bad files."""
    settings = settings or get_settings()
    results: list[VerifyResult] = []
    for name in names or CATALOG:
        for item in entry(name).files:
            try:
                _resolve_file(item, settings)
            except (DataError, CatalogError) as exc:
                results.append(VerifyResult(name, item.path, False, str(exc)))
            else:
                results.append(VerifyResult(name, item.path, True))
    return results
