"""Worker tags: Flamenco's worker_tag_test.go against our API, plus our stricter checks."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from statestore import AlreadyExists, InvalidInput, InvalidReference, NotFound, Store
from statestore.schema.metadata import WorkerTagMembershipRow, WorkerTagRow
from tests.support.farm_fixtures import authored_job, create_worker, store_job

TAG_UUID = UUID("e0e05417-9793-4829-b1d0-d446dd819f3d")


async def _count(store: Store, model: type) -> int:
    table = model.__table__  # type: ignore[attr-defined]
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


async def test_create_and_fetch_tag(store: Store) -> None:
    with pytest.raises(NotFound, match=str(TAG_UUID)):
        await store.worker_tags.fetch(TAG_UUID)
    tag = await store.worker_tags.create("arbejdsklynge", "Worker tag in Danish", uuid=TAG_UUID)
    assert tag.id != 0
    assert tag.uuid == TAG_UUID
    assert await store.worker_tags.fetch(TAG_UUID) == tag
    assert await store.worker_tags.fetch_by_name("arbejdsklynge") == tag
    assert not hasattr(store.worker_tags, "fetch_by_id")
    assert (tag.name, tag.description) == ("arbejdsklynge", "Worker tag in Danish")
    with pytest.raises(NotFound):
        await store.worker_tags.fetch_by_name("klynge")
    for near_miss in ("ARBEJDSKLYNGE", "arbejdsklynge "):  # exact on every backend, MySQL's collation too
        with pytest.raises(NotFound):
            await store.worker_tags.fetch_by_name(near_miss)


async def test_fetch_and_delete_tags(store: Store) -> None:
    assert await store.worker_tags.has_any() is False
    assert await store.worker_tags.list() == []
    first = await store.worker_tags.create("arbejdsklynge")
    second = await store.worker_tags.create("Another Tag", "the second")
    assert await store.worker_tags.has_any() is True
    assert await store.worker_tags.list() == [first, second]  # creation (id) order
    await store.worker_tags.delete(first.uuid)
    assert await store.worker_tags.list() == [second]
    assert await store.worker_tags.has_any() is True
    await store.worker_tags.delete(second.uuid)
    assert await store.worker_tags.list() == []
    assert await store.worker_tags.has_any() is False
    with pytest.raises(NotFound):
        await store.worker_tags.delete(second.uuid)


async def test_tags_are_listed_by_id_not_by_name(store: Store) -> None:
    zulu = await store.worker_tags.create("zulu")
    alpha = await store.worker_tags.create("alpha")
    assert [tag.name for tag in await store.worker_tags.list()] == ["zulu", "alpha"]
    worker = await create_worker(store)
    assert await store.worker_tags.set_worker_tags(worker.uuid, [alpha.uuid, zulu.uuid]) == [zulu, alpha]
    assert await store.worker_tags.of_worker(worker.uuid) == [zulu, alpha]


async def test_assign_and_unassign_worker_tags(store: Store) -> None:
    worker = await create_worker(store)
    t1 = await store.worker_tags.create("tag1")
    t2 = await store.worker_tags.create("tag2")
    assert await store.worker_tags.of_worker(worker.uuid) == []
    assert await store.worker_tags.set_worker_tags(worker.uuid, [t1.uuid]) == [t1]
    assert await store.worker_tags.of_worker(worker.uuid) == [t1]
    assert await store.worker_tags.set_worker_tags(worker.uuid, [t1.uuid, t1.uuid]) == [t1]
    assert await store.worker_tags.of_worker(worker.uuid) == [t1]
    assert await _count(store, WorkerTagMembershipRow) == 1
    assert await store.worker_tags.set_worker_tags(worker.uuid, {t1.uuid, t2.uuid}) == [t1, t2]
    assert await store.worker_tags.of_worker(worker.uuid) == [t1, t2]
    assert await store.worker_tags.set_worker_tags(worker.uuid, (t2.uuid,)) == [t2]
    assert await store.worker_tags.of_worker(worker.uuid) == [t2]
    assert await store.worker_tags.set_worker_tags(worker.uuid, []) == []
    assert await store.worker_tags.of_worker(worker.uuid) == []
    assert await _count(store, WorkerTagMembershipRow) == 0


async def test_tags_of_one_worker_do_not_touch_another(store: Store) -> None:
    first, second = await create_worker(store, "first"), await create_worker(store, "second")
    tag = await store.worker_tags.create("shared")
    await store.worker_tags.set_worker_tags(first.uuid, [tag.uuid])
    await store.worker_tags.set_worker_tags(second.uuid, [tag.uuid])
    await store.worker_tags.set_worker_tags(first.uuid, [])
    assert await store.worker_tags.of_worker(first.uuid) == []
    assert await store.worker_tags.of_worker(second.uuid) == [tag]


async def test_an_unknown_tag_changes_no_membership(store: Store) -> None:
    worker = await create_worker(store)
    t1 = await store.worker_tags.create("tag1")
    t2 = await store.worker_tags.create("tag2")
    await store.worker_tags.set_worker_tags(worker.uuid, [t1.uuid])
    unknown = uuid4()
    with pytest.raises(InvalidReference, match=str(unknown)):
        await store.worker_tags.set_worker_tags(worker.uuid, [t2.uuid, unknown])
    assert await store.worker_tags.of_worker(worker.uuid) == [t1]
    with pytest.raises(InvalidReference):
        await store.worker_tags.set_worker_tags(worker.uuid, [unknown])
    assert await store.worker_tags.of_worker(worker.uuid) == [t1]


async def test_tags_of_unknown_or_deleted_workers(store: Store) -> None:
    tag = await store.worker_tags.create("tag")
    with pytest.raises(NotFound, match="worker"):
        await store.worker_tags.of_worker(uuid4())
    with pytest.raises(NotFound):
        await store.worker_tags.set_worker_tags(uuid4(), [tag.uuid])
    worker = await create_worker(store)
    assert await store.worker_tags.of_worker(worker.uuid) == []
    await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound):
        await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    with pytest.raises(NotFound, match="worker"):  # soft-deleted workers are invisible
        await store.worker_tags.of_worker(worker.uuid)
    assert await _count(store, WorkerTagMembershipRow) == 1  # its membership stays (nothing cascades)


async def test_save_worker_tag(store: Store) -> None:
    tag = await store.worker_tags.create("arbejdsklynge", "")
    saved = await store.worker_tags.save(replace(tag, name="übertag", description="über cool tag"))
    assert (saved.name, saved.description) == ("übertag", "über cool tag")
    assert saved.updated_at > tag.updated_at
    assert saved.created_at == tag.created_at
    assert await store.worker_tags.fetch(tag.uuid) == saved
    assert await store.worker_tags.fetch_by_name("übertag") == saved
    with pytest.raises(NotFound):
        await store.worker_tags.save(replace(tag, uuid=uuid4()))


async def test_tag_names_are_unique(store: Store) -> None:
    first = await store.worker_tags.create("tag")
    with pytest.raises(AlreadyExists):
        await store.worker_tags.create("tag", "another")
    other = await store.worker_tags.create("other")
    with pytest.raises(AlreadyExists):
        await store.worker_tags.save(replace(other, name="tag"))
    with pytest.raises(AlreadyExists):
        await store.worker_tags.create("fresh", uuid=first.uuid)
    assert await store.worker_tags.list() == [first, other]


async def test_deleting_a_tag_with_members(store: Store) -> None:
    worker = await create_worker(store)
    tag = await store.worker_tags.create("tag")
    kept = await store.worker_tags.create("kept")
    await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid, kept.uuid])
    await store.worker_tags.delete(tag.uuid)
    assert await store.worker_tags.of_worker(worker.uuid) == [kept]
    assert await _count(store, WorkerTagMembershipRow) == 1
    await store.worker_tags.delete(kept.uuid)
    assert await store.worker_tags.of_worker(worker.uuid) == []
    assert await _count(store, WorkerTagMembershipRow) == 0
    assert await store.workers.fetch(worker.uuid) == worker


async def test_deleting_a_tag_untags_its_jobs(store: Store) -> None:
    tag = await store.worker_tags.create("🐈")
    job = await store_job(store, authored_job(worker_tag=tag.uuid))
    assert job.worker_tag_uuid == tag.uuid
    await store.worker_tags.delete(tag.uuid)
    assert (await store.jobs.fetch(job.uuid)).worker_tag_uuid is None


BAD_TAGS: dict[str, dict[str, Any]] = {
    "long-name": {"name": "n" * 65},
    "empty-name": {"name": ""},
    "name-not-str": {"name": 1},
    "long-description": {"name": "t", "description": "d" * 256},
    "uuid-as-string": {"name": "t", "uuid": "not-a-uuid"},
    "uuid-as-empty-string": {"name": "t", "uuid": ""},
    "uuid-as-short-string": {"name": "t", "uuid": "1234"},
    "uuid-as-int": {"name": "t", "uuid": 1234},
    "uuid-as-bytes": {"name": "t", "uuid": TAG_UUID.bytes},
}


@pytest.mark.parametrize("arguments", list(BAD_TAGS.values()), ids=list(BAD_TAGS))
async def test_bad_tags_write_nothing(store: Store, arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="worker tag"):
        await store.worker_tags.create(**arguments)
    assert await _count(store, WorkerTagRow) == 0


async def test_bad_tag_saves_and_lookups_are_refused(store: Store) -> None:
    tag = await store.worker_tags.create("tag")
    with pytest.raises(InvalidInput, match=r"\.name"):
        await store.worker_tags.save(replace(tag, name="x" * 65))
    with pytest.raises(InvalidInput, match=r"\.description"):
        await store.worker_tags.save(replace(tag, description="x" * 256))
    assert await store.worker_tags.fetch(tag.uuid) == tag
    worker = await create_worker(store)
    for bad in ("not-a-uuid", "", "1234", 1234, tag.uuid.bytes, None):
        with pytest.raises(InvalidInput, match="worker tag uuid"):
            await store.worker_tags.fetch(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="tag uuids"):
            await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid, bad])  # type: ignore[list-item]
        with pytest.raises(InvalidInput, match="worker uuid"):
            await store.worker_tags.set_worker_tags(bad, [tag.uuid])  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="worker uuid"):
            await store.worker_tags.of_worker(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="worker tag uuid"):
            await store.worker_tags.delete(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match=r"worker tag 'tag'\.uuid"):
            await store.worker_tags.save(replace(tag, uuid=bad))
    with pytest.raises(InvalidInput, match="tag uuids"):  # one string is not a collection of uuids
        await store.worker_tags.set_worker_tags(worker.uuid, str(tag.uuid))  # type: ignore[arg-type]
    assert await _count(store, WorkerTagMembershipRow) == 0
    assert await store.worker_tags.fetch(tag.uuid) == tag


async def test_uuid_strings_work_like_uuids(store: Store) -> None:
    created = await store.worker_tags.create("t", uuid=str(TAG_UUID).upper())
    assert created.uuid == TAG_UUID
    assert await store.worker_tags.fetch(str(TAG_UUID)) == created
    worker = await create_worker(store)
    assert await store.worker_tags.set_worker_tags(str(worker.uuid), [str(TAG_UUID), TAG_UUID]) == [created]
    assert await store.worker_tags.of_worker(str(worker.uuid)) == [created]
    saved = await store.worker_tags.save(replace(created, uuid=str(TAG_UUID), description="by string"))  # type: ignore[arg-type]
    assert (saved.uuid, saved.description) == (TAG_UUID, "by string")
    await store.worker_tags.delete(str(TAG_UUID))
    assert await store.worker_tags.of_worker(worker.uuid) == []
    assert await _count(store, WorkerTagRow) == 0


async def test_concurrent_replacements_of_one_workers_tags_take_turns(store: Store) -> None:
    worker = await create_worker(store)
    t1, t2 = await store.worker_tags.create("tag1"), await store.worker_tags.create("tag2")
    results = await asyncio.gather(
        *(store.worker_tags.set_worker_tags(worker.uuid, [t1.uuid, t2.uuid]) for _ in range(8))
    )
    assert all(result == [t1, t2] for result in results)
    assert await store.worker_tags.of_worker(worker.uuid) == [t1, t2]
    assert await _count(store, WorkerTagMembershipRow) == 2
