"""The review-gated approved-models list (ReefGuard's ``approved_models.txt``).

Format — one approved version per line::

    # comments start with '#', also after an entry; blank lines are ignored
    reef-bleaching@3
    landcover-global@7   # reviewed 2026-11-20

``NAME@VERSION`` where NAME is the registered-model name (== the use-case name) and VERSION
the registry version number. Anything else on a line is an error naming the file and line.
A missing file means nothing is approved. The path comes from settings
(``EARTHOPS_APPROVED_MODELS``, default ``<home>/approved_models.txt``).
"""

from __future__ import annotations

import re
from pathlib import Path

from earthops.errors import DataError
from earthops.settings import get_settings

_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._/-]*)@(?P<version>[0-9]+)$")


def approved_path() -> Path:
    """Where the approved-models list lives (from settings)."""
    return get_settings().approved_models_path


def read_approved(path: Path | None = None) -> set[tuple[str, str]]:
    """``{(name, version)}`` listed in the approved-models file (empty when it does not exist)."""
    path = path or approved_path()
    if not path.exists():
        return set()
    entries: set[tuple[str, str]] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise DataError(
                path,
                f"line {number}: '{raw.strip()}' — expected NAME@VERSION, e.g. reef-bleaching@3",
            )
        entries.add((match["name"], str(int(match["version"]))))
    return entries


def is_approved(name: str, version: str | int, path: Path | None = None) -> bool:
    """Whether ``name@version`` is listed."""
    return (name, str(int(version))) in read_approved(path)


def approve(name: str, version: str | int, path: Path | None = None) -> Path:
    """Append ``name@version`` to the list (what a reviewer's merge does); returns the path."""
    path = path or approved_path()
    if is_approved(name, version, path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    sep = "" if not existing or existing.endswith("\n") else "\n"
    path.write_text(f"{existing}{sep}{name}@{int(version)}\n", encoding="utf-8")
    return path
