"""SQL-level helpers for the job and task tests: row counts, the maintained
``pending_dependencies`` column (records do not expose it), timestamps."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, func, select, update

from statestore import Store
from statestore.farm.tables import DEPENDENCIES, FAILURES, JOBS, TASKS


async def count_rows(store: Store, table: Table) -> int:
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


async def counts(store: Store) -> tuple[int, int, int]:
    """(jobs, tasks, dependencies) stored."""
    return (await count_rows(store, JOBS), await count_rows(store, TASKS), await count_rows(store, DEPENDENCIES))


async def pending(store: Store, task: UUID) -> int:
    """The stored ``pending_dependencies`` of ``task``."""
    statement = select(TASKS.c.pending_dependencies).where(TASKS.c.uuid == task)
    return int(await store.read(lambda conn: conn.execute(statement).scalar_one()))


async def job_priority_column(store: Store, task: UUID) -> int:
    statement = select(TASKS.c.job_priority).where(TASKS.c.uuid == task)
    return int(await store.read(lambda conn: conn.execute(statement).scalar_one()))


async def set_job_updated_at(store: Store, job: UUID, when: datetime) -> None:
    statement = update(JOBS).where(JOBS.c.uuid == job).values(updated_at=when)
    await store.write(lambda conn: conn.execute(statement))


async def set_job_created_at(store: Store, job: UUID, when: datetime) -> None:
    statement = update(JOBS).where(JOBS.c.uuid == job).values(created_at=when, updated_at=when)
    await store.write(lambda conn: conn.execute(statement))


__all__ = [
    "FAILURES",
    "count_rows",
    "counts",
    "job_priority_column",
    "pending",
    "set_job_created_at",
    "set_job_updated_at",
]
