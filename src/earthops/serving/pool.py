"""The models a server holds: per use case its ``@champion`` and ``@challenger``, reloaded
when the registry aliases move; a version that fails to load keeps the previous one serving."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from earthops.errors import EarthOpsError
from earthops.logs import get_logger
from earthops.registry.inference import LoadedModel, load

log = get_logger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)

#: ``(usecase, alias) -> version or None``: what the registry's alias points at now
AliasReader = Callable[[str, str], str | None]
Loader = Callable[[str], LoadedModel]


@dataclass
class Slot:
    """One alias of one use case: the loaded model and, when the latest load failed, why."""

    model: LoadedModel | None = None
    target: str | None = None  # the version the alias points at (may differ if its load failed)
    error: str | None = None


@dataclass
class UseCaseModels:
    """The champion and challenger slots of one use case."""

    slots: dict[str, Slot] = field(default_factory=lambda: {a: Slot() for a in ALIASES})

    @property
    def champion(self) -> LoadedModel | None:
        return self.slots[CHAMPION].model

    @property
    def challenger(self) -> LoadedModel | None:
        return self.slots[CHALLENGER].model


def registry_aliases(usecase: str, alias: str) -> str | None:
    """The version ``alias`` points at in the MLflow registry (model name = use case)."""
    from earthops.registry.tracking import configure

    client = configure()
    try:
        return str(client.get_model_version_by_alias(usecase, alias).version)
    except Exception:  # no such model or alias: MlflowException (RESOURCE_DOES_NOT_EXIST)
        return None


def _registry_loader(uri: str) -> LoadedModel:
    return load(uri)


class ModelPool:
    """Loads and reloads the served models; thread-safe reads of the current ones."""

    def __init__(
        self,
        usecases: Iterable[str],
        *,
        aliases: AliasReader = registry_aliases,
        loader: Loader = _registry_loader,
        on_change: Callable[[str, str, LoadedModel | None], Any] | None = None,
        on_failure: Callable[[str, str, str], Any] | None = None,
    ) -> None:
        self._models = {u: UseCaseModels() for u in usecases}
        self._aliases = aliases
        self._loader = loader
        self._on_change = on_change
        self._on_failure = on_failure
        self._lock = threading.Lock()

    @property
    def usecases(self) -> list[str]:
        return list(self._models)

    def get(self, usecase: str) -> UseCaseModels:
        return self._models[usecase]

    def refresh(self) -> dict[str, dict[str, str | None]]:
        """Re-read every alias; load what moved. Returns ``{usecase: {alias: version}}``."""
        with self._lock:
            return {u: {a: self._refresh_slot(u, a) for a in ALIASES} for u in self._models}

    def _refresh_slot(self, usecase: str, alias: str) -> str | None:
        slot = self._models[usecase].slots[alias]
        target = self._aliases(usecase, alias)
        if target == slot.target and (slot.error is None or target is None):
            return target
        slot.target = target
        if target is None:
            if slot.model is not None:
                log.info("alias removed; model unloaded", usecase=usecase, alias=alias)
            slot.model, slot.error = None, None
            self._changed(usecase, alias, None)
            return None
        current = slot.model.version if slot.model else None
        if current == target:
            slot.error = None
            return target
        try:
            model = self._loader(f"models:/{usecase}/{target}")
        except Exception as exc:  # any load failure keeps the previous model serving
            slot.error = f"version {target} failed to load: {exc}"
            log.error(
                "model load failed", usecase=usecase, alias=alias, version=target, error=str(exc)
            )
            if self._on_failure is not None:
                self._on_failure(usecase, alias, slot.error)
            return target
        if model.card.usecase != usecase:
            slot.error = f"version {target} is a {model.card.usecase} model"
            return target
        slot.model, slot.error = model, None
        log.info("model loaded", usecase=usecase, alias=alias, version=target, was=current)
        self._changed(usecase, alias, model)
        return target

    def _changed(self, usecase: str, alias: str, model: LoadedModel | None) -> None:
        if self._on_change is not None:
            self._on_change(usecase, alias, model)

    def problems(self) -> list[str]:
        """Why the pool is not ready: a use case without a champion, or a failed load."""
        out = []
        for usecase, models in self._models.items():
            if models.champion is None:
                out.append(f"{usecase}: no champion loaded (register and promote a version)")
            for alias, slot in models.slots.items():
                if slot.error:
                    out.append(f"{usecase}@{alias}: {slot.error}")
        return out

    def require_champion(self, usecase: str) -> LoadedModel:
        champion = self._models[usecase].champion
        if champion is None:
            raise EarthOpsError(f"{usecase}: no champion model is loaded")
        return champion
