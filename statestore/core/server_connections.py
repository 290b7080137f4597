"""Connections of the server runner: whether a driver connection is alive and clean, how a
bad one is dropped, how failures become the store's errors, and the gate that
keeps check-outs within the pool's size.

A connection is reused only after an error the database reported about the
statement (or a StoreError of the unit's own) and only if the driver says it
is open and outside any transaction; after anything else — a cancellation, an
encoding failure, a lost connection — it is closed at once and dropped from
the pool. The liveness checks cost no round trip: the event loop has read the
server's goodbye by the time a dropped connection is checked out again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from statestore.core.classify import classify, connection_lost
from statestore.core.runner import T, Unit
from statestore.errors import StoreError, Unavailable

if TYPE_CHECKING:  # the held connections borrow from the gate, which lends them back
    from statestore.core.held_connections import HeldConnections

PING_AFTER_IDLE = 1.0  # seconds; with pre_ping, a held connection idle this long is pinged before reuse


_log = logging.getLogger(__name__)


Probe = Callable[[Any], bool]
"""A question put to a driver connection without a round trip."""


def _asyncpg_alive(driver: Any) -> bool:
    return not driver.is_closed()


def _asyncpg_clean(driver: Any) -> bool:
    # ``_top_xact`` is asyncpg's own record of a transaction it began; a BEGIN
    # that failed (cancelled, say) leaves it set, and every later transaction
    # on the connection then fails ("nested transaction has a different
    # isolation level").
    return not driver.is_closed() and not driver.is_in_transaction() and getattr(driver, "_top_xact", None) is None


def _asyncmy_alive(driver: Any) -> bool:
    if not driver.connected:
        return False
    broken = getattr(driver, "_stream_broken", None)  # EOF or error seen on the socket
    if broken is None:  # releases that read through a StreamReader
        reader = getattr(driver, "_reader", None)
        broken = reader is not None and reader.at_eof()
    return not broken


def _asyncmy_clean(driver: Any) -> bool:
    return _asyncmy_alive(driver) and not driver.get_transaction_status()


def always(_driver: Any) -> bool:
    return True


PROBES: dict[str, tuple[Probe, Probe]] = {
    "postgresql": (_asyncpg_alive, _asyncpg_clean),
    "mysql": (_asyncmy_alive, _asyncmy_clean),
}


def cancel_requests() -> int:
    """How many cancellations of the current task are pending; one more at
    the end of a call than at its start means the call was cancelled."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def driver_of(connection: AsyncConnection) -> Any:
    sync = connection.sync_connection
    assert sync is not None
    return sync.connection.driver_connection


def _terminate_now(connection: AsyncConnection) -> None:
    """Close the driver connection's socket at once, with no round trip.

    Called on the event loop, outside SQLAlchemy's greenlet, the dialect's
    terminate is the drivers' forced close (asyncpg ``terminate()``, asyncmy
    ``close()``); the server rolls back whatever transaction was open.
    """
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return
    try:
        dbapi_connection = sync.connection.dbapi_connection
        if dbapi_connection is not None:
            sync.dialect.do_terminate(dbapi_connection)
    except Exception:
        _log.debug("terminating a connection failed", exc_info=True)


async def _forget(connection: AsyncConnection) -> None:
    try:
        if not connection.closed:
            if not connection.invalidated:
                await connection.invalidate()
            await connection.close()
    except Exception:
        _log.debug("releasing a discarded connection failed", exc_info=True)


background: set[asyncio.Task[Any]] = set()


def in_background(work: Awaitable[T]) -> asyncio.Task[T]:
    """Run ``work`` to its end whatever happens to the caller (which awaits
    it through ``asyncio.shield``); the set keeps the task referenced."""
    task = asyncio.ensure_future(work)
    background.add(task)
    task.add_done_callback(background.discard)
    return task


async def release(connection: AsyncConnection) -> None:
    """Return ``connection`` to the pool, or discard it if that fails.

    Shielded: the pool resets a returned connection — a ROLLBACK and the
    session's isolation level or autocommit mode, round trips on MySQL — and
    a cancellation in the middle of that leaves the connection checked out
    for good (SQLAlchemy 2.1). A cancelled caller leaves it to finish.
    """
    await asyncio.shield(in_background(close_or_discard(connection)))


async def close_or_discard(connection: AsyncConnection) -> None:
    try:
        await connection.close()
    except Exception:
        _log.debug("returning a connection to the pool failed; discarding it", exc_info=True)
        await discard(connection)


async def discard(connection: AsyncConnection) -> None:
    """Close ``connection`` for good and free its place in the pool.

    The socket is closed synchronously; the pool's bookkeeping runs shielded,
    so a second cancellation cannot leave the connection checked out (it is
    re-raised once the bookkeeping is done).
    """
    _terminate_now(connection)
    await asyncio.shield(in_background(_forget(connection)))


def reusable(error: BaseException) -> bool:
    """Whether the connection ``error`` came from may serve the next unit.

    Yes after a StoreError of the unit's own (NotFound …) and after an error
    the server reported about the statement; no after anything else — a
    cancellation or an encoding failure may have left the protocol half-way
    through a message. The driver is asked about the connection as well.
    """
    if isinstance(error, StoreError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return not error.connection_invalidated and not connection_lost(error)
    if isinstance(error, sa_exc.EmulatedDBAPIException):  # raised on the DB-API cursor (direct statements)
        return not connection_lost(error)
    return False


def store_failure(error: Exception, *, lost: bool) -> Exception:
    """The error a caller gets for ``error``: classified, and Unavailable
    whenever the connection was found lost, whatever the driver raised."""
    classified = classify(error)
    if lost and not isinstance(classified, Unavailable):
        return Unavailable(f"lost the database connection: {classified}")
    return classified if isinstance(classified, Exception) else error


def raise_failure(error: Exception, cancels_before: int, *, lost: bool = False) -> NoReturn:
    """Raise what the caller gets for ``error``: CancelledError if the task
    was cancelled meanwhile (a driver or SQLAlchemy may have replaced the
    CancelledError with an error of its own while cleaning up), else the
    classified error, chained to ``error``."""
    if cancel_requests() > cancels_before:
        raise asyncio.CancelledError() from error
    failure = store_failure(error, lost=lost)
    if failure is error:
        raise error
    raise failure from error


@dataclass(slots=True)
class Progress:
    """How far one attempt at a unit got, to decide whether it may run again."""

    committing: bool = False
    """The unit's work may have been committed: its COMMIT was sent, or it
    runs in AUTOCOMMIT, where the statement commits itself."""
    lost: bool = False
    """The connection died under the attempt."""


def transact(unit: Unit[T], progress: Progress) -> Unit[T]:
    """``unit`` in a transaction of its own. On failure the transaction is
    left open: the runner rolls it back, or drops the connection, which the
    server rolls back for it, without a round trip in SQLAlchemy's greenlet
    that could replace the error (or the cancellation) with its own."""

    def in_transaction(connection: Connection) -> T:
        connection.begin()
        result = unit(connection)
        progress.committing = True
        connection.commit()
        return result

    return in_transaction


class PoolGate:
    """Checks connections out of the engine's pool, counting who waits.

    ``capacity`` is ``pool_size + max_overflow`` (None: unbounded or
    unknown). The pool is *overbooked* when the connections checked out plus
    the check-outs under way exceed it: someone is (or is about to be)
    waiting, and the ``lender`` — the held connections — gives idle
    connections back to the pool, at once and as many as are missing.
    """

    def __init__(self, engine: AsyncEngine, capacity: int | None) -> None:
        self._pool = engine.sync_engine.pool
        self._capacity = capacity
        self.waiting = 0
        self.lender: HeldConnections | None = None

    def overbooked(self) -> int:
        """How many connections are wanted beyond the pool's capacity."""
        checked_out = getattr(self._pool, "checkedout", None)
        if self._capacity is None or checked_out is None:
            return 0
        return int(checked_out()) + self.waiting - self._capacity

    async def connect(self, engine: AsyncEngine) -> AsyncConnection:
        """A connection of ``engine``'s pool.

        Shielded: SQLAlchemy sets an engine's isolation level on the new
        connection (a round trip on MySQL); cancelled there, it leaves the
        connection checked out for good. A cancelled caller leaves the
        check-out to finish and the connection is then returned.
        """
        self.waiting += 1
        try:
            if self.lender is not None:
                self.lender.lend(self.overbooked())
            connecting = in_background(engine.connect().start())
            try:
                return await asyncio.shield(connecting)
            except asyncio.CancelledError:
                connecting.add_done_callback(_return_orphan)
                raise
        finally:
            self.waiting -= 1


def _return_orphan(connecting: asyncio.Task[AsyncConnection]) -> None:
    """Return the connection a cancelled caller was checking out."""
    if not connecting.cancelled() and connecting.exception() is None:
        in_background(close_or_discard(connecting.result()))


async def pinged(connection: AsyncConnection) -> bool:
    """Ping ``connection`` (one round trip); drop it if that fails."""
    try:
        await connection.run_sync(_ping)
    except BaseException as error:
        await discard(connection)
        if not isinstance(error, Exception):
            raise
        return False
    return True


def _ping(connection: Connection) -> None:
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    connection.dialect.do_ping(dbapi_connection)
