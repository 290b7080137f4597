"""farm model: jobs, tasks, dependencies, failures, blocklists, workers, tags, sleep schedules, last rendered

Revision ID: 0002_farm_model
Revises: 0001_flow_model
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from statestore.core.base import IdType
from statestore.core.types import JSONType, UTCDateTime

revision: str = "0002_farm_model"
down_revision: str | None = "0001_flow_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_STATUSES = (
    "'active', 'canceled', 'completed', 'failed', 'paused', 'paus"
    "e-requested', 'queued', 'cancel-requested', 'requeueing', 'under-construction'"
)
TASK_STATUSES = "'active', 'canceled', 'completed', 'failed', 'queued', 'soft-failed', 'paused'"
WORKER_STATUSES = "'starting', 'awake', 'asleep', 'error', 'testing', 'offline', 'restart'"
# MySQL/MariaDB: compare text as SQLite and PostgreSQL do (case-sensitively).
BINARY_TEXT: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
# The scheduler's candidates, as of this revision.
CLAIMABLE = "status IN ('queued', 'soft-failed') AND pending_dependencies = 0 AND job_schedulable"


def upgrade() -> None:
    op.create_table(
        "worker_tags",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_tags")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_tags_name")),
        sa.UniqueConstraint("uuid", name=op.f("uq_worker_tags_uuid")),
        **BINARY_TEXT,
    )
    op.create_table(
        "workers",
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=39), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("software", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=True),
        sa.Column("status_requested", sa.String(length=16), nullable=False),
        sa.Column("lazy_status_request", sa.Boolean(), nullable=False),
        sa.Column("supported_task_types", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("can_restart", sa.Boolean(), nullable=False),
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            f"status IN ({WORKER_STATUSES})",
            name=op.f("ck_workers_status"),
        ),
        sa.CheckConstraint(
            f"status_requested = '' OR status_requested IN ({WORKER_STATUSES})",
            name=op.f("ck_workers_requested"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint("uuid", name=op.f("uq_workers_uuid")),
        **BINARY_TEXT,
    )
    op.create_index("ix_workers_last_seen_at", "workers", ["last_seen_at"])
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("job_type", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("activity", sa.String(length=255), nullable=False),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("delete_requested_at", UTCDateTime(), nullable=True),
        sa.Column("storage_checkout_id", sa.String(length=255), nullable=False),
        sa.Column("worker_tag_id", IdType, nullable=True),
        sa.Column("steps_completed", sa.Integer(), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            f"status IN ({JOB_STATUSES})",
            name=op.f("ck_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["worker_tag_id"], ["worker_tags.id"], name=op.f("fk_jobs_worker_tag_id_worker_tags"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("uuid", name=op.f("uq_jobs_uuid")),
        **BINARY_TEXT,
    )
    op.create_index("ix_jobs_delete_requested_at", "jobs", ["delete_requested_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_updated_at", "jobs", ["updated_at"])
    op.create_index("ix_jobs_worker_tag_id", "jobs", ["worker_tag_id"])
    op.create_table(
        "sleep_schedules",
        sa.Column("worker_id", IdType, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("days_of_week", sa.String(length=64), nullable=False),
        sa.Column("start_time", sa.String(length=5), nullable=False),
        sa.Column("end_time", sa.String(length=5), nullable=False),
        sa.Column("next_check", UTCDateTime(), nullable=True),
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_sleep_schedules_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sleep_schedules")),
        sa.UniqueConstraint("uuid", name=op.f("uq_sleep_schedules_uuid")),
        sa.UniqueConstraint("worker_id", name=op.f("uq_sleep_schedules_worker_id")),
        **BINARY_TEXT,
    )
    op.create_index("ix_sleep_schedules_is_active_next_check", "sleep_schedules", ["is_active", "next_check"])
    op.create_table(
        "worker_tag_membership",
        sa.Column("worker_tag_id", IdType, nullable=False),
        sa.Column("worker_id", IdType, nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_worker_tag_membership_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_tag_id"],
            ["worker_tags.id"],
            name=op.f("fk_worker_tag_membership_worker_tag_id_worker_tags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("worker_tag_id", "worker_id", name=op.f("pk_worker_tag_membership")),
        **BINARY_TEXT,
    )
    op.create_index("ix_worker_tag_membership_worker_id", "worker_tag_membership", ["worker_id"])
    op.create_table(
        "job_blocks",
        sa.Column("job_id", IdType, nullable=False),
        sa.Column("worker_id", IdType, nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_blocks_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_job_blocks_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "worker_id", "task_type", name=op.f("pk_job_blocks")),
        **BINARY_TEXT,
    )
    op.create_index("ix_job_blocks_worker_id", "job_blocks", ["worker_id"])
    op.create_table(
        "last_rendered",
        sa.Column("job_id", IdType, nullable=False),
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_last_rendered_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_last_rendered")),
        sa.UniqueConstraint("uuid", name=op.f("uq_last_rendered_uuid")),
        **BINARY_TEXT,
    )
    op.create_table(
        "tasks",
        sa.Column("job_id", IdType, nullable=False),
        sa.Column("index_in_job", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker_id", IdType, nullable=True),
        sa.Column("last_touched_at", UTCDateTime(), nullable=True),
        sa.Column("commands", JSONType, nullable=False),
        sa.Column("activity", sa.String(length=255), nullable=False),
        sa.Column("steps_completed", sa.Integer(), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("job_priority", sa.SmallInteger(), nullable=False),
        sa.Column("pending_dependencies", sa.Integer(), nullable=False),
        sa.Column("job_schedulable", sa.Boolean(), nullable=False),
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            f"status IN ({TASK_STATUSES})",
            name=op.f("ck_tasks_status"),
        ),
        sa.CheckConstraint("pending_dependencies >= 0", name=op.f("ck_tasks_pending_dependencies")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_tasks_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_tasks_worker_id_workers"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("job_id", "index_in_job", name=op.f("uq_tasks_job_id_index_in_job")),
        sa.UniqueConstraint("uuid", name=op.f("uq_tasks_uuid")),
        **BINARY_TEXT,
    )
    op.create_index("ix_tasks_status_last_touched_at", "tasks", ["status", "last_touched_at"])
    op.create_index("ix_tasks_worker_id_status", "tasks", ["worker_id", "status"])
    op.create_index(
        "ix_tasks_claimable",
        "tasks",
        [sa.text("job_priority DESC"), sa.text("priority DESC"), "id"],
        postgresql_where=sa.text(CLAIMABLE),
        sqlite_where=sa.text(CLAIMABLE),
    )
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", IdType, nullable=False),
        sa.Column("dependency_id", IdType, nullable=False),
        sa.CheckConstraint("task_id <> dependency_id", name=op.f("ck_task_dependencies_not_self")),
        sa.ForeignKeyConstraint(
            ["dependency_id"], ["tasks.id"], name=op.f("fk_task_dependencies_dependency_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_dependencies_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "dependency_id", name=op.f("pk_task_dependencies")),
        **BINARY_TEXT,
    )
    op.create_index("ix_task_dependencies_dependency_id", "task_dependencies", ["dependency_id"])
    op.create_table(
        "task_failures",
        sa.Column("task_id", IdType, nullable=False),
        sa.Column("worker_id", IdType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_failures_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_task_failures_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "worker_id", name=op.f("pk_task_failures")),
        **BINARY_TEXT,
    )
    op.create_index("ix_task_failures_worker_id", "task_failures", ["worker_id"])


def downgrade() -> None:
    # Indexes go with their tables.
    op.drop_table("task_failures")
    op.drop_table("task_dependencies")
    op.drop_table("tasks")
    op.drop_table("last_rendered")
    op.drop_table("job_blocks")
    op.drop_table("worker_tag_membership")
    op.drop_table("sleep_schedules")
    op.drop_table("jobs")
    op.drop_table("workers")
    op.drop_table("worker_tags")
