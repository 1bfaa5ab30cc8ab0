"""Exception hierarchy: every user-facing failure names what was wrong and what was expected."""

from __future__ import annotations

from pathlib import Path


class EarthOpsError(Exception):
    """Base class for errors the CLI prints without a traceback."""


class DataError(EarthOpsError):
    """Bad input data: names the file (and field) and what was expected."""

    def __init__(self, source: str | Path, problem: str, *, field: str | None = None) -> None:
        self.source = str(source)
        self.field = field
        self.problem = problem
        where = f"{self.source} [{field}]" if field else self.source
        super().__init__(f"{where}: {problem}")


class UnknownEntityError(DataError):
    """A lookup of an entity (site, pixel) that the store does not know (HTTP 404)."""


class ChecksumError(DataError):
    """A file's SHA-256 differs from the catalog's."""


class CatalogError(EarthOpsError):
    """Unknown dataset name or an unresolvable dataset."""


class SignatureError(EarthOpsError):
    """Input does not match a model's signature (bands, CRS, shape, columns)."""


class PolicyError(EarthOpsError):
    """A registry promotion refused by the promotion policy; names the rule."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule = rule
        super().__init__(f"promotion refused by rule '{rule}': {detail}")
