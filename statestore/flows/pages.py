"""Keyset pages of the flow model: cursors, page limits, and streaming every page.

Listings are ordered by row id and continue after a cursor, so a listing of
100k atoms never sits in memory at once and costs the same at its end as at
its start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, RowMapping

from statestore.core.validate import uuid_value
from statestore.errors import InvalidInput, NotFound
from statestore.flows.records import AtomDetail, FlowDetail, LogBook

__all__ = [
    "DEFAULT_PAGE",
    "Cursor",
    "Page",
    "check_cursor",
    "cursor_value",
    "keyset_after",
    "last_id",
    "page_limit",
    "stream",
]

DEFAULT_PAGE = 1000

T = TypeVar("T")
Item = TypeVar("Item", LogBook, FlowDetail, AtomDetail)

Cursor = UUID | int | None
"""Where a page starts: after the record with this uuid (the public form), or
after this row id (what ``iterate()`` uses, so a record deleted meanwhile
cannot end the iteration early), or at the start."""

Page = tuple[list[T], int | None]
"""A page of records and the row id of its last record (None if empty)."""


def page_limit(limit: int) -> int:
    """``limit`` if it is a positive integer (InvalidInput otherwise)."""
    if not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
    return limit


def cursor_value(after: UUID | str | None) -> UUID | None:
    """A public page cursor (a record's uuid, or None for the start), checked."""
    return None if after is None else uuid_value(after, "page cursor (after)")


def keyset_after(table: Table, after: Cursor) -> Any:
    """Keyset condition: rows inserted after the cursor (by id)."""
    if after is None:
        return table.c.id > 0
    if isinstance(after, int):
        return table.c.id > after
    return table.c.id > select(table.c.id).where(table.c.uuid == after).scalar_subquery()


def check_cursor(connection: Connection, table: Table, after: Cursor, what: str) -> None:
    """An empty page after a uuid cursor may mean the cursor is gone: say so."""
    if isinstance(after, UUID) and connection.execute(select(table.c.id).where(table.c.uuid == after)).first() is None:
        raise NotFound(f"{what} {after} (the page cursor) not found")


def last_id(rows: list[RowMapping]) -> int | None:
    """The row id of the last row of a page (None for an empty page)."""
    return rows[-1]["id"] if rows else None


async def stream(fetch: Callable[[Cursor], Awaitable[Page[Item]]]) -> AsyncIterator[Item]:
    """Every record, a page at a time, continuing after the last row's id:
    records deleted meanwhile neither end nor repeat the iteration."""
    after: Cursor = None
    while True:
        page, last = await fetch(after)
        for item in page:
            yield item
        if last is None:
            return
        after = last
