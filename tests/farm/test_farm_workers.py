"""Workers: Flamenco's workers_test.go and FetchTimedOutWorkers, against our API."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from statestore import AlreadyExists, NotFound, Store
from statestore.farm import TaskStatus, WorkerStatus
from statestore.schema.metadata import WorkerRow
from tests.support.farm_fixtures import create_worker, store_job

WORKER_UUID = UUID("f0a123a9-ab05-4ce2-8577-94802cfe74a4")


async def _rows(store: Store) -> int:
    table = WorkerRow.__table__
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


async def test_create_and_fetch_worker(store: Store) -> None:
    with pytest.raises(NotFound, match=str(WORKER_UUID)):
        await store.workers.fetch(WORKER_UUID)
    last_seen = datetime(2022, 6, 7, 11, 14, 47, tzinfo=timezone(timedelta(hours=2)))
    created = await store.workers.create(
        "дрон",
        "open sesame",
        uuid=WORKER_UUID,
        status=WorkerStatus.AWAKE,
        address="fe80::5054:ff:fede:2ad7",
        platform="linux",
        software="3.0",
        supported_task_types=["blender", "ffmpeg", "file-management"],
        can_restart=True,
        last_seen_at=last_seen,
    )
    assert created.id != 0
    fetched = await store.workers.fetch(WORKER_UUID)
    assert fetched == created
    assert fetched.name == "дрон"
    assert fetched.address == "fe80::5054:ff:fede:2ad7"
    assert (fetched.platform, fetched.software, fetched.status) == ("linux", "3.0", WorkerStatus.AWAKE)
    assert fetched.supported_task_types == ("blender", "ffmpeg", "file-management")
    assert fetched.can_restart is True
    assert fetched.last_seen_at == last_seen
    assert fetched.last_seen_at is not None
    assert fetched.last_seen_at.tzinfo is UTC
    assert fetched.deleted_at is None
    assert fetched.status_requested is None
    assert fetched.lazy_status_request is False


async def test_defaults_of_a_new_worker(store: Store) -> None:
    worker = await store.workers.create("bare", "secret")
    assert worker.status is WorkerStatus.STARTING
    assert (worker.address, worker.platform, worker.software, worker.supported_task_types) == ("", "", "", ())
    assert worker.last_seen_at is None
    assert worker.can_restart is False
    assert await store.workers.fetch(worker.uuid) == worker


async def test_an_existing_uuid_is_refused(store: Store) -> None:
    await create_worker(store, uuid=WORKER_UUID)
    with pytest.raises(AlreadyExists):
        await create_worker(store, "other", uuid=WORKER_UUID)
    await store.workers.delete(WORKER_UUID)
    with pytest.raises(AlreadyExists):  # a soft-deleted worker still holds its uuid
        await create_worker(store, "other", uuid=WORKER_UUID)
    assert await _rows(store) == 1


async def test_save_status_writes_only_the_status_fields_then_save_writes_everything(store: Store) -> None:
    worker = await create_worker(store)
    status_saved = await store.workers.save_status(
        worker.uuid, WorkerStatus.ASLEEP, requested=WorkerStatus.AWAKE, lazy=True
    )
    stored = await store.workers.fetch(worker.uuid)
    assert stored == status_saved
    assert (stored.status, stored.status_requested, stored.lazy_status_request) == (
        WorkerStatus.ASLEEP,
        WorkerStatus.AWAKE,
        True,
    )
    assert replace(stored, status=worker.status, status_requested=None, lazy_status_request=False) == replace(
        worker, updated_at=stored.updated_at
    )
    assert stored.updated_at > worker.updated_at

    seen_at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    changed = replace(
        stored,
        name="Workie McWorkface",
        address="192.168.0.7",
        platform="windows",
        software="3.9",
        status=WorkerStatus.OFFLINE,
        last_seen_at=seen_at,
        status_requested=None,
        lazy_status_request=False,
        supported_task_types=("ffmpeg",),
        can_restart=True,
    )
    saved = await store.workers.save(changed)
    assert saved == await store.workers.fetch(worker.uuid)
    assert saved == replace(changed, updated_at=saved.updated_at)
    assert saved.updated_at > stored.updated_at
    assert saved.created_at == worker.created_at


async def test_save_cannot_change_identity_or_deletion(store: Store) -> None:
    worker = await create_worker(store)
    saved = await store.workers.save(replace(worker, id=9999, deleted_at=datetime.now(UTC), name="renamed"))
    assert (saved.id, saved.deleted_at, saved.name) == (worker.id, None, "renamed")


async def test_fetch_workers_in_creation_order(store: Store) -> None:
    assert await store.workers.list() == []
    linux = await create_worker(store, "linux")
    listed = await store.workers.list()
    assert listed == [linux]
    assert listed[0].created_at.tzinfo is UTC
    windows = await create_worker(store, "windows")
    assert [worker.name for worker in await store.workers.list()] == ["linux", "windows"]
    assert [worker.uuid for worker in await store.workers.list()] == [linux.uuid, windows.uuid]


async def test_delete_worker(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.workers.delete(uuid4())
    w1 = await create_worker(store, "w1")
    w2 = await create_worker(store, "w2")
    await store.workers.delete(w2.uuid)
    with pytest.raises(NotFound):
        await store.workers.fetch(w2.uuid)
    assert await store.workers.fetch(w1.uuid) == w1
    assert await store.workers.list() == [w1]
    with pytest.raises(NotFound):  # already deleted
        await store.workers.delete(w2.uuid)
    assert await _rows(store) == 2  # soft delete keeps the row


async def test_deleting_a_worker_keeps_it_on_its_task(store: Store) -> None:
    worker = await create_worker(store)
    job = await store_job(store)
    task = (await store.tasks.of_job(job.uuid))[0]
    await store.tasks.assign_to_worker(task.uuid, worker.uuid)
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound):
        await store.workers.fetch(worker.uuid)
    fetched = await store.tasks.fetch(task.uuid)
    assert fetched.worker_uuid == worker.uuid
    assert fetched.status is TaskStatus.QUEUED


async def test_delete_worker_with_a_tag_assigned(store: Store) -> None:
    worker = await create_worker(store)
    tag = await store.worker_tags.create("tag")
    await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound):
        await store.workers.fetch(worker.uuid)


async def test_a_deleted_worker_can_no_longer_be_written(store: Store) -> None:
    worker = await create_worker(store)
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound):
        await store.workers.save(worker)
    with pytest.raises(NotFound):
        await store.workers.save_status(worker.uuid, WorkerStatus.AWAKE)
    with pytest.raises(NotFound):
        await store.workers.seen(worker.uuid)
    with pytest.raises(NotFound):
        await store.workers.set_secret(worker.uuid, "new secret")


async def test_unknown_workers_are_not_found_by_any_update(store: Store) -> None:
    worker = await create_worker(store)
    with pytest.raises(NotFound):
        await store.workers.save(replace(worker, uuid=uuid4()))
    with pytest.raises(NotFound):
        await store.workers.save_status(uuid4(), WorkerStatus.AWAKE)
    with pytest.raises(NotFound):
        await store.workers.seen(uuid4())
    with pytest.raises(NotFound):
        await store.workers.fetch(uuid4())


async def test_seen_sets_last_seen_and_updated_at(store: Store) -> None:
    worker = await create_worker(store)
    assert worker.last_seen_at is None
    before = datetime.now(UTC)
    await store.workers.seen(worker.uuid)
    seen = await store.workers.fetch(worker.uuid)
    assert seen.last_seen_at is not None
    assert seen.last_seen_at >= before - timedelta(seconds=1)
    assert seen.updated_at == seen.last_seen_at
    assert replace(seen, last_seen_at=None, updated_at=worker.updated_at) == worker


async def test_summarize_worker_statuses(store: Store) -> None:
    assert await store.workers.summarize_statuses() == {}
    first = await create_worker(store, "first")
    assert await store.workers.summarize_statuses() == {WorkerStatus.AWAKE: 1}
    second = await create_worker(store, "second")
    third = await create_worker(store, "third", status=WorkerStatus.OFFLINE)
    assert await store.workers.summarize_statuses() == {WorkerStatus.AWAKE: 2, WorkerStatus.OFFLINE: 1}
    await store.workers.delete(first.uuid)
    assert await store.workers.summarize_statuses() == {WorkerStatus.AWAKE: 1, WorkerStatus.OFFLINE: 1}
    for worker in (second, third):
        await store.workers.delete(worker.uuid)
    assert await store.workers.summarize_statuses() == {}


async def test_fetch_timed_out_workers(store: Store) -> None:
    deadline = datetime(2022, 6, 7, 11, 14, 47, tzinfo=timezone(timedelta(hours=2)))
    before, after = deadline - timedelta(minutes=1), deadline + timedelta(minutes=1)
    for name, status, seen in [
        ("offline-before", WorkerStatus.OFFLINE, before),
        ("awake-before", WorkerStatus.AWAKE, before),
        ("starting-before", WorkerStatus.STARTING, before),
        ("asleep-before", WorkerStatus.ASLEEP, before),
        ("awake-after", WorkerStatus.AWAKE, after),
    ]:
        await store.workers.create(name, "secret", status=status, last_seen_at=seen)
    timed_out = await store.workers.timed_out(deadline)
    assert [worker.name for worker in timed_out] == ["awake-before", "starting-before", "asleep-before"]


async def test_timed_out_leaves_out_error_deleted_and_never_seen_workers(store: Store) -> None:
    deadline = datetime(2026, 1, 1, tzinfo=UTC)
    at_deadline = await store.workers.create("at-deadline", "s", status=WorkerStatus.AWAKE, last_seen_at=deadline)
    await store.workers.create("error", "s", status=WorkerStatus.ERROR, last_seen_at=deadline)
    gone = await store.workers.create("gone", "s", status=WorkerStatus.AWAKE, last_seen_at=deadline)
    await store.workers.delete(gone.uuid)
    await store.workers.create("never-seen", "s", status=WorkerStatus.AWAKE)
    assert await store.workers.timed_out(deadline) == [at_deadline]
    # The cut-off is an instant: the same moment in another zone matches too.
    same_instant = deadline.astimezone(timezone(timedelta(hours=-5)))
    assert await store.workers.timed_out(same_instant) == [at_deadline]
    assert await store.workers.timed_out(deadline - timedelta(microseconds=1)) == []
