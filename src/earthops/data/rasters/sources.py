"""Reader inputs: an existing file, or a verified catalog file, with its lineage reference."""

from __future__ import annotations

from pathlib import Path

from earthops.data.catalog import entry, resolve_one
from earthops.data.identity import DatasetRef, file_sha256
from earthops.errors import DataError


def require_file(path: str | Path) -> Path:
    """``path`` as a Path; DataError when it does not name an existing file."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a file")
    return path


def resolve_input(
    path: str | Path | None, dataset: str, *, name: str | None = None
) -> tuple[Path, DatasetRef]:
    """Path and lineage reference of a reader's input.

    ``path=None``: the verified catalog file of ``dataset`` (digest = its catalog checksum).
    Otherwise the given file, named ``name`` or its stem, digest = its SHA-256.
    """
    if path is None:
        local = resolve_one(dataset)
        return local, DatasetRef(name or dataset, str(local), entry(dataset).files[0].sha256)
    local = require_file(path)
    return local, DatasetRef(name or local.stem, str(local), file_sha256(local))
