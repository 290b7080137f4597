"""status_history: every job and task status change the state machine makes; tasks by job and status

Revision ID: 0005_status_history
Revises: 0004_json_not_jsonb
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from statestore.core.base import IdType
from statestore.core.types import UTCDateTime

revision: str = "0005_status_history"
down_revision: str | None = "0004_json_not_jsonb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BINARY_TEXT: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "status_history",
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("job_id", IdType, nullable=False),
        sa.Column("task_id", IdType, nullable=True),
        sa.Column("old_status", sa.String(length=32), nullable=False),
        sa.Column("new_status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("who", sa.String(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_history")),
        **BINARY_TEXT,
    )
    op.create_index("ix_status_history_job_id", "status_history", ["job_id", "id"])
    op.create_index("ix_status_history_task_id", "status_history", ["task_id", "id"])
    op.create_index("ix_tasks_job_id_status", "tasks", ["job_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_tasks_job_id_status", table_name="tasks")
    op.drop_table("status_history")
