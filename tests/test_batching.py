import asyncio
import threading

import pytest

from raylib.batching import AsyncBatcher


def test_concurrent_requests_coalesce_by_key_and_budget():
    calls = []

    def fn(key, items):
        calls.append((key, list(items)))
        return [f"{key}:{i}" for i in items]

    async def main():
        b = AsyncBatcher(fn, linger_s=0.02, max_items=4)
        res = await asyncio.gather(*[b.submit(i, key="a") for i in range(6)], b.submit(9, key="b"))
        return b, res

    b, res = asyncio.run(main())
    assert res == [f"a:{i}" for i in range(6)] + ["b:9"]
    sizes = sorted(len(items) for _, items in calls)
    assert sizes == [1, 2, 4] and b.stats.max_batch == 4 and b.stats.items == 7
    assert {k for k, items in calls if 9 in items} == {"b"}


def test_cost_budget_sorts_and_splits():
    calls = []

    async def main():
        b = AsyncBatcher(lambda k, items: calls.append(list(items)) or list(items), linger_s=0.02,
                         max_items=100, max_cost=10)
        return await asyncio.gather(*[b.submit(c, cost=c) for c in (6, 1, 5, 2)])

    assert asyncio.run(main()) == [6, 1, 5, 2]
    assert all(sum(batch) <= 10 or len(batch) == 1 for batch in calls)
    assert calls[0] == [1, 2, 5]  # shortest first


def test_failures_reach_every_caller_and_loop_stays_free():
    started = threading.Event()

    def fn(key, items):
        started.set()
        raise ValueError("boom")

    async def main():
        b = AsyncBatcher(fn, linger_s=0.01)
        tasks = [asyncio.ensure_future(b.submit(i)) for i in range(3)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in results) and started.is_set()


def test_length_mismatch_is_an_error():
    async def main():
        b = AsyncBatcher(lambda k, items: [], linger_s=0.0)
        with pytest.raises(RuntimeError, match="returned 0 results for 1"):
            await b.submit(1)

    asyncio.run(main())


def test_one_bad_item_fails_alone_and_the_rest_of_its_batch_succeeds():
    calls = []

    def fn(key, items):  # like an engine that rejects a whole batch for one bad prompt
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("engine error: prompt too long")
        return [f"ok:{i}" for i in items]

    async def main():
        b = AsyncBatcher(fn, linger_s=0.02, max_items=8)
        res = await asyncio.gather(*[b.submit(i) for i in ("a", "bad", "c", "d")], return_exceptions=True)
        return b, res

    b, res = asyncio.run(main())
    assert res[0] == "ok:a" and res[2:] == ["ok:c", "ok:d"]
    assert isinstance(res[1], ValueError) and "prompt too long" in str(res[1])
    assert len(calls[0]) == 4  # they were batched together, then split
    assert b.stats.failed_batches == 1 and b.stats.failed_items == 1


def test_cancelled_request_is_never_batched():
    calls = []

    async def main():
        b = AsyncBatcher(lambda k, items: calls.append(list(items)) or list(items), linger_s=0.05)
        keep = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
        gone = asyncio.ensure_future(b.submit(3))
        await asyncio.sleep(0.01)  # queued, still lingering
        gone.cancel()
        res = await asyncio.gather(*keep)
        return b, res, gone

    b, res, gone = asyncio.run(main())
    assert res == [1, 2] and gone.cancelled()
    assert calls == [[1, 2]] and b.stats.dropped == 1
