"""Uniform farm signatures, on every backend.

* ``activity`` of every ``save_status`` that has one (jobs, tasks) is an
  optional argument: None (the default) keeps the stored activity, a string
  is written. Workers have no activity.
* An unknown parent is NotFound in every listing of a parent's children
  (a typo must not look like "none"), in the same single statement that
  lists them; a parent without children lists none.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest

from statestore import InvalidInput, NotFound, Store
from statestore.farm import AuthoredJob, JobStatus, TaskStatus, WorkerStatus
from statestore.farm.jobs import Jobs
from statestore.farm.tasks import Tasks
from statestore.farm.workers import Workers
from tests.support.farm_fixtures import authored_job, create_worker, render_task, store_job
from tests.support.statements import statements

# -- activity is optional on every save_status ----------------------------------------


@pytest.mark.parametrize("repository", [Jobs, Tasks])
def test_activity_is_an_optional_argument_defaulting_to_none(repository: type) -> None:
    parameter = inspect.signature(repository.save_status).parameters["activity"]
    assert parameter.default is None
    assert parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


def test_workers_have_no_activity_to_save() -> None:
    assert "activity" not in inspect.signature(Workers.save_status).parameters


async def test_a_jobs_activity_is_kept_unless_given(store: Store) -> None:
    job = await store_job(store)
    saved = await store.jobs.save_status(job.uuid, JobStatus.QUEUED, "waiting for a worker")
    assert (saved.status, saved.activity) == (JobStatus.QUEUED, "waiting for a worker")
    saved = await store.jobs.save_status(job.uuid, JobStatus.ACTIVE)
    assert (saved.status, saved.activity) == (JobStatus.ACTIVE, "waiting for a worker")
    assert saved.updated_at >= job.updated_at
    assert await store.jobs.fetch(job.uuid) == saved
    saved = await store.jobs.save_status(job.uuid, JobStatus.PAUSED, activity="paused by a user")
    assert (saved.status, saved.activity) == (JobStatus.PAUSED, "paused by a user")
    saved = await store.jobs.save_status(job.uuid, JobStatus.QUEUED, activity=None)
    assert (saved.status, saved.activity) == (JobStatus.QUEUED, "paused by a user")
    saved = await store.jobs.save_status(job.uuid, JobStatus.QUEUED, "")  # "" is written, not skipped
    assert saved.activity == ""
    assert await store.jobs.fetch(job.uuid) == saved


async def test_a_jobs_status_without_activity_still_reaches_its_tasks(store: Store) -> None:
    """The tasks' copy of whether they may be handed out follows the status
    whether or not an activity is given: a paused job's tasks are not claimed."""
    authored = authored_job(status=JobStatus.QUEUED)
    job = await store.jobs.store_authored(authored)
    worker = await create_worker(store)
    await store.jobs.save_status(job.uuid, JobStatus.PAUSED)
    assert await store.scheduler.claim(worker.uuid) is None
    await store.jobs.save_status(job.uuid, JobStatus.QUEUED)
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert claimed.task.job_uuid == job.uuid


async def test_a_tasks_activity_is_kept_unless_given(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    uuid = authored.tasks[0].uuid
    saved = await store.tasks.save_status(uuid, TaskStatus.ACTIVE, "rendering frame 1")
    assert (saved.status, saved.activity) == (TaskStatus.ACTIVE, "rendering frame 1")
    saved = await store.tasks.save_status(uuid, TaskStatus.COMPLETED)
    assert (saved.status, saved.activity) == (TaskStatus.COMPLETED, "rendering frame 1")
    saved = await store.tasks.save_status(uuid, TaskStatus.QUEUED, activity="")
    assert (saved.status, saved.activity) == (TaskStatus.QUEUED, "")
    assert await store.tasks.fetch(uuid) == saved


@pytest.mark.parametrize(("activity", "message"), [("a" * 256, "at most 255"), (7, "expected a string")])
async def test_a_bad_activity_is_refused_and_nothing_is_written(store: Store, activity: Any, message: str) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    task = await store.tasks.fetch(authored.tasks[0].uuid)
    with pytest.raises(InvalidInput, match=f"job.activity.*{message}"):
        await store.jobs.save_status(job.uuid, JobStatus.ACTIVE, activity)
    with pytest.raises(InvalidInput, match=f"task.activity.*{message}"):
        await store.tasks.save_status(task.uuid, TaskStatus.ACTIVE, activity)
    assert await store.jobs.fetch(job.uuid) == job
    assert await store.tasks.fetch(task.uuid) == task


async def test_a_workers_status_save_takes_no_activity(store: Store) -> None:
    worker = await create_worker(store)
    with pytest.raises(TypeError):
        await store.workers.save_status(worker.uuid, WorkerStatus.ASLEEP, activity="zzz")  # type: ignore[call-arg]


# -- an unknown parent is NotFound in every listing ------------------------------------


@dataclass(frozen=True)
class World:
    job: UUID
    """A job with three tasks, no blocklist, no failures."""
    bare_job: UUID
    """A job without tasks (listings of its tasks are empty)."""
    task: UUID
    """A task nobody failed."""
    worker: UUID
    """A live worker without tags, schedule or tasks."""
    deleted_worker: UUID
    """A soft-deleted worker, which had a tag, a schedule and a task."""


@pytest.fixture
async def world(store: Store) -> World:
    authored = authored_job()
    job = await store_job(store, authored)
    bare = await store.jobs.store_authored(AuthoredJob("bare", "misc", status=JobStatus.UNDER_CONSTRUCTION))
    worker = await create_worker(store, "idle")
    gone = await create_worker(store, "gone")
    tag = await store.worker_tags.create("tag")
    await store.worker_tags.set_worker_tags(gone.uuid, [tag.uuid])
    await store.sleep_schedules.set(gone.uuid, is_active=True, days_of_week="mo", start_time="", end_time="")
    await store.tasks.assign_to_worker(authored.tasks[1].uuid, gone.uuid)
    await store.workers.delete(gone.uuid)
    return World(job.uuid, bare.uuid, authored.tasks[0].uuid, worker.uuid, gone.uuid)


@dataclass(frozen=True)
class Listing:
    run: Callable[[Store, UUID], Awaitable[Any]]
    parent: str
    """What the NotFound message names."""
    empty: Callable[[World], UUID]
    """A parent that exists and has no children."""
    nothing: Any
    """What the listing gives for such a parent."""
    statements: int | None = 1
    """How many statements a listing of a known parent, or of an unknown
    one, takes (None: not counted)."""


LISTINGS: dict[str, Listing] = {
    "blocklist.entries": Listing(lambda s, u: s.blocklist.entries(u), "job", lambda w: w.job, []),
    "blocklist.workers_left_to_run": Listing(
        lambda s, u: s.blocklist.workers_left_to_run(u, "blender"), "job", lambda w: w.job, None, None
    ),
    "task_failures.workers": Listing(lambda s, u: s.task_failures.workers(u), "task", lambda w: w.task, []),
    "worker_tags.of_worker": Listing(lambda s, u: s.worker_tags.of_worker(u), "worker", lambda w: w.worker, []),
    "sleep_schedules.fetch": Listing(lambda s, u: s.sleep_schedules.fetch(u), "worker", lambda w: w.worker, None),
    "tasks.current_of_worker": Listing(lambda s, u: s.tasks.current_of_worker(u), "worker", lambda w: w.worker, None),
    "tasks.of_job": Listing(lambda s, u: s.tasks.of_job(u), "job", lambda w: w.bare_job, []),
    "tasks.of_job_in_status": Listing(
        lambda s, u: s.tasks.of_job_in_status(u, TaskStatus.QUEUED), "job", lambda w: w.bare_job, []
    ),
    "tasks.dependencies": Listing(lambda s, u: s.tasks.dependencies(u), "task", lambda w: w.task, []),
    "jobs.task_summaries": Listing(lambda s, u: s.jobs.task_summaries(u), "job", lambda w: w.bare_job, []),
}

WORKER_PARENTS = [name for name, listing in LISTINGS.items() if listing.parent == "worker"]

OF_CHILDREN = [name for name in LISTINGS if name != "blocklist.workers_left_to_run"]
"""The workers left to run a job's tasks are not its children: every live worker is, unless blocked."""


@pytest.mark.parametrize("name", LISTINGS)
async def test_an_unknown_parent_is_not_found(store: Store, world: World, name: str) -> None:
    listing = LISTINGS[name]
    unknown = uuid4()
    with statements(store) as seen, pytest.raises(NotFound, match=f"{listing.parent} {unknown} not found"):
        await listing.run(store, unknown)
    if listing.statements is not None:
        assert len(seen) == listing.statements
    with pytest.raises(NotFound, match=listing.parent):
        await listing.run(store, str(unknown))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", OF_CHILDREN)
async def test_a_parent_without_children_lists_none(store: Store, world: World, name: str) -> None:
    listing = LISTINGS[name]
    with statements(store) as seen:
        assert await listing.run(store, listing.empty(world)) == listing.nothing
    if listing.statements is not None:
        assert len(seen) == listing.statements


@pytest.mark.parametrize("name", WORKER_PARENTS)
async def test_a_soft_deleted_worker_is_an_unknown_parent(store: Store, world: World, name: str) -> None:
    """Soft-deleted workers are invisible everywhere (as to workers.fetch),
    although their tag memberships, schedule and task rows stay."""
    with pytest.raises(NotFound, match=f"worker {world.deleted_worker} not found"):
        await LISTINGS[name].run(store, world.deleted_worker)


async def test_listings_of_parents_with_children_are_unchanged(store: Store, world: World) -> None:
    """The outer joins that tell an unknown parent from a childless one list
    exactly the children, in their order."""
    job = await store.jobs.fetch(world.job)
    [first, second, video] = await store.tasks.of_job(world.job)
    w1, w2 = await create_worker(store, "b"), await create_worker(store, "a")
    await store.blocklist.add(job.uuid, w1.uuid, "ffmpeg")
    await store.blocklist.add(job.uuid, w2.uuid, "blender")
    await store.blocklist.add(job.uuid, w2.uuid, "ffmpeg")
    entries = [(entry.worker_name, entry.task_type) for entry in await store.blocklist.entries(job.uuid)]
    assert entries == [("a", "blender"), ("a", "ffmpeg"), ("b", "ffmpeg")]
    await store.task_failures.add(second.uuid, w2.uuid)
    await store.task_failures.add(second.uuid, w1.uuid)
    assert [worker.uuid for worker in await store.task_failures.workers(second.uuid)] == [w1.uuid, w2.uuid]
    t1, t2 = await store.worker_tags.create("t1"), await store.worker_tags.create("t2")
    await store.worker_tags.set_worker_tags(w1.uuid, [t2.uuid, t1.uuid])
    assert await store.worker_tags.of_worker(w1.uuid) == [t1, t2]
    schedule = await store.sleep_schedules.set(w1.uuid, is_active=False, days_of_week="", start_time="", end_time="")
    assert await store.sleep_schedules.fetch(w1.uuid) == schedule
    await store.tasks.assign_to_worker(first.uuid, w1.uuid)
    await store.tasks.assign_to_worker(video.uuid, w1.uuid)
    current = await store.tasks.current_of_worker(w1.uuid)
    assert current is not None
    assert current.uuid == video.uuid  # updated last
    added = await store.jobs.add_tasks(world.bare_job, [render_task("late")])
    assert [task.uuid for task in await store.tasks.of_job(world.bare_job)] == [task.uuid for task in added]
