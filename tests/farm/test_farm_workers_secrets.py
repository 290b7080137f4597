"""Worker secrets: stored only as salted hashes, never shown anywhere."""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from statestore import AlreadyExists, InvalidInput, Store, open_store
from statestore.schema.metadata import WorkerRow
from tests.support.farm_fixtures import create_worker

SECRET = "correct horse battery staple"


async def _stored_hash(store: Store, uuid: UUID) -> str:
    table = WorkerRow.__table__
    statement = select(table.c.secret_hash).where(table.c.uuid == uuid)
    return str(await store.read(lambda conn: conn.execute(statement).scalar_one()))


def _chain(error: BaseException) -> str:
    """The text of an error and of everything it was raised from."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        parts.append(f"{seen!s} {seen!r}")
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


async def test_only_a_salted_hash_is_stored(store: Store) -> None:
    first = await create_worker(store, "first", secret=SECRET)
    second = await create_worker(store, "second", secret=SECRET)
    first_hash, second_hash = await _stored_hash(store, first.uuid), await _stored_hash(store, second.uuid)
    assert SECRET not in first_hash
    assert first_hash.startswith("scrypt$")
    assert first_hash != second_hash  # a random salt each


async def test_verify_secret(store: Store) -> None:
    worker = await create_worker(store, secret=SECRET)
    assert await store.workers.verify_secret(worker.uuid, SECRET) is True
    assert await store.workers.verify_secret(worker.uuid, SECRET + " ") is False
    assert await store.workers.verify_secret(worker.uuid, SECRET.upper()) is False
    assert await store.workers.verify_secret(worker.uuid, "") is False
    assert await store.workers.verify_secret(worker.uuid, "x" * 10_000) is False
    assert await store.workers.verify_secret(uuid4(), SECRET) is False


async def test_a_deleted_worker_verifies_no_secret(store: Store) -> None:
    worker = await create_worker(store, secret=SECRET)
    await store.workers.delete(worker.uuid)
    assert await store.workers.verify_secret(worker.uuid, SECRET) is False


async def test_set_secret_replaces_it(store: Store) -> None:
    worker = await create_worker(store, secret=SECRET)
    old_hash = await _stored_hash(store, worker.uuid)
    await store.workers.set_secret(worker.uuid, "a new secret")
    assert await store.workers.verify_secret(worker.uuid, "a new secret") is True
    assert await store.workers.verify_secret(worker.uuid, SECRET) is False
    assert await _stored_hash(store, worker.uuid) != old_hash


async def test_the_secret_is_in_no_record_and_no_error(store: Store) -> None:
    worker = await create_worker(store, secret=SECRET)
    assert SECRET not in repr(worker)
    assert SECRET not in str(worker)
    assert all(SECRET not in repr(listed) for listed in await store.workers.list())
    with pytest.raises(AlreadyExists) as duplicate:
        await create_worker(store, uuid=worker.uuid, secret=SECRET)
    assert SECRET not in _chain(duplicate.value)
    with pytest.raises(InvalidInput) as bad_name:
        await create_worker(store, "x" * 65, secret=SECRET)
    assert SECRET not in _chain(bad_name.value)
    too_long = "s" * 256
    with pytest.raises(InvalidInput, match="worker secret") as long_secret:
        await store.workers.create("w", too_long)
    assert too_long not in _chain(long_secret.value)
    with pytest.raises(InvalidInput, match="worker secret: must not be empty"):
        await store.workers.set_secret(worker.uuid, "")
    assert await store.workers.verify_secret(worker.uuid, SECRET)


async def test_the_secret_is_not_logged(backend: str, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    async with open_store(store_url, create=backend == "sqlite-memory", echo=True) as store:
        worker = await create_worker(store, secret=SECRET)
        await store.workers.set_secret(worker.uuid, SECRET + "!")
        assert await store.workers.verify_secret(worker.uuid, SECRET + "!")
    assert "INSERT INTO workers" in caplog.text  # statements were logged…
    assert SECRET not in caplog.text  # …but never the secret
