"""Write units of the flow model.

Costs are the point here (the TaskFlow engine calls these thousands of times
per flow):

* updating an atom is one ``UPDATE … RETURNING`` (two statements on MariaDB,
  which has no UPDATE … RETURNING) — never SELECT-then-UPDATE;
* updating a flow detail updates its row, reads its atoms once (locked), and
  writes only the atoms that are new or differ from what is stored, where
  TaskFlow's SQL backend rewrites every atom of the flow each time.

Values arrive validated and encoded by :mod:`statestore.flows.codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import BindParameter

from statestore.core.batches import chunks
from statestore.core.dialect import update_returning, upsert
from statestore.core.direct import DirectStatement
from statestore.core.types import utcnow
from statestore.errors import InvalidInput, NotFound
from statestore.flows.codec import MUTABLE_ATOM_COLUMNS, atom_from_row, flow_from_row
from statestore.flows.loading import ATOMS, BOOKS, FLOWS, load_book
from statestore.flows.records import AtomDetail, FlowDetail, LogBook

__all__ = ["clear_all", "destroy_book", "save_book", "update_atom", "update_flow"]


_ATOM_SET: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in (*MUTABLE_ATOM_COLUMNS, "updated_at")}
_UPDATE_ATOM = update(ATOMS).where(ATOMS.c.uuid == bindparam("b_uuid"), ATOMS.c.kind == bindparam("b_kind"))
_UPDATE_ATOM_RETURNING_DIRECT = DirectStatement(
    _UPDATE_ATOM.values(_ATOM_SET).returning(ATOMS.c.name, ATOMS.c.created_at)
)
_UPDATE_ATOM_PLAIN_DIRECT = DirectStatement(_UPDATE_ATOM.values(_ATOM_SET))
_ATOM_IDENTITY = select(ATOMS.c.name, ATOMS.c.kind, ATOMS.c.created_at).where(ATOMS.c.uuid == bindparam("uuid"))
_UPDATE_ATOM_BY_UUID = update(ATOMS).where(ATOMS.c.uuid == bindparam("b_uuid")).values(_ATOM_SET)

_FLOW_SET: dict[str, BindParameter[Any]] = {
    "state": bindparam("state"),
    "meta": bindparam("meta"),
    "updated_at": bindparam("updated_at"),
}
_UPDATE_FLOW = update(FLOWS).where(FLOWS.c.uuid == bindparam("b_uuid")).values(_FLOW_SET)
_UPDATE_FLOW_RETURNING = _UPDATE_FLOW.returning(FLOWS.c.id, FLOWS.c.name, FLOWS.c.created_at)
_FLOW_IDENTITY = select(FLOWS.c.id, FLOWS.c.name, FLOWS.c.created_at).where(FLOWS.c.uuid == bindparam("uuid"))
_ATOMS_OF_FLOW_LOCKED = (
    select(ATOMS).where(ATOMS.c.flow_detail_id == bindparam("flow_id")).order_by(ATOMS.c.id).with_for_update()
)


def _atom_params(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    params = {name: values[name] for name in MUTABLE_ATOM_COLUMNS}
    params["updated_at"] = now
    params["b_uuid"] = values["uuid"]
    return params


def update_atom(connection: Connection, values: dict[str, Any]) -> AtomDetail:
    """Merge ``values`` into the stored atom; its name and kind never change."""
    now = utcnow()
    params = _atom_params(values, now)
    params["b_kind"] = values["kind"]
    stored = _update_atom_returning_identity(connection, params)
    if stored is None:
        _explain_missing_atom(connection, values)
        raise AssertionError("unreachable")
    name, created_at = stored
    return atom_from_row({**values, "name": name, "created_at": created_at, "updated_at": now})


def _update_atom_returning_identity(connection: Connection, params: dict[str, Any]) -> tuple[str, datetime] | None:
    """Run the atom UPDATE the cheapest way the dialect allows; return the
    stored name and created_at, or None if no row matched."""
    if update_returning(connection.dialect):
        rows = _UPDATE_ATOM_RETURNING_DIRECT.execute(connection, params).rows
        return (rows[0][0], rows[0][1]) if rows else None
    if _UPDATE_ATOM_PLAIN_DIRECT.execute(connection, params).rowcount == 0:
        return None
    row = connection.execute(_ATOM_IDENTITY, {"uuid": params["b_uuid"]}).one()
    return (row.name, row.created_at)


def _explain_missing_atom(connection: Connection, values: dict[str, Any]) -> None:
    stored = connection.execute(_ATOM_IDENTITY, {"uuid": values["uuid"]}).mappings().one_or_none()
    if stored is None:
        raise NotFound(f"atom detail {values['uuid']} not found")
    raise InvalidInput(
        f"atom {values['name']!r} is stored as a {stored['kind']} detail; it cannot be updated as a {values['kind']}"
    )


def _merge_atoms(
    connection: Connection,
    flow_id: int,
    stored: dict[UUID, RowMapping],
    given: Sequence[dict[str, Any]],
    now: datetime,
) -> tuple[list[dict[str, Any]], dict[UUID, dict[str, Any]]]:
    """Insert atoms not stored yet and update those that differ; return both."""
    new: list[dict[str, Any]] = []
    changed: dict[UUID, dict[str, Any]] = {}
    for values in given:
        row = stored.get(values["uuid"])
        if row is None:
            new.append({**values, "flow_detail_id": flow_id, "created_at": now, "updated_at": now})
        elif any(row[name] != values[name] for name in MUTABLE_ATOM_COLUMNS):
            if row["kind"] != values["kind"]:
                raise InvalidInput(
                    f"atom {values['name']!r} is stored as a {row['kind']} detail; "
                    f"it cannot be merged as a {values['kind']}"
                )
            changed[values["uuid"]] = values
    if new:
        connection.execute(insert(ATOMS), new)
    if changed:
        connection.execute(_UPDATE_ATOM_BY_UUID, [_atom_params(values, now) for values in changed.values()])
    return new, changed


def update_flow(connection: Connection, flow: dict[str, Any], atoms: Sequence[dict[str, Any]]) -> FlowDetail:
    """Merge a flow detail and the atoms given with it; return the whole flow."""
    now = utcnow()
    params = {"state": flow["state"], "meta": flow["meta"], "updated_at": now, "b_uuid": flow["uuid"]}
    if update_returning(connection.dialect):
        row = connection.execute(_UPDATE_FLOW_RETURNING, params).mappings().one_or_none()
    else:
        matched = connection.execute(_UPDATE_FLOW, params).rowcount
        row = connection.execute(_FLOW_IDENTITY, {"uuid": flow["uuid"]}).mappings().one() if matched else None
    if row is None:
        raise NotFound(f"flow detail {flow['uuid']} not found")
    stored_rows = list(connection.execute(_ATOMS_OF_FLOW_LOCKED, {"flow_id": row["id"]}).mappings())
    stored = {stored_row["uuid"]: stored_row for stored_row in stored_rows}
    new, changed = _merge_atoms(connection, row["id"], stored, atoms, now)
    merged = [
        atom_from_row({**stored_row, **changed[stored_row["uuid"]], "name": stored_row["name"], "updated_at": now})
        if stored_row["uuid"] in changed
        else atom_from_row(stored_row)
        for stored_row in stored_rows
    ]
    merged.extend(atom_from_row(values) for values in new)
    return flow_from_row({**flow, "name": row["name"], "created_at": row["created_at"], "updated_at": now}, merged)


def save_book(
    connection: Connection,
    book: dict[str, Any],
    flows: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]],
) -> LogBook:
    """Upsert a logbook, its flow details and their atoms; return it whole.

    Stored children missing from the input are kept: saving is a merge.
    """
    now = utcnow()
    dialect = connection.dialect
    connection.execute(
        upsert(dialect, BOOKS, "uuid", ["meta", "updated_at"]), {**book, "created_at": now, "updated_at": now}
    )
    book_id = connection.execute(select(BOOKS.c.id).where(BOOKS.c.uuid == book["uuid"])).scalar_one()
    if flows:
        flow_rows = [{**values, "logbook_id": book_id, "created_at": now, "updated_at": now} for values, _ in flows]
        connection.execute(upsert(dialect, FLOWS, "uuid", ["state", "meta", "updated_at"]), flow_rows)
        flow_ids: dict[UUID, int] = {
            flow_uuid: flow_id
            for flow_uuid, flow_id in connection.execute(
                select(FLOWS.c.uuid, FLOWS.c.id).where(FLOWS.c.uuid.in_([values["uuid"] for values, _ in flows]))
            )
        }
        given_atoms = [atom for _, atoms in flows for atom in atoms]
        stored: dict[UUID, RowMapping] = {}
        for chunk in chunks([atom["uuid"] for atom in given_atoms]):
            rows = connection.execute(select(ATOMS).where(ATOMS.c.uuid.in_(chunk)).with_for_update()).mappings()
            stored.update((row["uuid"], row) for row in rows)
        for values, atoms in flows:
            _merge_atoms(connection, flow_ids[values["uuid"]], stored, atoms, now)
    return load_book(connection, book["uuid"], lazy=False)


def destroy_book(connection: Connection, uuid: UUID) -> None:
    """Delete a logbook; its flow and atom details go with it (cascade)."""
    if connection.execute(delete(BOOKS).where(BOOKS.c.uuid == uuid)).rowcount == 0:
        raise NotFound(f"logbook {uuid} not found")


def clear_all(connection: Connection) -> None:
    """Delete every logbook, flow detail and atom detail."""
    connection.execute(delete(BOOKS))
