"""Data catalog: names, checksums, mirror-first resolution, and the `earthops data` CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from earthops.data import catalog
from earthops.errors import CatalogError, ChecksumError
from earthops.settings import Settings

if TYPE_CHECKING:
    from conftest import CliRunner

EXPECTED_NAMES = {
    "mcd12c1-2019",
    "bmng-2004",
    "koppen-geiger",
    "mt-mod13q1-9classes",
    "sinop-mod13q1-ndvi",
    "bleaching-surveys",
    "coraltemp-honolii",
    "crw-dhw-20210619",
}


def _mirror_copy(mirror: Path, dest: Path) -> Path:
    """A private mirror made of symlinks, so one file can be replaced without touching the real one."""
    for src in mirror.rglob("*"):
        if src.is_file():
            target = dest / src.relative_to(mirror)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(src)
    return dest


def test_catalog_registers_every_shared_dataset(mirror: Path) -> None:
    assert set(catalog.CATALOG) == EXPECTED_NAMES
    listed = {line.split()[1] for line in (mirror / "SHA256SUMS").read_text().splitlines()}
    in_catalog = {f.path for e in catalog.CATALOG.values() for f in e.files}
    assert in_catalog == listed
    for e in catalog.CATALOG.values():
        assert e.citation and e.source
        assert all(f.url.startswith("https://") and len(f.sha256) == 64 for f in e.files)


def test_sums_match_the_mirror_manifest(mirror: Path) -> None:
    manifest = dict(
        reversed(line.split()) for line in (mirror / "SHA256SUMS").read_text().splitlines()
    )
    for e in catalog.CATALOG.values():
        for f in e.files:
            assert manifest[f.path] == f.sha256, f.path


def test_verify_passes_on_the_mirror(mirror: Path) -> None:
    results = catalog.verify()
    assert results and all(r.ok for r in results), [r for r in results if not r.ok]
    assert len(results) == sum(len(e.files) for e in catalog.CATALOG.values())


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(CatalogError, match="unknown dataset 'nope'.*bleaching-surveys"):
        catalog.entry("nope")


def test_truncated_file_is_never_used(mirror: Path, tmp_path: Path) -> None:
    local = _mirror_copy(mirror, tmp_path / "mirror")
    rel = "reef/coraltemp_sst_daily_honolii_1985_2021.csv"
    (local / rel).unlink()
    (local / rel).write_bytes((mirror / rel).read_bytes()[:1000])
    settings = Settings(data_dir=local, home=tmp_path / "home")
    with pytest.raises(ChecksumError, match="coraltemp_sst_daily_honolii_1985_2021.csv"):
        catalog.resolve("coraltemp-honolii", settings)
    bad = [r for r in catalog.verify(settings=settings) if not r.ok]
    assert [r.path for r in bad] == [rel]


def test_missing_mirror_file_falls_back_to_cache(mirror: Path, tmp_path: Path) -> None:
    """Not in the mirror → the verified cache copy is used (pooch would download it there)."""
    local = _mirror_copy(mirror, tmp_path / "mirror")
    rel = "reef/global_bleaching_surveys_1980_2016.csv"
    (local / rel).unlink()
    settings = Settings(data_dir=local, home=tmp_path / "home")
    cached = settings.download_cache / rel
    cached.parent.mkdir(parents=True)
    shutil.copy(mirror / rel, cached)
    assert catalog.resolve_one("bleaching-surveys", settings) == cached


def test_dataset_ref_uses_catalog_digest(mirror: Path) -> None:
    ref = catalog.dataset_ref("mcd12c1-2019")
    assert ref.digest == catalog.entry("mcd12c1-2019").files[0].sha256
    multi = catalog.dataset_ref("sinop-mod13q1-ndvi")
    assert len(multi.digest) == 64 and multi.uri.endswith("sinop_mod13q1_ndvi")


def test_cli_data_list_json(mirror: Path, run_cli: CliRunner) -> None:
    out = run_cli("data", "list", "--json")
    assert out.returncode == 0, out.stderr
    names = {d["name"] for d in json.loads(out.stdout)}
    assert names == EXPECTED_NAMES


def test_cli_verify_ok_and_truncated_fails_without_traceback(
    mirror: Path, tmp_path: Path, run_cli: CliRunner
) -> None:
    ok = run_cli("data", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 failed" in ok.stdout

    local = _mirror_copy(mirror, tmp_path / "mirror")
    rel = "modis/bmng_2004_5400x2700.jpg"
    (local / rel).unlink()
    (local / rel).write_bytes((mirror / rel).read_bytes()[:4096])
    bad = run_cli("data", "verify", data_dir=local, home=tmp_path / "h2")
    assert bad.returncode != 0
    assert "bmng_2004_5400x2700.jpg" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_cli_fetch_unknown_name_is_a_clean_error(mirror: Path, run_cli: CliRunner) -> None:
    out = run_cli("data", "fetch", "no-such-data")
    assert out.returncode == 1
    assert "unknown dataset 'no-such-data'" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
