"""Worker heartbeats from many workers at once: they may share a statement
(PostgreSQL coalesces them), never each other's errors or transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy.engine import Connection

from statestore import NotFound, Store
from statestore.farm import Worker
from statestore.farm import workers as worker_units
from tests.support.farm_fixtures import create_worker


async def _workers(store: Store, count: int) -> list[Worker]:
    return [await create_worker(store, f"w{number}") for number in range(count)]


def _record_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[UUID]]:
    """The uuid lists of every coalesced heartbeat statement run from now on."""
    batches: list[list[UUID]] = []
    real: Callable[[Connection, list[UUID]], set[UUID]] = worker_units.mark_seen_many

    def recording(connection: Connection, uuids: list[UUID]) -> set[UUID]:
        batches.append(list(uuids))
        return real(connection, uuids)

    monkeypatch.setattr(worker_units, "mark_seen_many", recording)
    return batches


async def test_concurrent_heartbeats_all_land(store: Store) -> None:
    workers = await _workers(store, 30)
    await asyncio.gather(*(store.workers.seen(worker.uuid) for worker in workers))
    for worker in workers:
        seen = await store.workers.fetch(worker.uuid)
        assert seen.last_seen_at is not None
        assert seen.updated_at == seen.last_seen_at
        assert seen.last_seen_at >= worker.updated_at


async def test_an_unknown_or_deleted_worker_among_concurrent_heartbeats_fails_alone(store: Store) -> None:
    workers = await _workers(store, 8)
    deleted = await create_worker(store, "gone")
    await store.workers.delete(deleted.uuid)
    unknown = uuid4()
    targets = [worker.uuid for worker in workers[:4]] + [unknown, deleted.uuid] + [w.uuid for w in workers[4:]]
    outcomes = await asyncio.gather(*(store.workers.seen(uuid) for uuid in targets), return_exceptions=True)
    failed = {uuid: outcome for uuid, outcome in zip(targets, outcomes, strict=True) if outcome is not None}
    assert set(failed) == {unknown, deleted.uuid}
    for uuid, error in failed.items():
        assert isinstance(error, NotFound)
        assert str(uuid) in str(error)
    assert failed[unknown] is not failed[deleted.uuid]
    for worker in workers:
        assert (await store.workers.fetch(worker.uuid)).last_seen_at is not None


async def test_one_worker_twice_in_one_turn(store: Store) -> None:
    worker = await create_worker(store)
    await asyncio.gather(store.workers.seen(worker.uuid), store.workers.seen(worker.uuid))
    assert (await store.workers.fetch(worker.uuid)).last_seen_at is not None


async def test_concurrent_heartbeats_share_statements_on_postgresql(
    store: Store, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = await _workers(store, 20)
    batches = _record_batches(monkeypatch)
    await asyncio.gather(*(store.workers.seen(worker.uuid) for worker in workers))
    if backend != "postgresql":
        assert batches == []  # one UPDATE each (SQLite's group commit shares the commit)
        return
    coalesced = [uuid for batch in batches for uuid in batch]
    assert len(batches) < len(coalesced)  # fewer statements than heartbeats
    assert len(set(coalesced)) == len(coalesced)
    assert set(coalesced) <= {worker.uuid for worker in workers}
    assert len(coalesced) >= len(workers) - 2  # at most the first went out alone at once
    for batch in batches:  # one statement, one time
        times = {(await store.workers.fetch(uuid)).last_seen_at for uuid in batch}
        assert len(times) == 1


async def test_heartbeats_inside_a_transaction_join_it(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    workers = await _workers(store, 5)
    batches = _record_batches(monkeypatch)
    with pytest.raises(RuntimeError):
        async with store.transaction():
            await asyncio.gather(*(store.workers.seen(worker.uuid) for worker in workers))
            raise RuntimeError("undo")
    assert batches == []
    for worker in workers:
        assert (await store.workers.fetch(worker.uuid)).last_seen_at is None  # rolled back with it


async def test_a_failing_coalesced_statement_leaves_each_heartbeat_its_own_outcome(
    store: Store, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = await _workers(store, 6)
    attempts: list[list[UUID]] = []

    def broken(connection: Connection, uuids: list[UUID]) -> Any:
        attempts.append(uuids)
        raise ConnectionResetError("the batch's connection went away")

    monkeypatch.setattr(worker_units, "mark_seen_many", broken)
    unknown = uuid4()
    targets = [worker.uuid for worker in workers] + [unknown]
    outcomes = await asyncio.gather(*(store.workers.seen(uuid) for uuid in targets), return_exceptions=True)
    assert bool(attempts) == (backend == "postgresql")
    assert outcomes[:-1] == [None] * len(workers)  # retried one by one, the usual way
    assert isinstance(outcomes[-1], NotFound)
    for worker in workers:
        assert (await store.workers.fetch(worker.uuid)).last_seen_at is not None
