"""Reading the change feed in tests right after a commit.

On PostgreSQL a change shows once every older transaction on the server has
ended, in any database (see :mod:`statestore.changes.feed`): a transaction
another test holds open elsewhere delays it, so a read right after a commit
may not see it yet. A test that reads without following waits for that
first; what it then asserts is unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from statestore import Change, Store
from statestore.changes.tables import CHANGES
from statestore.core.dialect import facts_of

__all__ = ["settled", "settled_changes"]


def _held_back(connection: Connection) -> int:
    horizon = facts_of(connection).change_horizon()
    if horizon is None:
        return 0
    held = select(func.count()).select_from(CHANGES).where(CHANGES.c.tx >= horizon)
    return int(connection.execute(held).scalar_one())


async def settled(store: Store) -> None:
    """Wait until the feed can show every committed change (10 s at most)."""
    for _ in range(500):
        if not await store.read(_held_back):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the feed stayed behind the committed changes for 10 s")


async def settled_changes(store: Store, after: str | None = None, **filters: Any) -> list[Change]:
    """Every change after ``after`` (filtered), once the feed shows all committed."""
    await settled(store)
    return [change async for change in store.changes(after, follow=False, **filters)]
