"""Migrations on every backend: one head, up/down/up, no drift from the models."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from statestore import SchemaOutOfDate, open_store
from statestore.schema import migrate
from statestore.schema.metadata import metadata
from statestore.store import open_store_unchecked
from tests.support.backends import TestDatabase


def test_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(migrate._config()).get_heads()
    assert heads == [migrate.head_revision()]


async def test_opening_a_blank_database_without_create_is_refused(blank_database: TestDatabase) -> None:
    with pytest.raises(SchemaOutOfDate, match="no statestore schema"):
        async with open_store(blank_database.url):
            pass


async def test_upgrade_downgrade_upgrade_and_no_drift(blank_database: TestDatabase) -> None:
    tables = {table.name for table in metadata.sorted_tables}
    async with open_store(blank_database.url, create=True) as store:
        assert await store.schema_revision() == migrate.head_revision()
        await store.runner.admin(migrate.check_models)  # raises if models and schema differ
        report = await store.check()
        assert report.ok, report.problems
        assert report.schema_at_head
        assert report.foreign_keys_enforced

        await store.downgrade("base")
        assert await store.schema_revision() is None
        present = await store.runner.admin(lambda conn: set(inspect(conn).get_table_names()))
        assert not tables & present
        report = await store.check()
        assert not report.ok

        await store.upgrade()
        present = await store.runner.admin(lambda conn: set(inspect(conn).get_table_names()))
        assert tables <= present
        await store.runner.admin(migrate.check_models)
        await store.upgrade()  # idempotent
        assert await store.schema_revision() == migrate.head_revision()


async def test_a_database_behind_the_code_is_refused(blank_database: TestDatabase) -> None:
    async with open_store_unchecked(blank_database.url) as store:
        await store.upgrade()
        await store.downgrade("base")
        with pytest.raises(SchemaOutOfDate):
            await store.ensure_schema_current()
    if blank_database.backend != "sqlite-memory":  # memory does not outlive its store
        with pytest.raises(SchemaOutOfDate):
            async with open_store(blank_database.url):
                pass


async def test_the_revision_is_recorded_in_statestore_version(blank_database: TestDatabase) -> None:
    """Not in alembic's default alembic_version, which another alembic user of
    the database (TaskFlow's SQL backend) keeps its own revision in."""

    def versions(conn: Connection) -> tuple[set[str], list[str]]:
        rows = conn.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalars()
        return set(inspect(conn).get_table_names()), list(rows)

    async with open_store(blank_database.url, create=True) as store:
        present, recorded = await store.runner.admin(versions)
        assert recorded == [migrate.head_revision()]
        assert migrate.LEGACY_VERSION_TABLE not in present
        await store.downgrade("base")
        present, recorded = await store.runner.admin(versions)
        assert recorded == []
        assert migrate.LEGACY_VERSION_TABLE not in present
