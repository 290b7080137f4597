"""Bad submissions: refused before any SQL, identically on every backend,
naming the task or field, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any
from uuid import uuid4

import pytest

from statestore import InvalidInput, InvalidReference, Store
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus
from tests.support.farm_fixtures import authored_job, job_of, render_task, store_job
from tests.support.farm_job_fixtures import counts


def _chain(*names: str) -> list[AuthoredTask]:
    tasks = [render_task(name) for name in names]
    for previous, task in pairwise(tasks):
        task.dependencies = [previous.uuid]
    return tasks


def _cycle() -> AuthoredJob:
    first, second, third = _chain("a", "b", "c")
    first.dependencies = [third.uuid]
    return job_of(render_task("outside"), first, second, third)


def _self_dependent() -> AuthoredJob:
    task = render_task("narcissus")
    task.dependencies = [task.uuid]
    return job_of(task)


def _duplicate_uuid() -> AuthoredJob:
    first = render_task("first")
    second = render_task("second")
    second.uuid = first.uuid
    return job_of(first, second)


def _duplicate_dependency() -> AuthoredJob:
    first = render_task("first")
    second = AuthoredTask("twice", "ffmpeg", dependencies=[first.uuid, first.uuid])
    return job_of(first, second)


def _outside_dependency() -> AuthoredJob:
    return job_of(render_task("first"), AuthoredTask("lost", "ffmpeg", dependencies=[uuid4()]))


def _with(change: Callable[[AuthoredJob], Any]) -> Callable[[], AuthoredJob]:
    def build() -> AuthoredJob:
        job = authored_job()
        change(job)
        return job

    return build


def _set_task(field: str, value: Any) -> Callable[[AuthoredJob], Any]:
    return lambda job: setattr(job.tasks[1], field, value)


BAD_JOBS: dict[str, tuple[Callable[[], AuthoredJob], type[InvalidInput], str]] = {
    "cycle": (_cycle, InvalidInput, r"cycle: 'a' → 'c' → 'b' → 'a'|cycle: .*'a'.*'b'.*'c'"),
    "self-dependency": (_self_dependent, InvalidInput, "'narcissus' depends on itself"),
    "duplicate task uuid": (_duplicate_uuid, InvalidInput, "'second'.*also used by task 'first'"),
    "duplicate dependency": (_duplicate_dependency, InvalidInput, "'twice'.*listed twice"),
    "dependency outside the job": (_outside_dependency, InvalidReference, "'lost'.*not a task of this job"),
    "job name too long": (_with(lambda job: setattr(job, "name", "n" * 65)), InvalidInput, r"\.name: 65 characters"),
    "job type too long": (_with(lambda job: setattr(job, "job_type", "t" * 33)), InvalidInput, r"\.job_type"),
    "task name too long": (_with(_set_task("name", "x" * 65)), InvalidInput, r"\.name: 65 characters"),
    "task type too long": (_with(_set_task("type", "y" * 33)), InvalidInput, r"'render-4-6'\.type"),
    "checkout id too long": (
        _with(lambda job: setattr(job, "storage_checkout_id", "c" * 256)),
        InvalidInput,
        "storage_checkout_id",
    ),
    "job priority above SMALLINT": (_with(lambda job: setattr(job, "priority", 32768)), InvalidInput, r"\.priority"),
    "job priority below SMALLINT": (_with(lambda job: setattr(job, "priority", -32769)), InvalidInput, r"\.priority"),
    "task priority above SMALLINT": (_with(_set_task("priority", 40000)), InvalidInput, r"'render-4-6'\.priority"),
    "boolean priority": (_with(_set_task("priority", True)), InvalidInput, r"\.priority"),
    "unknown status": (_with(lambda job: setattr(job, "status", "finished")), InvalidInput, r"\.status"),
    "non-JSON settings": (
        _with(lambda job: job.settings.update(frames={1, 2})),
        InvalidInput,
        r"\.settings",
    ),
    "non-JSON metadata": (
        _with(lambda job: job.metadata.update(nan=float("nan"))),
        InvalidInput,
        r"\.metadata",
    ),
    "non-JSON command parameters": (
        _with(_set_task("commands", [Command("run", {"blob": b"raw"})])),
        InvalidInput,
        r"'render-4-6'\.commands\[0\]\.parameters",
    ),
    "negative step count": (
        _with(_set_task("commands", [Command("run", total_step_count=-1)])),
        InvalidInput,
        r"'render-4-6'\.commands\[0\]\.total_step_count",
    ),
    "not a command": (_with(_set_task("commands", [{"name": "run"}])), InvalidInput, r"commands\[0\]"),
    # A string that parses as a uuid is that uuid (not a name): here one of no task of the job.
    "string dependency": (
        _with(_set_task("dependencies", [str(uuid4())])),
        InvalidReference,
        r"'render-4-6'\.dependencies\[0\]: .*not a task of this job",
    ),
    "string job uuid": (_with(lambda job: setattr(job, "uuid", "not-a-uuid")), InvalidInput, r"\.uuid: .*not a uuid"),
    "empty job uuid": (_with(lambda job: setattr(job, "uuid", "")), InvalidInput, r"\.uuid: .*not a uuid"),
    "short job uuid": (_with(lambda job: setattr(job, "uuid", "1234")), InvalidInput, r"\.uuid: .*not a uuid"),
    "integer job uuid": (_with(lambda job: setattr(job, "uuid", 1234)), InvalidInput, r"\.uuid: expected"),
    "bytes job uuid": (_with(lambda job: setattr(job, "uuid", uuid4().bytes)), InvalidInput, r"\.uuid: expected"),
    "no job uuid": (_with(lambda job: setattr(job, "uuid", None)), InvalidInput, r"\.uuid: expected"),
    "malformed task uuid": (_with(_set_task("uuid", "not-a-uuid")), InvalidInput, r"'render-4-6'\.uuid"),
    "string worker tag": (_with(lambda job: setattr(job, "worker_tag", "tag")), InvalidInput, r"worker_tag"),
}


async def test_uuid_strings_in_a_submission_work_like_uuids(store: Store) -> None:
    tag = await store.worker_tags.create("gpu")
    authored = authored_job()
    first, second, video = authored.tasks
    job_uuid = authored.uuid
    authored.uuid = str(job_uuid).upper()  # type: ignore[assignment]
    authored.worker_tag = str(tag.uuid)  # type: ignore[assignment]
    first_uuid = first.uuid
    first.uuid = str(first_uuid)  # type: ignore[assignment]
    video.dependencies = [str(first_uuid), second.uuid]
    job = await store.jobs.store_authored(authored)
    assert (job.uuid, job.worker_tag_uuid) == (job_uuid, tag.uuid)
    assert (await store.tasks.fetch(first_uuid)).uuid == first_uuid
    assert set(await store.tasks.dependencies(video.uuid)) == {first_uuid, second.uuid}
    assert await counts(store) == (1, 3, 2)


@pytest.mark.parametrize("case", list(BAD_JOBS), ids=list(BAD_JOBS))
async def test_bad_submission_is_refused_and_nothing_is_written(store: Store, case: str) -> None:
    build, error, message = BAD_JOBS[case]
    with pytest.raises(error, match=message):
        await store.jobs.store_authored(build())
    assert await counts(store) == (0, 0, 0)


async def test_cycle_error_names_only_the_tasks_on_it(store: Store) -> None:
    with pytest.raises(InvalidInput) as raised:
        await store.jobs.store_authored(_cycle())
    assert "'outside'" not in str(raised.value)
    assert all(f"'{name}'" in str(raised.value) for name in "abc")


async def test_a_cycle_among_added_tasks_is_refused(store: Store) -> None:
    job = await store_job(store)
    first, second = _chain("x", "y")
    first.dependencies = [second.uuid]
    with pytest.raises(InvalidInput, match="cycle"):
        await store.jobs.add_tasks(job.uuid, [first, second])
    assert await counts(store) == (1, 3, 2)


async def test_bad_added_task_writes_nothing(store: Store) -> None:
    job = await store_job(store)
    with pytest.raises(InvalidInput, match=r"'bad!+(\.\.\.)?!*'\.name: 73 characters"):
        await store.jobs.add_tasks(job.uuid, [render_task("good"), AuthoredTask("bad" + "!" * 70, "misc")])
    assert await counts(store) == (1, 3, 2)
    assert (await store.jobs.fetch(job.uuid)).steps_total == 3


async def test_bad_arguments_of_job_methods(store: Store) -> None:
    job = await store_job(store)
    assert await store.jobs.fetch(str(job.uuid)) == await store.jobs.fetch(job.uuid)
    for bad in ("not-a-uuid", "", "1234", 1234, job.uuid.bytes, None):
        with pytest.raises(InvalidInput, match="job uuid"):
            await store.jobs.fetch(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="activity"):
        await store.jobs.save_status(job.uuid, JobStatus.ACTIVE, "a" * 256)
    with pytest.raises(InvalidInput, match="status"):
        await store.jobs.save_status(job.uuid, "busy", "")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="priority"):
        await store.jobs.save_priority(job.uuid, 1 << 16)
    with pytest.raises(InvalidInput, match="storage_checkout_id"):
        await store.jobs.save_storage_info(job.uuid, "x" * 256)
    with pytest.raises(InvalidInput, match="naive"):
        await store.jobs.request_mass_deletion(datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="status"):
        await store.jobs.update_task_statuses(job.uuid, "done", "")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="from_statuses"):
        await store.jobs.update_task_statuses_conditional(job.uuid, "queued", TaskStatus.ACTIVE, "")  # type: ignore[arg-type]
    stored = await store.jobs.fetch(job.uuid)
    assert (stored.status, stored.priority, stored.activity) == (JobStatus.UNDER_CONSTRUCTION, 50, "")
