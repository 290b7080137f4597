"""changes: the change feed's records in commit order; change_feed, its bookkeeping

Revision ID: 0006_changes
Revises: 0005_status_history
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from statestore.core.base import IdType
from statestore.core.types import UTCDateTime

revision: str = "0006_changes"
down_revision: str | None = "0005_status_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BINARY_TEXT: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("job_uuid", sa.Uuid(), nullable=True),
        sa.Column("task_uuid", sa.Uuid(), nullable=True),
        sa.Column("worker_uuid", sa.Uuid(), nullable=True),
        sa.Column("logbook_uuid", sa.Uuid(), nullable=True),
        sa.Column("flow_uuid", sa.Uuid(), nullable=True),
        sa.Column("atom_uuid", sa.Uuid(), nullable=True),
        sa.Column("old_value", sa.String(length=32), nullable=True),
        sa.Column("new_value", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("who", sa.String(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
        **BINARY_TEXT,
    )
    op.create_index("ix_changes_tx_id", "changes", ["tx", "id"])
    feed = op.create_table(
        "change_feed",
        sa.Column("id", IdType, autoincrement=False, nullable=False),
        sa.Column("numbered", sa.BigInteger(), nullable=False),
        sa.Column("purged_tx", sa.BigInteger(), nullable=False),
        sa.Column("purged_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_feed")),
        **BINARY_TEXT,
    )
    op.bulk_insert(feed, [{"id": 1, "numbered": 0, "purged_tx": 0, "purged_id": 0}])


def downgrade() -> None:
    op.drop_table("change_feed")
    op.drop_table("changes")
