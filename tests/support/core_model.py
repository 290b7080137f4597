"""A test-only entity on the shared base columns, on its own metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from sqlalchemy import MetaData, String, Table
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statestore import Store
from statestore.core.base import NAMING_CONVENTION, EntityColumns


class TestBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Counter(EntityColumns, TestBase):
    __tablename__ = "test_counters"

    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(default=0)


COUNTERS = cast(Table, Counter.__table__)


def _create(connection: Connection) -> None:
    with connection.begin():
        TestBase.metadata.drop_all(connection)
        TestBase.metadata.create_all(connection)


def _drop(connection: Connection) -> None:
    with connection.begin():
        TestBase.metadata.drop_all(connection)


@asynccontextmanager
async def counters_table(store: Store) -> AsyncIterator[Table]:
    """The test table, created for the block and dropped after it (server
    databases are shared between the tests of a session)."""
    await store.runner.admin(_create)
    try:
        yield COUNTERS
    finally:
        await store.runner.admin(_drop)
