"""Atom details: the AtomDetails repository and the units it runs.

Updating an atom is the TaskFlow engine's hottest call (thousands per flow),
so it is one ``UPDATE … RETURNING`` run as a :class:`DirectStatement` — two
statements on MariaDB, which has no UPDATE … RETURNING — and never
SELECT-then-UPDATE. The stored name and creation time come back from the
UPDATE; everything else is what was written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from statestore.core.dialect import facts_of
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
from statestore.flows.tables import ATOMS, FLOWS

__all__ = ["ATOM_SET", "AtomDetails", "atom_params", "load_atom", "page_atoms", "update_atom"]

ATOM_SET: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in (*MUTABLE_ATOM_COLUMNS, "updated_at")}
"""The SET clause of every atom update (this one and a flow's atom merge)."""

_UPDATE_ATOM = update(ATOMS).where(ATOMS.c.uuid == bindparam("b_uuid"), ATOMS.c.kind == bindparam("b_kind"))
_UPDATE_ATOM_RETURNING_DIRECT = DirectStatement(
    _UPDATE_ATOM.values(ATOM_SET).returning(ATOMS.c.name, ATOMS.c.created_at)
)
_UPDATE_ATOM_PLAIN_DIRECT = DirectStatement(_UPDATE_ATOM.values(ATOM_SET))
_ATOM_IDENTITY = select(ATOMS.c.name, ATOMS.c.kind, ATOMS.c.created_at).where(ATOMS.c.uuid == bindparam("uuid"))


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
    """Merge ``values`` into the stored atom; its name and kind never change."""
    now = utcnow()
    params = atom_params(values, now)
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
    if facts_of(connection).update_returning:
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


class AtomDetails:
    """Atom details: merge one (the engine's hottest call), load, list."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def update(self, atom: AtomDetail) -> AtomDetail:
        """Merge ``atom`` into the stored atom detail (NotFound if absent) and
        return the stored result. One statement where the database has
        UPDATE … RETURNING."""
        values = atom_values(atom)
        one_statement = self._runner.facts.update_returning
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
