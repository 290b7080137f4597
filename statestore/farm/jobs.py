"""Jobs of the farm model, with their tasks as a whole: store, fetch, save, delete, count.

Each method validates its input first (bad input raises InvalidInput before
any SQL), then runs one unit of work: its own transaction, or the caller's
``store.transaction()`` if one is open.

The change feed hears of jobs stored (``job.stored``), deleted
(``job.deleted``) and of status changes the raw saves make (``job.status``
and ``task.status``, with no history entry: the status history is the
state machine's). Writes that can make work claimable — a job stored or
queued or resumed, its priority or tag changed, tasks added or requeued —
announce it (:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.dialect import facts_of
from statestore.core.gc_pause import collection_paused, without_collection
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import SMALLINT, aware_datetime, enum_value, integer, text, uuid_value
from statestore.errors import InvalidInput, NotFound
from statestore.farm.authored import encode_authored_job, encode_authored_tasks
from statestore.farm.derived import copy_job_priority, copy_job_schedulable, schedulable
from statestore.farm.enabling import WorkSignal, enable_work, write_enabling
from statestore.farm.fields import activity_value
from statestore.farm.job_queries import JobQueries
from statestore.farm.job_tasks import (
    count_tasks_in_status,
    has_tasks_in_status,
    task_summaries,
    update_task_statuses,
    update_task_step_counts,
)
from statestore.farm.lookups import load_job, tag_id_of
from statestore.farm.records import AuthoredJob, AuthoredTask, Job, Task, TaskSummary
from statestore.farm.rows import JOB_COLUMNS, job_from_row
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.submission import add_tasks, enables_work, store_authored
from statestore.farm.tables import JOBS, LENGTHS, STATUS_HISTORY

OFFLOAD_TASKS = 500
"""Submissions with more tasks than this run off the event loop's thread."""


def _task_statuses(statuses: Collection[object], where: str) -> builtins.list[TaskStatus]:
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Collection):
        raise InvalidInput(f"{where}: expected a collection of TaskStatus")
    return [enum_value(TaskStatus, status, where) for status in statuses]


_ALL = select(*JOB_COLUMNS).order_by(JOBS.c.id)


_IN_STATUS = select(*JOB_COLUMNS).where(JOBS.c.status.in_(bindparam("statuses", expanding=True))).order_by(JOBS.c.id)


_DELETION_REQUESTED = (
    select(JOBS.c.uuid).where(JOBS.c.delete_requested_at.is_not(None)).order_by(JOBS.c.delete_requested_at, JOBS.c.id)
)


_CHECKOUT = select(JOBS.c.storage_checkout_id).where(JOBS.c.uuid == bindparam("uuid"))


_SUMMARIZE = select(JOBS.c.status, func.count()).group_by(JOBS.c.status).order_by(JOBS.c.status)


def list_jobs(connection: Connection) -> list[Job]:
    """Every job, by id."""
    return [job_from_row(row) for row in connection.execute(_ALL).mappings()]


def jobs_in_status(connection: Connection, statuses: Collection[JobStatus]) -> list[Job]:
    """The jobs in one of ``statuses``, by id."""
    if not statuses:
        return []
    params = {"statuses": [status.value for status in statuses]}
    return [job_from_row(row) for row in connection.execute(_IN_STATUS, params).mappings()]


def deletion_requested(connection: Connection) -> list[UUID]:
    """Jobs whose deletion was requested, oldest request first."""
    return list(connection.execute(_DELETION_REQUESTED).scalars())


def storage_checkout_id(connection: Connection, uuid: UUID) -> str:
    """The job's storage checkout id (NotFound if the job is missing)."""
    checkout = connection.execute(_CHECKOUT, {"uuid": uuid}).scalar_one_or_none()
    if checkout is None:
        raise NotFound(f"job {uuid} not found")
    return str(checkout)


def summarize_statuses(connection: Connection) -> dict[JobStatus, int]:
    """How many jobs are in each status (statuses without jobs are absent)."""
    return {JobStatus(status): int(count) for status, count in connection.execute(_SUMMARIZE)}


_MARK_DELETION = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("ids", expanding=True)))
    .values(delete_requested_at=bindparam("now"), updated_at=bindparam("now"))
)


_TO_DELETE = (
    select(JOBS.c.id, JOBS.c.uuid)
    .where(JOBS.c.updated_at <= bindparam("last_updated_max"))
    .order_by(JOBS.c.id)
    .with_for_update()
)


_DELETE_JOB = delete(JOBS).where(JOBS.c.uuid == bindparam("uuid"))


def save_job(connection: Connection, uuid: UUID, values: dict[str, Any]) -> Job:
    """Write ``values`` (column → value; ``updated_at`` included or kept by
    the caller) to job ``uuid`` and return it (one statement where the
    dialect has UPDATE … RETURNING)."""
    statement = update(JOBS).where(JOBS.c.uuid == bindparam("b_uuid")).values(**values)
    params = {"b_uuid": uuid}
    if facts_of(connection).update_returning:
        row = connection.execute(statement.returning(*JOB_COLUMNS), params).mappings().one_or_none()
        if row is None:
            raise NotFound(f"job {uuid} not found")
        return job_from_row(row)
    if connection.execute(statement, params).rowcount == 0:
        raise NotFound(f"job {uuid} not found")
    return load_job(connection, uuid)


# The job's status, locked: what a status change or a deletion replaces is
# what the change feed reports.
_STATUS_LOCKED = select(JOBS.c.status).where(JOBS.c.uuid == bindparam("uuid")).with_for_update()


def _status_locked(connection: Connection, uuid: UUID) -> str:
    status = connection.execute(_STATUS_LOCKED, {"uuid": uuid}).scalar_one_or_none()
    if status is None:
        raise NotFound(f"job {uuid} not found")
    return str(status)


def save_status(connection: Connection, uuid: UUID, values: dict[str, Any], work: WorkSignal | None = None) -> Job:
    """The job's status (and activity), and whether its tasks may be handed
    out copied to them (the claim index's predicate): only the tasks whose
    copy changes are written, none when the job stays active or queued.
    A change of status goes to the feed (the activity, if given, as its
    reason); one that lets the job's tasks be handed out again (queued,
    resumed) announces work."""
    old = _status_locked(connection, uuid)
    job = save_job(connection, uuid, values)
    copy_job_schedulable(connection, job.id, job.status.value)
    if job.status.value != old:
        reason = values.get("activity", "")
        row = change(ChangeKind.JOB_STATUS, at=job.updated_at, job=uuid, old=old, new=job.status.value, reason=reason)
        record(connection, [row])
        if schedulable(job.status.value) and not schedulable(old):
            enable_work(connection, work)
    return job


def save_priority(connection: Connection, uuid: UUID, priority: int) -> Job:
    """The job's priority, and its copy on every task (the claim index's
    order); announces work (the order of claims changes)."""
    job = save_job(connection, uuid, {"priority": priority, "updated_at": utcnow()})
    copy_job_priority(connection, job.id, priority)
    enable_work(connection, None)
    return job


def save_worker_tag(connection: Connection, uuid: UUID, tag: UUID | None) -> Job:
    """Limit the job to workers with tag ``tag`` (None: any worker);
    announces work (other workers may take its tasks now)."""
    tag_id = tag_id_of(connection, tag, f"job {uuid}")
    job = save_job(connection, uuid, {"worker_tag_id": tag_id, "updated_at": utcnow()})
    enable_work(connection, None)
    return job


def request_deletion(connection: Connection, uuid: UUID) -> Job:
    """Mark the job for the job deleter."""
    now = utcnow()
    return save_job(connection, uuid, {"delete_requested_at": now, "updated_at": now})


def request_mass_deletion(connection: Connection, last_updated_max: datetime) -> list[UUID]:
    """Mark every job last updated at or before ``last_updated_max``; their
    uuids by id (NotFound if there is none)."""
    found = connection.execute(_TO_DELETE, {"last_updated_max": last_updated_max}).all()
    if not found:
        raise NotFound(f"no job was last updated at or before {last_updated_max.isoformat()}")
    now = utcnow()
    for chunk in chunks([row.id for row in found]):
        connection.execute(_MARK_DELETION, {"ids": list(chunk), "now": now})
    return [row.uuid for row in found]


_DELETE_HISTORY = delete(STATUS_HISTORY).where(
    STATUS_HISTORY.c.job_id == select(JOBS.c.id).where(JOBS.c.uuid == bindparam("uuid")).scalar_subquery()
)


def delete_job(connection: Connection, uuid: UUID, *, reason: str = "", who: str = "") -> None:
    """Delete the job; its tasks, their dependencies and failure lists, its
    blocklist and last-rendered row go with it (ON DELETE CASCADE), and its
    status history (which has no foreign key, see the table). The feed
    gets ``job.deleted`` with the status the job had, and ``reason`` and
    ``who`` if the caller gives them (its earlier changes stay in the feed)."""
    old = _status_locked(connection, uuid)
    connection.execute(_DELETE_HISTORY, {"uuid": uuid})
    if connection.execute(_DELETE_JOB, {"uuid": uuid}).rowcount == 0:
        raise NotFound(f"job {uuid} not found")
    record(connection, [change(ChangeKind.JOB_DELETED, at=utcnow(), job=uuid, old=old, reason=reason, who=who)])


def _uuid(uuid: object) -> UUID:
    return uuid_value(uuid, "job uuid")


class Jobs(JobQueries):
    """Jobs of the farm model, with their tasks as a whole: store, fetch, save, delete, count."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def _one_statement(self) -> bool:
        return self._runner.facts.update_returning

    # -- storing -----------------------------------------------------------------

    async def store_authored(self, job: AuthoredJob) -> Job:
        """Store a submitted job with its tasks and their dependencies, in one
        transaction (Flamenco's StoreAuthoredJob).

        Tasks are stored ``queued``, numbered 1… in authoring order. Refused
        before any SQL: dependencies outside the job (InvalidReference),
        duplicate task uuids, a task listing one dependency twice, a task
        depending on itself, cycles, over-long texts, out-of-range numbers and
        values JSON cannot store. An unknown worker tag is InvalidReference, a
        stored job uuid AlreadyExists; nothing is written then either.
        """
        large = isinstance(job, AuthoredJob) and isinstance(job.tasks, (list, tuple)) and len(job.tasks) > OFFLOAD_TASKS
        # A large job runs off the event loop's thread, and without the cyclic
        # collector sweeping the heap over its many short-lived rows
        # (gc_pause) — while it is encoded and while its unit runs, but not
        # while it waits for its turn: the pause is process-wide.
        with collection_paused() if large else nullcontext():
            encoded = encode_authored_job(job)
        unit = partial(store_authored, job=encoded)
        stored = await self._runner.write(without_collection(unit) if large else unit, offload=large)
        if enables_work(encoded):
            self._runner.wakeups.work()
        return stored

    async def add_tasks(self, job_uuid: UUID | str, tasks: Sequence[AuthoredTask]) -> builtins.list[Task]:
        """Append tasks to a stored job (Flamenco's StoreAuthoredJobTask);
        their dependencies may be the job's stored tasks or each other."""
        uuid = _uuid(job_uuid)
        encoded = encode_authored_tasks(tasks)
        return await write_enabling(
            self._runner, partial(add_tasks, job_uuid=uuid, tasks=encoded), offload=len(encoded.rows) > OFFLOAD_TASKS
        )

    # -- reading -----------------------------------------------------------------

    async def fetch(self, uuid: UUID | str) -> Job:
        """Job ``uuid`` (NotFound if missing)."""
        return await self._runner.read(partial(load_job, uuid=_uuid(uuid)), single_statement=True)

    async def list(self) -> builtins.list[Job]:
        """Every job, by id."""
        return await self._runner.read(list_jobs, single_statement=True)

    async def in_status(self, *statuses: JobStatus) -> builtins.list[Job]:
        """The jobs in any of ``statuses``, by id."""
        wanted = [enum_value(JobStatus, status, "job status") for status in statuses]
        return await self._runner.read(partial(jobs_in_status, statuses=wanted), single_statement=True)

    async def deletion_requested(self) -> builtins.list[UUID]:
        """Jobs whose deletion was requested, oldest request first (then by id)."""
        return await self._runner.read(deletion_requested, single_statement=True)

    async def storage_checkout_id(self, uuid: UUID | str) -> str:
        """The job's storage (Shaman) checkout id; "" if none (NotFound if no job)."""
        return await self._runner.read(partial(storage_checkout_id, uuid=_uuid(uuid)), single_statement=True)

    # -- saving ------------------------------------------------------------------

    async def save_status(self, uuid: UUID | str, status: JobStatus, activity: str | None = None) -> Job:
        """Write the job's status (and activity, unless None: the stored one
        is kept), and updated_at; its tasks learn whether they may be handed out."""
        values: dict[str, Any] = {"status": enum_value(JobStatus, status, "job status").value, "updated_at": utcnow()}
        if activity is not None:
            values["activity"] = activity_value(activity, "job")
        return await write_enabling(self._runner, partial(save_status, uuid=_uuid(uuid), values=values))

    async def save_priority(self, uuid: UUID | str, priority: int) -> Job:
        """Write the job's priority (and updated_at), copied to its tasks for
        the scheduler."""
        value = integer(priority, "job priority", SMALLINT)
        job = await self._runner.write(partial(save_priority, uuid=_uuid(uuid), priority=value))
        self._runner.wakeups.work()
        return job

    async def save_worker_tag(self, uuid: UUID | str, tag: UUID | str | None) -> Job:
        """Limit the job to workers with tag ``tag``, or None for any worker
        (InvalidReference for an unknown tag)."""
        tag_uuid = None if tag is None else uuid_value(tag, "worker tag uuid")
        job = await self._runner.write(partial(save_worker_tag, uuid=_uuid(uuid), tag=tag_uuid))
        self._runner.wakeups.work()
        return job

    async def save_storage_info(self, uuid: UUID | str, checkout_id: str) -> Job:
        """Write the job's storage checkout id. Like Flamenco, this does not
        count as an update: ``updated_at`` is kept."""
        value = text(checkout_id, LENGTHS["storage_checkout_id"], "job storage_checkout_id")
        return await self._save(uuid, {"storage_checkout_id": value, "updated_at": JOBS.c.updated_at})

    async def _save(self, uuid: UUID | str, values: dict[str, object]) -> Job:
        return await self._runner.write(
            partial(save_job, uuid=_uuid(uuid), values=values), single_statement=self._one_statement()
        )

    # -- deleting ----------------------------------------------------------------

    async def request_deletion(self, uuid: UUID | str) -> Job:
        """Mark the job for deletion: ``delete_requested_at = updated_at = now``."""
        return await self._runner.write(
            partial(request_deletion, uuid=_uuid(uuid)), single_statement=self._one_statement()
        )

    async def request_mass_deletion(self, last_updated_max: datetime) -> builtins.list[UUID]:
        """Mark every job last updated at or before ``last_updated_max``
        (already marked ones again, as Flamenco does); their uuids by id.
        NotFound if no job qualifies."""
        cutoff = aware_datetime(last_updated_max, "last_updated_max")
        return await self._runner.write(partial(request_mass_deletion, last_updated_max=cutoff))

    async def delete(self, uuid: UUID | str) -> None:
        """Delete the job with its tasks, their dependencies and failure
        lists, its blocklist and last-rendered mark (NotFound if missing)."""
        await self._runner.write(partial(delete_job, uuid=_uuid(uuid)))

    # -- the job's tasks ---------------------------------------------------------

    async def has_tasks_in_status(self, uuid: UUID | str, status: TaskStatus) -> bool:
        """Whether any task of the job has ``status``."""
        value = enum_value(TaskStatus, status, "task status")
        return await self._runner.read(
            partial(has_tasks_in_status, uuid=_uuid(uuid), status=value), single_statement=True
        )

    async def count_tasks_in_status(self, uuid: UUID | str, *statuses: TaskStatus) -> tuple[int, int]:
        """(the job's tasks in any of ``statuses``, all the job's tasks), in one query."""
        wanted = _task_statuses(statuses, "task status")
        return await self._runner.read(
            partial(count_tasks_in_status, uuid=_uuid(uuid), statuses=wanted), single_statement=True
        )

    async def summarize_statuses(self) -> dict[JobStatus, int]:
        """How many jobs are in each status; statuses without jobs are absent."""
        return await self._runner.read(summarize_statuses, single_statement=True)

    async def task_summaries(self, uuid: UUID | str) -> builtins.list[TaskSummary]:
        """The job's tasks as summaries, by index in the job."""
        return await self._runner.read(partial(task_summaries, uuid=_uuid(uuid)), single_statement=True, offload=True)

    async def update_task_statuses(self, uuid: UUID | str, status: TaskStatus, activity: str) -> int:
        """Set status and activity of all the job's tasks; how many there are."""
        return await self._update_task_statuses(uuid, None, status, activity)

    async def update_task_statuses_conditional(
        self, uuid: UUID | str, from_statuses: Collection[TaskStatus], status: TaskStatus, activity: str
    ) -> int:
        """Set status and activity of the job's tasks now in ``from_statuses``;
        how many were set."""
        return await self._update_task_statuses(uuid, _task_statuses(from_statuses, "from_statuses"), status, activity)

    async def _update_task_statuses(
        self, uuid: UUID | str, from_statuses: builtins.list[TaskStatus] | None, status: TaskStatus, activity: str
    ) -> int:
        unit = partial(
            update_task_statuses,
            uuid=_uuid(uuid),
            status=enum_value(TaskStatus, status, "task status"),
            activity=activity_value(activity, "task"),
            from_statuses=from_statuses,
        )
        return await write_enabling(self._runner, unit)

    async def update_task_step_counts(self, uuid: UUID | str) -> Job:
        """Completed tasks: all steps done; queued tasks: none; then re-sum
        the job's step counters (Flamenco's UpdateJobsTaskStepCounts)."""
        return await self._runner.write(partial(update_task_step_counts, uuid=_uuid(uuid)))
