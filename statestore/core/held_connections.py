"""AUTOCOMMIT connections the server runner keeps checked out for single-statement units.

Checking a connection out of SQLAlchemy's pool and back in for every statement
costs about half a raw round trip again, so single-statement units run on a
few held connections. They come from the pool and count within its size, and
go back to it whenever someone is waiting for a connection of a full pool, so
they never starve transactions.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from statestore.core.classify import connection_lost
from statestore.core.runner import T, Unit
from statestore.core.server_connections import (
    PoolGate,
    Probe,
    Progress,
    close_or_discard,
    discard,
    driver_of,
    in_background,
    pinged,
    release,
    reusable,
)


@dataclass(slots=True)
class _Held:
    connection: AsyncConnection
    driver: Any
    idle_since: float = 0.0


class HeldConnections:
    """AUTOCOMMIT connections kept checked out for single-statement units.

    At most ``limit`` units run on them at once. They are the pool's
    connections: one goes back to the pool whenever the pool is overbooked
    (see :class:`PoolGate`), so other callers never wait on them. Before
    reuse a held connection is asked whether it is still open and outside a
    transaction (no round trip) and, with ``ping_after``, pinged once it has
    been idle that many seconds. After an error it is kept only if the error
    was about the statement (:func:`reusable`) and the driver agrees.
    """

    def __init__(
        self, engine: AsyncEngine, gate: PoolGate, limit: int, probes: tuple[Probe, Probe], ping_after: float | None
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._idle: list[_Held] = []
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None
        self._alive, self._clean = probes
        self._ping_after = ping_after

    async def run(self, unit: Unit[T], progress: Progress) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        async with self._slots:
            held = await self._take()
            try:
                result = await held.connection.run_sync(_ending_autobegin(unit))
            except BaseException as error:
                progress.lost = await self._after_error(held, error)
                raise
            if self._gate.waiting and self._gate.overbooked() > 0:
                in_background(close_or_discard(held.connection))  # someone waits for it
            else:
                self._keep(held)
            return result

    def _keep(self, held: _Held) -> None:
        if self._ping_after is not None:
            held.idle_since = time.monotonic()
        self._idle.append(held)

    async def _take(self) -> _Held:
        while self._idle:
            held = self._idle.pop()
            if not self._clean(held.driver):  # closed by the server while idle, or left in a transaction
                await discard(held.connection)
                continue
            stale = self._ping_after is not None and time.monotonic() - held.idle_since >= self._ping_after
            if stale and not await pinged(held.connection):
                continue
            return held
        connection = await self._gate.connect(self._engine)
        return _Held(connection, driver_of(connection))

    async def _after_error(self, held: _Held, error: BaseException) -> bool:
        """Keep or drop ``held`` after ``error``; whether the connection was lost."""
        lost = connection_lost(error) or not self._alive(held.driver)
        if not lost and reusable(error) and not held.connection.invalidated and self._clean(held.driver):
            try:
                await held.connection.rollback()  # ends SQLAlchemy's implicit transaction
            except BaseException:
                await discard(held.connection)
            else:
                self._keep(held)
            return False
        await discard(held.connection)
        return lost

    def lend(self, wanted: int) -> None:
        """Give up to ``wanted`` idle connections back to the pool (closed in
        the background: the pool resets them, round trips on MySQL)."""
        while wanted > 0 and self._idle:
            in_background(close_or_discard(self._idle.pop().connection))
            wanted -= 1

    async def close(self) -> None:
        while self._idle:
            await release(self._idle.pop().connection)


def _ending_autobegin(unit: Unit[T]) -> Unit[T]:
    """Run ``unit`` and end SQLAlchemy's implicit transaction (a no-op on the
    server in AUTOCOMMIT) so the held connection is clean for the next unit.
    Not on failure: nothing more is sent then (see :func:`transact`)."""

    def clean(connection: Connection) -> T:
        result = unit(connection)
        if connection.in_transaction():
            connection.commit()
        return result

    return clean
