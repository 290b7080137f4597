"""Atom details: the AtomDetails repository and the units it runs.

Updating an atom is the TaskFlow engine's hottest call (thousands per flow),
and it appends an ``atom.state`` change (:mod:`statestore.changes`) when the
state changes, in the same transaction. How, by dialect:

* Where a round trip costs more than the SQL and the database has
  data-modifying CTEs (PostgreSQL: the dialects whose task completion is one
  such statement), it is one statement run as a :class:`DirectStatement` in
  autocommit: a CTE locks the atom's row (``FOR NO KEY UPDATE``, the lock the
  UPDATE takes anyway; READ COMMITTED hands it the row's newest version), the
  UPDATE joins it so RETURNING gives the state from before the update, and an
  INSERT into ``changes`` runs only when that state differs from the new one.
  Never SELECT-then-UPDATE in two round trips.
* Elsewhere (SQLite, MariaDB) a read of the row ``FOR UPDATE`` (a no-op on
  SQLite, whose one writer already excludes the others), an UPDATE by primary
  key and, only when the state changed, an ``INSERT … SELECT`` of the change
  that reads the flow's and logbook's uuids itself. Each is a
  :class:`DirectStatement`: on SQLite a statement costs microseconds, and
  ``Connection.execute`` would cost several times that. The read also tells
  a missing atom from one of another kind before anything is written.

The stored name and creation time come from the statement (or the read);
everything else is what was written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import cache, partial
from typing import Any, NoReturn
from uuid import UUID

from sqlalchemy import ColumnElement, String, bindparam, insert, literal_column, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from statestore.changes.kinds import ChangeKind
from statestore.changes.tables import CHANGES
from statestore.core.dialect import DialectFacts, facts_of
from statestore.core.direct import DirectStatement
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
from statestore.core.validate import uuid_value
from statestore.errors import InvalidInput, NotFound
from statestore.flows.fields import MUTABLE_ATOM_COLUMNS, atom_values
from statestore.flows.records import AtomDetail
from statestore.flows.rows import ATOM_BY_UUID, FLOW_BY_UUID, atom_from_row, one_row
from statestore.flows.tables import ATOMS, BOOKS, FLOWS

__all__ = ["ATOM_SET", "AtomDetails", "atom_params", "load_atom", "page_atoms", "update_atom"]

ATOM_SET: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in (*MUTABLE_ATOM_COLUMNS, "updated_at")}
"""The SET clause of every atom update (this one and a flow's atom merge)."""

_CHANGE_COLUMNS = (
    "tx",
    "kind",
    "logbook_uuid",
    "flow_uuid",
    "atom_uuid",
    "old_value",
    "new_value",
    "reason",
    "who",
    "at",
)
"""The columns an ``atom.state`` change fills, in the order its SELECTs give them."""

# The generic path (SQLite, MariaDB): the row as it is, locked; then the update by key.
_ATOM_LOCKED = DirectStatement(
    select(ATOMS.c.id, ATOMS.c.name, ATOMS.c.kind, ATOMS.c.created_at, ATOMS.c.state, ATOMS.c.flow_detail_id)
    .where(ATOMS.c.uuid == bindparam("uuid"))
    .with_for_update()
)
_UPDATE_ATOM_BY_ID = DirectStatement(update(ATOMS).where(ATOMS.c.id == bindparam("b_id")).values(ATOM_SET))
_ATOM_IDENTITY = select(ATOMS.c.name, ATOMS.c.kind, ATOMS.c.created_at).where(ATOMS.c.uuid == bindparam("uuid"))


def _sql_string(value: str) -> ColumnElement[str]:
    """A constant string written into the SQL: a DirectStatement binds only
    the named values it is given."""
    assert "'" not in value
    return literal_column(f"'{value}'", String)


def _change_tx(facts: DialectFacts) -> ColumnElement[Any]:
    """``changes.tx`` as the dialect writes it, a constant written into the
    SQL (SQLite's 0) rather than bound, for the same reason."""
    tx = facts.change_tx()
    if isinstance(tx, BindParameter):
        assert isinstance(tx.value, int)
        return literal_column(str(tx.value), tx.type)
    return tx


@cache
def _one_statement_update(facts: DialectFacts) -> DirectStatement:
    """The atom update and its change in one statement (see the module
    docstring); it selects the stored name and creation time, no row if
    the atom is missing or of another kind."""
    old = (
        select(ATOMS.c.id, ATOMS.c.state)
        .where(ATOMS.c.uuid == bindparam("b_uuid"), ATOMS.c.kind == bindparam("b_kind"))
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: what the UPDATE would take
        .cte("old")
    )
    updated = (
        update(ATOMS)
        .where(ATOMS.c.id == old.c.id)
        .values(ATOM_SET)
        .returning(
            ATOMS.c.uuid,
            ATOMS.c.name,
            ATOMS.c.created_at,
            ATOMS.c.updated_at,
            ATOMS.c.flow_detail_id,
            ATOMS.c.state,
            old.c.state.label("old_state"),
        )
        .cte("updated")
    )
    # The flow's and logbook's rows are read only for a row that passed the
    # state test, and without locks: a flow update holding its row never
    # delays an atom update.
    change = (
        select(
            _change_tx(facts),
            _sql_string(ChangeKind.ATOM_STATE.value),
            BOOKS.c.uuid,
            FLOWS.c.uuid,
            updated.c.uuid,
            updated.c.old_state,
            updated.c.state,
            _sql_string(""),
            _sql_string(""),
            updated.c.updated_at,
        )
        .select_from(
            updated.join(FLOWS, FLOWS.c.id == updated.c.flow_detail_id).join(BOOKS, BOOKS.c.id == FLOWS.c.logbook_id)
        )
        .where(updated.c.state.is_distinct_from(updated.c.old_state))
    )
    recorded = insert(CHANGES).from_select(_CHANGE_COLUMNS, change, include_defaults=False).cte("recorded")
    return DirectStatement(select(updated.c.name, updated.c.created_at).add_cte(recorded))


@cache
def _record_atom_state(facts: DialectFacts) -> DirectStatement:
    """The generic path's ``INSERT … SELECT`` of one ``atom.state`` change.

    The flow's and logbook's uuids are read by the INSERT itself, so only an
    update that changes the state pays for them. MariaDB reads them as a
    consistent read, without locks (READ COMMITTED's ``INSERT … SELECT``).
    """
    change = select(
        _change_tx(facts),
        _sql_string(ChangeKind.ATOM_STATE.value),
        BOOKS.c.uuid,
        FLOWS.c.uuid,
        bindparam("atom_uuid", type_=CHANGES.c.atom_uuid.type),
        bindparam("old_value", type_=CHANGES.c.old_value.type),
        bindparam("new_value", type_=CHANGES.c.new_value.type),
        _sql_string(""),
        _sql_string(""),
        bindparam("at", type_=CHANGES.c.at.type),
    ).where(FLOWS.c.id == bindparam("flow_id"), BOOKS.c.id == FLOWS.c.logbook_id)
    return DirectStatement(insert(CHANGES).from_select(_CHANGE_COLUMNS, change, include_defaults=False))


def atom_params(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Parameters of an atom update (:data:`ATOM_SET`) from checked atom values."""
    params = {name: values[name] for name in MUTABLE_ATOM_COLUMNS}
    params["updated_at"] = now
    params["b_uuid"] = values["uuid"]
    return params


def load_atom(connection: Connection, uuid: UUID) -> AtomDetail:
    """One atom detail (1 query)."""
    return atom_from_row(one_row(connection, ATOM_BY_UUID, "atom detail", uuid))


def page_atoms(connection: Connection, flow_uuid: UUID, *, after: Cursor, limit: int) -> Page[AtomDetail]:
    """Up to ``limit`` atom details of a flow detail after ``after``, oldest first."""
    flow_id = select(FLOWS.c.id).where(FLOWS.c.uuid == flow_uuid).scalar_subquery()
    rows = list(
        connection.execute(
            select(ATOMS)
            .where(ATOMS.c.flow_detail_id == flow_id, keyset_after(ATOMS, after))
            .order_by(ATOMS.c.id)
            .limit(limit)
        ).mappings()
    )
    if not rows:
        one_row(connection, FLOW_BY_UUID, "flow detail", flow_uuid)
        check_cursor(connection, ATOMS, after, "atom detail")
    return [atom_from_row(row) for row in rows], last_id(rows)


def update_atom(connection: Connection, values: dict[str, Any]) -> AtomDetail:
    """Merge ``values`` into the stored atom; its name and kind never change.
    Appends an ``atom.state`` change if its state changed."""
    now = utcnow()
    params = atom_params(values, now)
    params["b_kind"] = values["kind"]
    facts = facts_of(connection)
    if _in_one_statement(facts):
        rows = _one_statement_update(facts).execute(connection, params).rows
        if not rows:
            _explain_missing_atom(connection, values)
        name, created_at = rows[0]
    else:
        name, created_at = _update_locked_row(connection, facts, values, params)
    return atom_from_row({**values, "name": name, "created_at": created_at, "updated_at": now})


def _in_one_statement(facts: DialectFacts) -> bool:
    """Whether the update is one statement of data-modifying CTEs in
    autocommit (PostgreSQL; see ``DialectFacts.cte_writes``)."""
    return facts.cte_writes


def _update_locked_row(
    connection: Connection, facts: DialectFacts, values: dict[str, Any], params: dict[str, Any]
) -> tuple[str, datetime]:
    """The generic path (see the module docstring); the stored name and
    created_at. Refuses a missing atom, or one of another kind, before
    writing anything."""
    rows = _ATOM_LOCKED.execute(connection, {"uuid": values["uuid"]}).rows
    if not rows:
        raise NotFound(f"atom detail {values['uuid']} not found")
    atom_id, name, kind, created_at, old_state, flow_id = rows[0]
    if kind != values["kind"]:
        raise _wrong_kind(values, kind)
    params["b_id"] = atom_id
    _UPDATE_ATOM_BY_ID.execute(connection, params)
    if old_state != values["state"]:
        _record_atom_state(facts).execute(
            connection,
            {
                "flow_id": flow_id,
                "atom_uuid": values["uuid"],
                "old_value": old_state,
                "new_value": values["state"],
                "at": params["updated_at"],
            },
        )
    return name, created_at


def _explain_missing_atom(connection: Connection, values: dict[str, Any]) -> NoReturn:
    stored = connection.execute(_ATOM_IDENTITY, {"uuid": values["uuid"]}).mappings().one_or_none()
    if stored is None:
        raise NotFound(f"atom detail {values['uuid']} not found")
    raise _wrong_kind(values, stored["kind"])


def _wrong_kind(values: dict[str, Any], stored_kind: str) -> InvalidInput:
    return InvalidInput(
        f"atom {values['name']!r} is stored as a {stored_kind} detail; it cannot be updated as a {values['kind']}"
    )


class AtomDetails:
    """Atom details: merge one (the engine's hottest call), load, list."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def update(self, atom: AtomDetail) -> AtomDetail:
        """Merge ``atom`` into the stored atom detail (NotFound if absent) and
        return the stored result; an ``atom.state`` change is appended when
        its state changed. One statement on PostgreSQL."""
        values = atom_values(atom)
        one_statement = _in_one_statement(self._runner.facts)
        return await self._runner.write(partial(update_atom, values=values), single_statement=one_statement)

    async def get(self, uuid: UUID | str) -> AtomDetail:
        """Atom detail ``uuid`` (NotFound if missing)."""
        key = uuid_value(uuid, "atom detail uuid")
        return await self._runner.read(partial(load_atom, uuid=key), single_statement=True)

    async def page(
        self, flow: UUID | str, *, after: UUID | str | None = None, limit: int = DEFAULT_PAGE
    ) -> list[AtomDetail]:
        """Up to ``limit`` atom details of flow detail ``flow`` after ``after``
        (NotFound if the flow or ``after`` no longer exists)."""
        key = uuid_value(flow, "flow detail uuid")
        return (await self._page(key, cursor_value(after), limit))[0]

    async def _page(self, flow: UUID, after: Cursor, limit: int) -> Page[AtomDetail]:
        return await self._runner.read(partial(page_atoms, flow_uuid=flow, after=after, limit=page_limit(limit)))

    def iterate(self, flow: UUID | str, *, page_size: int = DEFAULT_PAGE) -> AsyncIterator[AtomDetail]:
        """Every atom detail of flow detail ``flow``, oldest first."""
        key = uuid_value(flow, "flow detail uuid")
        return stream(lambda after: self._page(key, after, page_size))
