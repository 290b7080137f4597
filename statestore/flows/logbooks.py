"""Logbooks: the LogBooks repository and the units it runs.

A full logbook loads in three queries whatever its size (the book, its flow
details, all their atoms); a page of full logbooks likewise. Saving upserts
the book and its flow details and merges their atoms the way a flow detail
update does, so stored children missing from the input are kept.

Every write appends its changes (:mod:`statestore.changes`) in its own
transaction, after its writes. A save appends a ``logbook.saved`` change,
then a ``flow.state`` change for each flow detail inserted (old state None)
or whose state changed — the stored flows are read locked before the upsert
for their old states — then the atoms' ``atom.state`` changes
(:func:`~statestore.flows.flow_details.merge_atoms`). Destroying a logbook,
or clearing them all, appends a ``logbook.destroyed`` change for each
logbook deleted (its flows and atoms go with it, unrecorded).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection, RowMapping

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.dialect import facts_of
from statestore.core.pages import (
    DEFAULT_PAGE,
    Cursor,
    Page,
    check_cursor,
    cursor_value,
    keyset_after,
    last_id,
    page_limit,
    stream,
)
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import type_name, uuid_value
from statestore.errors import AlreadyExists, InvalidInput, NotFound
from statestore.flows.fields import atom_values, book_values, distinct, flow_values
from statestore.flows.flow_details import merge_atoms
from statestore.flows.records import FlowDetail, LogBook
from statestore.flows.rows import BOOK_BY_UUID, atoms_by_flow, book_from_row, flow_from_row, one_row
from statestore.flows.tables import ATOMS, BOOKS, FLOWS

__all__ = ["LogBooks", "clear_all", "destroy_book", "load_book", "page_books", "save_book"]

_FLOWS_OF_BOOK = select(FLOWS).where(FLOWS.c.logbook_id == bindparam("book_id")).order_by(FLOWS.c.id)
_FLOWS_BY_UUID_LOCKED = (
    select(FLOWS.c.uuid, FLOWS.c.id, FLOWS.c.logbook_id, FLOWS.c.state)
    .where(FLOWS.c.uuid.in_(bindparam("uuids", expanding=True)))
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE on PostgreSQL: what the upsert takes
)
_ATOMS_OF_BOOK = (
    select(ATOMS)
    .join(FLOWS, ATOMS.c.flow_detail_id == FLOWS.c.id)
    .where(FLOWS.c.logbook_id == bindparam("book_id"))
    .order_by(ATOMS.c.id)
)


def load_book(connection: Connection, uuid: UUID, *, lazy: bool) -> LogBook:
    """A logbook; with its flows and their atoms unless ``lazy`` (≤ 3 queries)."""
    book = one_row(connection, BOOK_BY_UUID, "logbook", uuid)
    if lazy:
        return book_from_row(book)
    flows = connection.execute(_FLOWS_OF_BOOK, {"book_id": book["id"]}).mappings().all()
    atoms = atoms_by_flow(list(connection.execute(_ATOMS_OF_BOOK, {"book_id": book["id"]}).mappings()))
    return book_from_row(book, [flow_from_row(flow, atoms.get(flow["id"], [])) for flow in flows])


def page_books(connection: Connection, *, after: Cursor, limit: int, lazy: bool) -> Page[LogBook]:
    """Up to ``limit`` logbooks after ``after``, oldest first."""
    rows = connection.execute(
        select(BOOKS).where(keyset_after(BOOKS, after)).order_by(BOOKS.c.id).limit(limit)
    ).mappings()
    books = list(rows)
    if not books:
        check_cursor(connection, BOOKS, after, "logbook")
    if lazy or not books:
        return [book_from_row(book) for book in books], last_id(books)
    ids = [book["id"] for book in books]
    flows = connection.execute(select(FLOWS).where(FLOWS.c.logbook_id.in_(ids)).order_by(FLOWS.c.id)).mappings().all()
    atoms = atoms_by_flow(
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
    return [book_from_row(book, flows_by_book.get(book["id"], [])) for book in books], last_id(books)


def save_book(
    connection: Connection,
    book: dict[str, Any],
    flows: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]],
) -> LogBook:
    """Upsert a logbook, its flow details and their atoms; return it whole.

    Stored children missing from the input are kept: saving is a merge.
    Appends the book's, flows' and atoms' changes (see the module docstring).
    """
    now = utcnow()
    facts = facts_of(connection)
    # A timestamp the caller keeps (keep_timestamps) is also what an update sets.
    changed = ["meta", "updated_at", *(["created_at"] if "created_at" in book else [])]
    connection.execute(facts.upsert(BOOKS, "uuid", changed), {"created_at": now, "updated_at": now, **book})
    book_id = connection.execute(select(BOOKS.c.id).where(BOOKS.c.uuid == book["uuid"])).scalar_one()
    changes = [change(ChangeKind.LOGBOOK_SAVED, at=now, logbook=book["uuid"])]
    if flows:
        flow_uuids = [values["uuid"] for values, _ in flows]
        # The stored flows before the upsert, locked: their old states. A
        # flow under another logbook is refused before anything is written
        # to it (the upsert would change it there).
        stored_flows: dict[UUID, RowMapping] = {}
        for chunk in chunks(flow_uuids):
            rows = connection.execute(_FLOWS_BY_UUID_LOCKED, {"uuids": list(chunk)}).mappings()
            stored_flows.update((row["uuid"], row) for row in rows)
        _refuse_foreign_flows(stored_flows.values(), book_id)
        flow_rows = [{**values, "logbook_id": book_id, "created_at": now, "updated_at": now} for values, _ in flows]
        connection.execute(facts.upsert(FLOWS, "uuid", ["state", "meta", "updated_at"]), flow_rows)
        flow_ids = {flow_uuid: row["id"] for flow_uuid, row in stored_flows.items()}
        inserted = [flow_uuid for flow_uuid in flow_uuids if flow_uuid not in stored_flows]
        for chunk in chunks(inserted):
            new_rows = list(connection.execute(_FLOWS_BY_UUID_LOCKED, {"uuids": list(chunk)}).mappings())
            # Inserted meanwhile by another transaction, under another
            # logbook: the upsert changed it there, and all of this is rolled back.
            _refuse_foreign_flows(new_rows, book_id)
            flow_ids.update((row["uuid"], row["id"]) for row in new_rows)
        for values, _ in flows:
            stored_flow = stored_flows.get(values["uuid"])
            old = None if stored_flow is None else stored_flow["state"]
            if stored_flow is None or old != values["state"]:
                changes.append(
                    change(
                        ChangeKind.FLOW_STATE,
                        at=now,
                        logbook=book["uuid"],
                        flow=values["uuid"],
                        old=old,
                        new=values["state"],
                    )
                )
        given_atoms = [atom for _, atoms in flows for atom in atoms]
        stored: dict[UUID, RowMapping] = {}
        for chunk in chunks([atom["uuid"] for atom in given_atoms]):
            rows = connection.execute(select(ATOMS).where(ATOMS.c.uuid.in_(chunk)).with_for_update()).mappings()
            stored.update((row["uuid"], row) for row in rows)
        for values, atoms in flows:
            merged = merge_atoms(
                connection,
                flow_ids[values["uuid"]],
                stored,
                atoms,
                now,
                flow_uuid=values["uuid"],
                book_uuid=book["uuid"],
            )
            changes.extend(merged.changes)
    record(connection, changes)
    return load_book(connection, book["uuid"], lazy=False)


def _refuse_foreign_flows(rows: Iterable[RowMapping], book_id: int) -> None:
    for row in rows:
        if row["logbook_id"] != book_id:
            raise AlreadyExists(f"flow detail {row['uuid']} is stored under another logbook")


def destroy_book(connection: Connection, uuid: UUID) -> None:
    """Delete a logbook; its flow and atom details go with it (cascade).
    Appends a ``logbook.destroyed`` change."""
    now = utcnow()
    if connection.execute(delete(BOOKS).where(BOOKS.c.uuid == uuid)).rowcount == 0:
        raise NotFound(f"logbook {uuid} not found")
    record(connection, [change(ChangeKind.LOGBOOK_DESTROYED, at=now, logbook=uuid)])


def clear_all(connection: Connection) -> None:
    """Delete every logbook, flow detail and atom detail. Appends a
    ``logbook.destroyed`` change for each logbook, as its own destroy would."""
    now = utcnow()
    # RETURNING (DELETE … RETURNING exists on all three), not a read first:
    # exactly the books this statement deleted, whatever commits meanwhile.
    gone = connection.execute(delete(BOOKS).returning(BOOKS.c.uuid)).scalars().all()
    record(connection, [change(ChangeKind.LOGBOOK_DESTROYED, at=now, logbook=uuid) for uuid in gone])


class LogBooks:
    """Logbooks: save (merge) whole trees, load them, list and destroy them."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def save(self, book: LogBook, *, keep_timestamps: bool = False) -> LogBook:
        """Upsert ``book`` with its flow details and atoms; return the stored
        book, complete. Children stored earlier but missing from ``book`` are
        kept; a name is never changed by a save. Appends a ``logbook.saved``
        change, and the ``flow.state`` and ``atom.state`` changes of flows
        and atoms inserted or whose state changed.

        The store stamps the book's ``created_at`` (on insert) and
        ``updated_at``; with ``keep_timestamps``, those ``book`` sets are
        stored as given instead, on insert and on update, as TaskFlow's
        backends keep a logbook's own timestamps.
        """
        if not isinstance(keep_timestamps, bool):
            raise InvalidInput(f"keep_timestamps: expected a bool, got {type_name(keep_timestamps)}")
        values = book_values(book, keep_timestamps=keep_timestamps)
        flows = [(flow_values(flow), [atom_values(atom) for atom in flow.atoms]) for flow in book.flows]
        distinct([flow for flow, _ in flows], "flow detail")
        distinct([atom for _, atoms in flows for atom in atoms], "atom detail")
        return await self._runner.write(partial(save_book, book=values, flows=flows))

    async def get(self, uuid: UUID | str, *, lazy: bool = False) -> LogBook:
        """The logbook ``uuid``; without flow details if ``lazy`` (NotFound if missing)."""
        key = uuid_value(uuid, "logbook uuid")
        return await self._runner.read(partial(load_book, uuid=key, lazy=lazy))

    async def page(
        self, *, after: UUID | str | None = None, limit: int = DEFAULT_PAGE, lazy: bool = True
    ) -> list[LogBook]:
        """Up to ``limit`` logbooks stored after logbook ``after``, oldest
        first (NotFound if ``after`` no longer exists)."""
        return (await self._page(cursor_value(after), limit, lazy))[0]

    async def _page(self, after: Cursor, limit: int, lazy: bool) -> Page[LogBook]:
        return await self._runner.read(
            partial(page_books, after=after, limit=page_limit(limit), lazy=lazy), offload=not lazy
        )

    def iterate(self, *, lazy: bool = True, page_size: int = DEFAULT_PAGE) -> AsyncIterator[LogBook]:
        """Every logbook, oldest first, fetched ``page_size`` at a time."""
        return stream(lambda after: self._page(after, page_size, lazy))

    async def destroy(self, uuid: UUID | str) -> None:
        """Delete logbook ``uuid`` with all its flow and atom details, and
        append a ``logbook.destroyed`` change (two statements, one transaction)."""
        key = uuid_value(uuid, "logbook uuid")
        await self._runner.write(partial(destroy_book, uuid=key))

    async def clear(self) -> None:
        """Delete every logbook, flow detail and atom detail, and append a
        ``logbook.destroyed`` change for each logbook (one transaction)."""
        await self._runner.write(clear_all)
