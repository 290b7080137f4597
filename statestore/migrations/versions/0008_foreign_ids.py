"""foreign ids: the identifier another system gave a logbook, flow or atom detail

TaskFlow names records by any string ('42', 'nightly-2024-06-01'); the
uuid of such a record is derived from the string and the string itself is
kept here (statestore.flows.foreign_ids). Existing rows were all stored
under uuids, so they get NULL.

Revision ID: 0008_foreign_ids
Revises: 0007_taskflow_coexistence
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_foreign_ids"
down_revision: str | None = "0007_taskflow_coexistence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("log_books", "flow_details", "atom_details")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("foreign_id", sa.Text(), nullable=True))


def downgrade() -> None:
    # Every backend drops a column in place (SQLite since 3.35); a batch
    # rebuild on SQLite would also reorder the table's constraints.
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN foreign_id")
