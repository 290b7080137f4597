"""flow model: logbooks (table log_books), flow details, atom details

The logbooks' table was named ``logbooks`` when this revision was first
written; it was changed to ``log_books`` (with the constraint names that
follow from it) because TaskFlow's own SQLAlchemy backend names its table
``logbooks``, and this revision must be able to run on a database that
already holds TaskFlow's tables. Revision 0007 renames the table of a
database made by the earlier version of this revision.

Revision ID: 0001_flow_model
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from statestore.core.base import IdType
from statestore.core.types import JSONType, UTCDateTime

revision: str = "0001_flow_model"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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


def upgrade() -> None:
    op.create_table(
        "log_books",
        *_entity_columns(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_books")),
        sa.UniqueConstraint("uuid", name=op.f("uq_log_books_uuid")),
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
            ["logbook_id"], ["log_books.id"], name=op.f("fk_flow_details_logbook_id_log_books"), ondelete="CASCADE"
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


def downgrade() -> None:
    op.drop_table("atom_details")
    op.drop_table("flow_details")
    # A database made by the earlier version of this revision has its table
    # as "logbooks" until 0007; one without log_books is such a database, and
    # its "logbooks" is statestore's (TaskFlow's could not be beside it).
    op.drop_table("log_books" if sa.inspect(op.get_bind()).has_table("log_books") else "logbooks")
