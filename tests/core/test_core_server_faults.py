"""Server backends under faults: bad calls, connections the server drops,
cancelled calls, tiny pools (issue "Reliability").

Every test runs on PostgreSQL and MariaDB, in a database of this module's
own: the tests end the store's server connections (``pg_terminate_backend``,
``KILL``), and only ever those on that database.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_

import statestore.core.held_connections as held_connections
import statestore.core.server_runner as server_runner
from statestore import InvalidInput, Store, StoreError, Unavailable, open_store
from statestore.core.classify import classify, connection_lost, unsent
from statestore.core.urls import resolve_url
from statestore.flows import AtomDetail, FlowDetail, LogBook
from tests.support.backends import TestDatabase, admin_url, create_server_database, drop_server_database

SERVERS = ["postgresql", "mysql"]
COUNTER = "statestore_fault_counter"  # a scratch table of this module's database


@pytest.fixture(scope="module", params=SERVERS)
async def database(request: pytest.FixtureRequest) -> AsyncIterator[TestDatabase]:
    """A migrated database of this module's own, with a scratch counter table."""
    made = await create_server_database(str(request.param))
    try:
        async with open_store(made.url, create=True) as store:
            await store.runner.admin(_make_counter)
        yield made
    finally:
        await drop_server_database(made)


def _make_counter(connection: Connection) -> None:
    connection.execute(text(f"CREATE TABLE {COUNTER} (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
    connection.execute(text(f"INSERT INTO {COUNTER} (id, n) VALUES (1, 0)"))
    connection.commit()


async def drop_store_connections(database: TestDatabase) -> int:
    """End every server connection to ``database`` but the admin's own (the
    store's, that is); wait until the server has let them go and the event
    loop has had a moment to read their sockets' end. How many were ended."""
    name = make_url(database.url).database
    engine = create_async_engine(resolve_url(admin_url(database.backend)).url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as admin:
            if database.backend == "postgresql":
                # The pids first, then pg_terminate_backend in the select
                # list only: in a WHERE clause the planner may call it before
                # the other conditions, on every backend of the server.
                ended = list(
                    (
                        await admin.execute(
                            text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"),
                            {"name": name},
                        )
                    ).scalars()
                )
                await admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid = ANY(:ended) AND datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"ended": ended, "name": name},
                )
                left = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:ended)")
                ids: object = ended
            else:
                own = (await admin.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
                threads = (
                    await admin.execute(
                        text("SELECT id FROM information_schema.processlist WHERE db = :name"), {"name": name}
                    )
                ).scalars()
                ended = []
                for thread in threads:
                    if thread != own:
                        try:
                            await admin.execute(text(f"KILL {int(thread)}"))
                            ended.append(int(thread))
                        except sa_exc.DBAPIError:  # gone meanwhile (ER_NO_SUCH_THREAD)
                            pass
                listed = ", ".join(str(thread) for thread in ended) or "0"
                left = text(f"SELECT count(*) FROM information_schema.processlist WHERE id IN ({listed})")
                ids = None
            for _ in range(1000):
                if not (await admin.execute(left, {"ended": ids} if ids is not None else {})).scalar_one():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"the server kept connections to {name}")
    finally:
        await engine.dispose()
    await asyncio.sleep(0.05)
    return len(ended)


# -- units and calls -----------------------------------------------------------


def _select_one(connection: Connection) -> int:
    return int(connection.execute(text("SELECT 1")).scalar_one())


def _count(connection: Connection) -> int:
    return int(connection.execute(text(f"SELECT n FROM {COUNTER} WHERE id = 1")).scalar_one())


def _increment(connection: Connection) -> None:
    connection.execute(text(f"UPDATE {COUNTER} SET n = n + 1 WHERE id = 1"))


def _sleep_sql(backend: str, seconds: float) -> str:
    return f"SELECT pg_sleep({seconds})" if backend == "postgresql" else f"SELECT SLEEP({seconds})"


class Calls:
    """Good calls of every kind the runner has, on one store."""

    def __init__(self, store: Store, book: LogBook) -> None:
        self.store = store
        self.book = book
        self.atom = book.flows[0].atoms[0]

    @classmethod
    async def on(cls, store: Store) -> Calls:
        book = await store.logbooks.save(
            LogBook(f"book-{uuid4().hex[:8]}", flows=[FlowDetail("flow", atoms=[AtomDetail("atom")])])
        )
        return cls(store, book)

    async def single_statement_read(self) -> None:
        assert (await self.store.atom_details.get(self.atom.uuid)).uuid == self.atom.uuid

    async def snapshot_read(self) -> None:
        assert (await self.store.logbooks.get(self.book.uuid)).uuid == self.book.uuid

    async def single_statement_write(self) -> None:
        await self.store.write(_increment, single_statement=True)

    async def transactional_write(self) -> None:
        self.book.meta = {"n": random.randrange(1000)}
        await self.store.logbooks.save(self.book)

    async def atom_update(self) -> None:  # one statement on PostgreSQL, two on MariaDB
        self.atom.results = random.randrange(1000)
        await self.store.atom_details.update(self.atom)

    async def transaction_block(self) -> None:
        async with self.store.transaction():
            await self.store.read(_count)
            await self.store.write(_increment, single_statement=True)
            await self.single_statement_read()

    def all(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {
            "single-statement read": self.single_statement_read,
            "snapshot read": self.snapshot_read,
            "single-statement write": self.single_statement_write,
            "transactional write": self.transactional_write,
            "atom update": self.atom_update,
            "transaction block": self.transaction_block,
        }

    async def every_kind(self, times: int = 1) -> Counter[str]:
        """Run every kind ``times``; the failures, by kind and error."""
        failures: Counter[str] = Counter()
        for _ in range(times):
            for name, call in self.all().items():
                try:
                    await asyncio.wait_for(call(), 30)
                except Exception as error:
                    failures[f"{name}: {type(error).__module__}.{type(error).__name__}: {error}"] += 1
        return failures


# -- 1. a bad call does not poison the next ones ----------------------------------


def _encode_failure(connection: Connection) -> object:
    return connection.execute(text("SELECT :value"), {"value": "\ud800"}).scalar()


def _python_failure(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))
    raise ValueError("a bug in a unit")


def _left_in_transaction_then_failed(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")
    connection.execute(text(f"SELECT n FROM {COUNTER}"))
    raise InvalidInput("refused half-way")


def _left_in_transaction(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")
    connection.execute(text(f"SELECT n FROM {COUNTER}"))


def _unknown_table(connection: Connection) -> None:
    connection.execute(text("SELECT * FROM statestore_no_such_table"))


def _asyncpg_transaction_left_behind(connection: Connection) -> None:
    """asyncpg's own transaction record left set, as a failed BEGIN leaves it:
    every later transaction on the connection failed with "nested transaction
    has a different isolation level"."""
    driver = connection.connection.driver_connection
    assert driver is not None
    await_(driver.transaction(isolation="read_committed").start())
    raise InvalidInput("left asyncpg's transaction behind")


def _bad_calls(store: Store, backend: str) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    bad: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("encode failure, single statement", lambda: store.write(_encode_failure, single_statement=True)),
        ("encode failure, transaction", lambda: store.write(_encode_failure)),
        ("lone surrogate in a logbook name", lambda: store.logbooks.save(LogBook("\ud800"))),
        ("python error, single-statement read", lambda: store.read(_python_failure, single_statement=True)),
        ("python error, snapshot read", lambda: store.read(_python_failure)),
        ("left in a transaction, failed", lambda: store.write(_left_in_transaction_then_failed, single_statement=True)),
        ("left in a transaction", lambda: store.write(_left_in_transaction, single_statement=True)),
        ("unknown table", lambda: store.write(_unknown_table)),
    ]
    if backend == "postgresql":
        left_behind = _asyncpg_transaction_left_behind
        bad += [
            ("asyncpg transaction left, held", lambda: store.write(left_behind, single_statement=True)),
            ("asyncpg transaction left, pooled", lambda: store.write(left_behind)),
        ]
    return bad


@pytest.mark.parametrize("callers", [1, 4])
async def test_a_bad_call_does_not_poison_the_next_calls(database: TestDatabase, callers: int) -> None:
    async with open_store(database.url) as store:
        calls = await Calls.on(store)
        bad = _bad_calls(store, database.backend)
        good = list(calls.all().items())
        bad_outcomes: Counter[str] = Counter()
        good_failures: Counter[str] = Counter()

        async def caller(offset: int) -> None:
            for step in range(100):
                name, call = bad[(step + offset) % len(bad)]
                try:
                    await call()
                    bad_outcomes[f"{name}: completed"] += 1
                except StoreError as error:
                    bad_outcomes[f"{name}: {type(error).__name__}"] += 1
                except ValueError as error:  # a unit's own bug reaches its caller as it is
                    bad_outcomes[f"{name}: {type(error).__name__}"] += 1
                except Exception as error:  # any other raw error: a failure of its own
                    good_failures[f"bad call {name} raised raw {type(error).__name__}: {error}"] += 1
                good_name, good_call = good[(step + offset) % len(good)]
                try:
                    await good_call()
                except Exception as error:
                    good_failures[f"{good_name} after {name}: {type(error).__name__}: {error}"] += 1

        await asyncio.gather(*(caller(offset) for offset in range(callers)))
        assert good_failures == Counter(), bad_outcomes
        assert await calls.every_kind() == Counter()
        completed = {outcome for outcome in bad_outcomes if outcome.endswith("completed")}
        assert completed <= {"left in a transaction: completed"}, bad_outcomes


# -- 2. connections the server drops --------------------------------------------


async def _warm_up(calls: Calls) -> None:
    """Several held and several pooled connections, all idle afterwards."""
    await asyncio.gather(*(call() for _ in range(3) for call in calls.all().values()))


@pytest.mark.parametrize("first", ["single-statement read", "snapshot read"])
async def test_the_first_read_after_a_drop_succeeds(database: TestDatabase, first: str) -> None:
    async with open_store(database.url) as store:
        calls = await Calls.on(store)
        await _warm_up(calls)
        assert await drop_store_connections(database) >= 2
        await calls.all()[first]()
        assert await calls.every_kind(times=2) == Counter()


@pytest.mark.parametrize("first", ["single-statement write", "transactional write", "atom update", "transaction block"])
async def test_the_first_write_after_an_idle_drop_succeeds(database: TestDatabase, first: str) -> None:
    async with open_store(database.url) as store:
        calls = await Calls.on(store)
        await _warm_up(calls)
        before = await store.read(_count)
        assert await drop_store_connections(database) >= 2
        await calls.all()[first]()
        if first in {"single-statement write", "transaction block"}:
            assert await store.read(_count) == before + 1  # committed, once
        assert await calls.every_kind(times=2) == Counter()


async def _drop_while(database: TestDatabase, call: Awaitable[object]) -> object:
    """Run ``call``; drop the store's connections while it waits on the
    server; its result or the error it raised."""
    running: asyncio.Task[object] = asyncio.ensure_future(call)
    await asyncio.sleep(0.3)
    assert not running.done()
    await drop_store_connections(database)
    try:
        return await running
    except Exception as error:
        return error


async def test_calls_in_flight_when_the_connection_drops(database: TestDatabase) -> None:
    """A read in flight is run again; a write in flight in a transaction
    whose COMMIT was not sent is run again, once; a single statement in
    AUTOCOMMIT in flight may have committed: Unavailable, never a raw error."""
    sleep = text(_sleep_sql(database.backend, 1))

    def slow_read(connection: Connection) -> int:
        connection.execute(sleep)
        return _count(connection)

    def slow_increment(connection: Connection) -> None:
        _increment(connection)
        connection.execute(sleep)

    def slow_single_statement(connection: Connection) -> None:
        connection.execute(sleep)

    async with open_store(database.url) as store:
        before = await store.read(_count)
        assert await _drop_while(database, store.read(slow_read)) == before
        assert await _drop_while(database, store.write(slow_increment)) is None
        assert await store.read(_count) == before + 1
        outcome = await _drop_while(database, store.write(slow_single_statement, single_statement=True))
        assert outcome is None or isinstance(outcome, Unavailable), repr(outcome)
        assert await (await Calls.on(store)).every_kind() == Counter()


async def test_a_drop_inside_a_transaction_block_is_unavailable(database: TestDatabase) -> None:
    async with open_store(database.url) as store:
        calls = await Calls.on(store)
        before = await store.read(_count)
        with pytest.raises(Unavailable):
            async with store.transaction():
                await store.write(_increment)
                await drop_store_connections(database)
                await store.read(_count)
        assert await store.read(_count) == before  # rolled back with the connection
        assert await calls.every_kind() == Counter()

        before = await store.read(_count)
        with pytest.raises(Unavailable):  # the block went on after the error
            async with store.transaction():
                await drop_store_connections(database)
                with pytest.raises(Unavailable):
                    await store.read(_count)
                with pytest.raises(Unavailable, match="nothing in it"):
                    await store.write(_increment)
        assert await store.read(_count) == before
        assert await calls.every_kind() == Counter()


async def test_pre_ping_finds_connections_that_died_silently(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pre_ping=True`` turns on SQLAlchemy's pool_pre_ping and pings a held
    connection idle for a while before reusing it. To stand for a
    connection that died without the server closing it, the driver's own
    (round-trip free) check is told that every connection is fine."""
    monkeypatch.setattr(server_runner, "PING_AFTER_IDLE", 0.0)
    pings: list[bool] = []
    real_pinged = held_connections.pinged

    async def counted(connection: Any) -> bool:
        pings.append(await real_pinged(connection))
        return pings[-1]

    monkeypatch.setattr(held_connections, "pinged", counted)
    async with open_store(database.url, pre_ping=True) as store:
        assert store.runner.sync_engine.pool._pre_ping
        runner = store.runner
        assert isinstance(runner, server_runner.ServerRunner)
        monkeypatch.setattr(runner, "_clean", lambda _driver: True)
        monkeypatch.setattr(runner._held, "_clean", lambda _driver: True)
        before = await store.read(_count)
        await store.write(_increment, single_statement=True)
        await drop_store_connections(database)
        pings.clear()
        await store.write(_increment, single_statement=True)
        assert pings[0] is False  # the dead held connection, dropped before the write was sent
        assert await store.read(_count) == before + 2
        assert await (await Calls.on(store)).every_kind() == Counter()


async def test_sqlite_accepts_and_ignores_pre_ping(tmp_path: Any) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'x.db'}", create=True, pre_ping=True) as store:
        assert await store.read(_select_one) == 1


# -- 3. cancellation ----------------------------------------------------------------


async def _cancel_at_random(call: Callable[[], Awaitable[None]]) -> str:
    """Run ``call`` and cancel it at a random point, one of two ways."""
    if random.random() < 0.5:
        try:
            await asyncio.wait_for(call(), timeout=random.uniform(0, 0.004))
        except TimeoutError:
            return "timed out"
        return "completed"
    task = asyncio.ensure_future(call())
    await asyncio.sleep(random.uniform(0, 0.004))
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "completed"


async def _hold_every_connection(store: Store, connections: int) -> None:
    """``connections`` transaction blocks holding a connection each at the
    same time: only possible if no connection of the pool leaked."""
    everyone_in = asyncio.Barrier(connections)

    async def block() -> None:
        async with store.transaction():
            await store.read(_count)
            await asyncio.wait_for(everyone_in.wait(), 10)

    await asyncio.gather(*(block() for _ in range(connections)))


async def test_cancelled_calls_raise_cancelled_error_and_leave_the_store_usable(database: TestDatabase) -> None:
    async with open_store(database.url, pool_size=2, max_overflow=0, pool_timeout=10) as store:
        calls = await Calls.on(store)
        kinds = list(calls.all().items())
        outcomes: Counter[str] = Counter()
        raw: list[BaseException] = []
        for _ in range(150):
            name, call = random.choice(kinds)
            try:
                outcomes[f"{name}: {await _cancel_at_random(call)}"] += 1
            except BaseException as error:  # anything else is the defect
                raw.append(error)
        assert raw == [], outcomes
        assert sum(count for outcome, count in outcomes.items() if not outcome.endswith("completed")) > 0
        await asyncio.sleep(0.2)  # check-outs that cancelled callers left behind finish
        assert await calls.every_kind(times=20) == Counter()
        await _hold_every_connection(store, 2)


async def test_a_cancelled_transaction_block_commits_nothing(database: TestDatabase) -> None:
    async with open_store(database.url) as store:
        before = await store.read(_count)
        inside = asyncio.Event()

        async def block() -> None:
            async with store.transaction():
                await store.write(_increment)
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.ensure_future(block())
        waiting = asyncio.ensure_future(inside.wait())
        await asyncio.wait([task, waiting], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        assert inside.is_set(), task
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.read(_count) == before
        assert await (await Calls.on(store)).every_kind() == Counter()


async def test_a_call_cancelled_on_the_server_side_of_a_statement_raises_cancelled_error(
    database: TestDatabase,
) -> None:
    """Cancelled while the server runs the statement (not between round trips)."""
    sleep = text(_sleep_sql(database.backend, 5))

    def unit(connection: Connection) -> None:
        connection.execute(sleep)

    async with open_store(database.url) as store:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.read(unit, single_statement=True),
            lambda: store.read(unit),
            lambda: store.write(unit, single_statement=True),
            lambda: store.write(unit),
        ]
        for call in calls:
            task = asyncio.ensure_future(call())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 3)
        assert await (await Calls.on(store)).every_kind() == Counter()


# -- 4. tiny pools ---------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [1, 2])
async def test_a_tiny_pool_serves_concurrent_mixed_calls(database: TestDatabase, pool_size: int) -> None:
    """Held connections count within the pool and go back to it when others
    wait: no Busy, though a caller waiting pool_timeout would get one."""
    async with open_store(database.url, pool_size=pool_size, max_overflow=0, pool_timeout=3) as store:
        calls = await Calls.on(store)
        kinds = list(calls.all().values())
        for _ in range(3):
            results = await asyncio.gather(*(kinds[i % len(kinds)]() for i in range(20)), return_exceptions=True)
            assert [r for r in results if r is not None] == []
        await _hold_every_connection(store, pool_size)


# -- classification ------------------------------------------------------------------


def _lost_errors() -> list[BaseException]:
    import asyncmy.errors as my
    import asyncpg.exceptions as pg  # type: ignore[import-untyped]

    return [
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CrashShutdownError("crash"),
        pg.CannotConnectNowError("starting up"),
        pg.InterfaceError("connection is closed"),
        pg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        my.OperationalError(2006, "MySQL server has gone away"),
        my.OperationalError(2013, "Lost connection to MySQL server during query"),
        my.OperationalError(1927, "Connection was killed"),
        my.OperationalError(1053, "Server shutdown in progress"),
        my.InterfaceError(0, "Cancelled during execution"),
        sa_exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back", None, None),
    ]


@pytest.mark.parametrize("error", _lost_errors(), ids=lambda error: type(error).__name__)
def test_a_lost_connection_is_unavailable_raw_or_wrapped(error: BaseException) -> None:
    assert connection_lost(error)
    assert isinstance(classify(error), Unavailable)
    if not isinstance(error, sa_exc.SQLAlchemyError):
        wrapped = sa_exc.DBAPIError("SELECT 1", {}, error)
        assert isinstance(classify(wrapped), Unavailable)


def test_only_errors_raised_before_sending_prove_a_statement_unsent() -> None:
    import asyncmy.errors as my
    import asyncpg.exceptions as pg

    assert unsent(pg.InterfaceError("connection is closed"))
    assert unsent(my.OperationalError(2006, "MySQL server has gone away"))
    assert not unsent(pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"))
    assert not unsent(my.OperationalError(2013, "Lost connection to MySQL server during query"))


def test_an_unencodable_value_is_invalid_input() -> None:
    with pytest.raises(UnicodeEncodeError) as raised:
        "\ud800".encode()
    assert isinstance(classify(raised.value), InvalidInput)
