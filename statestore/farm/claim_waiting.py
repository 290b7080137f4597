"""``scheduler.claim(worker, wait=…)``: a claim that waits for work.

The waiter joins the store's queue of claim waiters (and the store's
watcher is listening) *before* its first claim, so a commit that makes work
claimable after that claim's snapshot wakes it: no wake-up is lost between
a claim that found nothing and the sleep that follows it. See
:mod:`statestore.core.wakeups` for who is woken, in which order, and by
what on each backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from statestore.core.wakeups import Wakeups
from statestore.farm.records import ScheduledTask

__all__ = ["MOST_WAIT", "claim_waiting"]

MOST_WAIT: Final = 3600.0
"""The longest a claim may wait, in seconds."""

READY_WITHIN: Final = 1.0
"""How long the first claim waits for the store's watcher to listen. A
watcher that cannot (the database is down) must not hold the claim for its
whole wait: the claim then finds the fault itself, and if it does not, the
head waiter polls until the watcher listens."""


async def claim_waiting(
    wakeups: Wakeups, claim: Callable[[], Awaitable[ScheduledTask | None]], wait: float
) -> ScheduledTask | None:
    """Claim until a task comes or ``wait`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    async with wakeups.waiting(ready_within=min(wait, READY_WITHIN)) as turn:
        woken = False
        while True:
            task = await claim()
            if task is not None:
                if woken:  # more work may have come with the wake-up: pass it on
                    turn.claimed()
                return task
            remaining = deadline - loop.time()
            if remaining <= 0 or not await turn.wait(remaining):
                return None
            woken = True
