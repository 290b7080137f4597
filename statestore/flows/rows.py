"""Stored rows of the flow tables → records, and the one row a uuid names.

Rows arrive as mappings whose values the column types already decoded (UUIDs,
UTC datetimes, JSON); rebuilding a record checks nothing more. The by-uuid
statements are built once at import, which keeps SQLAlchemy's compiled cache
warm, and are shared: a listing checks its parent exists with them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import Select

from statestore.errors import NotFound
from statestore.flows.records import AtomDetail, Failure, FlowDetail, LogBook, RetryAttempt
from statestore.flows.states import AtomKind, AtomState, FlowState, Intention
from statestore.flows.tables import ATOMS, BOOKS, FLOWS

__all__ = [
    "ATOM_BY_UUID",
    "BOOK_BY_UUID",
    "FLOW_BY_UUID",
    "atom_from_row",
    "atoms_by_flow",
    "book_from_row",
    "flow_from_row",
    "one_row",
]

BOOK_BY_UUID = select(BOOKS).where(BOOKS.c.uuid == bindparam("uuid"))
FLOW_BY_UUID = select(FLOWS).where(FLOWS.c.uuid == bindparam("uuid"))
ATOM_BY_UUID = select(ATOMS).where(ATOMS.c.uuid == bindparam("uuid"))


def one_row(connection: Connection, statement: Select[Any], what: str, uuid: UUID) -> RowMapping:
    """The row ``statement`` selects for ``uuid`` (NotFound naming ``what`` if none)."""
    row = connection.execute(statement, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"{what} {uuid} not found")
    return row


def atoms_by_flow(rows: list[RowMapping]) -> dict[int, list[AtomDetail]]:
    """Atom rows as records, grouped by the row id of their flow detail (order kept)."""
    grouped: dict[int, list[AtomDetail]] = defaultdict(list)
    for row in rows:
        grouped[row["flow_detail_id"]].append(atom_from_row(row))
    return grouped


def _failure_from(value: Any) -> Failure | None:
    return None if value is None else Failure.from_dict(value)


def atom_from_row(row: Mapping[Any, Any]) -> AtomDetail:
    """Rebuild an atom record from its stored columns."""
    kind = AtomKind(row["kind"])
    results = row["results"]
    if kind is AtomKind.RETRY and results is not None:
        # Each entry keeps its own data: TaskFlow's decoder reused the loop
        # variable and replaced the data by the last failure dict.
        results = [
            RetryAttempt(data=data, failures={atom: Failure.from_dict(failure) for atom, failure in failures.items()})
            for data, failures in results
        ]
    return AtomDetail(
        name=row["name"],
        kind=kind,
        uuid=row["uuid"],
        state=None if row["state"] is None else AtomState(row["state"]),
        intention=Intention(row["intention"]),
        results=results,
        failure=_failure_from(row["failure"]),
        revert_results=row["revert_results"],
        revert_failure=_failure_from(row["revert_failure"]),
        version=row["version"],
        meta=row["meta"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        foreign_id=row["foreign_id"],
    )


def flow_from_row(row: Mapping[Any, Any], atoms: list[AtomDetail] | None = None) -> FlowDetail:
    """Rebuild a flow detail record (with ``atoms`` if loaded)."""
    return FlowDetail(
        name=row["name"],
        uuid=row["uuid"],
        state=None if row["state"] is None else FlowState(row["state"]),
        meta=row["meta"],
        atoms=atoms if atoms is not None else [],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        foreign_id=row["foreign_id"],
    )


def book_from_row(row: Mapping[Any, Any], flows: list[FlowDetail] | None = None) -> LogBook:
    """Rebuild a logbook record (with ``flows`` if loaded)."""
    return LogBook(
        name=row["name"],
        uuid=row["uuid"],
        meta=row["meta"],
        flows=flows if flows is not None else [],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        foreign_id=row["foreign_id"],
    )
