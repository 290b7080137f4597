"""Keyset pages of both models: cursors, page limits, and streaming every page.

Listings are ordered by a sort key — a column, then the row id to break ties,
or the row id alone — and continue after a cursor, so a listing of 100k rows
never sits in memory at once and, when an index serves the sort key, costs the
same at its end as at its start. No OFFSET is ever used: rows inserted or
deleted meanwhile shift nothing.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Table, and_, exists, or_, select
from sqlalchemy.engine import Connection, RowMapping

from statestore.core.validate import shown, uuid_value
from statestore.errors import InvalidInput, NotFound

__all__ = [
    "BY_ID",
    "DEFAULT_PAGE",
    "Cursor",
    "Page",
    "Position",
    "SortKey",
    "check_anchors",
    "check_cursor",
    "cursor_value",
    "keyset_after",
    "last_id",
    "last_position",
    "page_limit",
    "stream",
]

DEFAULT_PAGE = 1000

T = TypeVar("T")

Position = tuple[Any, int]
"""Where a row sits in a listing ordered by a column: its value there and its row id."""

Cursor = UUID | int | Position | None
"""Where a page starts: after the record with this uuid (the public form), or
after this row id or position (what iteration uses, so a record deleted
meanwhile cannot end the iteration early), or at the start."""

Page = tuple[list[T], Cursor]
"""A page of records and where the page after it starts (None if it is empty)."""


@dataclass(frozen=True)
class SortKey:
    """The order of a listing: by ``column`` (None: by row id alone), ties
    by row id, both ascending or both descending. ``column`` must be NOT NULL."""

    column: str | None = None
    descending: bool = False

    def order_by(self, table: Table) -> list[Any]:
        """The ORDER BY terms of this key on ``table``."""
        columns = [table.c.id] if self.column is None else [table.c[self.column], table.c.id]
        return [column.desc() for column in columns] if self.descending else list(columns)


BY_ID = SortKey()
"""Oldest first: by row id."""


def page_limit(limit: object, maximum: int | None = None) -> int:
    """``limit`` if it is a positive integer, at most ``maximum`` if given (InvalidInput otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1 or (maximum is not None and limit > maximum):
        wanted = "a positive integer" if maximum is None else f"an integer from 1 to {maximum}"
        raise InvalidInput(f"limit must be {wanted}, got {shown(limit)}")
    return limit


def cursor_value(after: UUID | str | None) -> UUID | None:
    """A public page cursor (a record's uuid, or None for the start), checked."""
    return None if after is None else uuid_value(after, "page cursor (after)")


def keyset_after(table: Table, after: Cursor, key: SortKey = BY_ID) -> ColumnElement[bool]:
    """Keyset condition: the rows after the cursor in the order of ``key``.

    A uuid cursor is looked up by subquery (a unique index probe); if no row
    has it, the condition holds for no row. Ordered by a column, the condition
    also bounds that column alone, so an index on it serves a range scan.
    """
    if after is None:
        return table.c.id > 0
    beyond: Callable[[Any, Any], ColumnElement[bool]] = operator.lt if key.descending else operator.gt
    if isinstance(after, int):
        if key.column is not None:
            raise TypeError("a row id cursor needs a listing ordered by row id")
        return beyond(table.c.id, after)
    if isinstance(after, UUID):
        of_cursor = select(table.c.id).where(table.c.uuid == after).correlate(None).scalar_subquery()
        if key.column is None:
            return beyond(table.c.id, of_cursor)
        value: Any = select(table.c[key.column]).where(table.c.uuid == after).correlate(None).scalar_subquery()
        last: Any = of_cursor
    else:
        if key.column is None:
            raise TypeError("a position cursor needs a listing ordered by a column")
        value, last = after
    column = table.c[key.column]
    within: Callable[[Any, Any], ColumnElement[bool]] = operator.le if key.descending else operator.ge
    return and_(within(column, value), or_(beyond(column, value), and_(column == value, beyond(table.c.id, last))))


def check_cursor(connection: Connection, table: Table, after: Cursor, what: str) -> None:
    """An empty page after a uuid cursor may mean the cursor is gone: say so."""
    if isinstance(after, UUID) and connection.execute(select(table.c.id).where(table.c.uuid == after)).first() is None:
        raise NotFound(f"{what} {after} (the page cursor) not found")


def check_anchors(
    connection: Connection,
    table: Table,
    after: Cursor,
    what: str,
    parents: Mapping[str, ColumnElement[bool]] | None = None,
) -> None:
    """Why a page came back empty, in at most one query: NotFound naming the
    first of ``parents`` (message → condition a row of it meets) that no row
    meets, else the uuid cursor if no ``table`` row has it."""
    checks: dict[str, ColumnElement[bool]] = dict(parents or {})
    if isinstance(after, UUID):
        checks[f"{what} {after} (the page cursor) not found"] = table.c.uuid == after
    if not checks:
        return
    found: Sequence[Any] = connection.execute(
        select(*(exists().where(condition) for condition in checks.values()))
    ).one()
    for message, present in zip(checks, found, strict=True):
        if not present:
            raise NotFound(message)


def last_id(rows: list[RowMapping]) -> int | None:
    """The row id of the last row of a page (None for an empty page)."""
    return rows[-1]["id"] if rows else None


def last_position(rows: Sequence[RowMapping], key: SortKey) -> Cursor:
    """Where the page after ``rows`` starts in the order of ``key`` (None for an empty page)."""
    if not rows:
        return None
    if key.column is None:
        return int(rows[-1]["id"])
    return (rows[-1][key.column], int(rows[-1]["id"]))


async def stream(fetch: Callable[[Cursor], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Every record, a page at a time, continuing after the last row's
    position: records deleted meanwhile neither end nor repeat the iteration."""
    after: Cursor = None
    while True:
        page, last = await fetch(after)
        for item in page:
            yield item
        if last is None:
            return
        after = last
