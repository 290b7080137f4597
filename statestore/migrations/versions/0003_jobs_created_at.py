"""jobs: index on created_at, for job queries ordered by creation time

Revision ID: 0003_jobs_created_at
Revises: 0002_farm_model
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_jobs_created_at"
down_revision: str | None = "0002_farm_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created_at", table_name="jobs")
