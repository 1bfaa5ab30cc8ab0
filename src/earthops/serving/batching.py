"""Adaptive micro-batching of concurrent requests into one model call (as BentoML does).

Concurrent :meth:`MicroBatcher.submit` calls are concatenated and the model function runs
once on all their rows, in one dedicated worker thread (the call is CPU-bound; one thread
does not oversubscribe the cores). Batching is adaptive: a batch is whatever is already
waiting when the worker thread is free, plus arrivals for as long as they keep coming,
never longer than ``max_wait_ms`` after the oldest row was queued and never more than
``max_batch`` rows. A lone request is dispatched at once; under load the rows that queue
up while the model runs form the next batch.

The model function must be pure: after a failed combined call each submission is re-run
alone so that only the bad one receives the exception.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from earthops.errors import EarthOpsError
from earthops.logs import get_logger

T = TypeVar("T")
R = TypeVar("R")
log = get_logger(__name__)


@dataclass
class BatchStats:
    """Counters of a batcher (read from the event loop; written by the worker thread)."""

    submissions: int = 0  # submit() calls dispatched
    calls: int = 0  # model-function calls, re-runs included
    rows: int = 0  # rows passed to the model function, re-runs included
    fallbacks: int = 0  # combined calls that failed and were re-run one submission at a time
    max_rows: int = 0  # largest single call


@dataclass
class _Pending(Generic[T, R]):
    items: list[T]
    future: asyncio.Future[list[R]]
    queued_at: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[T, R]):
    """Run ``fn`` on the concatenated rows of concurrent submissions; each caller gets its slice.

    ``max_wait_ms=0`` or ``max_batch=1`` turns batching off (each submission is its own call,
    still in the worker thread). A submission larger than ``max_batch`` is never split: it
    gets a call of its own. ``on_batch(rows)`` is called (in the worker thread) before every
    model call, e.g. to observe ``earthops_batch_rows``.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        max_wait_ms: float,
        name: str = "",
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise EarthOpsError(
                f"micro-batcher {name!r}: max_batch must be >= 1 and max_wait_ms >= 0, "
                f"got {max_batch} and {max_wait_ms}"
            )
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.name = name
        self.on_batch = on_batch
        self.stats = BatchStats()
        self.batching = max_batch > 1 and max_wait_ms > 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name or 'model'}")
        self._pending: collections.deque[_Pending[T, R]] = collections.deque()
        self._arrivals = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def submit(self, items: list[T]) -> list[R]:
        """The model's results for ``items``, in order (batched with concurrent submissions)."""
        if self._closed:
            raise EarthOpsError(f"micro-batcher {self.name!r} is closed")
        items = list(items)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        if not self.batching:
            self.stats.submissions += 1
            outcome = await loop.run_in_executor(self._executor, self._call_checked, items)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        self._start(loop)
        pending: _Pending[T, R] = _Pending(items, loop.create_future())
        self._pending.append(pending)
        self._arrivals += 1
        assert self._wakeup is not None
        self._wakeup.set()
        return await pending.future

    async def close(self) -> None:
        """Finish the queued submissions, then stop the worker thread; later submits fail."""
        self._closed = True
        if self._task is not None and not self._task.done():
            assert self._wakeup is not None
            self._wakeup.set()
            await self._task
        self._executor.shutdown(wait=False)  # queued direct calls still run

    # ---- event-loop side -----------------------------------------------------------
    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the dispatcher task on ``loop`` (again, if an earlier loop was closed)."""
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        if self._loop is not None and self._loop is not loop and not self._loop.is_closed():
            raise EarthOpsError(f"micro-batcher {self.name!r} is bound to another event loop")
        if self._loop is not loop:
            self._pending.clear()  # futures of a closed loop
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._task = loop.create_task(self._dispatch(), name=f"micro-batcher-{self.name}")

    async def _dispatch(self) -> None:
        """Run :meth:`_serve`; if it dies, fail the waiting submissions instead of hanging them."""
        try:
            await self._serve()
        except BaseException as exc:
            waiting = list(self._pending)
            self._pending.clear()
            if isinstance(exc, Exception):
                self._settle(waiting, [exc] * len(waiting))
            else:  # cancelled (loop shutting down): cancel the callers too
                for pending in waiting:
                    pending.future.cancel()
            raise

    async def _serve(self) -> None:
        """Collect a batch, run it in the worker thread, hand out the slices; until closed."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                return  # closed and drained
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run, batch)
            except Exception as exc:  # the executor itself failed
                outcomes = [exc] * len(batch)
            except BaseException:
                for pending in batch:
                    pending.future.cancel()
                raise
            self._settle(batch, outcomes)

    @staticmethod
    def _settle(batch: list[_Pending[T, R]], outcomes: list[list[R] | BaseException]) -> None:
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the caller went away
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    async def _collect(self) -> list[_Pending[T, R]]:
        """The next batch: what waits now, plus arrivals while they keep coming (bounded)."""
        assert self._wakeup is not None
        while True:
            while not self._pending and not self._closed:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch: list[_Pending[T, R]] = []
            rows, deadline = 0, 0.0
            while True:
                full = self._take(batch, rows)
                rows = sum(len(p.items) for p in batch)
                if batch and not deadline:
                    deadline = batch[0].queued_at + self.max_wait
                if full or not batch or time.monotonic() >= deadline:
                    break
                seen = self._arrivals
                await asyncio.sleep(0)  # one loop turn: let concurrent submits arrive
                if self._arrivals == seen:
                    break  # the queue has drained: no reason to wait longer
            if batch or (self._closed and not self._pending):
                return batch

    def _take(self, batch: list[_Pending[T, R]], rows: int) -> bool:
        """Move waiting submissions that fit into ``batch``; True when the batch is full."""
        while self._pending:
            head = self._pending[0]
            if head.future.done():  # cancelled before dispatch
                self._pending.popleft()
                continue
            n = len(head.items)
            if batch and rows + n > self.max_batch:
                return True
            self._pending.popleft()
            batch.append(head)
            rows += n
            if rows >= self.max_batch:
                return True
        return False

    # ---- worker-thread side -----------------------------------------------------------
    def _call(self, items: list[T]) -> list[R]:
        """One model call on ``items``; its results, checked for count."""
        self.stats.calls += 1
        self.stats.rows += len(items)
        self.stats.max_rows = max(self.stats.max_rows, len(items))
        if self.on_batch is not None:
            try:
                self.on_batch(len(items))
            except Exception as exc:  # a metrics hook must not fail the request
                log.warning("on_batch failed", batcher=self.name, error=repr(exc))
        out = self.fn(items)
        if len(out) != len(items):
            raise EarthOpsError(
                f"micro-batcher {self.name!r}: the model returned {len(out)} results "
                f"for {len(items)} rows (expected one per row)"
            )
        return list(out)

    def _call_checked(self, items: list[T]) -> list[R] | BaseException:
        try:
            return self._call(items)
        except Exception as exc:
            return exc

    def _run(self, batch: list[_Pending[T, R]]) -> list[list[R] | BaseException]:
        """Run a batch in one call; on failure re-run each submission alone."""
        self.stats.submissions += len(batch)
        if len(batch) == 1:
            return [self._call_checked(batch[0].items)]
        combined = [item for pending in batch for item in pending.items]
        try:
            out = self._call(combined)
        except Exception as exc:
            self.stats.fallbacks += 1
            log.warning(
                "batched model call failed; re-running each request alone",
                batcher=self.name, rows=len(combined), requests=len(batch), error=repr(exc),
            )  # fmt: skip
            return [self._call_checked(pending.items) for pending in batch]
        outcomes: list[list[R] | BaseException] = []
        start = 0
        for pending in batch:
            outcomes.append(out[start : start + len(pending.items)])
            start += len(pending.items)
        return outcomes
