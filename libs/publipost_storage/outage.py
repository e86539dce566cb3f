"""The database out of reach: which errors mean it, and a write that must land once it answers again."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from publipost_logging import get_logger
from pymongo.errors import ConnectionFailure

log = get_logger(__name__)

T = TypeVar("T")

# Connection refused or dropped, no server selected in time, a network timeout: the database may answer
# again; a refused write or a bad query will not.
UNREACHABLE = (ConnectionFailure,)

FIRST_WAIT_S = 0.2
LONGEST_WAIT_S = 5.0


async def once_reachable(write: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run `write` until the database takes it, however long it is out of reach. For the writes whose loss
    costs more than waiting: an e-mail's outcome after the server took it (given up, the e-mail would be
    sent again). `write` must be idempotent: one that landed without its answer is run again."""
    wait = FIRST_WAIT_S
    while True:
        try:
            return await write()
        except UNREACHABLE as exc:
            log.warning("database out of reach; the write is kept and tried again", what=what, error=str(exc))
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_S)
