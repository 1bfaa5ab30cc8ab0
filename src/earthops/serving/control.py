"""The server's moving parts put together: model pool (alias polling), router, prediction
service, canary controller, and the admin actions on them."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from earthops.logs import get_logger
from earthops.registry.inference import LoadedModel
from earthops.serving import api
from earthops.serving.canary import CanaryController, CanaryPolicy, Verdict
from earthops.serving.metrics import ServingMetrics
from earthops.serving.pool import CHALLENGER, AliasReader, Loader, ModelPool, registry_aliases
from earthops.serving.predictionlog import PredictionLog
from earthops.serving.routing import Router
from earthops.serving.service import PredictionService, Servable
from earthops.settings import Settings

log = get_logger(__name__)


def registry_promote(usecase: str, version: str, verdict: Verdict) -> bool:
    """Promotion through the registry policy (gate, approved list, non-regression)."""
    from earthops.registry.policy import promote_if_allowed

    result = promote_if_allowed(usecase, version)
    if not result.promoted:
        log.warning("canary promotion refused", usecase=usecase, rule=result.rule)
    return result.promoted


def registry_reject(usecase: str, version: str, verdict: Verdict) -> None:
    from earthops.registry.policy import reject_challenger

    reject_challenger(usecase, version, "; ".join(verdict.reasons) or "canary rollback")


class ServerControl:
    """Owns the pool, router, service and canary controller of one server process."""

    def __init__(
        self,
        usecases: Mapping[str, Servable],
        settings: Settings,
        *,
        aliases: AliasReader = registry_aliases,
        loader: Loader | None = None,
        promote: Callable[[str, str, Verdict], bool] = registry_promote,
        reject: Callable[[str, str, Verdict], None] = registry_reject,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        self.router = Router(settings.canary_weight, settings.canary_shadow)
        kwargs: dict[str, Any] = {"aliases": aliases}
        if loader is not None:
            kwargs["loader"] = loader
        self.pool = ModelPool(
            list(usecases), on_change=self._model_changed, on_failure=self._load_failed, **kwargs
        )
        self.log = PredictionLog(
            settings.prediction_log, flush_seconds=settings.prediction_log_flush_seconds
        )
        self.service = PredictionService(
            usecases,
            self.pool,
            self.router,
            self.log,
            self.metrics,
            max_batch=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
        )
        self.controller = CanaryController(
            read_log=self._read_log,
            on_promote=self._promote(promote),
            on_rollback=self._reject(reject),
            policy=CanaryPolicy(
                window_seconds=settings.canary_window_seconds,
                min_requests=settings.canary_min_requests,
                budget=settings.canary_budget,
            ),
            metrics={name: u.serving_metric for name, u in usecases.items()},
        )
        self._threads: list[threading.Thread] = []
        self._lock_file: Any = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        """Load the models, then poll the aliases and (one worker per home) run the canary."""
        self.refresh()
        self._spawn("alias-poller", self._poll, stop)
        if self._controller_lock():
            self._spawn("canary", self._canary, stop)

    def _spawn(
        self, name: str, target: Callable[[threading.Event], None], stop: threading.Event
    ) -> None:
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.serve_poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # the registry may be briefly unreachable
                log.error("alias poll failed", error=f"{type(exc).__name__}: {exc}")

    def _canary(self, stop: threading.Event) -> None:
        interval = min(10.0, max(0.2, self.settings.canary_window_seconds / 20))
        self.controller.run_forever(interval, stop)

    def _controller_lock(self) -> bool:
        """Only one worker process of a home runs the canary controller (a file lock)."""
        path = Path(self.settings.home_dir) / "serve-canary.lock"
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    async def close(self) -> None:
        await self.service.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.log.close()
        if self._lock_file is not None:
            self._lock_file.close()

    # ---- models ------------------------------------------------------------------------
    def refresh(self) -> None:
        self.pool.refresh()
        for usecase in self.pool.usecases:
            models = self.pool.get(usecase)
            champion, challenger = models.champion, models.challenger
            if champion is not None:
                self.controller.observe(
                    usecase, champion.version or "", challenger.version if challenger else None
                )
            weight = self.router.split(usecase).weight if challenger is not None else 0.0
            self.metrics.set_canary_weight(usecase, weight)

    def _model_changed(self, usecase: str, alias: str, model: LoadedModel | None) -> None:
        if model is not None:
            self.metrics.set_model(usecase, alias, model.version or "")
        if alias == CHALLENGER:
            self.router.reset(usecase)  # a new challenger starts from the default split

    def _load_failed(self, usecase: str, alias: str, reason: str) -> None:
        self.metrics.model_load_failed(usecase)

    def problems(self) -> list[str]:
        out = self.pool.problems()
        for name, servable in self.service.usecases.items():
            reason = servable.readiness()
            if reason:
                out.append(f"{name}: {reason}")
        return out

    # ---- canary --------------------------------------------------------------------------
    def _read_log(self, usecase: str, since: datetime) -> pd.DataFrame:
        self.log.flush()
        return self.log.read(usecase=usecase, since=since)

    def _promote(self, promote: Callable[[str, str, Verdict], bool]) -> Callable[..., bool]:
        def apply(usecase: str, version: str, verdict: Verdict) -> bool:
            accepted = promote(usecase, version, verdict)
            if accepted:
                self.refresh()
            return accepted

        return apply

    def _reject(self, reject: Callable[[str, str, Verdict], None]) -> Callable[..., None]:
        def apply(usecase: str, version: str, verdict: Verdict) -> None:
            self.router.set(usecase, weight=0.0, shadow=False)
            self.metrics.set_canary_weight(usecase, 0.0)
            reject(usecase, version, verdict)
            self.refresh()

        return apply

    # ---- admin ---------------------------------------------------------------------------
    def set_split(self, usecase: str, weight: float | None, shadow: bool | None) -> api.SplitOut:
        split = self.router.set(usecase, weight=weight, shadow=shadow)
        has_challenger = self.pool.get(usecase).challenger is not None
        self.metrics.set_canary_weight(usecase, split.weight if has_challenger else 0.0)
        log.info("traffic split set", usecase=usecase, weight=split.weight, shadow=split.shadow)
        return api.SplitOut(usecase=usecase, challenger_weight=split.weight, shadow=split.shadow)

    def admin(self, usecase: str, action: str) -> api.AdminResult:
        """``promote`` / ``rollback`` the current challenger, or ``reload`` the aliases."""
        if action == "reload":
            self.refresh()
            return api.AdminResult(usecase=usecase, action=action, done=True, detail="reloaded")
        challenger = self.pool.get(usecase).challenger
        if challenger is None or challenger.version is None:
            return api.AdminResult(
                usecase=usecase, action=action, done=False, detail="no challenger is served"
            )
        verdict = Verdict(
            action="promote" if action == "promote" else "rollback",
            reasons=[f"admin {action}"],
            checks={},
            compared=0,
            window_elapsed=0.0,
            usecase=usecase,
        )
        if action == "promote":
            done = self._promote(registry_promote)(usecase, challenger.version, verdict)
            detail = "promoted" if done else "refused by the registry policy (see the log)"
        else:
            self._reject(registry_reject)(usecase, challenger.version, verdict)
            done, detail = True, "challenger rolled back"
        return api.AdminResult(usecase=usecase, action=action, done=done, detail=detail)

    def describe(self) -> api.ModelsOut:
        out = []
        for usecase in self.pool.usecases:
            models = self.pool.get(usecase)
            split = self.router.split(usecase)
            arms = [
                api.ArmOut(
                    alias=alias,
                    version=slot.target,
                    loaded=slot.model is not None,
                    error=slot.error,
                    datasets=_datasets(slot.model),
                )
                for alias, slot in models.slots.items()
            ]
            state = self.controller.states.get(usecase)
            last = next(
                (v for v in reversed(self.controller.history) if v.usecase == usecase), None
            )
            canary = None
            if state is not None:
                canary = {
                    "champion": state.champion,
                    "challenger": state.challenger,
                    "started_at": state.started_at.isoformat(),
                    "finished": state.finished,
                    "last_verdict": last.to_dict() if last else None,
                }
            out.append(
                api.UseCaseOut(
                    usecase=usecase,
                    model_name=usecase,
                    arms=arms,
                    challenger_weight=split.weight if models.challenger else 0.0,
                    shadow=split.shadow,
                    canary=canary,
                )
            )
        return api.ModelsOut(usecases=out)


def _datasets(model: LoadedModel | None) -> dict[str, str]:
    if model is None:
        return {}
    from earthops.registry.tracking import run_datasets

    run_id = model.run_id
    try:
        return run_datasets(run_id) if run_id else {}
    except Exception:  # a run gone from the store leaves the model servable
        return {}
