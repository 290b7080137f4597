"""Read units of the flow model: a fixed number of queries, whatever the size.

A full logbook is three queries (book, its flows, all their atoms), a full flow
detail two; listings are keyset pages so 100k atoms never sit in memory at once.
Statements are built once at import and reused, which keeps SQLAlchemy's
compiled cache warm and skips per-call construction.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import Select

from statestore.errors import NotFound
from statestore.flows.codec import atom_from_row, book_from_row, flow_from_row
from statestore.flows.records import AtomDetail, FlowDetail, LogBook
from statestore.flows.tables import AtomDetailRow, FlowDetailRow, LogBookRow

__all__ = [
    "load_atom",
    "load_book",
    "load_flow",
    "load_flow_atoms",
    "page_atoms",
    "page_books",
    "page_flows",
]

T = TypeVar("T")

BOOKS = cast(Table, LogBookRow.__table__)
FLOWS = cast(Table, FlowDetailRow.__table__)
ATOMS = cast(Table, AtomDetailRow.__table__)

_BOOK = select(BOOKS).where(BOOKS.c.uuid == bindparam("uuid"))
_FLOWS_OF_BOOK = select(FLOWS).where(FLOWS.c.logbook_id == bindparam("book_id")).order_by(FLOWS.c.id)
_ATOMS_OF_BOOK = (
    select(ATOMS)
    .join(FLOWS, ATOMS.c.flow_detail_id == FLOWS.c.id)
    .where(FLOWS.c.logbook_id == bindparam("book_id"))
    .order_by(ATOMS.c.id)
)
_FLOW = select(FLOWS).where(FLOWS.c.uuid == bindparam("uuid"))
_ATOMS_OF_FLOW = select(ATOMS).where(ATOMS.c.flow_detail_id == bindparam("flow_id")).order_by(ATOMS.c.id)
_ATOM = select(ATOMS).where(ATOMS.c.uuid == bindparam("uuid"))


def _one(connection: Connection, statement: Select[Any], what: str, uuid: UUID) -> RowMapping:
    row = connection.execute(statement, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"{what} {uuid} not found")
    return row


def _atoms_by_flow(rows: list[RowMapping]) -> dict[int, list[AtomDetail]]:
    grouped: dict[int, list[AtomDetail]] = defaultdict(list)
    for row in rows:
        grouped[row["flow_detail_id"]].append(atom_from_row(row))
    return grouped


def load_book(connection: Connection, uuid: UUID, *, lazy: bool) -> LogBook:
    """A logbook; with its flows and their atoms unless ``lazy`` (≤ 3 queries)."""
    book = _one(connection, _BOOK, "logbook", uuid)
    if lazy:
        return book_from_row(book)
    flows = connection.execute(_FLOWS_OF_BOOK, {"book_id": book["id"]}).mappings().all()
    atoms = _atoms_by_flow(list(connection.execute(_ATOMS_OF_BOOK, {"book_id": book["id"]}).mappings()))
    return book_from_row(book, [flow_from_row(flow, atoms.get(flow["id"], [])) for flow in flows])


def load_flow(connection: Connection, uuid: UUID, *, lazy: bool) -> FlowDetail:
    """A flow detail; with its atoms unless ``lazy`` (≤ 2 queries)."""
    flow = _one(connection, _FLOW, "flow detail", uuid)
    if lazy:
        return flow_from_row(flow)
    return flow_from_row(flow, load_flow_atoms(connection, flow["id"]))


def load_flow_atoms(connection: Connection, flow_id: int) -> list[AtomDetail]:
    """Every atom of the flow with primary key ``flow_id``, in insertion order."""
    return [atom_from_row(row) for row in connection.execute(_ATOMS_OF_FLOW, {"flow_id": flow_id}).mappings()]


def load_atom(connection: Connection, uuid: UUID) -> AtomDetail:
    """One atom detail (1 query)."""
    return atom_from_row(_one(connection, _ATOM, "atom detail", uuid))


Cursor = UUID | int | None
"""Where a page starts: after the record with this uuid (the public form), or
after this row id (what ``iterate()`` uses, so a record deleted meanwhile
cannot end the iteration early), or at the start."""

Page = tuple[list[T], int | None]
"""A page of records and the row id of its last record (None if empty)."""


def _after(table: Any, after: Cursor) -> Any:
    """Keyset condition: rows inserted after the cursor (by id)."""
    if after is None:
        return table.c.id > 0
    if isinstance(after, int):
        return table.c.id > after
    return table.c.id > select(table.c.id).where(table.c.uuid == after).scalar_subquery()


def _check_cursor(connection: Connection, table: Any, after: Cursor, what: str) -> None:
    """An empty page after a uuid cursor may mean the cursor is gone: say so."""
    if isinstance(after, UUID) and connection.execute(select(table.c.id).where(table.c.uuid == after)).first() is None:
        raise NotFound(f"{what} {after} (the page cursor) not found")


def _last_id(rows: list[RowMapping]) -> int | None:
    return rows[-1]["id"] if rows else None


def _require(connection: Connection, statement: Select[Any], what: str, uuid: UUID) -> None:
    _one(connection, statement, what, uuid)


def page_books(connection: Connection, *, after: Cursor, limit: int, lazy: bool) -> Page[LogBook]:
    """Up to ``limit`` logbooks after ``after``, oldest first."""
    rows = connection.execute(select(BOOKS).where(_after(BOOKS, after)).order_by(BOOKS.c.id).limit(limit)).mappings()
    books = list(rows)
    if not books:
        _check_cursor(connection, BOOKS, after, "logbook")
    if lazy or not books:
        return [book_from_row(book) for book in books], _last_id(books)
    ids = [book["id"] for book in books]
    flows = connection.execute(select(FLOWS).where(FLOWS.c.logbook_id.in_(ids)).order_by(FLOWS.c.id)).mappings().all()
    atoms = _atoms_by_flow(
        list(
            connection.execute(
                select(ATOMS)
                .join(FLOWS, ATOMS.c.flow_detail_id == FLOWS.c.id)
                .where(FLOWS.c.logbook_id.in_(ids))
                .order_by(ATOMS.c.id)
            ).mappings()
        )
    )
    flows_by_book: dict[int, list[FlowDetail]] = defaultdict(list)
    for flow in flows:
        flows_by_book[flow["logbook_id"]].append(flow_from_row(flow, atoms.get(flow["id"], [])))
    return [book_from_row(book, flows_by_book.get(book["id"], [])) for book in books], _last_id(books)


def page_flows(connection: Connection, book_uuid: UUID, *, after: Cursor, limit: int, lazy: bool) -> Page[FlowDetail]:
    """Up to ``limit`` flow details of a logbook after ``after``, oldest first."""
    book_id = select(BOOKS.c.id).where(BOOKS.c.uuid == book_uuid).scalar_subquery()
    flows = list(
        connection.execute(
            select(FLOWS).where(FLOWS.c.logbook_id == book_id, _after(FLOWS, after)).order_by(FLOWS.c.id).limit(limit)
        ).mappings()
    )
    if not flows:
        _require(connection, _BOOK, "logbook", book_uuid)
        _check_cursor(connection, FLOWS, after, "flow detail")
        return [], None
    if lazy:
        return [flow_from_row(flow) for flow in flows], _last_id(flows)
    ids = [flow["id"] for flow in flows]
    atoms = _atoms_by_flow(
        list(connection.execute(select(ATOMS).where(ATOMS.c.flow_detail_id.in_(ids)).order_by(ATOMS.c.id)).mappings())
    )
    return [flow_from_row(flow, atoms.get(flow["id"], [])) for flow in flows], _last_id(flows)


def page_atoms(connection: Connection, flow_uuid: UUID, *, after: Cursor, limit: int) -> Page[AtomDetail]:
    """Up to ``limit`` atom details of a flow detail after ``after``, oldest first."""
    flow_id = select(FLOWS.c.id).where(FLOWS.c.uuid == flow_uuid).scalar_subquery()
    rows = list(
        connection.execute(
            select(ATOMS)
            .where(ATOMS.c.flow_detail_id == flow_id, _after(ATOMS, after))
            .order_by(ATOMS.c.id)
            .limit(limit)
        ).mappings()
    )
    if not rows:
        _require(connection, _FLOW, "flow detail", flow_uuid)
        _check_cursor(connection, ATOMS, after, "atom detail")
    return [atom_from_row(row) for row in rows], _last_id(rows)
