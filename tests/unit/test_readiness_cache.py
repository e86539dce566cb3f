"""Readiness asks a dependency at most once a second, however many probes come."""

import asyncio

from publipost_http import CachedCheck


class Dependency:
    def __init__(self) -> None:
        self.asked = 0
        self.up = True
        self.delay_s = 0.0

    async def ping(self) -> bool:
        self.asked += 1
        await asyncio.sleep(self.delay_s)
        if self.up is None:
            raise ConnectionError("refused")
        return self.up


async def test_probes_within_a_second_share_one_ping_and_the_next_second_asks_again():
    dependency = Dependency()
    check = CachedCheck(dependency.ping, ttl_s=0.2)
    assert [await check() for _ in range(5)] == [True] * 5
    assert dependency.asked == 1

    dependency.up = False
    assert await check() is True  # the answer of less than ttl_s ago
    await asyncio.sleep(0.25)
    assert await check() is False
    assert dependency.asked == 2


async def test_probes_arriving_during_a_ping_wait_for_it_rather_than_sending_their_own():
    dependency = Dependency()
    dependency.delay_s = 0.1
    check = CachedCheck(dependency.ping, ttl_s=0)
    assert await asyncio.gather(*(check() for _ in range(10))) == [True] * 10
    assert dependency.asked == 1


async def test_a_failing_ping_is_down_and_a_probe_that_gives_up_does_not_cancel_it():
    dependency = Dependency()
    dependency.up = None
    assert await CachedCheck(dependency.ping)() is False

    dependency.up, dependency.delay_s = True, 0.1
    check = CachedCheck(dependency.ping)
    impatient = asyncio.ensure_future(check())
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await check() is True
    assert dependency.asked == 2
