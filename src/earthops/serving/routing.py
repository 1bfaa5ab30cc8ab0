"""Canary traffic split: per use case a challenger weight and a shadow switch; sticky by a
routing key, so one client (a site, a place) always sees the same model."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from earthops.errors import EarthOpsError


@dataclass(frozen=True)
class Split:
    """The challenger's traffic share and whether it runs in shadow (scores, never answers)."""

    weight: float
    shadow: bool = False


def bucket(key: str) -> float:
    """A stable position in [0, 1) of a routing key (the same on every worker and restart)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class Router:
    """Weights per use case; :meth:`arm` picks ``champion`` or ``challenger`` for a key."""

    def __init__(self, default_weight: float, default_shadow: bool = False) -> None:
        _check_weight(default_weight)
        self._default = Split(default_weight, default_shadow)
        self._splits: dict[str, Split] = {}
        self._lock = threading.Lock()

    def split(self, usecase: str) -> Split:
        return self._splits.get(usecase, self._default)

    def set(
        self, usecase: str, *, weight: float | None = None, shadow: bool | None = None
    ) -> Split:
        with self._lock:
            old = self.split(usecase)
            new = Split(
                old.weight if weight is None else _check_weight(weight),
                old.shadow if shadow is None else shadow,
            )
            self._splits[usecase] = new
            return new

    def reset(self, usecase: str) -> Split:
        """Back to the default split (a new challenger starts its canary afresh)."""
        with self._lock:
            self._splits.pop(usecase, None)
            return self._default

    def arm(self, usecase: str, key: str, *, has_challenger: bool) -> str:
        """``challenger`` for the keys below the weight (never in shadow mode), else champion."""
        split = self.split(usecase)
        if not has_challenger or split.shadow or split.weight <= 0:
            return "champion"
        return "challenger" if bucket(f"{usecase}|{key}") < split.weight else "champion"


def _check_weight(weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise EarthOpsError(f"challenger weight {weight}: expected a share between 0 and 1")
    return float(weight)
