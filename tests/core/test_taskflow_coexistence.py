"""statestore's schema beside TaskFlow's own SQLAlchemy schema in one database.

TaskFlow's SQL backend makes ``logbooks``, ``flowdetails`` and
``atomdetails``, and on PostgreSQL and MariaDB records its revision in
alembic's default ``alembic_version``. statestore's tables are ``log_books``,
``flow_details`` and ``atom_details`` and its revision is in
``statestore_version``, so either can be migrated first and neither reads or
changes the other's. A database made by an earlier statestore (``logbooks``,
revision in ``alembic_version``) is moved to that layout by its next upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url
from taskflow.persistence import backends, models
from taskflow.persistence.backends.sqlalchemy import migration as taskflow_migration

from statestore import SchemaOutOfDate, Store, open_store
from statestore.errors import NotFound
from statestore.flows import AtomDetail, FlowDetail, LogBook
from statestore.schema import migrate
from statestore.schema.metadata import metadata
from statestore.store import open_store_unchecked
from tests.support import legacy_layout
from tests.support.backends import SERVER_ENV, TestDatabase, discard_database, new_database

T = TypeVar("T")

TASKFLOW_TABLES = {"logbooks", "flowdetails", "atomdetails"}
STATESTORE_TABLES = {table.name for table in metadata.sorted_tables}


def _taskflow_head() -> str:
    head = ScriptDirectory.from_config(taskflow_migration._make_alembic_config()).get_current_head()
    assert head is not None
    return head


TASKFLOW_HEAD = _taskflow_head()
SYNC_DRIVERS = {"sqlite-file": "sqlite", "postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}
"""The drivers TaskFlow's synchronous SQLAlchemy backend uses for each backend."""


def test_the_table_names_no_longer_collide() -> None:
    assert not TASKFLOW_TABLES & STATESTORE_TABLES
    assert "log_books" in STATESTORE_TABLES


@pytest.fixture
def shared_database(blank_database: TestDatabase) -> TestDatabase:
    """A blank database TaskFlow's own backend can open beside a store."""
    if blank_database.backend == "sqlite-memory":
        pytest.skip("a SQLite database in memory belongs to one connection: TaskFlow's backend cannot share it")
    return blank_database


def taskflow_url(database: TestDatabase) -> str:
    """The URL TaskFlow's own SQLAlchemy backend takes for ``database``."""
    url = make_url(database.url).set(drivername=SYNC_DRIVERS[database.backend])
    return url.render_as_string(hide_password=False)


def _on_taskflow(url: str, action: Callable[[Any], T]) -> T:
    backend = backends.fetch({"connection": url})
    try:
        with contextlib.closing(backend.get_connection()) as connection:
            return action(connection)
    finally:
        backend.close()


def _taskflow_save(connection: Any) -> str:
    """Migrate TaskFlow's schema and save a logbook of one flow with one task."""
    connection.upgrade()
    book = models.LogBook("taskflow-book")
    flow = models.FlowDetail("taskflow-flow", uuid.uuid4().hex)
    task = models.TaskDetail("taskflow-task", uuid.uuid4().hex)
    task.results = {"made": "by taskflow"}
    flow.add(task)
    book.add(flow)
    connection.save_logbook(book)
    return str(book.uuid)


def _taskflow_read(connection: Any) -> list[tuple[str, str, str, Any]]:
    """Every logbook TaskFlow's backend reads: book, flow, task and its results."""
    return [
        (book.name, flow.name, atom.name, atom.results)
        for book in connection.get_logbooks()
        for flow in book
        for atom in flow
    ]


async def taskflow(url: str, action: Callable[[Any], T]) -> T:
    """Run ``action`` on a connection of TaskFlow's own (synchronous) backend."""
    return await asyncio.to_thread(_on_taskflow, url, action)


TASKFLOW_BOOKS = [("taskflow-book", "taskflow-flow", "taskflow-task", {"made": "by taskflow"})]


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _contents(book: LogBook) -> tuple[Any, ...]:
    return (
        book.uuid,
        book.name,
        book.meta,
        [(flow.uuid, flow.name, [(atom.uuid, atom.name, atom.results) for atom in flow.atoms]) for flow in book.flows],
    )


async def _statestore_works(store: Store, name: str) -> LogBook:
    """The schema is at head, sound and as the models say; a logbook goes in and comes back."""
    report = await store.check()
    assert report.ok, report.problems
    assert report.revision == migrate.head_revision()
    await store.runner.admin(migrate.check_models)  # raises on drift
    book = LogBook(name, meta={"k": 1}, flows=[FlowDetail("f", atoms=[AtomDetail("a", results=[1.5])])])
    await store.logbooks.save(book)
    assert _contents(await store.logbooks.get(book.uuid)) == _contents(book)
    return book


async def _versions_kept_apart(store: Store, backend: str) -> None:
    """statestore's revision is in statestore_version; on servers TaskFlow's is
    still alone in alembic_version (on SQLite TaskFlow keeps none)."""
    assert await store.runner.admin(partial(legacy_layout.versions, table=migrate.VERSION_TABLE)) == [
        migrate.head_revision()
    ]
    present = await store.runner.admin(_tables)
    if backend in SERVER_ENV:
        versions = await store.runner.admin(partial(legacy_layout.versions, table=migrate.LEGACY_VERSION_TABLE))
        assert versions == [TASKFLOW_HEAD]
    else:
        assert migrate.LEGACY_VERSION_TABLE not in present
    assert present >= TASKFLOW_TABLES | STATESTORE_TABLES


async def test_statestore_upgrades_a_database_taskflow_made(shared_database: TestDatabase) -> None:
    url = taskflow_url(shared_database)
    await taskflow(url, _taskflow_save)
    async with open_store(shared_database.url, create=True) as store:
        assert await store.schema_revision() == migrate.head_revision()  # not TaskFlow's revision
        book = await _statestore_works(store, "statestore-book")
        await _versions_kept_apart(store, shared_database.backend)
    assert await taskflow(url, _taskflow_read) == TASKFLOW_BOOKS
    await taskflow(url, lambda connection: connection.upgrade())  # TaskFlow finds its revision where it left it
    async with open_store(shared_database.url) as store:
        assert _contents(await store.logbooks.get(book.uuid)) == _contents(book)
        await _versions_kept_apart(store, shared_database.backend)


async def test_taskflow_upgrades_a_database_statestore_made(shared_database: TestDatabase) -> None:
    url = taskflow_url(shared_database)
    async with open_store(shared_database.url, create=True) as store:
        book = await _statestore_works(store, "statestore-book")
    await taskflow(url, _taskflow_save)
    assert await taskflow(url, _taskflow_read) == TASKFLOW_BOOKS
    async with open_store(shared_database.url) as store:  # still at head: opens without create
        assert _contents(await store.logbooks.get(book.uuid)) == _contents(book)
        await _statestore_works(store, "another-book")
        await _versions_kept_apart(store, shared_database.backend)
    assert await taskflow(url, _taskflow_read) == TASKFLOW_BOOKS


async def test_downgrade_to_base_and_up_again_leaves_taskflow_alone(shared_database: TestDatabase) -> None:
    url = taskflow_url(shared_database)
    await taskflow(url, _taskflow_save)
    async with open_store(shared_database.url, create=True) as store:
        await _statestore_works(store, "statestore-book")
        await store.downgrade("base")
        assert await store.schema_revision() is None
        present = await store.runner.admin(_tables)
        assert present >= TASKFLOW_TABLES
        assert not STATESTORE_TABLES & present
        assert await taskflow(url, _taskflow_read) == TASKFLOW_BOOKS
        await store.upgrade()
        await _statestore_works(store, "statestore-book")
        await _versions_kept_apart(store, shared_database.backend)
    assert await taskflow(url, _taskflow_read) == TASKFLOW_BOOKS


# --------------------------------------------------------------------------- an earlier statestore's database


def _shape(connection: Connection) -> dict[str, Any]:
    """What the flow tables are made of, by name: columns (with defaults, so a
    PostgreSQL id sequence's name), keys, constraints and indexes; on SQLite
    also the stored statements, quotes aside (a rebuilt table is renamed into place)."""
    inspector = inspect(connection)
    shape: dict[str, Any] = {}
    for table in ("log_books", "flow_details", "atom_details"):
        shape[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column.get("default"))
                for column in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table)["name"],
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "foreign keys": sorted(
                (fk["name"], fk["referred_table"], tuple(fk["constrained_columns"]), fk["options"].get("ondelete"))
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (str(i["name"]), tuple(map(str, i["column_names"]))) for i in inspector.get_indexes(table)
            ),
            "checks": sorted(str(check["name"]) for check in inspector.get_check_constraints(table)),
        }
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE tbl_name IN ('log_books', 'flow_details', 'atom_details')"
        )
        shape["statements"] = sorted((name, (sql or "").replace('"', "")) for name, sql in rows)
    return shape


async def _fresh_shape(backend: str, directory: Path) -> dict[str, Any]:
    """The shape of the flow tables in a database made by today's migrations."""
    database = await new_database(backend, directory)
    try:
        async with open_store(database.url, create=True) as store:
            return await store.runner.admin(_shape)
    finally:
        await discard_database(database)


async def _legacy_moved(store: Store, ids: tuple[uuid.UUID, uuid.UUID, uuid.UUID], fresh: dict[str, Any]) -> None:
    """After the upgrade: today's layout, exactly as a new database has it,
    with the legacy rows in it, and a store that works on it."""
    assert await store.schema_revision() == migrate.head_revision()
    present = await store.runner.admin(_tables)
    assert {"log_books", migrate.VERSION_TABLE} <= present
    assert not {"logbooks", migrate.LEGACY_VERSION_TABLE} & present
    assert await store.runner.admin(_shape) == fresh
    book_uuid, flow_uuid, atom_uuid = ids
    book = await store.logbooks.get(book_uuid)
    assert (book.name, book.meta) == ("legacy", {"k": 1.5})
    (flow,) = book.flows
    assert (flow.uuid, flow.name, flow.state) == (flow_uuid, "legacy-flow", "SUCCESS")
    assert [(atom.uuid, atom.name, atom.results) for atom in flow.atoms] == [
        (atom_uuid, "legacy-atom", {"out": [1, 2.5]})
    ]
    await _statestore_works(store, "after-the-move")
    await store.logbooks.destroy(book_uuid)  # the foreign keys cascade as before
    with pytest.raises(NotFound):
        await store.flow_details.get(flow_uuid)
    await store.downgrade("base")
    assert not STATESTORE_TABLES & await store.runner.admin(_tables)
    await store.upgrade()
    await _statestore_works(store, "after-down-and-up")


@pytest.fixture
def fresh_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Not the blank database's directory: its SQLite file would be the same."""
    return tmp_path_factory.mktemp("fresh")


@pytest.mark.parametrize("legacy_revision", ["0003_jobs_created_at", "0006_changes"])
async def test_an_earlier_statestores_database_is_moved_to_the_new_layout(
    blank_database: TestDatabase, legacy_revision: str, fresh_directory: Path
) -> None:
    """From before 0004 too, which then acts on the legacy table's name."""
    fresh = await _fresh_shape(blank_database.backend, fresh_directory)
    ids = (uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    async with open_store_unchecked(blank_database.url) as store:
        await store.runner.admin(partial(legacy_layout.build, revision=legacy_revision), foreign_keys_off=True)
        await store.runner.admin(partial(legacy_layout.write_book, book=ids[0], flow=ids[1], atom=ids[2]))
        # Reading understands the legacy version table and leaves it as it is.
        assert await store.schema_revision() == legacy_revision
        report = await store.check()
        assert report.revision == legacy_revision
        assert report.problems == (
            f"schema at revision {legacy_revision}, this statestore expects {migrate.head_revision()}",
        )
        with pytest.raises(SchemaOutOfDate, match=f"is at schema revision {legacy_revision}, "):
            await store.ensure_schema_current()
        present = await store.runner.admin(_tables)
        assert {"logbooks", migrate.LEGACY_VERSION_TABLE} <= present
        assert not {"log_books", migrate.VERSION_TABLE} & present

        await store.upgrade()
        if blank_database.backend == "sqlite-memory":  # gone with its store
            await _legacy_moved(store, ids, fresh)
    if blank_database.backend != "sqlite-memory":
        # A new store: on PostgreSQL, statements prepared before the renames
        # are invalid after them.
        async with open_store(blank_database.url) as store:
            await _legacy_moved(store, ids, fresh)


async def test_an_earlier_statestores_database_goes_down_to_base(blank_database: TestDatabase) -> None:
    """Downgrading it before any upgrade: 0001 drops the table under its legacy name."""
    async with open_store_unchecked(blank_database.url) as store:
        await store.runner.admin(partial(legacy_layout.build, revision="0006_changes"), foreign_keys_off=True)
        await store.downgrade("base")
        assert await store.schema_revision() is None
        present = await store.runner.admin(_tables)
        assert not (STATESTORE_TABLES | {"logbooks", migrate.LEGACY_VERSION_TABLE}) & present
        await store.upgrade()
        await _statestore_works(store, "book")


async def test_a_foreign_revision_in_alembic_version_is_left_alone(blank_database: TestDatabase) -> None:
    """Another application's revision (TaskFlow's, here alone) is not
    statestore's: not read as its revision, not moved, not removed."""
    async with open_store_unchecked(blank_database.url) as store:
        await store.runner.admin(partial(_record, revisions=[TASKFLOW_HEAD]))
        assert await store.schema_revision() is None
        await store.upgrade()
        assert await store.schema_revision() == migrate.head_revision()
        versions = await store.runner.admin(partial(legacy_layout.versions, table=migrate.LEGACY_VERSION_TABLE))
        assert versions == [TASKFLOW_HEAD]
        await _statestore_works(store, "book")
        await store.downgrade("base")
        versions = await store.runner.admin(partial(legacy_layout.versions, table=migrate.LEGACY_VERSION_TABLE))
        assert versions == [TASKFLOW_HEAD]


async def test_only_statestores_revision_is_moved_out_of_alembic_version(blank_database: TestDatabase) -> None:
    async with open_store_unchecked(blank_database.url) as store:
        await store.runner.admin(partial(legacy_layout.build, revision="0006_changes"), foreign_keys_off=True)
        await store.runner.admin(partial(_record, revisions=[TASKFLOW_HEAD]))
        assert await store.schema_revision() == "0006_changes"
        await store.upgrade()
        assert await store.schema_revision() == migrate.head_revision()
        versions = await store.runner.admin(partial(legacy_layout.versions, table=migrate.LEGACY_VERSION_TABLE))
        assert versions == [TASKFLOW_HEAD]
        versions = await store.runner.admin(partial(legacy_layout.versions, table=migrate.VERSION_TABLE))
        assert versions == [migrate.head_revision()]


def _record(connection: Connection, revisions: list[str]) -> None:
    """Add ``revisions`` to alembic_version (made if missing), committed."""
    with connection.begin():
        legacy_layout.VERSIONS.create(connection, checkfirst=True)
        connection.execute(legacy_layout.VERSIONS.insert(), [{"version_num": revision} for revision in revisions])
