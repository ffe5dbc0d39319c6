"""The files family's source runner: sources wait in line (not as tasks) and run a bounded few at once."""

from __future__ import annotations

import asyncio

from dingvault.source.collectors.files import _Streams

from .running import Running


def test_sources_wait_in_line_and_at_most_max_running_run_at_once() -> None:
    async def main() -> tuple[list[int], int, int]:
        streams = _Streams(queue_size=4, max_running=3)
        running = Running(pause=0.001)
        peak_tasks = 0
        for n in range(200):
            streams.add(running.source(n))
            peak_tasks = max(peak_tasks, len(asyncio.all_tasks()))
        out = []
        async for value in streams.results():
            out.append(value)
            peak_tasks = max(peak_tasks, len(asyncio.all_tasks()))
        return out, running.most, peak_tasks

    out, peak, peak_tasks = asyncio.run(main())
    assert sorted(out) == list(range(200))  # every source's values arrive
    assert peak <= 3
    assert peak_tasks <= 3 + 1  # the sources' tasks plus the test's own, never one per source


def test_a_source_added_while_running_waits_for_a_free_place_and_earlier_sources_go_first() -> None:
    async def main() -> list[str]:
        streams = _Streams(queue_size=2, max_running=1)
        gate = asyncio.Event()

        async def discovery():  # type: ignore[no-untyped-def]
            streams.add(found)  # found while discovery still runs: must wait for it
            yield "discovery"
            gate.set()

        async def found():  # type: ignore[no-untyped-def]
            assert gate.is_set()  # started only once the earlier source ended
            yield "found"

        streams.add(discovery)
        return [v async for v in streams.results()]

    assert asyncio.run(main()) == ["discovery", "found"]


def test_stopping_the_consumer_cancels_the_running_sources_and_starts_no_waiting_one() -> None:
    started: list[int] = []

    async def main() -> None:
        streams = _Streams(queue_size=1, max_running=2)

        def source(n: int):  # type: ignore[no-untyped-def]
            async def gen():  # type: ignore[no-untyped-def]
                started.append(n)
                for i in range(1000):
                    yield (n, i)
                    await asyncio.sleep(0)

            return gen

        for n in range(50):
            streams.add(source(n))
        results = streams.results()
        await anext(results)  # the consumer stops after one value (a run cancelled, a failure)
        await results.aclose()
        await asyncio.sleep(0.01)  # let cancelled sources end; none of the waiting ones may start
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftovers == []

    asyncio.run(main())
    assert sorted(started) == [0, 1]
