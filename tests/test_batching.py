"""Micro-batching: same results as direct calls, far fewer calls, error isolation, latency."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from earthops.errors import EarthOpsError
from earthops.serving.batching import MicroBatcher


class Model:
    """A recording model: doubles each row, raises on 'poison', runs in one thread."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.threads: set[int] = set()
        self.gate = gate
        self.started = threading.Event()

    def __call__(self, rows: list[int]) -> list[int]:
        self.calls.append(list(rows))
        self.threads.add(threading.get_ident())
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        if -1 in rows:
            raise ValueError("poisoned row")
        return [2 * r for r in rows]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_results_equal_direct_calls_for_random_submissions() -> None:
    rng = random.Random(7)
    model = Model()
    submissions = [[rng.randint(0, 10**6) for _ in range(rng.randint(1, 12))] for _ in range(80)]

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(model, max_batch=16, max_wait_ms=5, name="t")
        try:
            return await asyncio.gather(*(batcher.submit(s) for s in submissions))
        finally:
            await batcher.close()

    assert run(main()) == [[2 * r for r in s] for s in submissions]
    assert all(len(c) <= 16 for c in model.calls)  # combined calls respect max_batch
    assert sum(len(c) for c in model.calls) == sum(len(s) for s in submissions)
    assert len(model.calls) < len(submissions) and len(model.threads) == 1


def test_fifty_concurrent_submissions_share_few_calls() -> None:
    model = Model()
    rows: list[int] = []

    async def main() -> tuple[list[list[int]], MicroBatcher]:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=2, on_batch=rows.append)
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(50)))
        await batcher.close()
        return results, batcher

    results, batcher = run(main())
    assert results == [[2 * i] for i in range(50)]
    assert len(model.calls) <= 3, model.calls
    assert batcher.stats.calls == len(model.calls) and batcher.stats.rows == 50
    assert batcher.stats.submissions == 50 and rows == [len(c) for c in model.calls]


def test_rows_queued_while_the_model_runs_form_the_next_batch() -> None:
    gate = threading.Event()
    model = Model(gate)

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=1)
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.to_thread(model.started.wait, 30)  # the model is busy with [0]
        rest = [asyncio.ensure_future(batcher.submit([i])) for i in range(1, 11)]
        await asyncio.sleep(0)
        gate.set()
        out = await asyncio.gather(first, *rest)
        await batcher.close()
        return out

    assert run(main()) == [[2 * i] for i in range(11)]
    assert model.calls == [[0], list(range(1, 11))]


def test_lone_submission_does_not_wait_for_max_wait() -> None:
    model = Model()

    async def main() -> list[float]:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=200)
        await batcher.submit([1])  # warm the worker thread
        latencies = []
        for i in range(5):
            start = time.perf_counter()
            assert await batcher.submit([i]) == [2 * i]
            latencies.append(time.perf_counter() - start)
        await batcher.close()
        return latencies

    latencies = run(main())
    assert max(latencies) < 0.100, latencies  # max_wait is 0.200


def test_a_poisoned_submission_fails_alone() -> None:
    model = Model()

    async def main() -> list[list[int] | BaseException]:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=5)
        subs = [[1, 2], [3], [4, -1, 5], [6]]
        out = await asyncio.gather(*(batcher.submit(s) for s in subs), return_exceptions=True)
        assert batcher.stats.fallbacks == 1
        await batcher.close()
        return out

    ok1, ok2, bad, ok3 = run(main())
    assert (ok1, ok2, ok3) == ([2, 4], [6], [12])
    assert isinstance(bad, ValueError) and "poisoned" in str(bad)
    assert model.calls[0] == [1, 2, 3, 4, -1, 5, 6]  # tried together first


def test_oversize_submission_is_never_split() -> None:
    model = Model()
    big = list(range(100, 110))

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=5)
        subs = [[1], [2, 3], big, [4], [5, 6, 7]]
        out = await asyncio.gather(*(batcher.submit(s) for s in subs))
        await batcher.close()
        return out

    out = run(main())
    assert out[2] == [2 * r for r in big]
    assert big in model.calls  # a call of its own, whole
    assert all(len(c) <= 4 for c in model.calls if c != big)


def test_wrong_result_count_is_an_earthops_error() -> None:
    async def main(batching: bool) -> None:
        batcher = MicroBatcher(
            lambda rows: rows[:-1], max_batch=8 if batching else 1, max_wait_ms=5, name="short"
        )
        try:
            results = await asyncio.gather(
                batcher.submit([1, 2]), batcher.submit([3]), return_exceptions=True
            )
            assert all(isinstance(r, EarthOpsError) for r in results), results
            assert "returned 1 results for 2 rows" in str(results[0])
        finally:
            await batcher.close()

    run(main(True))
    run(main(False))


def test_no_batching_calls_directly_in_one_thread() -> None:
    for max_batch, max_wait in ((1, 5.0), (64, 0.0)):
        model = Model()

        async def main(b: int = max_batch, w: float = max_wait, m: Model = model) -> None:
            batcher = MicroBatcher(m, max_batch=b, max_wait_ms=w)
            out = await asyncio.gather(*(batcher.submit([i, i]) for i in range(6)))
            assert out == [[2 * i, 2 * i] for i in range(6)]
            with pytest.raises(ValueError):
                await batcher.submit([-1])
            await batcher.close()

        run(main())
        assert len(model.calls) == 7 and len(model.threads) == 1
        assert threading.get_ident() not in model.threads


def test_close_finishes_queued_work_then_refuses() -> None:
    model = Model()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=2, max_wait_ms=5)
        futures = [asyncio.ensure_future(batcher.submit([i])) for i in range(7)]
        await asyncio.sleep(0)  # let them enqueue
        await batcher.close()
        assert [f.result() for f in futures] == [[2 * i] for i in range(7)]
        with pytest.raises(EarthOpsError, match="closed"):
            await batcher.submit([1])

    run(main())
    assert sorted(r for c in model.calls for r in c) == list(range(7))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(EarthOpsError, match="max_batch"):
        MicroBatcher(Model(), max_batch=0, max_wait_ms=2)
    with pytest.raises(EarthOpsError, match="max_wait_ms"):
        MicroBatcher(Model(), max_batch=4, max_wait_ms=-1)


def test_a_cancelled_submission_is_skipped() -> None:
    gate = threading.Event()
    model = Model(gate)

    async def main() -> list[int]:
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=1)
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.to_thread(model.started.wait, 30)
        gone, kept = asyncio.ensure_future(batcher.submit([1])), batcher.submit([2])
        kept_future = asyncio.ensure_future(kept)
        await asyncio.sleep(0)
        gone.cancel()
        gate.set()
        assert await first == [0]
        out = await kept_future
        await batcher.close()
        return out

    assert run(main()) == [4]
    assert model.calls == [[0], [2]]
