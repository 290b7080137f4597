"""Dependencies given as uuids, uuid strings, AuthoredTask objects or task
names, on every backend: what is stored is what was meant, and every bad
reference is refused with a message naming the task and the dependency, with
nothing written."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from statestore import InvalidInput, InvalidReference, Store
from statestore.farm import AuthoredJob, AuthoredTask, TaskStatus
from tests.support.farm_fixtures import authored_job, job_of, render_task, store_job
from tests.support.farm_job_fixtures import counts, pending
from tests.support.statements import statements


def _task(name: str, *dependencies: UUID | str | AuthoredTask) -> AuthoredTask:
    return AuthoredTask(name, "misc", dependencies=list(dependencies))


async def _dependencies(store: Store, task: AuthoredTask) -> set[UUID]:
    return set(await store.tasks.dependencies(task.uuid))


async def test_objects_names_uuid_strings_and_mixed(store: Store) -> None:
    a = _task("a")
    b = _task("b", a)
    c = _task("c", "a", str(b.uuid))
    d = _task("d", a.uuid, "b", c)
    e = _task("e", str(d.uuid).upper(), "{" + str(c.uuid) + "}", "a")
    job = await store.jobs.store_authored(job_of(e, d, c, b, a))  # names may refer forward
    assert await counts(store) == (1, 5, 9)
    assert await _dependencies(store, b) == {a.uuid}
    assert await _dependencies(store, c) == {a.uuid, b.uuid}
    assert await _dependencies(store, d) == {a.uuid, b.uuid, c.uuid}
    assert await _dependencies(store, e) == {a.uuid, c.uuid, d.uuid}
    assert [await pending(store, task.uuid) for task in (a, b, c, d, e)] == [0, 1, 2, 3, 3]
    await store.tasks.save_status(a.uuid, TaskStatus.COMPLETED)
    assert [await pending(store, task.uuid) for task in (b, c, d, e)] == [0, 1, 2, 2]
    assert [task.name for task in await store.tasks.of_job(job.uuid)] == ["e", "d", "c", "b", "a"]


async def test_dependencies_may_be_a_tuple(store: Store) -> None:
    a = _task("a")
    b = AuthoredTask("b", "misc")
    b.dependencies = ("a",)  # type: ignore[assignment]
    await store.jobs.store_authored(job_of(a, b))
    assert await _dependencies(store, b) == {a.uuid}


async def test_a_string_that_parses_as_a_uuid_is_a_uuid_not_a_name(store: Store) -> None:
    hex_name = "deadbeef" * 4  # uuid.UUID accepts 32 hex digits
    named_like_a_uuid = _task(hex_name)
    with pytest.raises(InvalidReference, match=r"task 'b'\.dependencies\[0\]: deadbeef-.* is not a task of this job"):
        await store.jobs.store_authored(job_of(named_like_a_uuid, _task("b", hex_name)))
    assert await counts(store) == (0, 0, 0)
    # Such a task is still reachable as an object or by its uuid.
    by_object = _task("b", named_like_a_uuid)
    await store.jobs.store_authored(job_of(named_like_a_uuid, by_object))
    assert await _dependencies(store, by_object) == {named_like_a_uuid.uuid}


def _unknown_name() -> AuthoredJob:
    return job_of(_task("a"), _task("b", "a"), _task("c", "b", "nobody"))


def _ambiguous_name() -> AuthoredJob:
    return job_of(_task("twin"), _task("twin"), _task("sibling", "twin"))


def _object_not_in_the_job() -> AuthoredJob:
    return job_of(_task("a"), _task("b", _task("stranger")))


def _self_by_object() -> AuthoredJob:
    narcissus = _task("narcissus")
    narcissus.dependencies = [narcissus]
    return job_of(_task("a"), narcissus)


def _self_by_name() -> AuthoredJob:
    return job_of(_task("a"), _task("echo", "a", "echo"))


def _cycle_through_names() -> AuthoredJob:
    return job_of(_task("outside"), _task("x", "z"), _task("y", "x"), _task("z", "y", "outside"))


def _twice_in_two_forms() -> AuthoredJob:
    a = _task("a")
    return job_of(a, _task("b", "a", a))


def _unknown_uuid_string() -> AuthoredJob:
    return job_of(_task("a"), _task("lost", str(uuid4())))


def _not_a_reference() -> AuthoredJob:
    return job_of(_task("a"), _task("b", "a", 7))  # type: ignore[arg-type]


def _object_with_a_bad_uuid() -> AuthoredJob:
    broken = _task("broken")
    broken.uuid = "not-a-uuid"  # type: ignore[assignment]
    return job_of(_task("b", broken))


BAD: dict[str, tuple[Callable[[], AuthoredJob], type[InvalidInput], str]] = {
    "unknown name": (
        _unknown_name,
        InvalidReference,
        r"task 'c'\.dependencies\[1\]: no task of this job is named 'nobody'",
    ),
    "ambiguous name": (
        _ambiguous_name,
        InvalidReference,
        r"task 'sibling'\.dependencies\[0\]: 2 tasks .* named 'twin'",
    ),
    "object not in the job": (
        _object_not_in_the_job,
        InvalidReference,
        r"task 'b'\.dependencies\[0\]: task 'stranger' \(.*\) is not a task of this job",
    ),
    "self-dependency by object": (_self_by_object, InvalidInput, r"task 'narcissus' depends on itself"),
    "self-dependency by name": (_self_by_name, InvalidInput, r"task 'echo' depends on itself \(dependencies\[1\]\)"),
    "cycle through names": (_cycle_through_names, InvalidInput, r"cycle: .*'x'.*'y'.*'z'|cycle: .*'x'.*'z'.*'y'"),
    "one dependency in two forms": (
        _twice_in_two_forms,
        InvalidInput,
        r"task 'b': dependency task 'a' .* listed twice",
    ),
    "unknown uuid string": (_unknown_uuid_string, InvalidReference, r"task 'lost'\.dependencies\[0\]: .* not a task"),
    "not a reference": (_not_a_reference, InvalidInput, r"task 'b'\.dependencies\[1\]: expected .* got int"),
    "object with a bad uuid": (
        _object_with_a_bad_uuid,
        InvalidInput,
        r"task 'b'\.dependencies\[0\]: task 'broken'\.uuid",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
async def test_bad_dependencies_are_refused_and_nothing_is_written(store: Store, case: str) -> None:
    build, error, message = BAD[case]
    with pytest.raises(error, match=message) as raised:
        await store.jobs.store_authored(build())
    assert raised.type is error  # InvalidReference only for references to no (single) task
    if case == "cycle through names":
        assert "'outside'" not in str(raised.value)
    assert await counts(store) == (0, 0, 0)
    # The store is fine afterwards.
    a = _task("a")
    b = _task("b", "a")
    await store.jobs.store_authored(job_of(a, b))
    assert await _dependencies(store, b) == {a.uuid}


async def test_not_a_list_is_refused(store: Store) -> None:
    task = _task("a")
    task.dependencies = "a"  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match=r"task 'a'\.dependencies: expected a list"):
        await store.jobs.store_authored(job_of(task))
    assert await counts(store) == (0, 0, 0)


# -- add_tasks ---------------------------------------------------------------


async def test_added_tasks_refer_to_each_other_and_to_stored_tasks_in_every_form(store: Store) -> None:
    authored = authored_job()  # render-1-3, render-4-6, preview-video
    job = await store_job(store, authored)
    first, second, video = authored.tasks
    await store.tasks.save_status(first.uuid, TaskStatus.COMPLETED)
    extra = _task("extra", "render-1-3")  # a stored task, by name
    upload = _task("upload", "preview-video", extra, "later")  # stored by name, batch by object and by name
    later = _task("later", second)  # a stored task, by the object of the earlier submission
    check = _task("check", str(video.uuid), "extra", first.uuid)
    added = await store.jobs.add_tasks(job.uuid, [extra, upload, later, check])
    assert [task.uuid for task in added] == [extra.uuid, upload.uuid, later.uuid, check.uuid]
    assert await counts(store) == (1, 7, 2 + 1 + 3 + 1 + 3)
    assert await _dependencies(store, extra) == {first.uuid}
    assert await _dependencies(store, upload) == {video.uuid, extra.uuid, later.uuid}
    assert await _dependencies(store, later) == {second.uuid}
    assert await _dependencies(store, check) == {video.uuid, extra.uuid, first.uuid}
    # first is completed: it no longer counts.
    assert [await pending(store, task.uuid) for task in (extra, upload, later, check)] == [0, 3, 1, 2]


async def test_a_stored_name_used_by_many_added_tasks_is_one_query(store: Store) -> None:
    stored = [render_task(f"frame-{number}") for number in range(600)]  # more than one IN-list chunk
    job = await store.jobs.store_authored(job_of(*stored))
    one = _task("one", "frame-0")
    with statements(store) as seen:
        await store.jobs.add_tasks(job.uuid, [one])
    all_of_them = _task("all", *(task.name for task in stored))
    with statements(store) as seen_all:
        await store.jobs.add_tasks(job.uuid, [all_of_them])
    assert await _dependencies(store, all_of_them) == {task.uuid for task in stored}
    assert await pending(store, all_of_them.uuid) == 600
    by_name = [sql for sql in seen_all if "tasks.name IN" in sql]
    assert len(by_name) == 2  # 600 names: two IN-lists of at most 500
    assert len([sql for sql in seen if "tasks.name IN" in sql]) == 1
    assert len(seen_all) <= len(seen) + 4  # IN-list chunks only, not a statement per name


async def test_names_match_exactly(store: Store) -> None:
    # MariaDB's collation ignores trailing spaces; names are compared exactly all the same.
    plain, spaced = _task("a"), _task("a ")
    job = await store.jobs.store_authored(job_of(plain, spaced))
    to_plain, to_spaced = _task("to-plain", "a"), _task("to-spaced", "a ")
    await store.jobs.add_tasks(job.uuid, [to_plain, to_spaced])
    assert await _dependencies(store, to_plain) == {plain.uuid}
    assert await _dependencies(store, to_spaced) == {spaced.uuid}
    with pytest.raises(InvalidReference, match=r"no task of this job is named 'a  '"):
        await store.jobs.add_tasks(job.uuid, [_task("two-spaces", "a  ")])
    with pytest.raises(InvalidReference, match=r"no task of this job is named 'A'"):
        await store.jobs.add_tasks(job.uuid, [_task("upper", "A")])
    assert await counts(store) == (1, 4, 2)


async def _stored_with_twins(store: Store) -> tuple[UUID, list[AuthoredTask]]:
    tasks = [_task("solo"), _task("twin"), _task("twin")]
    job = await store.jobs.store_authored(job_of(*tasks))
    other = authored_job(name="other job")
    await store.jobs.store_authored(other)
    return job.uuid, other.tasks


ADD_BAD: dict[str, tuple[Callable[[list[AuthoredTask]], list[AuthoredTask]], type[InvalidInput], str]] = {
    "unknown name": (
        lambda _: [_task("new"), _task("lost", "new", "nobody")],
        InvalidReference,
        r"task 'lost'\.dependencies\[1\]: no task of this job is named 'nobody'",
    ),
    "name of another job's task": (
        lambda _: [_task("lost", "render-1-3")],
        InvalidReference,
        r"task 'lost'\.dependencies\[0\]: no task of this job is named 'render-1-3'",
    ),
    "name ambiguous among stored tasks": (
        lambda _: [_task("new", "twin")],
        InvalidReference,
        r"task 'new'\.dependencies\[0\]: 2 tasks of this job are named 'twin'",
    ),
    "name of an added and of a stored task": (
        lambda _: [_task("solo"), _task("new", "solo")],
        InvalidReference,
        r"task 'new'\.dependencies\[0\]: 2 tasks of this job are named 'solo'",
    ),
    "name ambiguous among added tasks": (
        lambda _: [_task("dup"), _task("dup"), _task("new", "dup")],
        InvalidReference,
        r"task 'new'\.dependencies\[0\]: 2 tasks of this job are named 'dup'",
    ),
    "object of another job": (
        lambda other: [_task("new", other[0])],
        InvalidReference,
        r"task 'new': dependency .* is not a task of job",
    ),
    "object never stored": (
        lambda _: [_task("new", _task("ghost"))],
        InvalidReference,
        r"task 'new': dependency .* is not a task of job",
    ),
    "self-dependency by object": (
        lambda _: [_task("ok"), _self_dependent("selfish")],
        InvalidInput,
        r"task 'selfish' depends on itself",
    ),
    "cycle through names": (
        lambda _: [_task("x", "solo", "z"), _task("y", "x"), _task("z", "y")],
        InvalidInput,
        r"cycle: .*'x'.*'y'.*'z'|cycle: .*'x'.*'z'.*'y'",
    ),
    "stored task by name twice": (
        lambda _: [_task("new", "solo", "solo")],
        InvalidInput,
        r"task 'new': dependency .* listed twice",
    ),
}


def _self_dependent(name: str) -> AuthoredTask:
    task = _task(name, "solo")
    task.dependencies.append(task)
    return task


@pytest.mark.parametrize("case", list(ADD_BAD), ids=list(ADD_BAD))
async def test_bad_dependencies_of_added_tasks_are_refused_and_nothing_is_written(store: Store, case: str) -> None:
    job, other = await _stored_with_twins(store)
    build, error, message = ADD_BAD[case]
    before = await counts(store)
    with pytest.raises(error, match=message) as raised:
        await store.jobs.add_tasks(job, build(other))
    assert raised.type is error
    assert await counts(store) == before
    # The store is fine afterwards: the same names resolve where they are unique.
    fine = _task("fine", "solo")
    await store.jobs.add_tasks(job, [fine])
    assert len(await store.tasks.dependencies(fine.uuid)) == 1


async def test_a_stored_task_given_by_name_and_by_uuid_is_listed_twice(store: Store) -> None:
    solo = _task("solo")
    job = await store.jobs.store_authored(job_of(solo))
    with pytest.raises(InvalidInput, match=rf"task 'new': dependency {solo.uuid} is listed twice"):
        await store.jobs.add_tasks(job.uuid, [_task("new", solo.uuid, "solo")])
    assert await counts(store) == (1, 1, 0)
