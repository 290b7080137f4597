"""How a unit of work reaches the database.

Every repository operation is a *unit*: a plain function ``unit(conn) -> T``
over a synchronous SQLAlchemy :class:`~sqlalchemy.engine.Connection`. Writing
operations once, synchronously, lets each backend run them the cheapest way it
can (see ``docs/architecture.md``):

* SQLite runs units on the event loop's thread over a held connection — one
  SQLite call costs ~20 µs while a hand-off to a thread costs ~150 µs here —
  and batches concurrent writers into one commit.
* PostgreSQL and MySQL run units through ``AsyncConnection.run_sync``, so each
  statement is one awaited round trip on the asyncio driver.

A runner also carries the ambient explicit transaction: inside
``store.transaction()`` every unit joins that transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from contextvars import ContextVar
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection, Dialect, Engine

from statestore.core.dialect import DialectFacts
from statestore.core.urls import Target
from statestore.core.wakeups import Wakeups

__all__ = ["ActiveTransaction", "Runner", "T", "Unit", "current_transaction", "joined", "savepoint_turn", "to_its_end"]

T = TypeVar("T")
Unit = Callable[[Connection], T]


class ActiveTransaction(Protocol):
    """An open explicit transaction that units can join."""

    async def run(self, unit: Unit[T], *, offload: bool = False) -> T:
        """Run ``unit`` inside this transaction."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction: rolled back alone if its block raises."""
        ...


class Runner(Protocol):
    """Runs units of work on one database; one per store."""

    target: Target
    wakeups: Wakeups
    """Who waits for work or changes, and what wakes them."""

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect statements are compiled for."""
        ...

    @property
    def facts(self) -> DialectFacts:
        """What the database can do (every dialect decision asks this)."""
        ...

    @property
    def sync_engine(self) -> Engine:
        """The synchronous engine statements run through (for SQLAlchemy
        event listeners: logging, statement counting)."""
        ...

    async def read(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        """Run a read-only unit in its own transaction (never the write lock).

        ``single_statement`` promises one SELECT, which sees one snapshot by
        itself, so a server backend may skip the transaction around it.
        """
        ...

    async def write(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        """Run a writing unit in its own transaction, committed before return.

        ``single_statement`` promises the unit issues exactly one statement,
        which lets a server backend skip BEGIN/COMMIT round trips.
        ``offload`` asks for a long unit to run off the event loop's thread.
        """
        ...

    def begin(self) -> AbstractAsyncContextManager[ActiveTransaction]:
        """Open an explicit write transaction (the store's ``transaction()``)."""
        ...

    async def admin(self, unit: Unit[T], *, foreign_keys_off: bool = False) -> T:
        """Run ``unit`` with exclusive use of a connection and no transaction
        opened for it (migrations, integrity checks)."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release every connection."""
        ...


_ambient: ContextVar[tuple[tuple[object, ActiveTransaction], ...]] = ContextVar("statestore_transactions", default=())


def current_transaction(owner: object) -> ActiveTransaction | None:
    """The innermost explicit transaction ``owner`` opened in this context."""
    for candidate_owner, transaction in reversed(_ambient.get()):
        if candidate_owner is owner:
            return transaction
    return None


class joined:
    """Make ``transaction`` the ambient one for ``owner`` inside a ``with`` block."""

    def __init__(self, owner: object, transaction: ActiveTransaction) -> None:
        self._entry = (owner, transaction)

    def __enter__(self) -> None:
        self._token = _ambient.set((*_ambient.get(), self._entry))

    def __exit__(self, *exc_info: object) -> None:
        _ambient.reset(self._token)


_savepoint_locks: ContextVar[dict[int, asyncio.Lock] | None] = ContextVar("statestore_savepoint_locks", default=None)


@asynccontextmanager
async def savepoint_turn(transaction: object, root: asyncio.Lock) -> AsyncIterator[None]:
    """Take a turn to open a nested transaction inside ``transaction``.

    Savepoints on one connection form a stack: if two sibling tasks of one
    transaction each opened one, the first's ``ROLLBACK TO`` would also undo
    the second's savepoint and work. So siblings take turns, each holding the
    lock of its scope for its whole nested block, while tasks nested inside
    that block get a fresh lock of their own (no self-deadlock).
    """
    locks = _savepoint_locks.get() or {}
    async with locks.get(id(transaction), root):
        token = _savepoint_locks.set({**locks, id(transaction): asyncio.Lock()})
        try:
            yield
        finally:
            _savepoint_locks.reset(token)


async def to_its_end(work: Awaitable[T]) -> T:
    """Await ``work``; if the caller is cancelled meanwhile, let ``work`` run
    to its end first (whatever its outcome), then raise ``CancelledError``.
    For work that must not be cut in the middle: a statement on a thread
    that still holds its connection, the second half of a call whose first
    half has committed."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with suppress(BaseException):
            await future
        raise
