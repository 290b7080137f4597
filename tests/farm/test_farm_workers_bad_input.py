"""Bad worker input: refused before any SQL, on every backend, nothing written."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from statestore import InvalidInput, NotFound, Store
from statestore.farm import WorkerStatus
from statestore.schema.metadata import WorkerRow
from tests.support.farm_fixtures import create_worker


async def _rows(store: Store) -> int:
    table = WorkerRow.__table__
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


NAIVE = datetime(2026, 1, 1, 12, 0)

BAD_CREATE: dict[str, tuple[dict[str, Any], str]] = {
    "long-name": ({"name": "n" * 65}, r"\.name"),
    "long-address": ({"address": "a" * 40}, r"\.address"),
    "long-platform": ({"platform": "p" * 17}, r"\.platform"),
    "long-software": ({"software": "s" * 33}, r"\.software"),
    "name-not-str": ({"name": 7}, r"\.name"),
    "bad-status": ({"status": "sleepy"}, r"\.status"),
    "type-with-comma": ({"supported_task_types": ["blender,ffmpeg"]}, r"supported_task_types\[0\].*comma"),
    "empty-type": ({"supported_task_types": ["blender", ""]}, r"supported_task_types\[1\]"),
    "long-type": ({"supported_task_types": ["t" * 33]}, r"supported_task_types\[0\]"),
    "types-too-long-joined": ({"supported_task_types": ["t" * 32] * 8}, r"supported_task_types: .*joined"),
    "types-as-one-string": ({"supported_task_types": "blender"}, r"supported_task_types"),
    "type-not-str": ({"supported_task_types": [3]}, r"supported_task_types\[0\]"),
    "can-restart-not-bool": ({"can_restart": 1}, r"can_restart"),
    "naive-last-seen": ({"last_seen_at": NAIVE}, r"last_seen_at.*naive"),
    "last-seen-not-datetime": ({"last_seen_at": "2026-01-01"}, r"last_seen_at"),
    "uuid-as-string": ({"uuid": "f0a123a9-ab05-4ce2-8577-94802cfe74a"}, r"\.uuid: .*not a uuid"),
    "uuid-as-empty-string": ({"uuid": ""}, r"\.uuid: .*not a uuid"),
    "uuid-as-short-string": ({"uuid": "1234"}, r"\.uuid: .*not a uuid"),
    "uuid-as-int": ({"uuid": 1234}, r"\.uuid: expected"),
    "uuid-as-bytes": ({"uuid": b"\xf0" * 16}, r"\.uuid: expected"),
    "empty-secret": ({"secret": ""}, r"worker secret"),
    "secret-not-str": ({"secret": b"bytes"}, r"worker secret"),
}


@pytest.mark.parametrize("change", list(BAD_CREATE.values()), ids=list(BAD_CREATE))
async def test_bad_create_writes_nothing(store: Store, change: tuple[dict[str, Any], str]) -> None:
    arguments: dict[str, Any] = {"name": "w", "secret": "secret", "supported_task_types": ["blender"]}
    overrides, message = change
    arguments.update(overrides)
    with pytest.raises(InvalidInput, match=message):
        await store.workers.create(**arguments)
    assert await _rows(store) == 0


async def test_task_types_of_exactly_255_characters_are_stored(store: Store) -> None:
    types = ["t" * 32] * 7 + ["t" * 24]
    assert len(",".join(types)) == 255
    worker = await store.workers.create("w", "secret", supported_task_types=types)
    assert (await store.workers.fetch(worker.uuid)).supported_task_types == tuple(types)


BAD_SAVE: dict[str, tuple[dict[str, Any], str]] = {
    "long-name": ({"name": "n" * 65}, r"\.name"),
    "long-address": ({"address": "a" * 40}, r"\.address"),
    "bad-status": ({"status": "sleepy"}, r"\.status"),
    "bad-requested": ({"status_requested": "sleepy"}, r"status_requested"),
    "lazy-not-bool": ({"lazy_status_request": "yes"}, r"lazy_status_request"),
    "type-with-comma": ({"supported_task_types": ("a,b",)}, r"comma"),
    "naive-last-seen": ({"last_seen_at": NAIVE}, r"last_seen_at"),
    "uuid-as-string": ({"uuid": "not-a-uuid"}, r"\.uuid: .*not a uuid"),
    "uuid-as-empty-string": ({"uuid": ""}, r"\.uuid: .*not a uuid"),
    "uuid-as-short-string": ({"uuid": "1234"}, r"\.uuid: .*not a uuid"),
    "uuid-as-int": ({"uuid": 1234}, r"\.uuid: expected"),
    "uuid-as-none": ({"uuid": None}, r"\.uuid: expected"),
}


@pytest.mark.parametrize("change", list(BAD_SAVE.values()), ids=list(BAD_SAVE))
async def test_bad_save_changes_nothing(store: Store, change: tuple[dict[str, Any], str]) -> None:
    worker = await create_worker(store)
    overrides, message = change
    with pytest.raises(InvalidInput, match=message):
        await store.workers.save(replace(worker, **overrides))
    assert await store.workers.fetch(worker.uuid) == worker


async def test_bad_status_saves_change_nothing(store: Store) -> None:
    worker = await create_worker(store)
    with pytest.raises(InvalidInput, match="worker status"):
        await store.workers.save_status(worker.uuid, "sleepy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="requested"):
        await store.workers.save_status(worker.uuid, WorkerStatus.ASLEEP, requested="later")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="lazy"):
        await store.workers.save_status(worker.uuid, WorkerStatus.ASLEEP, lazy=1)  # type: ignore[arg-type]
    assert await store.workers.fetch(worker.uuid) == worker


async def test_statuses_given_as_their_values_are_accepted(store: Store) -> None:
    worker = await create_worker(store)
    saved = await store.workers.save_status(worker.uuid, "asleep", requested="awake")  # type: ignore[arg-type]
    assert (saved.status, saved.status_requested) == (WorkerStatus.ASLEEP, WorkerStatus.AWAKE)


@pytest.mark.parametrize(
    "bad", ["f0a123a9-ab05-4ce2-8577-94802cfe74a", "not-a-uuid", "", "1234", b"\xf0" * 16, 17, None]
)
async def test_non_uuid_identifiers_are_refused(store: Store, bad: Any) -> None:
    worker = await create_worker(store)
    for call in (
        store.workers.fetch(bad),
        store.workers.seen(bad),
        store.workers.delete(bad),
        store.workers.save_status(bad, WorkerStatus.AWAKE),
        store.workers.verify_secret(bad, "open sesame"),
        store.workers.set_secret(bad, "new secret"),
    ):
        with pytest.raises(InvalidInput, match="worker uuid"):
            await call
    assert await store.workers.fetch(worker.uuid) == worker


async def test_uuid_strings_work_like_uuids(store: Store) -> None:
    given = "f0a123a9-ab05-4ce2-8577-94802cfe74a4"
    worker = await store.workers.create("w", "secret", uuid=given.upper())
    assert worker.uuid == UUID(given)
    assert await store.workers.fetch(given) == worker
    assert await store.workers.verify_secret(given, "secret")
    await store.workers.set_secret(given, "new secret")
    assert await store.workers.verify_secret(worker.uuid, "new secret")
    saved = await store.workers.save(replace(worker, uuid=given, name="renamed"))  # type: ignore[arg-type]
    assert (saved.uuid, saved.name) == (worker.uuid, "renamed")
    saved = await store.workers.save_status(given, WorkerStatus.ASLEEP)
    assert (saved.uuid, saved.status) == (worker.uuid, WorkerStatus.ASLEEP)
    await store.workers.seen(given)
    assert (await store.workers.fetch(worker.uuid)).last_seen_at is not None
    await store.workers.delete(given)
    with pytest.raises(NotFound):
        await store.workers.fetch(worker.uuid)


async def test_a_naive_timeout_cut_off_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match=r"last_seen_before.*naive"):
        await store.workers.timed_out(NAIVE)
    with pytest.raises(InvalidInput, match="last_seen_before"):
        await store.workers.timed_out("yesterday")  # type: ignore[arg-type]


async def test_saving_something_that_is_not_a_record_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput, match="expected a Worker"):
        await store.workers.save("not a worker")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="expected a WorkerTag"):
        await store.worker_tags.save("not a tag")  # type: ignore[arg-type]
