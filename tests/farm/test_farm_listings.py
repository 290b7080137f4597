"""Farm listings on every backend: keyset pages and filters of jobs, of a
job's or a worker's tasks, and of workers.

Each filter alone and combined, every order both ways, paging with small
limits through rows that tie on the order column (each row exactly once, in
order), bad input refused before any SQL, unknown parents and cursors
NotFound, and calls after an error still working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, update

from statestore import InvalidInput, NotFound, Store
from statestore.farm import AuthoredJob, Job, JobOrder, JobStatus, Task, TaskStatus, Worker, WorkerStatus
from statestore.farm.listings import MAX_LIMIT
from statestore.farm.tables import JOBS, TASKS
from tests.support.farm_fixtures import create_worker, job_of, render_task
from tests.support.statements import statements

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
PLUS_TWO = timezone(timedelta(hours=2))

Q, A, P, C, F = JobStatus.QUEUED, JobStatus.ACTIVE, JobStatus.PAUSED, JobStatus.COMPLETED, JobStatus.FAILED


@dataclass(frozen=True)
class Spec:
    """A job of the fixture: what the filters and orders look at."""

    status: JobStatus
    metadata: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    created: datetime = T0
    updated: datetime = T0


# Creation times tie in threes and twos, update times in threes and fours:
# paging must be exact across ties (the row id breaks them).
SPECS = [
    Spec(Q, {"project": "Sprite Fright", "user": "sybren"}, {"frames": "1-6"}, T0, T0 + 3 * HOUR),
    Spec(A, {"project": "sprite fright"}, {"frames": "1-6", "chunk": 3}, T0, T0 + HOUR),
    Spec(Q, {"project": "Sprite Fright "}, {"chunk": "3"}, T0, T0 + 3 * HOUR),
    Spec(P, {"project": "Spring", "user": "Sybren"}, {}, T0 + MINUTE, T0 + 2 * HOUR),
    Spec(C, {"project": 3}, {"chunk": 3}, T0 + MINUTE, T0 + HOUR),
    Spec(Q, {"project": "3"}, {"frames": "1-6"}, T0 + MINUTE, T0 + 3 * HOUR),
    Spec(A, {"project": "Sprite Fright", "user": "andy"}, {"frames": "7-9"}, T0 + 2 * MINUTE, T0 + 2 * HOUR),
    Spec(F, {"project": True}, {"flag": "true", "nested": {"a": "b"}}, T0 + 2 * MINUTE, T0 + HOUR),
    Spec(Q, {"ключ": "значение", "d.k": "dot"}, {}, T0 + 3 * MINUTE, T0 + 2 * HOUR),
    Spec(A, {"project": "Sprite Fright"}, {"frames": "1-6"}, T0 + 3 * MINUTE, T0 + 3 * HOUR),
]


async def _set_row(store: Store, uuid: UUID, **values: Any) -> None:
    statement = update(JOBS).where(JOBS.c.uuid == uuid).values(**values)
    await store.write(lambda conn: conn.execute(statement))


async def store_specs(store: Store, specs: Sequence[Spec]) -> list[UUID]:
    """The jobs of ``specs``, stored one after another (so in row id order)."""
    uuids = []
    for number, spec in enumerate(specs):
        job = await store.jobs.store_authored(
            AuthoredJob(f"job-{number}", "test", metadata=spec.metadata, settings=spec.settings)
        )
        values = {"status": spec.status.value, "created_at": spec.created, "updated_at": spec.updated}
        await _set_row(store, job.uuid, **values)
        uuids.append(job.uuid)
    return uuids


@pytest.fixture
async def jobs(store: Store) -> list[UUID]:
    return await store_specs(store, SPECS)


def indexes(uuids: list[UUID], records: Sequence[Job | Task | Worker]) -> list[int]:
    """Which fixture rows came back, in the order they came."""
    position = {uuid: number for number, uuid in enumerate(uuids)}
    return [position[record.uuid] for record in records]


def expected_order(order: str, rows: Sequence[int] | None = None) -> list[int]:
    """The fixture rows (all, or ``rows``) in ``order``: ties by row id, same direction."""
    column = order.removeprefix("-")

    def key(number: int) -> tuple[Any, int]:
        spec = SPECS[number]
        value: Any = {"id": number, "created_at": spec.created, "updated_at": spec.updated}[column]
        return (value, number)

    return sorted(range(len(SPECS)) if rows is None else rows, key=key, reverse=order.startswith("-"))


async def all_pages(fetch: Callable[[UUID | None], Any], limit: int) -> list[list[Any]]:
    """Every page, each continuing after the last record of the one before."""
    pages: list[list[Any]] = []
    after: UUID | None = None
    while True:
        page = await fetch(after)
        assert len(page) <= limit
        if not page:
            return pages
        pages.append(page)
        after = page[-1].uuid


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [record async for record in iterator]


ORDERS: tuple[JobOrder, ...] = ("id", "-id", "created_at", "-created_at", "updated_at", "-updated_at")


# --------------------------------------------------------------------------- jobs: filters

JOB_FILTERS: dict[str, tuple[dict[str, Any], list[int]]] = {
    "no filter": ({}, list(range(10))),
    "one status": ({"statuses": {Q}}, [0, 2, 5, 8]),
    "statuses as values and members": ({"statuses": ["active", P]}, [1, 3, 6, 9]),
    "no status at all": ({"statuses": []}, []),
    "metadata": ({"metadata": {"project": "Sprite Fright"}}, [0, 6, 9]),
    "metadata is case-sensitive": ({"metadata": {"project": "sprite fright"}}, [1]),
    "metadata trailing space counts": ({"metadata": {"project": "Sprite Fright "}}, [2]),
    "metadata string, not number": ({"metadata": {"project": "3"}}, [5]),
    "metadata boolean never matches": ({"metadata": {"project": "true"}}, []),
    "metadata other key": ({"metadata": {"user": "sybren"}}, [0]),
    "metadata non-ascii key": ({"metadata": {"ключ": "значение"}}, [8]),
    "metadata key with a dot": ({"metadata": {"d.k": "dot"}}, [8]),
    "metadata missing key": ({"metadata": {"missing": ""}}, []),
    "metadata two entries": ({"metadata": {"project": "Sprite Fright", "user": "andy"}}, [6]),
    "settings": ({"settings": {"frames": "1-6"}}, [0, 1, 5, 9]),
    "settings string, not number": ({"settings": {"chunk": "3"}}, [2]),
    "settings object never matches": ({"settings": {"nested": '{"a": "b"}'}}, []),
    "settings boolean-like string": ({"settings": {"flag": "true"}}, [7]),
    "created at or after": ({"created_after": T0 + MINUTE}, [3, 4, 5, 6, 7, 8, 9]),
    "created after, another zone": ({"created_after": (T0 + MINUTE).astimezone(PLUS_TWO)}, [3, 4, 5, 6, 7, 8, 9]),
    "created before": ({"created_before": T0 + MINUTE}, [0, 1, 2]),
    "created in a window": ({"created_after": T0 + MINUTE, "created_before": T0 + 2 * MINUTE}, [3, 4, 5]),
    "updated at or after": ({"updated_after": T0 + 2 * HOUR}, [0, 2, 3, 5, 6, 8, 9]),
    "updated before": ({"updated_before": T0 + 2 * HOUR}, [1, 4, 7]),
    "updated after the last": ({"updated_after": T0 + 3 * HOUR + timedelta(microseconds=1)}, []),
    "empty window": ({"created_after": T0 + MINUTE, "created_before": T0 + MINUTE}, []),
    "status and settings": ({"statuses": {Q}, "settings": {"frames": "1-6"}}, [0, 5]),
    "status, metadata, created": (
        {"statuses": {A}, "metadata": {"project": "Sprite Fright"}, "created_after": T0 + MINUTE},
        [6, 9],
    ),
    "statuses, updated, created": (
        {"statuses": {Q, A}, "updated_after": T0 + 3 * HOUR, "created_before": T0 + 3 * MINUTE},
        [0, 2, 5],
    ),
    "metadata and settings": ({"metadata": {"project": "Sprite Fright"}, "settings": {"frames": "1-6"}}, [0, 9]),
    "every filter": (
        {
            "statuses": {Q, A},
            "metadata": {"project": "Sprite Fright"},
            "settings": {"frames": "1-6"},
            "created_after": T0,
            "created_before": T0 + 3 * MINUTE,
            "updated_after": T0 + 3 * HOUR,
            "updated_before": T0 + 4 * HOUR,
        },
        [0],
    ),
}


@pytest.mark.parametrize("name", JOB_FILTERS)
async def test_each_job_filter_alone_and_combined(store: Store, jobs: list[UUID], name: str) -> None:
    filters, expected = JOB_FILTERS[name]
    assert indexes(jobs, await store.jobs.page(**filters)) == expected
    assert indexes(jobs, await collect(store.jobs.iterate(**filters, page_size=2))) == expected
    assert indexes(jobs, await store.jobs.page(**filters, order="-id")) == expected[::-1]


@pytest.mark.parametrize("order", ORDERS)
async def test_jobs_in_each_order(store: Store, jobs: list[UUID], order: JobOrder) -> None:
    assert indexes(jobs, await store.jobs.page(order=order)) == expected_order(order)
    filtered = await store.jobs.page(order=order, statuses={Q, A})
    assert indexes(jobs, filtered) == expected_order(order, [0, 1, 2, 5, 6, 8, 9])


@pytest.mark.parametrize("limit", [1, 2, 3])
@pytest.mark.parametrize("order", ORDERS)
async def test_paging_through_jobs_returns_each_exactly_once(
    store: Store, jobs: list[UUID], order: JobOrder, limit: int
) -> None:
    pages = await all_pages(lambda after: store.jobs.page(order=order, after=after, limit=limit), limit)
    assert all(len(page) == limit for page in pages[:-1])
    assert indexes(jobs, [job for page in pages for job in page]) == expected_order(order)
    iterated = await collect(store.jobs.iterate(order=order, page_size=limit))
    assert indexes(jobs, iterated) == expected_order(order)


async def test_paging_with_filters(store: Store, jobs: list[UUID]) -> None:
    filters: dict[str, Any] = {"statuses": {Q, A}, "updated_after": T0 + 2 * HOUR}
    pages = await all_pages(lambda after: store.jobs.page(**filters, order="-updated_at", after=after, limit=2), 2)
    expected = expected_order("-updated_at", [0, 2, 5, 6, 8, 9])
    assert indexes(jobs, [job for page in pages for job in page]) == expected
    # A cursor need not match the filters: it is a position in the order
    # (job 3 is paused, updated at 2h; 6 and 8 tie with it, with larger ids).
    after_paused = await store.jobs.page(**filters, order="updated_at", after=jobs[3])
    assert indexes(jobs, after_paused) == [6, 8, 0, 2, 5, 9]
    assert await store.jobs.page(**filters, order="-updated_at", after=jobs[3]) == []


async def test_string_uuids_are_accepted(store: Store, jobs: list[UUID]) -> None:
    page = await store.jobs.page(after=str(jobs[4]).upper(), limit=2)
    assert indexes(jobs, page) == [5, 6]


async def test_jobs_page_returns_whole_records(store: Store, jobs: list[UUID]) -> None:
    (job,) = await store.jobs.page(metadata={"user": "andy"})
    assert job == await store.jobs.fetch(jobs[6])
    assert job.status is A
    assert job.created_at == T0 + 2 * MINUTE
    assert job.settings == {"frames": "7-9"}


async def test_an_unknown_job_cursor_is_not_found(store: Store, jobs: list[UUID]) -> None:
    with pytest.raises(NotFound, match="page cursor"):
        await store.jobs.page(after=uuid4())
    assert len(await store.jobs.page()) == 10


async def test_iterating_jobs_survives_deleting_the_last_one_seen(store: Store, jobs: list[UUID]) -> None:
    seen: list[Job] = []
    async for job in store.jobs.iterate(order="-created_at", page_size=2):
        seen.append(job)
        if len(seen) == 2:  # the last of the first page
            await store.jobs.delete(job.uuid)
    assert indexes(jobs, seen) == expected_order("-created_at")
    with pytest.raises(NotFound):
        await store.jobs.page(order="-created_at", after=seen[1].uuid)


async def test_jobs_list_still_returns_every_job(store: Store, jobs: list[UUID]) -> None:
    assert indexes(jobs, await store.jobs.list()) == list(range(10))


async def test_a_jobs_page_is_one_query(store: Store, jobs: list[UUID]) -> None:
    with statements(store) as seen:
        await store.jobs.page(metadata={"project": "Sprite Fright"}, order="-updated_at", after=jobs[0], limit=2)
    assert len(seen) == 1
    with statements(store) as seen:
        assert await store.jobs.page(order="-id", after=jobs[0]) == []
    assert len(seen) == 2  # the page, then whether the cursor exists


# --------------------------------------------------------------------------- jobs: bad input

NAIVE = datetime(2026, 1, 5, 12, 0)

BAD_JOB_QUERIES: dict[str, tuple[dict[str, Any], str]] = {
    "a status string": ({"statuses": "queued"}, "job statuses"),
    "an unknown status": ({"statuses": {"bogus"}}, "job statuses"),
    "statuses not a collection": ({"statuses": 5}, "job statuses"),
    "metadata not a dict": ({"metadata": ["project"]}, "metadata"),
    "metadata number value": ({"metadata": {"project": 3}}, "metadata"),
    "metadata None value": ({"metadata": {"project": None}}, "metadata"),
    "metadata key not a string": ({"metadata": {3: "x"}}, "metadata"),
    "metadata key with a quote": ({"metadata": {'a"b': "x"}}, "metadata"),
    "metadata key with a backslash": ({"metadata": {"a\\b": "x"}}, "metadata"),
    "metadata key with a newline": ({"metadata": {"a\nb": "x"}}, "metadata"),
    "metadata value with NUL": ({"metadata": {"project": "a\x00"}}, "metadata"),
    "settings bool value": ({"settings": {"flag": True}}, "settings"),
    "naive created_after": ({"created_after": NAIVE}, "created_after"),
    "created_before a string": ({"created_before": "2026-01-05"}, "created_before"),
    "naive updated_after": ({"updated_after": NAIVE}, "updated_after"),
    "updated_before a number": ({"updated_before": 1234}, "updated_before"),
    "unknown order": ({"order": "name"}, "order"),
    "order with plus": ({"order": "+id"}, "order"),
    "order None": ({"order": None}, "order"),
    "malformed cursor": ({"after": "not-a-uuid"}, r"page cursor \(after\)"),
    "cursor a number": ({"after": 42}, r"page cursor \(after\)"),
    "zero limit": ({"limit": 0}, "limit"),
    "negative limit": ({"limit": -1}, "limit"),
    "too large limit": ({"limit": MAX_LIMIT + 1}, "limit"),
    "boolean limit": ({"limit": True}, "limit"),
    "float limit": ({"limit": 1.5}, "limit"),
    "string limit": ({"limit": "10"}, "limit"),
}


@pytest.mark.parametrize("name", BAD_JOB_QUERIES)
async def test_bad_job_queries_are_refused_before_any_sql(store: Store, jobs: list[UUID], name: str) -> None:
    arguments, match = BAD_JOB_QUERIES[name]
    with statements(store) as seen, pytest.raises(InvalidInput, match=match):
        await store.jobs.page(**arguments)
    assert seen == []
    assert len(await store.jobs.page()) == 10


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": MAX_LIMIT + 1}, "page_size"),
        ({"order": "-name"}, "order"),
        ({"statuses": {"bogus"}}, "job statuses"),
        ({"created_after": NAIVE}, "created_after"),
    ],
)
async def test_bad_job_iterations_are_refused_when_called(store: Store, arguments: dict[str, Any], match: str) -> None:
    with statements(store) as seen, pytest.raises(InvalidInput, match=match):
        store.jobs.iterate(**arguments)
    assert seen == []


async def test_errors_leave_the_transaction_usable(store: Store, jobs: list[UUID]) -> None:
    async with store.transaction():
        with pytest.raises(InvalidInput):
            await store.jobs.page(order="nope")  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            await store.jobs.page(after=uuid4())
        with pytest.raises(NotFound):
            await store.tasks.page_of_job(uuid4())
        assert indexes(jobs, await store.jobs.page(statuses={F})) == [7]
        await store.jobs.delete(jobs[7])
    assert await store.jobs.page(statuses={F}) == []


# --------------------------------------------------------------------------- tasks of a job


@dataclass
class Farm:
    job: UUID
    tasks: list[UUID]
    """In authoring order; the first was moved to the end (index 1000)."""
    worker: UUID
    other_worker: UUID


TASK_STATUSES = [
    TaskStatus.QUEUED,
    TaskStatus.ACTIVE,
    TaskStatus.COMPLETED,
    TaskStatus.QUEUED,
    TaskStatus.FAILED,
    TaskStatus.ACTIVE,
    TaskStatus.QUEUED,
]


@pytest.fixture
async def farm(store: Store) -> Farm:
    job = await store.jobs.store_authored(job_of(*(render_task(f"t{number}") for number in range(7))))
    tasks = [task.uuid for task in await store.tasks.of_job(job.uuid)]
    # Authoring order differs from row id order: the first task comes last.
    await store.write(
        lambda conn: conn.execute(update(TASKS).where(TASKS.c.uuid == tasks[0]).values(index_in_job=1000))
    )
    tasks = tasks[1:] + tasks[:1]
    worker = await create_worker(store, "w1")
    other = await create_worker(store, "w2")
    for uuid, status in zip(tasks, TASK_STATUSES, strict=True):
        await store.tasks.save_status(uuid, status)
    for number in (0, 1, 4, 5, 6):
        await store.tasks.assign_to_worker(tasks[number], worker.uuid)
    await store.tasks.assign_to_worker(tasks[2], other.uuid)
    # Another job's tasks never show.
    await store.jobs.store_authored(job_of(render_task("elsewhere"), render_task("elsewhere-too")))
    return Farm(job.uuid, tasks, worker.uuid, other.uuid)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (None, [0, 1, 2, 3, 4, 5, 6]),
        ({TaskStatus.QUEUED}, [0, 3, 6]),
        (["active", TaskStatus.FAILED], [1, 4, 5]),
        ({TaskStatus.PAUSED}, []),
        ([], []),
    ],
)
async def test_tasks_of_a_job_in_authoring_order(
    store: Store, farm: Farm, statuses: list[TaskStatus] | None, expected: list[int]
) -> None:
    assert indexes(farm.tasks, await store.tasks.page_of_job(farm.job, statuses=statuses)) == expected
    iterated = await collect(store.tasks.iterate_of_job(str(farm.job), statuses=statuses, page_size=2))
    assert indexes(farm.tasks, iterated) == expected
    for limit in (1, 2):

        def fetch(after: UUID | None, limit: int = limit) -> Any:
            return store.tasks.page_of_job(farm.job, statuses=statuses, after=after, limit=limit)

        pages = await all_pages(fetch, limit)
        assert indexes(farm.tasks, [task for page in pages for task in page]) == expected


async def test_tasks_of_a_job_are_whole_records(store: Store, farm: Farm) -> None:
    page = await store.tasks.page_of_job(farm.job, after=farm.tasks[4], limit=1)
    assert page == [await store.tasks.fetch(farm.tasks[5])]
    assert page[0].job_uuid == farm.job
    assert page[0].worker_uuid == farm.worker


async def test_tasks_of_an_unknown_job_are_not_found(store: Store, farm: Farm) -> None:
    with pytest.raises(NotFound, match="job"):
        await store.tasks.page_of_job(uuid4())
    with pytest.raises(NotFound, match="job"):
        await store.tasks.page_of_job(uuid4(), statuses={TaskStatus.QUEUED}, after=farm.tasks[0])
    with pytest.raises(NotFound, match="job"):
        await collect(store.tasks.iterate_of_job(uuid4()))
    with pytest.raises(NotFound, match="page cursor"):
        await store.tasks.page_of_job(farm.job, after=uuid4())
    assert len(await store.tasks.page_of_job(farm.job)) == 7


async def test_a_job_without_tasks_has_an_empty_page(store: Store) -> None:
    job = await store.jobs.store_authored(AuthoredJob("empty", "test"))
    with statements(store) as seen:
        assert await store.tasks.page_of_job(job.uuid) == []
    assert len(seen) == 2  # the page, then whether the job exists


# --------------------------------------------------------------------------- tasks of a worker


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (None, [0, 1, 4, 5, 6]),
        ({TaskStatus.QUEUED}, [0, 6]),
        (["active"], [1, 5]),
        ({TaskStatus.COMPLETED}, []),
    ],
)
async def test_tasks_of_a_worker(
    store: Store, farm: Farm, statuses: list[TaskStatus] | None, expected: list[int]
) -> None:
    by_id = sorted(expected, key=lambda number: (number + 1) % 7)  # the moved task has the lowest id
    assert indexes(farm.tasks, await store.tasks.page_of_worker(farm.worker, statuses=statuses)) == by_id
    iterated = await collect(store.tasks.iterate_of_worker(farm.worker, statuses=statuses, page_size=1))
    assert indexes(farm.tasks, iterated) == by_id
    pages = await all_pages(
        lambda after: store.tasks.page_of_worker(str(farm.worker), statuses=statuses, after=after, limit=2), 2
    )
    assert indexes(farm.tasks, [task for page in pages for task in page]) == by_id


async def test_tasks_of_an_unknown_or_deleted_worker_are_not_found(store: Store, farm: Farm) -> None:
    with pytest.raises(NotFound, match="worker"):
        await store.tasks.page_of_worker(uuid4())
    await store.workers.delete(farm.other_worker)
    with pytest.raises(NotFound, match="worker"):
        await store.tasks.page_of_worker(farm.other_worker)
    with pytest.raises(NotFound, match="page cursor"):
        await store.tasks.page_of_worker(farm.worker, after=uuid4())
    idle = await create_worker(store, "idle")
    assert await store.tasks.page_of_worker(idle.uuid) == []
    assert len(await store.tasks.page_of_worker(farm.worker)) == 5


BAD_TASK_PAGES: dict[str, tuple[dict[str, Any], str]] = {
    "malformed parent": ({"parent": "nope"}, "uuid"),
    "a status string": ({"statuses": "queued"}, "task statuses"),
    "a job status": ({"statuses": {"under-construction"}}, "task statuses"),
    "malformed cursor": ({"after": "x"}, r"page cursor \(after\)"),
    "zero limit": ({"limit": 0}, "limit"),
    "too large limit": ({"limit": MAX_LIMIT + 1}, "limit"),
}


@pytest.mark.parametrize("method", ["page_of_job", "page_of_worker"])
@pytest.mark.parametrize("name", BAD_TASK_PAGES)
async def test_bad_task_pages_are_refused_before_any_sql(store: Store, farm: Farm, method: str, name: str) -> None:
    given, match = BAD_TASK_PAGES[name]
    arguments = dict(given)
    fetch = getattr(store.tasks, method)
    parent = arguments.pop("parent", farm.job if method == "page_of_job" else farm.worker)
    with statements(store) as seen, pytest.raises(InvalidInput, match=match):
        await fetch(parent, **arguments)
    assert seen == []
    assert await fetch(farm.job if method == "page_of_job" else farm.worker)


# --------------------------------------------------------------------------- workers


async def _workers(store: Store) -> list[UUID]:
    statuses = [WorkerStatus.AWAKE, WorkerStatus.ASLEEP, WorkerStatus.AWAKE, WorkerStatus.OFFLINE, WorkerStatus.AWAKE]
    return [(await create_worker(store, f"w{number}", status=status)).uuid for number, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (None, [0, 1, 2, 4]),
        ({WorkerStatus.AWAKE}, [0, 2, 4]),
        (["asleep", "offline"], [1]),
        ({WorkerStatus.ERROR}, []),
    ],
)
async def test_workers_by_status_leave_out_deleted_ones(
    store: Store, statuses: list[WorkerStatus] | None, expected: list[int]
) -> None:
    workers = await _workers(store)
    await store.workers.delete(workers[3])
    assert indexes(workers, await store.workers.page(statuses=statuses)) == expected
    assert indexes(workers, await collect(store.workers.iterate(statuses=statuses, page_size=1))) == expected
    pages = await all_pages(lambda after: store.workers.page(statuses=statuses, after=after, limit=1), 1)
    assert indexes(workers, [worker for page in pages for worker in page]) == expected


async def test_worker_pages_continue_after_a_deleted_worker(store: Store) -> None:
    workers = await _workers(store)
    await store.workers.delete(workers[1])
    assert indexes(workers, await store.workers.page(after=workers[1], limit=2)) == [2, 3]
    assert (await store.workers.page(limit=1))[0] == await store.workers.fetch(workers[0])
    with pytest.raises(NotFound, match="page cursor"):
        await store.workers.page(after=uuid4())


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"statuses": "awake"}, "worker statuses"),
        ({"statuses": {"queued"}}, "worker statuses"),
        ({"after": "nope"}, r"page cursor \(after\)"),
        ({"limit": 0}, "limit"),
        ({"limit": 2.0}, "limit"),
    ],
)
async def test_bad_worker_pages_are_refused_before_any_sql(store: Store, arguments: dict[str, Any], match: str) -> None:
    await create_worker(store)
    with statements(store) as seen, pytest.raises(InvalidInput, match=match):
        await store.workers.page(**arguments)
    assert seen == []
    with pytest.raises(InvalidInput, match="page_size"):
        store.workers.iterate(page_size=-5)
    assert len(await store.workers.page()) == 1


# --------------------------------------------------------------------------- property test: pages match a model

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # an optional test dependency

    def test_job_pages_match_a_model_needs_hypothesis() -> None:
        pytest.skip("hypothesis is not installed (pip install 'statestore[test]')")

else:
    import asyncio
    from contextlib import AsyncExitStack

    from sqlalchemy import delete, insert

    from statestore import open_store

    _INSTANTS = [T0 + timedelta(seconds=seconds) for seconds in range(4)]
    _ZONES = [UTC, PLUS_TWO, timezone(-timedelta(hours=5, minutes=30))]
    _instants = st.builds(
        lambda instant, zone: instant.astimezone(zone), st.sampled_from(_INSTANTS), st.sampled_from(_ZONES)
    )
    _stored = st.sampled_from(["a", "A", "a ", "b", "", "3", "é", 3, True, None, ["a"], {"a": "a"}])
    _wanted = st.sampled_from(["a", "A", "a ", "b", "", "3", "é", "true", "null"])
    _rows = st.lists(
        st.tuples(
            st.sampled_from([Q, A, P]),
            st.one_of(st.just({}), _stored.map(lambda value: {"p": value})),
            _instants,
            _instants,
        ),
        max_size=8,
    )
    _queries = st.fixed_dictionaries(
        {},
        optional={
            "statuses": st.sets(st.sampled_from([Q, A, P, C])),
            "metadata": _wanted.map(lambda value: {"p": value}),
            "created_after": _instants,
            "created_before": _instants,
            "updated_after": _instants,
            "updated_before": _instants,
        },
    )

    def _model(rows: list[tuple[int, tuple[Any, ...]]], query: dict[str, Any], order: str) -> list[int]:
        """The row ids ``query`` selects, in ``order``, computed in Python."""

        def selected(row: tuple[Any, ...]) -> bool:
            status, metadata, created, updated = row
            wanted = query.get("metadata", {}).get("p")
            return (
                ("statuses" not in query or status in query["statuses"])
                and ("metadata" not in query or (isinstance(metadata.get("p"), str) and metadata["p"] == wanted))
                and created >= query.get("created_after", created)
                and ("created_before" not in query or created < query["created_before"])
                and updated >= query.get("updated_after", updated)
                and ("updated_before" not in query or updated < query["updated_before"])
            )

        column = {"id": None, "created_at": 2, "updated_at": 3}[order.removeprefix("-")]

        def key(item: tuple[int, tuple[Any, ...]]) -> tuple[Any, int]:
            row_id, row = item
            return (row_id if column is None else row[column], row_id)

        chosen = sorted((item for item in rows if selected(item[1])), key=key, reverse=order.startswith("-"))
        return [row_id for row_id, _ in chosen]

    def _store_rows(rows: list[tuple[Any, ...]]) -> Callable[[Any], list[tuple[int, tuple[Any, ...]]]]:
        def unit(connection: Any) -> list[tuple[int, tuple[Any, ...]]]:
            connection.execute(delete(JOBS))
            stored = []
            for number, row in enumerate(rows):
                status, metadata, created, updated = row
                values = {
                    "name": f"job-{number}",
                    "job_type": "test",
                    "priority": 50,
                    "status": status.value,
                    "settings": {},
                    "metadata": metadata,
                    "created_at": created,
                    "updated_at": updated,
                }
                (row_id,) = connection.execute(insert(JOBS).values(values)).inserted_primary_key
                stored.append((int(row_id), row))
            return stored

        return unit

    async def _row_ids(store: Store, jobs: Sequence[Job]) -> list[int]:
        uuids = [job.uuid for job in jobs]
        found = await store.read(lambda conn: dict(conn.execute(select(JOBS.c.uuid, JOBS.c.id)).all()))
        return [found[uuid] for uuid in uuids]

    async def _check(
        store: Store, rows: list[tuple[Any, ...]], query: dict[str, Any], order: JobOrder, limit: int
    ) -> None:
        stored = await store.write(_store_rows(rows))
        expected = _model(stored, query, order)
        pages = await all_pages(lambda after: store.jobs.page(**query, order=order, after=after, limit=limit), limit)
        assert all(len(page) == limit for page in pages[:-1])
        assert await _row_ids(store, [job for page in pages for job in page]) == expected
        assert (
            await _row_ids(store, await collect(store.jobs.iterate(**query, order=order, page_size=limit))) == expected
        )

    def test_job_pages_match_a_model(backend: str, store_url: str) -> None:
        """Random jobs (tying on both timestamps), random filters, every order
        and small limits: paging returns what a Python model selects, in its
        order, each job once — on every backend."""
        with asyncio.Runner() as loop:
            stack = AsyncExitStack()
            store = loop.run(stack.enter_async_context(open_store(store_url, create=backend == "sqlite-memory")))
            try:

                @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
                @given(rows=_rows, query=_queries, order=st.sampled_from(ORDERS), limit=st.integers(1, 4))
                def check(rows: list[tuple[Any, ...]], query: dict[str, Any], order: JobOrder, limit: int) -> None:
                    loop.run(_check(store, rows, query, order, limit))

                check()
            finally:
                loop.run(stack.aclose())
