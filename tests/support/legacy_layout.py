"""Databases as statestore made them before it could share one with TaskFlow.

Until revision 0007, statestore's logbooks lived in a table named
``logbooks`` (the name TaskFlow's own SQL backend uses) and its revision in
alembic's default version table, ``alembic_version`` (which TaskFlow uses
too). :func:`build` makes such a database the way that statestore did:
revision 0001 as it was then (its DDL is kept verbatim below), then the later
revisions, with the revision recorded in ``alembic_version``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from alembic import command
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, Table, insert

from statestore.core.base import IdType
from statestore.core.types import JSONType, UTCDateTime
from statestore.flows.tables import ATOMS, BOOKS, FLOWS
from statestore.schema import migrate

LEGACY_BOOKS = BOOKS.to_metadata(MetaData(), name="logbooks")
"""statestore's logbooks table under its legacy name, to write rows into."""

VERSIONS = Table("alembic_version", MetaData(), sa.Column("version_num", sa.String(32), primary_key=True))
"""alembic's default version table, as alembic makes it."""


def build(connection: Connection, revision: str) -> None:
    """Make statestore's legacy layout at ``revision`` (0001 to 0006) on a
    blank database, committed."""
    with connection.begin():
        context = MigrationContext.configure(connection, opts={"version_table": migrate.LEGACY_VERSION_TABLE})
        _legacy_0001(Operations(context))
        context.stamp(migrate._script(), "0001_flow_model")
        if revision != "0001_flow_model":
            command.upgrade(migrate._config(connection, version_table=migrate.LEGACY_VERSION_TABLE), revision)


def write_book(connection: Connection, book: UUID, flow: UUID, atom: UUID) -> None:
    """One logbook with one flow of one atom, written into the legacy
    layout, committed."""
    with connection.begin():
        book_id = _inserted(connection, LEGACY_BOOKS, {"uuid": book, "name": "legacy", "meta": {"k": 1.5}})
        flow_values = {"uuid": flow, "logbook_id": book_id, "name": "legacy-flow", "state": "SUCCESS", "meta": {}}
        flow_id = _inserted(connection, FLOWS, flow_values)
        connection.execute(
            insert(ATOMS),
            {
                "uuid": atom,
                "flow_detail_id": flow_id,
                "name": "legacy-atom",
                "kind": "task",
                "state": "SUCCESS",
                "intention": "EXECUTE",
                "results": {"out": [1, 2.5]},
                "meta": {},
            },
        )


def _inserted(connection: Connection, table: Table, values: dict[str, Any]) -> int:
    """Insert one row; its id."""
    key = connection.execute(insert(table), values).inserted_primary_key
    assert key is not None
    return int(key[0])


def versions(connection: Connection, table: str) -> list[str]:
    """The revisions recorded in version table ``table``."""
    return list(connection.execute(sa.text(f"SELECT version_num FROM {table}")).scalars())


# Revision 0001 as it was before 0007 renamed the table, verbatim but for
# ``op`` being an argument.

FLOW_STATES = "'PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'REVERTED', 'SUSPENDING', 'SUSPENDED', 'RESUMING'"
ATOM_STATES = (
    "'PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'REVERTING', 'REVERTED', 'REVERT_FAILURE', 'IGNORE', 'RETRYING'"
)


def _entity_columns() -> list[sa.Column[object]]:
    """The shared base columns, as of this revision."""
    return [
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def _legacy_0001(op: Operations) -> None:
    op.create_table(
        "logbooks",
        *_entity_columns(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logbooks")),
        sa.UniqueConstraint("uuid", name=op.f("uq_logbooks_uuid")),
    )
    op.create_table(
        "flow_details",
        *_entity_columns(),
        sa.Column("logbook_id", IdType, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("meta", JSONType, nullable=False),
        sa.CheckConstraint(f"state IN ({FLOW_STATES})", name=op.f("ck_flow_details_state")),
        sa.ForeignKeyConstraint(
            ["logbook_id"], ["logbooks.id"], name=op.f("fk_flow_details_logbook_id_logbooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_details")),
        sa.UniqueConstraint("uuid", name=op.f("uq_flow_details_uuid")),
    )
    op.create_index(op.f("ix_flow_details_logbook_id"), "flow_details", ["logbook_id"])
    op.create_table(
        "atom_details",
        *_entity_columns(),
        sa.Column("flow_detail_id", IdType, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("intention", sa.String(length=16), nullable=False),
        sa.Column("results", JSONType, nullable=True),
        sa.Column("failure", JSONType, nullable=True),
        sa.Column("revert_results", JSONType, nullable=True),
        sa.Column("revert_failure", JSONType, nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("meta", JSONType, nullable=False),
        sa.CheckConstraint("kind IN ('task', 'retry')", name=op.f("ck_atom_details_kind")),
        sa.CheckConstraint(f"state IN ({ATOM_STATES})", name=op.f("ck_atom_details_state")),
        sa.CheckConstraint(
            "intention IN ('EXECUTE', 'IGNORE', 'REVERT', 'RETRY')", name=op.f("ck_atom_details_intention")
        ),
        sa.ForeignKeyConstraint(
            ["flow_detail_id"],
            ["flow_details.id"],
            name=op.f("fk_atom_details_flow_detail_id_flow_details"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_atom_details")),
        sa.UniqueConstraint("uuid", name=op.f("uq_atom_details_uuid")),
    )
    op.create_index(op.f("ix_atom_details_flow_detail_id"), "atom_details", ["flow_detail_id"])
