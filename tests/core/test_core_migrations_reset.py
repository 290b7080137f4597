"""Down to base and up again gives empty tables; the check report follows."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, func, insert, select

from statestore import Store, open_store
from statestore.schema import migrate
from statestore.schema.metadata import LogBookRow, metadata
from tests.support.backends import TestDatabase

BOOKS = cast(Table, LogBookRow.__table__)


async def _row_counts(store: Store) -> dict[str, int]:
    tables = metadata.sorted_tables
    counts = await store.read(
        lambda conn: [conn.execute(select(func.count()).select_from(table)).scalar_one() for table in tables]
    )
    return dict(zip((table.name for table in tables), counts, strict=True))


async def test_down_to_base_and_up_again_leaves_empty_tables(blank_database: TestDatabase) -> None:
    async with open_store(blank_database.url, create=True) as store:
        await store.write(lambda conn: conn.execute(insert(BOOKS), {"name": "b", "meta": {}}))
        assert (await _row_counts(store))["log_books"] == 1

        await store.downgrade("base")
        report = await store.check()
        assert report.revision is None
        assert not report.schema_at_head
        assert not report.ok

        await store.upgrade()
        counts = await _row_counts(store)
        assert counts.pop("change_feed") == 1  # the feed's bookkeeping row, seeded by its migration
        assert set(counts.values()) == {0}
        report = await store.check()
        assert report.ok, report.problems
        assert report.schema_at_head
        assert report.revision == migrate.head_revision()
        await store.runner.admin(migrate.check_models)
