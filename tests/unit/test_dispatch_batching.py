import asyncio

import pytest
from publipost_dispatch.batching import Coalescer


async def test_calls_made_while_one_is_in_flight_share_the_next_round_trip():
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    double = Coalescer(run)
    results = await asyncio.gather(*(double(n) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2, 3, 4]]

    first = asyncio.ensure_future(double(7))
    await asyncio.sleep(0)  # the first call is in flight: the next ones wait for it, then go together
    later = await asyncio.gather(double(8), double(9))
    assert (await first, later) == (70, [80, 90])
    assert batches[1:] == [[7], [8, 9]]


async def test_a_failed_round_trip_fails_each_of_its_callers_and_not_the_next_ones():
    calls = 0

    async def run(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return items

    echo = Coalescer(run)
    outcomes = await asyncio.gather(echo("a"), echo("b"), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert await echo("c") == "c"


async def test_a_batch_is_never_larger_than_its_maximum():
    sizes: list[int] = []

    async def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    capped = Coalescer(run, max_batch=3)
    assert await asyncio.gather(*(capped(n) for n in range(7))) == list(range(7))
    assert sizes == [3, 3, 1]


@pytest.mark.parametrize("linger", [0.0, 0.005])
async def test_a_lone_call_is_answered(linger):
    async def run(items: list[int]) -> list[int]:
        return items

    assert await Coalescer(run, linger_s=linger)(1) == 1
