"""Flow details: the FlowDetails repository, the units it runs, and the atom merge.

A full flow detail loads in two queries (its row, then all its atoms).
Updating one reads its row locked (the state it replaces, and its logbook's
uuid, read unlocked by a subquery), updates it by key, reads its atoms once
(locked), and writes only the atoms that are new or differ from what is
stored, where TaskFlow's SQL backend rewrites every atom of the flow each
time. Saving a logbook merges its flows' atoms the same way
(:func:`merge_atoms`).

The same transaction appends the changes (:mod:`statestore.changes`): a
``flow.state`` change when the flow's state changed, an ``atom.state`` change
for each atom inserted (old state None) or whose state changed — appended
after the writes, in the order the atoms were given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import BindParameter

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
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
from statestore.core.types import dump_json, utcnow
from statestore.core.validate import uuid_value
from statestore.errors import AlreadyExists, InvalidInput, NotFound
from statestore.flows.atom_details import ATOM_SET, atom_params
from statestore.flows.fields import MUTABLE_ATOM_COLUMNS, atom_values, distinct, flow_values
from statestore.flows.records import AtomDetail, FlowDetail
from statestore.flows.rows import BOOK_BY_UUID, FLOW_BY_UUID, atom_from_row, atoms_by_flow, flow_from_row, one_row
from statestore.flows.tables import ATOMS, BOOKS, FLOWS

__all__ = ["FlowDetails", "Merged", "load_flow", "load_flow_atoms", "merge_atoms", "page_flows", "update_flow"]

_ATOMS_OF_FLOW = select(ATOMS).where(ATOMS.c.flow_detail_id == bindparam("flow_id")).order_by(ATOMS.c.id)
_ATOMS_OF_FLOW_LOCKED = _ATOMS_OF_FLOW.with_for_update()
_UPDATE_ATOM_BY_UUID = update(ATOMS).where(ATOMS.c.uuid == bindparam("b_uuid")).values(ATOM_SET)

_FLOW_SET: dict[str, BindParameter[Any]] = {
    "state": bindparam("state"),
    "meta": bindparam("meta"),
    "updated_at": bindparam("updated_at"),
}
_UPDATE_FLOW_BY_ID = update(FLOWS).where(FLOWS.c.id == bindparam("b_id")).values(_FLOW_SET)
_JSON_COLUMNS = frozenset({"results", "failure", "revert_results", "revert_failure", "meta"})
# The row a flow update replaces, locked as the UPDATE would lock it (FOR NO
# KEY UPDATE on PostgreSQL: atoms inserted under the flow meanwhile only
# take KEY SHARE on it). The logbook's uuid comes from a subquery in the
# select list, which neither PostgreSQL nor MariaDB locks (a join would lock
# the logbook's row too on MariaDB, which has no FOR UPDATE OF).
_FLOW_LOCKED = (
    select(
        FLOWS.c.id,
        FLOWS.c.name,
        FLOWS.c.created_at,
        FLOWS.c.state,
        select(BOOKS.c.uuid).where(BOOKS.c.id == FLOWS.c.logbook_id).scalar_subquery().label("logbook_uuid"),
    )
    .where(FLOWS.c.uuid == bindparam("uuid"))
    .with_for_update(key_share=True)
)


def load_flow(connection: Connection, uuid: UUID, *, lazy: bool) -> FlowDetail:
    """A flow detail; with its atoms unless ``lazy`` (≤ 2 queries)."""
    flow = one_row(connection, FLOW_BY_UUID, "flow detail", uuid)
    if lazy:
        return flow_from_row(flow)
    return flow_from_row(flow, load_flow_atoms(connection, flow["id"]))


def load_flow_atoms(connection: Connection, flow_id: int) -> list[AtomDetail]:
    """Every atom of the flow with primary key ``flow_id``, in insertion order."""
    return [atom_from_row(row) for row in connection.execute(_ATOMS_OF_FLOW, {"flow_id": flow_id}).mappings()]


def page_flows(connection: Connection, book_uuid: UUID, *, after: Cursor, limit: int, lazy: bool) -> Page[FlowDetail]:
    """Up to ``limit`` flow details of a logbook after ``after``, oldest first."""
    book_id = select(BOOKS.c.id).where(BOOKS.c.uuid == book_uuid).scalar_subquery()
    flows = list(
        connection.execute(
            select(FLOWS)
            .where(FLOWS.c.logbook_id == book_id, keyset_after(FLOWS, after))
            .order_by(FLOWS.c.id)
            .limit(limit)
        ).mappings()
    )
    if not flows:
        one_row(connection, BOOK_BY_UUID, "logbook", book_uuid)
        check_cursor(connection, FLOWS, after, "flow detail")
        return [], None
    if lazy:
        return [flow_from_row(flow) for flow in flows], last_id(flows)
    ids = [flow["id"] for flow in flows]
    atoms = atoms_by_flow(
        list(connection.execute(select(ATOMS).where(ATOMS.c.flow_detail_id.in_(ids)).order_by(ATOMS.c.id)).mappings())
    )
    return [flow_from_row(flow, atoms.get(flow["id"], [])) for flow in flows], last_id(flows)


def _differs(row: RowMapping, values: dict[str, Any]) -> bool:
    """Whether merging ``values`` changes the stored ``row``. JSON columns
    are compared as their text: ``==`` takes 1.0 for 1, True for 1 and -0.0
    for 0.0, and the change would not be written."""
    for name in MUTABLE_ATOM_COLUMNS:
        old, new = row[name], values[name]
        if old != new or (name in _JSON_COLUMNS and dump_json(old) != dump_json(new)):
            return True
    return False


class Merged(NamedTuple):
    """What :func:`merge_atoms` wrote, and the changes it leaves to record."""

    new: list[dict[str, Any]]
    """Rows inserted."""
    changed: dict[UUID, dict[str, Any]]
    """Values of the atoms updated, by uuid."""
    changes: list[dict[str, Any]]
    """``atom.state`` changes (:func:`~statestore.changes.recording.change`)
    of atoms inserted or whose state changed, in the order given; the caller
    records them with its own."""


def merge_atoms(
    connection: Connection,
    flow_id: int,
    stored: dict[UUID, RowMapping],
    given: Sequence[dict[str, Any]],
    now: datetime,
    *,
    flow_uuid: UUID,
    book_uuid: UUID,
) -> Merged:
    """Insert atoms not stored yet and update those that differ.

    ``stored`` holds the rows as they were before (read locked), so an atom's
    old state is known. An atom stored under another flow detail is refused
    (it would be changed where it is, not under this flow), and so is one
    stored as another kind.
    """
    new: list[dict[str, Any]] = []
    changed: dict[UUID, dict[str, Any]] = {}
    changes: list[dict[str, Any]] = []
    for values in given:
        row = stored.get(values["uuid"])
        if row is None:
            new.append({**values, "flow_detail_id": flow_id, "created_at": now, "updated_at": now})
            changes.append(_atom_state(values, None, now, flow_uuid, book_uuid))
            continue
        if row["flow_detail_id"] != flow_id:
            raise AlreadyExists(f"atom detail {values['uuid']} is stored under another flow detail")
        if row["kind"] != values["kind"]:
            raise InvalidInput(
                f"atom {values['name']!r} is stored as a {row['kind']} detail; "
                f"it cannot be merged as a {values['kind']}"
            )
        if _differs(row, values):
            changed[values["uuid"]] = values
            if row["state"] != values["state"]:
                changes.append(_atom_state(values, row["state"], now, flow_uuid, book_uuid))
    if new:
        connection.execute(insert(ATOMS), new)
    if changed:
        connection.execute(_UPDATE_ATOM_BY_UUID, [atom_params(values, now) for values in changed.values()])
    return Merged(new, changed, changes)


def _atom_state(
    values: dict[str, Any], old: str | None, now: datetime, flow_uuid: UUID, book_uuid: UUID
) -> dict[str, Any]:
    return change(
        ChangeKind.ATOM_STATE,
        at=now,
        logbook=book_uuid,
        flow=flow_uuid,
        atom=values["uuid"],
        old=old,
        new=values["state"],
    )


def update_flow(connection: Connection, flow: dict[str, Any], atoms: Sequence[dict[str, Any]]) -> FlowDetail:
    """Merge a flow detail and the atoms given with it; return the whole flow.
    Appends a ``flow.state`` change if its state changed, and the merge's
    ``atom.state`` changes."""
    now = utcnow()
    row = connection.execute(_FLOW_LOCKED, {"uuid": flow["uuid"]}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"flow detail {flow['uuid']} not found")
    connection.execute(
        _UPDATE_FLOW_BY_ID, {"state": flow["state"], "meta": flow["meta"], "updated_at": now, "b_id": row["id"]}
    )
    stored_rows = list(connection.execute(_ATOMS_OF_FLOW_LOCKED, {"flow_id": row["id"]}).mappings())
    stored = {stored_row["uuid"]: stored_row for stored_row in stored_rows}
    merged = merge_atoms(
        connection, row["id"], stored, atoms, now, flow_uuid=flow["uuid"], book_uuid=row["logbook_uuid"]
    )
    changes = merged.changes
    if row["state"] != flow["state"]:
        flow_state = change(
            ChangeKind.FLOW_STATE,
            at=now,
            logbook=row["logbook_uuid"],
            flow=flow["uuid"],
            old=row["state"],
            new=flow["state"],
        )
        changes = [flow_state, *changes]
    record(connection, changes)
    result = [
        atom_from_row(
            {**stored_row, **merged.changed[stored_row["uuid"]], "name": stored_row["name"], "updated_at": now}
        )
        if stored_row["uuid"] in merged.changed
        else atom_from_row(stored_row)
        for stored_row in stored_rows
    ]
    result.extend(atom_from_row(values) for values in merged.new)
    return flow_from_row({**flow, "name": row["name"], "created_at": row["created_at"], "updated_at": now}, result)


class FlowDetails:
    """Flow details: merge one (with new or changed atoms), load, list."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def update(self, flow: FlowDetail, *, atoms: Iterable[AtomDetail] | None = None) -> FlowDetail:
        """Merge ``flow`` into the stored flow detail (NotFound if absent).

        Its state and meta are replaced; ``atoms`` (default: ``flow.atoms``)
        are inserted when new and merged when they differ from what is
        stored — unchanged atoms are not written. Returns the complete flow
        detail, every stored atom included. Appends a ``flow.state`` change
        if the state changed and an ``atom.state`` change for each atom
        inserted or whose state changed.
        """
        values = flow_values(flow)
        given = distinct([atom_values(atom) for atom in (flow.atoms if atoms is None else atoms)], "atom detail")
        return await self._runner.write(partial(update_flow, flow=values, atoms=given))

    async def get(self, uuid: UUID | str, *, lazy: bool = False) -> FlowDetail:
        """Flow detail ``uuid``; without atoms if ``lazy`` (NotFound if missing)."""
        key = uuid_value(uuid, "flow detail uuid")
        return await self._runner.read(partial(load_flow, uuid=key, lazy=lazy))

    async def page(
        self, book: UUID | str, *, after: UUID | str | None = None, limit: int = DEFAULT_PAGE, lazy: bool = True
    ) -> list[FlowDetail]:
        """Up to ``limit`` flow details of logbook ``book`` after ``after``
        (NotFound if the book or ``after`` no longer exists)."""
        key = uuid_value(book, "logbook uuid")
        return (await self._page(key, cursor_value(after), limit, lazy))[0]

    async def _page(self, book: UUID, after: Cursor, limit: int, lazy: bool) -> Page[FlowDetail]:
        return await self._runner.read(
            partial(page_flows, book_uuid=book, after=after, limit=page_limit(limit), lazy=lazy),
            offload=not lazy,
        )

    def iterate(
        self, book: UUID | str, *, lazy: bool = True, page_size: int = DEFAULT_PAGE
    ) -> AsyncIterator[FlowDetail]:
        """Every flow detail of logbook ``book``, oldest first."""
        key = uuid_value(book, "logbook uuid")
        return stream(lambda after: self._page(key, after, page_size, lazy))
