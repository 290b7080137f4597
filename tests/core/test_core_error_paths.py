"""Errors on the paths ``test_core_errors.py`` does not take: opening,
pool exhaustion, raw driver calls, and errors that units raise themselves."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast
from uuid import uuid4

import pytest
from sqlalchemy import Table, insert, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError

from statestore import AlreadyExists, Busy, InvalidInput, Store, Unavailable, open_store
from statestore.core.classify import classify
from statestore.schema.metadata import LogBookRow
from statestore.store import open_store_unchecked
from tests.support.backends import admin_url

BOOKS = cast(Table, LogBookRow.__table__)


async def test_the_cause_is_the_driver_error_with_its_code(store: Store) -> None:
    chosen = uuid4()
    await store.write(lambda conn: conn.execute(insert(BOOKS), {"uuid": chosen, "name": "b", "meta": {}}))
    with pytest.raises(AlreadyExists) as raised:
        await store.write(lambda conn: conn.execute(insert(BOOKS), {"uuid": chosen, "name": "c", "meta": {}}))
    cause = raised.value.__cause__
    assert isinstance(cause, IntegrityError)
    driver = cause.orig
    assert driver is not None
    codes = {
        getattr(driver, "sqlite_errorname", None),
        getattr(driver, "sqlstate", None),
        driver.args[0] if driver.args else None,
    }
    assert codes & {"SQLITE_CONSTRAINT_UNIQUE", "23505", 1062}, codes


def _failing_unit(_conn: Connection) -> None:
    """A unit that raises a statestore error of its own, with a cause."""
    try:
        raise ValueError("the real reason")
    except ValueError as reason:
        raise InvalidInput("refused") from reason


async def _in_transaction(store: Store) -> None:
    async with store.transaction():
        await store.write(_failing_unit)


PATHS: dict[str, Callable[[Store], Awaitable[object]]] = {
    "read": lambda store: store.read(_failing_unit),
    "write": lambda store: store.write(_failing_unit),
    "offloaded-write": lambda store: store.write(_failing_unit, offload=True),
    "single-statement-write": lambda store: store.write(_failing_unit, single_statement=True),
    "transaction": _in_transaction,
}


async def test_a_store_error_raised_by_a_unit_keeps_its_cause(store: Store) -> None:
    """Repository units raise NotFound/InvalidInput themselves; re-raising
    them ``from`` themselves replaces their cause with a self-loop."""
    lost: dict[str, object] = {}
    for name, path in PATHS.items():
        with pytest.raises(InvalidInput, match="refused") as raised:
            await path(store)
        if not isinstance(raised.value.__cause__, ValueError):
            lost[name] = raised.value.__cause__
    assert lost == {}, f"cause replaced on these paths: {lost}"


@pytest.mark.parametrize("create", [False, True])
async def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path, create: bool) -> None:
    with pytest.raises(Unavailable):
        async with open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}", create=create):
            pass


async def test_an_unopenable_sqlite_file_is_unavailable_on_every_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    async with open_store_unchecked(url) as store:
        with pytest.raises(Unavailable):
            await store.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
        with pytest.raises(Unavailable):
            await store.write(lambda conn: conn.execute(text("SELECT 1")).scalar())
        with pytest.raises(Unavailable):
            async with store.transaction():
                pass
        with pytest.raises(Unavailable):
            await store.check()


# Server-only: SQLite creates a missing file; its unopenable paths are tested above.
@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
async def test_a_missing_server_database_is_unavailable(backend: str) -> None:
    url = make_url(admin_url(backend)).set(database=f"statestore_missing_{uuid4().hex[:8]}")
    with pytest.raises(Unavailable):
        async with open_store(url.render_as_string(hide_password=False)):
            pass


async def test_an_unreachable_mysql_server_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        async with open_store("mysql://root@127.0.0.1:1/nowhere"):
            pass


# Server-only: SQLite stores hold their connections and take no pool options.
@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
async def test_an_exhausted_pool_is_a_store_error(backend: str, store_url: str) -> None:
    """SQLAlchemy's pool timeout is its own TimeoutError, not the builtin one
    and not a DBAPIError: it must still reach callers as Unavailable."""
    async with open_store(store_url, pool_size=1, max_overflow=0, pool_timeout=0.2) as store:
        holding = asyncio.Event()
        done = asyncio.Event()

        async def hold_the_only_connection() -> None:
            async with store.transaction():
                await store.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
                holding.set()
                await done.wait()

        holder = asyncio.create_task(hold_the_only_connection())
        await holding.wait()
        try:
            with pytest.raises(Unavailable):
                await store.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
        finally:
            done.set()
            await holder


def test_a_raw_sqlite_lock_error_is_busy(tmp_path: Path) -> None:
    """The SQLite runner begins and commits on the driver itself, so raw
    sqlite3 errors (not wrapped by SQLAlchemy) reach ``classify`` too."""
    path = tmp_path / "raw.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            waiter.execute("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.close()
    assert raised.value.sqlite_errorname == "SQLITE_BUSY"
    assert isinstance(classify(raised.value), Busy)
