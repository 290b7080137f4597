"""Uuid arguments of the farm repositories: a ``uuid.UUID`` or its string form.

For every public method of every farm repository that takes a job, task,
worker or tag uuid (as an argument, or as the uuid of a record it is given),
on every backend:

* the string form of a stored object's uuid gives the same result — and
  leaves the database in the same state — as the UUID itself;
* a malformed uuid (a malformed string, or not a string at all) is
  InvalidInput naming the parameter, raised before any SQL is sent, so
  nothing is written;
* the next call works, even inside the transaction the refusal happened in.

Writing calls are compared across two identical worlds (same uuids, built
afresh), reading calls within one. A guard test fails when a repository
grows a uuid parameter this table does not cover.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import delete, select

from statestore import InvalidInput, Store
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, SleepSchedule, TaskStatus, WorkerStatus
from statestore.farm.secrets import hash_secret
from statestore.schema.metadata import metadata
from tests.support.farm_fixtures import create_worker
from tests.support.farm_repositories import REPOSITORIES
from tests.support.statements import statements

# -- the world: every uuid fixed, so that two builds are alike -----------------

JOB = UUID("10000000-0000-4000-8000-000000000001")
JOB2 = UUID("10000000-0000-4000-8000-000000000002")
NEW_JOB = UUID("10000000-0000-4000-8000-000000000003")
T1 = UUID("20000000-0000-4000-8000-000000000001")
T2 = UUID("20000000-0000-4000-8000-000000000002")
VIDEO = UUID("20000000-0000-4000-8000-000000000003")
T_JOB2 = UUID("20000000-0000-4000-8000-000000000004")
NEW_TASK = UUID("20000000-0000-4000-8000-000000000005")
WORKER = UUID("30000000-0000-4000-8000-000000000001")
OTHER = UUID("30000000-0000-4000-8000-000000000002")
NEW_WORKER = UUID("30000000-0000-4000-8000-000000000003")
TAG = UUID("40000000-0000-4000-8000-000000000001")
TAG2 = UUID("40000000-0000-4000-8000-000000000002")
NEW_TAG = UUID("40000000-0000-4000-8000-000000000003")

SECRET = "open sesame"
SCHEDULE: dict[str, Any] = {"is_active": True, "days_of_week": "mo,tu", "start_time": "18:00", "end_time": "09:00"}


def _render(name: str, uuid: UUID) -> AuthoredTask:
    return AuthoredTask(name, "blender", commands=[Command("run", {"frames": name}, total_step_count=2)], uuid=uuid)


def _job() -> AuthoredJob:
    video = AuthoredTask("video", "ffmpeg", commands=[Command("merge")], dependencies=[T1, T2], uuid=VIDEO)
    tasks = [_render("render-1", T1), _render("render-2", T2), video]
    return AuthoredJob("job", "simple-blender-render", tasks=tasks, storage_checkout_id="checkout", uuid=JOB)


def _new_job(uuid: Any = NEW_JOB, task: Any = NEW_TASK, tag: Any = None) -> AuthoredJob:
    return AuthoredJob("other", "misc", tasks=[_render("new", task)], worker_tag=tag, uuid=uuid)


async def build(store: Store) -> None:
    """Two jobs, two workers, two tags. Worker WORKER carries TAG, runs T1
    (active, in an active job) and was given T2; it failed T1, is blocked
    from ffmpeg on JOB and has a sleep schedule; JOB was rendered last.
    One transaction: one commit."""
    async with store.transaction():
        await _build(store)


async def _build(store: Store) -> None:
    await store.worker_tags.create("gpu", uuid=TAG)
    await store.worker_tags.create("cpu", uuid=TAG2)
    await create_worker(store, "w", uuid=WORKER, secret=SECRET)
    await create_worker(store, "other", uuid=OTHER)
    await store.worker_tags.set_worker_tags(WORKER, [TAG])
    await store.jobs.store_authored(_job())
    await store.jobs.store_authored(AuthoredJob("job2", "misc", tasks=[_render("only", T_JOB2)], uuid=JOB2))
    await store.jobs.save_status(JOB, JobStatus.ACTIVE, "rendering")
    await store.tasks.assign_to_worker(T1, WORKER)
    await store.tasks.assign_to_worker(T2, WORKER)
    await store.tasks.save_status(T1, TaskStatus.ACTIVE, "rendering")
    await store.task_failures.add(T1, WORKER)
    await store.blocklist.add(JOB, WORKER, "ffmpeg")
    await store.sleep_schedules.set(WORKER, **SCHEDULE)
    await store.last_rendered.set(JOB)


async def reset(store: Store) -> None:
    tables = list(reversed(metadata.sorted_tables))
    await store.write(lambda conn: [conn.execute(delete(table)) for table in tables])


# -- comparing results and database states ----------------------------------------

_RANDOM = {
    ("sleep_schedules", "uuid"),
    ("last_rendered", "uuid"),
    (SleepSchedule.__name__, "uuid"),
    ("changes", "tx"),
}
"""Uuids the store draws itself, and the change feed's transaction ids: two
builds of the world differ in them."""


def _comparable(owner: str, name: str, value: Any) -> tuple[bool, Any]:
    """Whether to compare field ``name`` of ``owner``, and as what: row ids
    and instants differ between two builds, only whether they are set counts."""
    if name in ("id", "secret_hash") or (owner, name) in _RANDOM:
        return False, None
    if (name.endswith("_id") and name != "storage_checkout_id") or name == "at" or name.endswith("_at"):
        return True, value is not None
    return True, normalized(value)


_FLOW_TABLES = {"log_books", "flow_details", "atom_details", "change_feed"}
"""Left out of the farm's digest (the change feed's bookkeeping row too:
:func:`reset` deletes it and the feed puts it back when it next reads)."""

_RANDOM_ROWS = {"sleep_schedules", "last_rendered"}
"""Tables whose rows get a uuid the store draws (no row references them)."""


def normalized(value: Any) -> Any:
    """A result with what two builds of the world cannot share taken out."""
    if is_dataclass(value) and not isinstance(value, type):
        owner = type(value).__name__
        kept = {}
        for item in fields(value):
            compared, shown = _comparable(owner, item.name, getattr(value, item.name))
            if compared:
                kept[item.name] = shown
        return owner, kept
    if isinstance(value, (set, frozenset)):
        return sorted(repr(normalized(item)) for item in value)
    if isinstance(value, (list, tuple)):
        return [normalized(item) for item in value]
    if isinstance(value, Mapping):
        return {repr(normalized(key)): normalized(item) for key, item in value.items()}
    if isinstance(value, Enum):
        return value.value
    return value


async def digest(store: Store) -> dict[str, list[str]]:
    """Every stored row of the farm, as :func:`normalized` compares results;
    a reference to another row shows that row's uuid (row ids differ between
    two builds of the world)."""

    def read(conn: Any) -> dict[str, list[str]]:
        tables = [table for table in metadata.sorted_tables if table.name not in _FLOW_TABLES]
        rows = {table.name: conn.execute(select(table)).mappings().all() for table in tables}
        uuids = {name: {row["id"]: row["uuid"] for row in found if "uuid" in row} for name, found in rows.items()}
        digested = {}
        for table in tables:
            lines = []
            for row in rows[table.name]:
                kept = {}
                for name, value in row.items():
                    referenced = [key.column.table.name for key in table.c[name].foreign_keys]
                    if referenced and (owner := referenced[0]) in uuids and owner not in _RANDOM_ROWS:
                        kept[name] = uuids[owner].get(value)
                        continue
                    compared, shown = _comparable(table.name, name, value)
                    if compared:
                        kept[name] = shown
                lines.append(repr(sorted(kept.items())))
            digested[table.name] = sorted(lines)
        return digested

    return await store.read(read)


# -- the calls -----------------------------------------------------------------------

Run = Callable[[Store, Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Call:
    """A repository call whose one uuid argument (or record uuid) is ``value``."""

    run: Run
    """(store, what ``prepare`` returned, value) → the call's awaitable."""
    valid: UUID
    """The stored (or new) object's uuid the call is made with."""
    names: str
    """A pattern the InvalidInput message must match: it names the parameter."""
    writes: bool = False
    optional: bool = False
    """None is a valid value (so not a malformed one)."""
    prepare: Callable[[Store], Awaitable[Any]] | None = None
    """What the call needs that must be read before it (outside the SQL watch)."""
    check: Callable[[Store], Awaitable[Any]] | None = None
    """A read showing an effect the rows compared cannot (a new secret)."""


async def _all(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def _read(run: Run, valid: UUID, names: str, **options: Any) -> Call:
    return Call(run, valid, names, **options)


def _write(run: Run, valid: UUID, names: str, **options: Any) -> Call:
    return Call(run, valid, names, writes=True, **options)


async def _complete_t2(store: Store) -> None:
    await store.tasks.save_status(T2, TaskStatus.COMPLETED)


async def _task(store: Store) -> Any:
    return await store.tasks.fetch(T2)


async def _worker(store: Store) -> Any:
    return await store.workers.fetch(WORKER)


async def _tag(store: Store) -> Any:
    return await store.worker_tags.fetch(TAG)


_SOON = datetime(2030, 1, 1, tzinfo=UTC)

JOB_UUID = "job uuid"
TASK_UUID = "task uuid"
WORKER_UUID = "worker uuid"
TAG_UUID = "worker tag uuid"
CURSOR = r"page cursor \(after\)"

CALLS: dict[str, Call] = {
    # store.jobs
    "jobs.store_authored:job.uuid": _write(
        lambda s, c, u: s.jobs.store_authored(_new_job(uuid=u)), NEW_JOB, r"job 'other'\.uuid"
    ),
    "jobs.store_authored:task.uuid": _write(
        lambda s, c, u: s.jobs.store_authored(_new_job(task=u)), NEW_TASK, r"task 'new'\.uuid"
    ),
    "jobs.store_authored:job.worker_tag": _write(
        lambda s, c, u: s.jobs.store_authored(_new_job(tag=u)), TAG2, r"job 'other'\.worker_tag", optional=True
    ),
    "jobs.add_tasks:job_uuid": _write(lambda s, c, u: s.jobs.add_tasks(u, [_render("new", NEW_TASK)]), JOB, JOB_UUID),
    "jobs.add_tasks:task.uuid": _write(lambda s, c, u: s.jobs.add_tasks(JOB, [_render("new", u)]), NEW_TASK, "'new'"),
    "jobs.fetch:uuid": _read(lambda s, c, u: s.jobs.fetch(u), JOB, JOB_UUID),
    "jobs.page:after": _read(lambda s, c, u: s.jobs.page(after=u), JOB, CURSOR, optional=True),
    "jobs.storage_checkout_id:uuid": _read(lambda s, c, u: s.jobs.storage_checkout_id(u), JOB, JOB_UUID),
    "jobs.save_status:uuid": _write(lambda s, c, u: s.jobs.save_status(u, JobStatus.PAUSE_REQUESTED), JOB, JOB_UUID),
    "jobs.save_priority:uuid": _write(lambda s, c, u: s.jobs.save_priority(u, 70), JOB, JOB_UUID),
    "jobs.save_worker_tag:uuid": _write(lambda s, c, u: s.jobs.save_worker_tag(u, TAG), JOB, JOB_UUID),
    "jobs.save_worker_tag:tag": _write(lambda s, c, u: s.jobs.save_worker_tag(JOB, u), TAG, TAG_UUID, optional=True),
    "jobs.save_storage_info:uuid": _write(lambda s, c, u: s.jobs.save_storage_info(u, "new"), JOB, JOB_UUID),
    "jobs.request_deletion:uuid": _write(lambda s, c, u: s.jobs.request_deletion(u), JOB, JOB_UUID),
    "jobs.delete:uuid": _write(lambda s, c, u: s.jobs.delete(u), JOB, JOB_UUID),
    "jobs.has_tasks_in_status:uuid": _read(
        lambda s, c, u: s.jobs.has_tasks_in_status(u, TaskStatus.ACTIVE), JOB, JOB_UUID
    ),
    "jobs.count_tasks_in_status:uuid": _read(
        lambda s, c, u: s.jobs.count_tasks_in_status(u, TaskStatus.QUEUED), JOB, JOB_UUID
    ),
    "jobs.task_summaries:uuid": _read(lambda s, c, u: s.jobs.task_summaries(u), JOB, JOB_UUID),
    "jobs.update_task_statuses:uuid": _write(
        lambda s, c, u: s.jobs.update_task_statuses(u, TaskStatus.CANCELED, "stop"), JOB, JOB_UUID
    ),
    "jobs.update_task_statuses_conditional:uuid": _write(
        lambda s, c, u: s.jobs.update_task_statuses_conditional(u, [TaskStatus.ACTIVE], TaskStatus.QUEUED, "again"),
        JOB,
        JOB_UUID,
    ),
    "jobs.update_task_step_counts:uuid": _write(
        lambda s, c, u: s.jobs.update_task_step_counts(u), JOB, JOB_UUID, prepare=_complete_t2
    ),
    # store.tasks
    "tasks.fetch:uuid": _read(lambda s, c, u: s.tasks.fetch(u), T1, TASK_UUID),
    "tasks.job_uuid_of:uuid": _read(lambda s, c, u: s.tasks.job_uuid_of(u), T1, TASK_UUID),
    "tasks.of_job:job_uuid": _read(lambda s, c, u: s.tasks.of_job(u), JOB, JOB_UUID),
    "tasks.of_job_in_status:job_uuid": _read(
        lambda s, c, u: s.tasks.of_job_in_status(u, TaskStatus.QUEUED), JOB, JOB_UUID
    ),
    "tasks.of_worker_in_status:worker_uuid": _read(
        lambda s, c, u: s.tasks.of_worker_in_status(u, TaskStatus.ACTIVE), WORKER, WORKER_UUID
    ),
    "tasks.of_worker_in_status_of_job:worker_uuid": _read(
        lambda s, c, u: s.tasks.of_worker_in_status_of_job(u, TaskStatus.QUEUED, JOB), WORKER, WORKER_UUID
    ),
    "tasks.of_worker_in_status_of_job:job_uuid": _read(
        lambda s, c, u: s.tasks.of_worker_in_status_of_job(WORKER, TaskStatus.QUEUED, u), JOB, JOB_UUID
    ),
    "tasks.page_of_job:job": _read(lambda s, c, u: s.tasks.page_of_job(u), JOB, JOB_UUID),
    "tasks.page_of_job:after": _read(lambda s, c, u: s.tasks.page_of_job(JOB, after=u), T1, CURSOR, optional=True),
    "tasks.iterate_of_job:job": _read(lambda s, c, u: _all(s.tasks.iterate_of_job(u)), JOB, JOB_UUID),
    "tasks.page_of_worker:worker": _read(lambda s, c, u: s.tasks.page_of_worker(u), WORKER, WORKER_UUID),
    "tasks.page_of_worker:after": _read(
        lambda s, c, u: s.tasks.page_of_worker(WORKER, after=u), T1, CURSOR, optional=True
    ),
    "tasks.iterate_of_worker:worker": _read(lambda s, c, u: _all(s.tasks.iterate_of_worker(u)), WORKER, WORKER_UUID),
    "tasks.dependencies:uuid": _read(lambda s, c, u: s.tasks.dependencies(u), VIDEO, TASK_UUID),
    "tasks.current_of_worker:worker_uuid": _read(lambda s, c, u: s.tasks.current_of_worker(u), WORKER, WORKER_UUID),
    "tasks.save:task.uuid": _write(
        lambda s, c, u: s.tasks.save(replace(c, uuid=u, activity="saved")), T2, TASK_UUID, prepare=_task
    ),
    "tasks.save:task.worker_uuid": _write(
        lambda s, c, u: s.tasks.save(replace(c, worker_uuid=u)), OTHER, r"\.worker_uuid", optional=True, prepare=_task
    ),
    "tasks.save_status:uuid": _write(lambda s, c, u: s.tasks.save_status(u, TaskStatus.COMPLETED), T1, TASK_UUID),
    "tasks.save_activity:uuid": _write(lambda s, c, u: s.tasks.save_activity(u, "busy"), T1, TASK_UUID),
    "tasks.save_steps_completed:uuid": _write(lambda s, c, u: s.tasks.save_steps_completed(u, 1), T1, TASK_UUID),
    "tasks.assign_to_worker:uuid": _write(lambda s, c, u: s.tasks.assign_to_worker(u, OTHER), VIDEO, TASK_UUID),
    "tasks.assign_to_worker:worker_uuid": _write(
        lambda s, c, u: s.tasks.assign_to_worker(VIDEO, u), OTHER, WORKER_UUID
    ),
    "tasks.touched_by_worker:uuid": _write(lambda s, c, u: s.tasks.touched_by_worker(u), T1, TASK_UUID),
    # store.workers
    "workers.create:uuid": _write(
        lambda s, c, u: s.workers.create("new", SECRET, uuid=u), NEW_WORKER, r"worker 'new'\.uuid", optional=True
    ),
    "workers.verify_secret:uuid": _read(lambda s, c, u: s.workers.verify_secret(u, SECRET), WORKER, WORKER_UUID),
    "workers.set_secret:uuid": _write(
        lambda s, c, u: s.workers.set_secret(u, "new secret"),
        WORKER,
        WORKER_UUID,
        check=lambda s: s.workers.verify_secret(WORKER, "new secret"),
    ),
    "workers.fetch:uuid": _read(lambda s, c, u: s.workers.fetch(u), WORKER, WORKER_UUID),
    "workers.page:after": _read(lambda s, c, u: s.workers.page(after=u), WORKER, CURSOR, optional=True),
    "workers.save:worker.uuid": _write(
        lambda s, c, u: s.workers.save(replace(c, uuid=u, name="renamed")),
        WORKER,
        r"worker 'renamed'\.uuid",
        prepare=_worker,
    ),
    "workers.save_status:uuid": _write(
        lambda s, c, u: s.workers.save_status(u, WorkerStatus.ASLEEP, requested=WorkerStatus.AWAKE), WORKER, WORKER_UUID
    ),
    "workers.seen:uuid": _write(lambda s, c, u: s.workers.seen(u), WORKER, WORKER_UUID),
    "workers.delete:uuid": _write(lambda s, c, u: s.workers.delete(u), WORKER, WORKER_UUID),
    # store.worker_tags
    "worker_tags.create:uuid": _write(
        lambda s, c, u: s.worker_tags.create("new", uuid=u), NEW_TAG, r"worker tag 'new'\.uuid", optional=True
    ),
    "worker_tags.fetch:uuid": _read(lambda s, c, u: s.worker_tags.fetch(u), TAG, TAG_UUID),
    "worker_tags.save:tag.uuid": _write(
        lambda s, c, u: s.worker_tags.save(replace(c, uuid=u, description="saved")),
        TAG,
        r"worker tag 'gpu'\.uuid",
        prepare=_tag,
    ),
    "worker_tags.delete:uuid": _write(lambda s, c, u: s.worker_tags.delete(u), TAG, TAG_UUID),
    "worker_tags.set_worker_tags:worker_uuid": _write(
        lambda s, c, u: s.worker_tags.set_worker_tags(u, [TAG2]), WORKER, WORKER_UUID
    ),
    "worker_tags.set_worker_tags:tag_uuids": _write(
        lambda s, c, u: s.worker_tags.set_worker_tags(WORKER, [TAG, u]), TAG2, r"tag uuids\[1\]"
    ),
    "worker_tags.of_worker:worker_uuid": _read(lambda s, c, u: s.worker_tags.of_worker(u), WORKER, WORKER_UUID),
    # store.blocklist
    "blocklist.add:job_uuid": _write(lambda s, c, u: s.blocklist.add(u, WORKER, "blender"), JOB, JOB_UUID),
    "blocklist.add:worker_uuid": _write(lambda s, c, u: s.blocklist.add(JOB, u, "blender"), OTHER, WORKER_UUID),
    "blocklist.entries:job_uuid": _read(lambda s, c, u: s.blocklist.entries(u), JOB, JOB_UUID),
    "blocklist.clear:job_uuid": _write(lambda s, c, u: s.blocklist.clear(u), JOB, JOB_UUID),
    "blocklist.remove:job_uuid": _write(lambda s, c, u: s.blocklist.remove(u, WORKER, "ffmpeg"), JOB, JOB_UUID),
    "blocklist.remove:worker_uuid": _write(lambda s, c, u: s.blocklist.remove(JOB, u, "ffmpeg"), WORKER, WORKER_UUID),
    "blocklist.workers_left_to_run:job_uuid": _read(
        lambda s, c, u: s.blocklist.workers_left_to_run(u, "ffmpeg"), JOB, JOB_UUID
    ),
    # store.task_failures
    "task_failures.add:task_uuid": _write(lambda s, c, u: s.task_failures.add(u, WORKER), T2, TASK_UUID),
    "task_failures.add:worker_uuid": _write(lambda s, c, u: s.task_failures.add(T1, u), OTHER, WORKER_UUID),
    "task_failures.workers:task_uuid": _read(lambda s, c, u: s.task_failures.workers(u), T1, TASK_UUID),
    "task_failures.clear_for_task:task_uuid": _write(lambda s, c, u: s.task_failures.clear_for_task(u), T1, TASK_UUID),
    "task_failures.clear_for_job:job_uuid": _write(lambda s, c, u: s.task_failures.clear_for_job(u), JOB, JOB_UUID),
    "task_failures.record:task_uuid": _write(
        lambda s, c, u: s.task_failures.record(u, WORKER, blocklist_threshold=2), T2, TASK_UUID
    ),
    "task_failures.record:worker_uuid": _write(lambda s, c, u: s.task_failures.record(T1, u), OTHER, WORKER_UUID),
    "task_failures.count_task_failures_of_worker:job_uuid": _read(
        lambda s, c, u: s.task_failures.count_task_failures_of_worker(u, WORKER, "blender"), JOB, JOB_UUID
    ),
    "task_failures.count_task_failures_of_worker:worker_uuid": _read(
        lambda s, c, u: s.task_failures.count_task_failures_of_worker(JOB, u, "blender"), WORKER, WORKER_UUID
    ),
    # store.sleep_schedules
    "sleep_schedules.fetch:worker_uuid": _read(lambda s, c, u: s.sleep_schedules.fetch(u), WORKER, WORKER_UUID),
    "sleep_schedules.set:worker_uuid": _write(
        lambda s, c, u: s.sleep_schedules.set(u, **{**SCHEDULE, "days_of_week": "we"}), WORKER, WORKER_UUID
    ),
    "sleep_schedules.set_next_check:worker_uuid": _write(
        lambda s, c, u: s.sleep_schedules.set_next_check(u, _SOON), WORKER, WORKER_UUID
    ),
    # store.last_rendered
    "last_rendered.set:job_uuid": _write(lambda s, c, u: s.last_rendered.set(u), JOB2, JOB_UUID),
    # store.scheduler
    "scheduler.claim:worker": _write(lambda s, c, u: s.scheduler.claim(u), OTHER, r"^worker\b"),
    "scheduler.requeue_tasks_of_worker:worker": _write(
        lambda s, c, u: s.scheduler.requeue_tasks_of_worker(u, "it left"), WORKER, r"^worker\b"
    ),
    "scheduler.time_out_worker:worker": _write(lambda s, c, u: s.scheduler.time_out_worker(u), WORKER, r"^worker\b"),
}


def _exists(name: str) -> bool:
    """Whether the repository has the method (listings are still being added)."""
    repository, method = name.split(":")[0].split(".")
    return hasattr(REPOSITORIES[repository], method)


PRESENT = [name for name in CALLS if _exists(name)]


def _malformed(call: Call) -> list[Any]:
    valid = str(call.valid)
    values: list[Any] = ["not-a-uuid", "", "1234", valid[:-1], valid + "0", 1234, call.valid.bytes, 1.5]
    return values if call.optional else [*values, None]


async def state(store: Store, call: Call) -> tuple[dict[str, list[str]], Any]:
    """What a call may have changed: every row, and its own check."""
    return await digest(store), normalized(await call.check(store)) if call.check else None


# -- the tests -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hash_each_secret_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worlds are built many times over: hash each secret once (~50 ms each);
    a hash of the secret still verifies it, and the rows compared leave hashes out."""
    monkeypatch.setattr("statestore.farm.workers.hash_secret", cache(hash_secret))


def test_every_uuid_parameter_of_the_farm_repositories_is_covered() -> None:
    covered = {name.split(":")[0] + ":" + name.split(":")[1] for name in CALLS}
    missing = []
    for repository, cls in REPOSITORIES.items():
        for method, function in inspect.getmembers(cls, inspect.isfunction):
            if method.startswith("_"):
                continue
            for parameter in inspect.signature(function).parameters.values():
                if "UUID" in str(parameter.annotation) and f"{repository}.{method}:{parameter.name}" not in covered:
                    missing.append(f"{repository}.{method}:{parameter.name}")
    assert missing == []


async def _refusals(store: Store, name: str, call: Call, context: Any) -> None:
    """(b) every malformed value is InvalidInput naming the parameter, before
    any SQL; (c) inside the transaction the refusals happened in, the call
    with the valid string works next (the caller's ``by_string``)."""
    for value in _malformed(call):
        with statements(store) as seen, pytest.raises(InvalidInput, match=call.names):
            await call.run(store, context, value)
        assert seen == [], f"{name}: {value!r} reached SQL"


READS = [name for name in PRESENT if not CALLS[name].writes]
WRITES = [name for name in PRESENT if CALLS[name].writes]


async def test_reads_take_uuid_strings_and_refuse_malformed_ones(store: Store) -> None:
    """Every reading call, on one world: the string form (any case) reads
    what the UUID reads, and finds something, so that equality means
    something; malformed values are refused before any SQL."""
    await build(store)
    before = await digest(store)
    for name in READS:
        call = CALLS[name]
        context = await call.prepare(store) if call.prepare else None
        async with store.transaction():
            await _refusals(store, name, call, context)
            by_string = await call.run(store, context, str(call.valid))
        by_uuid = await call.run(store, context, call.valid)
        assert by_uuid not in (None, [], set(), 0, (0, 0), False, ""), f"{name} found nothing"
        assert normalized(by_string) == normalized(by_uuid), name
        assert normalized(await call.run(store, context, str(call.valid).upper())) == normalized(by_uuid), name
    assert await digest(store) == before


@pytest.mark.parametrize("name", WRITES)
async def test_writes_take_uuid_strings_and_refuse_malformed_ones(store: Store, name: str) -> None:
    """Every writing call: refused malformed values write nothing; the string
    form returns what the UUID returns on a world built alike, and leaves the
    same rows behind."""
    call = CALLS[name]
    await build(store)
    context = await call.prepare(store) if call.prepare else None
    before = await state(store, call)
    async with store.transaction():
        await _refusals(store, name, call, context)
        by_string = await call.run(store, context, str(call.valid))
    after_string = await state(store, call)
    assert after_string != before, "the call must change what is compared for the comparison to mean anything"
    await reset(store)
    await build(store)
    context = await call.prepare(store) if call.prepare else None
    by_uuid = await call.run(store, context, call.valid)
    assert normalized(by_string) == normalized(by_uuid)
    assert await state(store, call) == after_string


async def test_the_world_is_rebuilt_alike(store: Store) -> None:
    await build(store)
    first = await digest(store)
    assert all(first[table] for table in ("jobs", "tasks", "workers", "job_blocks", "task_failures", "last_rendered"))
    await reset(store)
    await build(store)
    assert await digest(store) == first
