"""The serving core without HTTP: route a request to an arm, predict through the micro-batcher,
shadow-score with the challenger, log every answer, count it in the metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from earthops.errors import EarthOpsError
from earthops.logs import get_logger
from earthops.registry.inference import LoadedModel, Prediction, PreparedRecords, rows_of
from earthops.serving.batching import MicroBatcher
from earthops.serving.metrics import ServingMetrics
from earthops.serving.pool import ModelPool
from earthops.serving.predictionlog import PredictionLog, PredictionRecord
from earthops.serving.routing import Router

log = get_logger(__name__)


class Servable(Protocol):
    """What the server needs of a use case (the use-case contract's predict part)."""

    name: str
    request_model: type[BaseModel]
    response_model: type[BaseModel]

    def routing_key(self, record: Any) -> str: ...
    def prepare_records(self, model: LoadedModel, records: Sequence[Any]) -> PreparedRecords: ...
    def respond(
        self, model: LoadedModel, prepared: PreparedRecords, prediction: Prediction
    ) -> list[BaseModel]: ...
    def readiness(self) -> str | None: ...
    def serving_metric(
        self, y_true: Sequence[str], labels: Sequence[str], scores: Sequence[Any]
    ) -> float: ...


@dataclass(frozen=True)
class Answer:
    """A predict request's answer: the arm and model version that gave it, one id per record."""

    request_id: str
    record_ids: list[str]
    arm: str
    model_name: str | None
    model_version: str | None
    predictions: list[BaseModel]


def record_ids(request_id: str, n: int) -> list[str]:
    """Log ids of a request's records: the request id itself for one record, else ``id/i``."""
    return [request_id] if n == 1 else [f"{request_id}/{i}" for i in range(n)]


class PredictionService:
    """Predictions of the pool's models for the registered use cases."""

    def __init__(
        self,
        usecases: Mapping[str, Servable],
        pool: ModelPool,
        router: Router,
        prediction_log: PredictionLog,
        metrics: ServingMetrics,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
    ) -> None:
        self.usecases = dict(usecases)
        self.pool = pool
        self.router = router
        self.log = prediction_log
        self.metrics = metrics
        self._batch = (max_batch, max_wait_ms)
        self._batchers: dict[tuple[str, str], MicroBatcher[pd.DataFrame, Prediction]] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # ---- predict -------------------------------------------------------------------
    async def predict(
        self, usecase: str, records: Sequence[BaseModel], request_id: str | None = None
    ) -> Answer:
        """Answer ``records`` with the routed arm; a failing challenger falls back to the
        champion (its failure is logged and counted, which the canary controller reads)."""
        servable = self.usecases[usecase]
        request_id = request_id or uuid.uuid4().hex
        ids = record_ids(request_id, len(records))
        models = self.pool.get(usecase)
        champion = self.pool.require_champion(usecase)
        challenger = models.challenger
        key = servable.routing_key(records[0])
        arm = self.router.arm(usecase, key, has_challenger=challenger is not None)
        if arm == "challenger" and challenger is not None:
            try:
                answers = await self._score(usecase, challenger, "challenger", records, ids, key)
                return Answer(request_id, ids, arm, challenger.name, challenger.version, answers)
            except EarthOpsError:
                raise  # the client's input: the champion would refuse it too
            except Exception as exc:  # a broken challenger: the champion answers instead
                log.warning("challenger failed; champion answers", usecase=usecase, error=str(exc))
        answers = await self._score(usecase, champion, "champion", records, ids, key)
        if challenger is not None and self.router.split(usecase).shadow:
            self._shadow(usecase, challenger, records, ids, key)
        return Answer(request_id, ids, "champion", champion.name, champion.version, answers)

    async def _score(
        self,
        usecase: str,
        model: LoadedModel,
        arm: str,
        records: Sequence[BaseModel],
        ids: list[str],
        key: str,
    ) -> list[BaseModel]:
        servable = self.usecases[usecase]
        started = time.perf_counter()
        try:
            prepared = await run_in_threadpool(servable.prepare_records, model, records)
            self.metrics.observe_lookup(usecase, time.perf_counter() - started)
            prediction = (await self._batcher(usecase, model).submit([prepared.frame]))[0]
            answers = servable.respond(model, prepared, prediction)
        except EarthOpsError:
            self._count(usecase, model, arm, "client_error", started)
            raise
        except Exception as exc:
            self._count(usecase, model, arm, "server_error", started)
            self._log_failure(usecase, model, arm, ids, key, started, exc)
            raise
        self._count(usecase, model, arm, "ok", started)
        self._log_answers(usecase, model, arm, ids, key, prepared, prediction, answers, started)
        return answers

    def _batcher(self, usecase: str, model: LoadedModel) -> MicroBatcher[pd.DataFrame, Prediction]:
        key = (usecase, model.version or model.uri)
        if key not in self._batchers:
            max_batch, max_wait = self._batch
            self._batchers[key] = MicroBatcher(
                _batch_predict(model),
                max_batch=max_batch,
                max_wait_ms=max_wait,
                name=f"{usecase}:{key[1]}",
                on_batch=lambda rows: self.metrics.observe_batch(usecase, rows),
            )
        return self._batchers[key]

    def _shadow(
        self,
        usecase: str,
        challenger: LoadedModel,
        records: Sequence[BaseModel],
        ids: list[str],
        key: str,
    ) -> None:
        async def run() -> None:
            try:
                await self._score(usecase, challenger, "shadow", records, ids, key)
            except Exception as exc:  # logged by _score; the client already has its answer
                log.info("shadow scoring failed", usecase=usecase, error=str(exc))

        task = asyncio.get_running_loop().create_task(run())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    # ---- bookkeeping ----------------------------------------------------------------
    def _count(
        self, usecase: str, model: LoadedModel, arm: str, outcome: str, started: float
    ) -> None:
        seconds = time.perf_counter() - started
        self.metrics.observe_request(usecase, model.version or "", arm, outcome, seconds)

    def _log_answers(
        self,
        usecase: str,
        model: LoadedModel,
        arm: str,
        ids: list[str],
        key: str,
        prepared: PreparedRecords,
        prediction: Prediction,
        answers: list[BaseModel],
        started: float,
    ) -> None:
        latency = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        features = prepared.features()
        scores = prediction.scores
        self.log.append_many(
            PredictionRecord(
                time=now,
                request_id=ids[i],
                usecase=usecase,
                model_name=model.name or usecase,
                model_version=model.version or "",
                arm=arm,
                features=features[i],
                output=answers[i].model_dump(mode="json"),
                label=str(prediction.labels[i]),
                score=float(scores[i]),
                latency_ms=latency,
                routing_key=key,
                region=prepared.regions[i],
            )
            for i in range(len(answers))
        )
        self.metrics.set_log_queue(self.log.pending())

    def _log_failure(
        self,
        usecase: str,
        model: LoadedModel,
        arm: str,
        ids: list[str],
        key: str,
        started: float,
        exc: Exception,
    ) -> None:
        latency = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        self.log.append_many(
            PredictionRecord(
                time=now,
                request_id=rid,
                usecase=usecase,
                model_name=model.name or usecase,
                model_version=model.version or "",
                arm=arm,
                features={},
                output={},
                label=None,
                score=None,
                latency_ms=latency,
                routing_key=key,
                status="error",
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            for rid in ids
        )

    def feedback(self, request_id: str, label: str) -> bool:
        """Store a true label for a logged record id (False: no such prediction)."""
        return self.log.add_feedback(request_id, label)

    def forget(self, usecase: str, version: str | None) -> None:
        """Drop the micro-batcher of a model version that is no longer served."""
        self._batchers.pop((usecase, version or ""), None)

    async def close(self) -> None:
        for task in list(self._shadow_tasks):
            await asyncio.gather(task, return_exceptions=True)
        for batcher in self._batchers.values():
            await batcher.close()


def _batch_predict(model: LoadedModel) -> Any:
    """The micro-batcher's call: one model call on the concatenated frames, split back."""

    def predict(frames: list[pd.DataFrame]) -> list[Prediction]:
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        prediction = model.predict_frame(frame)
        out, start = [], 0
        for part in frames:
            out.append(rows_of(prediction, start, start + len(part)))
            start += len(part)
        return out

    return predict
