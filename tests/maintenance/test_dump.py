"""Export and import as JSON Lines (statestore.maintenance.dump), on every backend."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from statestore import Store, open_store
from statestore.errors import InvalidInput, InvalidReference
from statestore.farm import AuthoredTask, JobStatus, TaskStatus
from statestore.farm.tables import JOBS, STATUS_HISTORY, TASKS, WORKERS
from statestore.flows import AtomDetail, AtomKind, AtomState, FlowDetail, FlowState, LogBook
from statestore.flows.foreign_ids import foreign_uuid
from statestore.flows.records import RetryAttempt
from statestore.maintenance.dump import BATCH, FORMAT_VERSION, export_lines, import_lines
from statestore.schema.metadata import metadata
from tests.support.backends import discard_database, new_database
from tests.support.farm_fixtures import authored_job, create_worker, job_of, render_task
from tests.support.flow_fixtures import failure
from tests.support.state_machine_fixtures import activate


@pytest.fixture
async def fresh_store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A second, empty, migrated database of the same backend."""
    directory = tmp_path / "second"
    directory.mkdir()
    database = await new_database(backend, directory)
    try:
        async with open_store(database.url, create=True) as opened:
            yield opened
    finally:
        await discard_database(database)


async def seed(store: Store) -> dict[str, Any]:
    """A store with something of every kind."""
    gpu = await store.worker_tags.create("gpu", "the fast ones")
    cpu = await store.worker_tags.create("cpu")
    first = await create_worker(store, "first")
    second = await create_worker(store, "second")
    await store.worker_tags.set_worker_tags(first.uuid, [gpu.uuid, cpu.uuid])
    await store.sleep_schedules.set(
        first.uuid, is_active=True, days_of_week="mo tu", start_time="09:00", end_time="18:00"
    )
    tagged = authored_job(status=JobStatus.QUEUED, worker_tag=gpu.uuid, name="tagged")
    await store.jobs.store_authored(tagged)
    failing = authored_job(status=JobStatus.QUEUED, name="failing")
    await store.jobs.store_authored(failing)
    render = failing.tasks[0].uuid
    await activate(store, first, render)
    await store.state_machine.worker_task_failed(first.uuid, render, reason="boom", blocklist_threshold=1)
    await activate(store, second, failing.tasks[1].uuid)
    await store.state_machine.worker_task_update(second.uuid, failing.tasks[1].uuid, status=TaskStatus.COMPLETED)
    await store.last_rendered.set(failing.uuid)
    retry = AtomDetail(
        "retry",
        kind=AtomKind.RETRY,
        state=AtomState.RETRYING,
        results=[RetryAttempt(data=1, failures={"task": failure("first")}), RetryAttempt(data={"x": [1.5, -0.0]})],
    )
    task = AtomDetail(
        "task", state=AtomState.FAILURE, failure=failure(), results={"n": 1}, version="1.0", meta={"m": 2}
    )
    flow = FlowDetail("flow", state=FlowState.RUNNING, atoms=[task, retry], meta={"k": "v"})
    named = LogBook("named", uuid=foreign_uuid("nightly-1"), foreign_id="nightly-1", flows=[flow], meta={"b": None})
    await store.logbooks.save(named)
    await store.logbooks.save(LogBook("empty"))
    return {"tagged": tagged, "failing": failing, "first": first, "second": second}


async def export_all(store: Store, **options: Any) -> list[str]:
    return [line async for line in export_lines(store, **options)]


def kinds(lines: list[str]) -> list[str]:
    return [json.loads(line)["kind"] for line in lines]


async def derived(store: Store) -> list[tuple[Any, ...]]:
    """The columns an import recomputes, by task uuid."""
    statement = (
        select(TASKS.c.uuid, TASKS.c.pending_dependencies, TASKS.c.job_priority, TASKS.c.job_schedulable)
        .add_columns(JOBS.c.steps_completed, JOBS.c.steps_total)
        .join(JOBS, JOBS.c.id == TASKS.c.job_id)
        .order_by(TASKS.c.uuid)
    )
    return [tuple(row) for row in await store.read(lambda connection: connection.execute(statement).all())]


async def row_counts(store: Store) -> dict[str, int]:
    def count(connection: Any) -> dict[str, int]:
        return {
            table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
            for table in metadata.sorted_tables
            if table.name not in ("changes", "alembic_version", "statestore_version")
        }

    return await store.read(count)


async def test_round_trip_is_equal_line_for_line_and_reimport_is_idempotent(store: Store, fresh_store: Store) -> None:
    await seed(store)
    exported = await export_all(store)
    assert set(kinds(exported)) >= {
        "header",
        "worker_tag",
        "worker",
        "sleep_schedule",
        "job",
        "task",
        "task_failure",
        "job_block",
        "status_history",
        "last_rendered",
        "logbook",
        "flow_detail",
        "atom_detail",
    }
    hashes = await store.read(lambda connection: connection.execute(select(WORKERS.c.secret_hash)).scalars().all())
    assert len(hashes) == 2
    assert all(secret_hash and secret_hash not in "".join(exported) for secret_hash in hashes)

    report = await import_lines(fresh_store, exported)
    assert report.updated == Counter()
    assert report.inserted["task"] == 6
    assert report.inserted["atom_detail"] == 2
    assert await export_all(fresh_store) == exported
    assert await derived(fresh_store) == await derived(store)

    counts = await row_counts(fresh_store)
    again = await import_lines(fresh_store, exported)
    assert again.inserted == Counter()
    assert again.updated == report.inserted
    assert await row_counts(fresh_store) == counts
    assert await export_all(fresh_store) == exported


async def test_a_new_worker_has_no_secret_until_given_one(store: Store, fresh_store: Store) -> None:
    await seed(store)
    await import_lines(fresh_store, await export_all(store))
    hashes = await fresh_store.read(
        lambda connection: connection.execute(select(WORKERS.c.secret_hash)).scalars().all()
    )
    assert len(hashes) == 2
    assert set(hashes) == {""}


async def test_import_overwrites_a_changed_record_and_recomputes_derived_columns(
    store: Store, fresh_store: Store
) -> None:
    job = authored_job(status=JobStatus.QUEUED)
    await store.jobs.store_authored(job)
    exported = await export_all(store)
    await import_lines(fresh_store, exported)
    # The copy drifts: another priority and status, a broken pending count.
    await fresh_store.jobs.save_priority(job.uuid, 99)
    await fresh_store.write(lambda connection: connection.execute(update(TASKS).values(pending_dependencies=7)))
    await import_lines(fresh_store, exported)
    assert await export_all(fresh_store) == exported
    assert await derived(fresh_store) == await derived(store)


async def test_since_exports_changed_jobs_whole_and_changed_books(store: Store) -> None:
    seeded = await seed(store)
    old = datetime(2020, 1, 1, tzinfo=UTC)
    everything = await export_all(store)
    assert await export_all(store, since=old) == [
        everything[0].replace('"since":null', f'"since":"{old.isoformat()}"'),
        *everything[1:],
    ]
    # Backdate everything, then change one task of one job: that job comes whole, nothing else.
    tables = [table for table in metadata.sorted_tables if "updated_at" in table.c]

    def backdate(connection: Any) -> None:
        for table in tables:
            connection.execute(update(table).values(updated_at=old))
        for table in metadata.sorted_tables:
            if "created_at" in table.c and "updated_at" not in table.c:
                connection.execute(update(table).values(created_at=old))
        connection.execute(update(STATUS_HISTORY).values(at=old))

    await store.write(backdate)
    cutoff = datetime.now(UTC) - timedelta(seconds=1)
    assert kinds(await export_all(store, since=cutoff)) == ["header"]
    tagged = seeded["tagged"]
    await store.tasks.save_activity(tagged.tasks[2].uuid, "merging")
    recent = await export_all(store, since=cutoff, flows=False)
    assert kinds(recent) == ["header", "job", "task", "task", "task"]
    assert {json.loads(line)["uuid"] for line in recent[2:]} == {str(task.uuid) for task in tagged.tasks}
    assert kinds(await export_all(store, since=cutoff, jobs=False)) == ["header"]


async def test_since_must_be_aware(store: Store) -> None:
    with pytest.raises(InvalidInput, match="since"):
        await export_all(store, since=datetime(2026, 1, 1))


def header() -> str:
    return json.dumps({"kind": "header", "format": "statestore-dump", "version": FORMAT_VERSION, "schema": None})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 3: not a JSON document"),
        ('{"kind": "gadget"}', "line 3: unknown kind 'gadget'"),
        ('["kind"]', "line 3: expected a JSON object"),
        ('{"kind": "worker_tag", "uuid": "nope"}', r"line 3: worker_tag.uuid: 'nope' is not a uuid"),
        (
            '{"kind": "worker_tag", "uuid": "6a7c5ad5-1b51-4c41-8c8b-6d3f9a0e4a11", "name": "x", "description": "",'
            ' "created_at": "2026-01-01T00:00:00", "updated_at": "2026-01-01T00:00:00+00:00"}',
            "line 3: worker_tag.created_at: .* has no time zone",
        ),
        (
            '{"kind": "worker_tag", "uuid": "6a7c5ad5-1b51-4c41-8c8b-6d3f9a0e4a11", "name": "x", "description": "",'
            ' "colour": "red", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}',
            "line 3: worker_tag has unknown fields colour",
        ),
    ],
)
async def test_a_bad_line_names_its_number_and_nothing_is_written(store: Store, line: str, message: str) -> None:
    good = json.dumps(
        {
            "kind": "worker_tag",
            "uuid": "0b0f2a3e-6c9d-4c6b-9a57-3d3c0f1e2a10",
            "name": "good",
            "description": "",
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
        }
    )
    with pytest.raises(InvalidInput, match=message):
        await import_lines(store, [header(), good, line])
    assert await store.worker_tags.list() == []


async def test_a_bad_line_after_many_batches_writes_nothing(store: Store, fresh_store: Store) -> None:
    await store.jobs.store_authored(job_of(*[render_task(f"t{index}") for index in range(2 * BATCH + 10)]))
    exported = await export_all(store)
    with pytest.raises(InvalidInput, match=f"line {len(exported) + 1}: "):
        await import_lines(fresh_store, [*exported, '{"kind": "task"}'])
    assert (await row_counts(fresh_store))["tasks"] == 0
    assert (await row_counts(fresh_store))["jobs"] == 0


async def test_a_dangling_reference_names_its_line(store: Store, fresh_store: Store) -> None:
    await store.jobs.store_authored(authored_job())
    exported = await export_all(store)
    without_job = [line for line in exported if json.loads(line)["kind"] != "job"]
    with pytest.raises(InvalidReference, match="line 2: no job"):
        await import_lines(fresh_store, without_job)


async def test_header_checks(store: Store) -> None:
    newer = json.dumps({"kind": "header", "format": "statestore-dump", "version": FORMAT_VERSION + 1})
    with pytest.raises(InvalidInput, match="line 1: the dump is in format version 2, newer"):
        await import_lines(store, [newer])
    with pytest.raises(InvalidInput, match="line 1: expected the header"):
        await import_lines(store, ['{"kind": "job"}'])
    with pytest.raises(InvalidInput, match="line 2: unknown kind 'header'"):
        await import_lines(store, [header(), header()])
    with pytest.raises(InvalidInput, match="empty"):
        await import_lines(store, [])


async def test_dependencies_on_later_tasks_are_kept(store: Store, fresh_store: Store) -> None:
    last = render_task("last")
    first = AuthoredTask("first", "blender", dependencies=[last.uuid])
    await store.jobs.store_authored(job_of(first, last))
    exported = await export_all(store)
    await import_lines(fresh_store, exported)
    assert await export_all(fresh_store) == exported
    assert await derived(fresh_store) == await derived(store)


async def test_memory_stays_bounded_with_a_job_of_20k_tasks(
    backend: str, store: Store, fresh_store: Store, tmp_path: Path
) -> None:
    if backend != "sqlite-file":
        # What is measured is the client's memory, the same on every backend
        # (the same pages, the same batches); under tracemalloc this test
        # costs ~45 s a backend, so it runs on one.
        pytest.skip("measured on a SQLite file only")
    tasks = [render_task(f"frame-{index}") for index in range(20_000)]
    for index in range(1, len(tasks)):
        if index % 100:
            tasks[index].dependencies = [tasks[index - 1].uuid]
    await store.jobs.store_authored(job_of(*tasks))
    dump = tmp_path / "dump.jsonl"
    tracemalloc.start()
    try:
        size = 0
        with dump.open("w", encoding="utf-8") as out:
            async for line in export_lines(store):
                size += len(line)
                out.write(line + "\n")
        _, export_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with dump.open(encoding="utf-8") as source:
            report = await import_lines(fresh_store, source)
        _, import_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.inserted["task"] == 20_000
    # The dump is ~10 MB of text, several times that as parsed objects; a
    # page or a batch of 500 lines is a fraction of it (the rest of the peak
    # is fixed: SQLAlchemy's statement caches, the driver's buffers).
    assert size > 8_000_000
    assert export_peak < size / 3, (export_peak, size)
    assert import_peak < size / 2, (import_peak, size)
    assert await derived(fresh_store) == await derived(store)
