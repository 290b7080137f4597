"""Builders for the state-machine tests: jobs whose tasks are in given
statuses (put there as the raw persistence calls would, rippling nothing,
as Flamenco's own tests hand them to their mocks), tasks made active on a worker, the status history
as plain tuples, and a snapshot of every table to show that a refused call
changed nothing."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection

from statestore import Store
from statestore.farm import Job, JobStatus, TaskStatus, Worker
from statestore.farm.derived import copy_job_schedulable, recount_job, resum_steps
from statestore.farm.tables import JOBS, TASKS
from statestore.schema.metadata import metadata
from tests.support.farm_fixtures import job_of, render_task

History = list[tuple[UUID | None, str, str]]
"""A history as (task uuid, or None for the job itself; old status; new status)."""

# The task statuses, short, as the tests write a job's tasks.
Q, A, C, F, S, P, X = (
    TaskStatus.QUEUED,
    TaskStatus.ACTIVE,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.SOFT_FAILED,
    TaskStatus.PAUSED,
    TaskStatus.CANCELED,
)


async def job_with(
    store: Store,
    *statuses: TaskStatus,
    job_status: JobStatus = JobStatus.QUEUED,
    task_type: str = "blender",
    steps: int = 0,
    name: str = "job",
) -> tuple[Job, list[UUID]]:
    """A job with one task per status in ``statuses`` (in that order), and
    status ``job_status``. Tasks and job are put in their statuses as the raw
    persistence calls would put them (in one transaction, with the derived
    columns kept right), rippling nothing; a completed task has all its
    steps done. ``steps`` is each task's step count
    (a task has at least one)."""
    authored = job_of(*[render_task(f"{name}-{index}", task_type, steps=steps) for index in range(len(statuses))])
    authored.name = name
    job = await store.jobs.store_authored(authored)
    uuids = [task.uuid for task in authored.tasks]
    by_status: dict[TaskStatus, list[UUID]] = {}
    for uuid, status in zip(uuids, statuses, strict=True):
        by_status.setdefault(status, []).append(uuid)
    await store.write(partial(_put_in_statuses, job_id=job.id, by_status=by_status, job_status=job_status))
    return await store.jobs.fetch(job.uuid), uuids


def _put_in_statuses(
    connection: Connection, job_id: int, by_status: dict[TaskStatus, list[UUID]], job_status: JobStatus
) -> None:
    """What the raw persistence calls would write, in one transaction."""
    for status, uuids in by_status.items():
        values: dict[str, Any] = {"status": status.value}
        if status is TaskStatus.COMPLETED:
            values["steps_completed"] = TASKS.c.steps_total
        connection.execute(update(TASKS).where(TASKS.c.uuid.in_(uuids)).values(**values))
    recount_job(connection, job_id)
    resum_steps(connection, job_id)
    connection.execute(update(JOBS).where(JOBS.c.id == job_id).values(status=job_status.value))
    copy_job_schedulable(connection, job_id, job_status.value)


async def activate(store: Store, worker: Worker, *tasks: UUID) -> None:
    """Hand ``tasks`` to ``worker`` as a manager does: assigned, then made
    active through the state machine (the job follows)."""
    for task in tasks:
        await store.tasks.assign_to_worker(task, worker.uuid)
        await store.state_machine.task_status_change(task, TaskStatus.ACTIVE, reason="handed to a worker")


async def task_statuses(store: Store, tasks: Sequence[UUID]) -> list[TaskStatus]:
    """The tasks' statuses, in the order given (one read)."""
    statement = select(TASKS.c.uuid, TASKS.c.status).where(TASKS.c.uuid.in_(list(tasks)))
    rows = await store.read(lambda connection: connection.execute(statement).all())
    found = {UUID(str(uuid)): TaskStatus(status) for uuid, status in rows}
    return [found[task] for task in tasks]


async def job_status(store: Store, job: UUID) -> JobStatus:
    return (await store.jobs.fetch(job)).status


async def history_of_job(store: Store, job: UUID, *, after: int | None = None) -> History:
    """The job's whole history after cursor ``after``, as tuples."""
    entries = await store.status_history.of_job(job, after=after, limit=10_000)
    return [(entry.task_uuid, entry.old_status, entry.new_status) for entry in entries]


async def last_cursor(store: Store, job: UUID) -> int:
    """The cursor of the job's newest history entry (0 when it has none)."""
    entries = await store.status_history.of_job(job, limit=10_000)
    return entries[-1].cursor if entries else 0


def _every_row(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    rows = {}
    for table in metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        rows[table.name] = [tuple(row) for row in connection.execute(select(table).order_by(*order))]
    return rows


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare before and after a refused call."""
    return await store.read(_every_row)


async def set_columns(store: Store, table: Table, uuid: UUID, **values: Any) -> None:
    """Write ``values`` to the row of ``table`` with ``uuid`` (to backdate a
    heartbeat or a touch)."""
    statement = update(table).where(table.c.uuid == uuid).values(**values)
    await store.write(lambda connection: connection.execute(statement))


def in_task_order(history: History, tasks: Sequence[UUID]) -> History:
    """``history`` sorted by the tasks' order in ``tasks`` (the job's own
    entries first), for changes whose order among tasks does not matter."""
    return sorted(history, key=lambda entry: -1 if entry[0] is None else tasks.index(entry[0]))
