"""``StateMachine.delete_job``: a job goes with its tasks and history, the
feed's ``job.deleted`` carries the reason and who; a job with an active
task is refused, and nothing is deleted."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy import func, select

from statestore import Store
from statestore.changes.kinds import ChangeKind
from statestore.errors import Conflict, InvalidInput, NotFound
from statestore.farm import JobStatus
from statestore.farm.tables import STATUS_HISTORY
from tests.support.farm_fixtures import create_worker
from tests.support.feed_reading import settled_changes
from tests.support.state_machine_fixtures import C, Q, activate, job_with, snapshot


async def _history_rows(store: Store, job_id: int) -> int:
    statement = select(func.count()).select_from(STATUS_HISTORY).where(STATUS_HISTORY.c.job_id == job_id)
    return int(await store.read(lambda connection: connection.execute(statement).scalar_one()))


async def test_delete_job_deletes_it_with_its_tasks_and_records_why(store: Store) -> None:
    job, tasks = await job_with(store, Q, C, job_status=JobStatus.QUEUED)
    other, other_tasks = await job_with(store, Q, name="other")
    await store.state_machine.job_status_change(job.uuid, JobStatus.PAUSE_REQUESTED, reason="hold on")
    assert await _history_rows(store, job.id) > 0
    deleted = await store.state_machine.delete_job(job.uuid, reason="wrong frames", who="operator:ann")
    assert deleted.uuid == job.uuid
    assert deleted.status is JobStatus.PAUSED
    with pytest.raises(NotFound):
        await store.jobs.fetch(job.uuid)
    for task in tasks:
        with pytest.raises(NotFound):
            await store.tasks.fetch(task)
    assert await _history_rows(store, job.id) == 0
    assert (await store.tasks.fetch(other_tasks[0])).job_uuid == other.uuid
    changes = await settled_changes(store, kinds=ChangeKind.JOB_DELETED)
    assert [(c.job, c.old, c.reason, c.who) for c in changes] == [(job.uuid, "paused", "wrong frames", "operator:ann")]


async def test_a_job_with_an_active_task_is_refused_and_nothing_is_deleted(store: Store) -> None:
    job, tasks = await job_with(store, Q, Q)
    worker = await create_worker(store)
    await activate(store, worker, tasks[0])
    before = await snapshot(store)
    with pytest.raises(Conflict, match="active task"):
        await store.state_machine.delete_job(job.uuid, reason="no", who="operator:ann")
    assert await snapshot(store) == before


async def test_unknown_and_malformed_jobs(store: Store) -> None:
    missing = uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await store.state_machine.delete_job(missing, reason="r")
    with pytest.raises(InvalidInput, match="job"):
        await store.state_machine.delete_job("not-a-uuid", reason="r")
    job, _ = await job_with(store, Q)
    with pytest.raises(InvalidInput, match="reason"):
        await store.state_machine.delete_job(job.uuid, reason=None)  # type: ignore[arg-type]
    assert (await store.jobs.fetch(job.uuid)).uuid == job.uuid
