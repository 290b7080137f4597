"""``scheduler.claim(worker, wait=…)``: a claim that waits for work, woken by
the commits that make work claimable — in this process, from another store
on the same database (another process's connections), and across the
window between a claim that found nothing and the sleep after it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest
from sqlalchemy import text

from statestore import InvalidInput, Store, open_store
from statestore.core.wakeups import Turn
from tests.support.farm_fixtures import create_worker, job_of, render_task

ROOT = Path(__file__).resolve().parents[2]


async def _timed(call: Awaitable[object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = await call
    return result, time.perf_counter() - start


async def test_wait_is_validated_before_any_sql(store: Store) -> None:
    worker = await create_worker(store)
    for bad in (-1, math.nan, math.inf, True, "1", 3601):
        with pytest.raises(InvalidInput, match="wait"):
            await store.scheduler.claim(worker.uuid, wait=bad)  # type: ignore[arg-type]
    assert await store.scheduler.claim(worker.uuid, wait=0) is None


async def test_a_wait_with_no_work_ends_empty_when_the_time_is_up(store: Store) -> None:
    worker = await create_worker(store)
    result, took = await _timed(store.scheduler.claim(worker.uuid, wait=0.3))
    assert result is None
    assert 0.25 <= took < 3


async def test_a_job_stored_in_this_process_wakes_the_waiter(store: Store) -> None:
    worker = await create_worker(store)
    waiting = asyncio.create_task(store.scheduler.claim(worker.uuid, wait=30))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await store.jobs.store_authored(job_of(render_task("one")))
    claimed = await asyncio.wait_for(waiting, 5)
    assert claimed is not None
    assert claimed.task.name == "one"


async def test_a_job_stored_by_another_store_wakes_the_waiter(backend: str, store: Store, store_url: str) -> None:
    """Another store has its own connections and its own in-process
    wake-ups: only the database tells this one (NOTIFY, data_version, or
    MariaDB's polling)."""
    if backend == "sqlite-memory":
        pytest.skip("a database in memory belongs to one store")
    worker = await create_worker(store)
    waiting = asyncio.create_task(store.scheduler.claim(worker.uuid, wait=30))
    await asyncio.sleep(0.2)
    async with open_store(store_url) as other:
        await other.jobs.store_authored(job_of(render_task("one")))
    claimed, took = await _timed(asyncio.wait_for(waiting, 10))
    assert claimed is not None
    assert took < 3


async def test_a_job_stored_by_another_process_wakes_the_waiter(backend: str, store: Store, store_url: str) -> None:
    if backend == "sqlite-memory":
        pytest.skip("a database in memory belongs to one process")
    worker = await create_worker(store)
    waiting = asyncio.create_task(store.scheduler.claim(worker.uuid, wait=60))
    await asyncio.sleep(0.2)
    script = (
        "import asyncio, sys\n"
        "from statestore import open_store\n"
        "from tests.support.farm_fixtures import job_of, render_task\n"
        "async def main():\n"
        "    async with open_store(sys.argv[1]) as store:\n"
        "        await store.jobs.store_authored(job_of(render_task('from afar')))\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, store_url, cwd=ROOT)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    claimed = await asyncio.wait_for(waiting, 10)
    assert claimed is not None
    assert claimed.task.name == "from afar"


async def test_no_wake_up_is_lost_between_an_empty_claim_and_the_sleep(
    backend: str, store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job is committed — by another store, so only the database can tell
    — after the waiter's claim found nothing and before it sleeps. It must
    wake at once, not at the end of its wait."""
    worker = await create_worker(store)
    real_wait = Turn.wait
    injected: list[bool] = []

    async def commit_then_wait(turn: Turn, seconds: float) -> bool:
        if not injected:
            injected.append(True)
            if backend == "sqlite-memory":  # one store only: its own commit must wake it
                await store.jobs.store_authored(job_of(render_task("in the gap")))
            else:
                async with open_store(store_url) as other:
                    await other.jobs.store_authored(job_of(render_task("in the gap")))
        return await real_wait(turn, seconds)

    monkeypatch.setattr(Turn, "wait", commit_then_wait)
    claimed, took = await _timed(store.scheduler.claim(worker.uuid, wait=30))
    assert injected
    assert claimed is not None
    assert took < 5, f"woken only after {took:.1f} s"


async def test_waiters_are_served_longest_waiting_first(store: Store) -> None:
    workers = [await create_worker(store, f"w{i}") for i in range(3)]
    waits = []
    for worker in workers:
        waits.append(asyncio.create_task(store.scheduler.claim(worker.uuid, wait=30)))
        await asyncio.sleep(0.05)
    await store.jobs.store_authored(job_of(render_task("first")))
    done, _ = await asyncio.wait(waits, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert done == {waits[0]}
    await asyncio.sleep(0.1)
    assert not waits[1].done()
    assert not waits[2].done()
    await store.jobs.store_authored(job_of(render_task("second")))
    done, _ = await asyncio.wait(waits[1:], timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert done == {waits[1]}
    await store.jobs.store_authored(job_of(render_task("third")))
    assert await asyncio.wait_for(waits[2], 5) is not None


async def test_many_tasks_stored_at_once_reach_every_waiter(store: Store) -> None:
    workers = [await create_worker(store, f"w{i}") for i in range(6)]
    waits = [asyncio.create_task(store.scheduler.claim(w.uuid, wait=30)) for w in workers]
    await asyncio.sleep(0.1)
    await store.jobs.store_authored(job_of(*(render_task(f"t{i}") for i in range(6))))
    claimed = await asyncio.wait_for(asyncio.gather(*waits), 10)
    assert all(c is not None for c in claimed)
    assert len({c.task.uuid for c in claimed if c is not None}) == 6


async def test_a_cancelled_wait_leaves_no_waiter_behind(store: Store) -> None:
    worker = await create_worker(store)
    waiting = asyncio.create_task(store.scheduler.claim(worker.uuid, wait=30))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert not store.runner.wakeups._turns
    await store.jobs.store_authored(job_of(render_task("after")))
    assert await store.scheduler.claim(worker.uuid, wait=5) is not None


async def test_the_listener_killed_by_the_server_comes_back(backend: str, store: Store, store_url: str) -> None:
    if backend != "postgresql":
        pytest.skip("LISTEN is PostgreSQL's")
    worker = await create_worker(store)
    waiting = asyncio.create_task(store.scheduler.claim(worker.uuid, wait=60))
    await asyncio.sleep(0.2)

    def kill(conn: object) -> int:
        statement = text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
        return int(conn.execute(statement).scalar_one())  # type: ignore[attr-defined]

    killed = await store.write(kill)
    assert killed == 1
    await asyncio.sleep(0.5)  # it reconnects meanwhile
    async with open_store(store_url) as other:
        await other.jobs.store_authored(job_of(render_task("after the kill")))
    claimed = await asyncio.wait_for(waiting, 10)
    assert claimed is not None
    assert claimed.task.name == "after the kill"


async def test_when_the_longest_waiter_leaves_the_next_one_takes_its_place(
    backend: str, store: Store, store_url: str
) -> None:
    """Where waiters poll (MariaDB), only the head does: a head that times
    out must hand the polling on, or the next waiter sleeps out its wait."""
    first, second = await create_worker(store, "first"), await create_worker(store, "second")
    leaving = asyncio.create_task(store.scheduler.claim(first.uuid, wait=0.5))
    await asyncio.sleep(0.05)
    staying = asyncio.create_task(store.scheduler.claim(second.uuid, wait=30))
    assert await leaving is None
    await asyncio.sleep(0.3)
    if backend == "sqlite-memory":
        await store.jobs.store_authored(job_of(render_task("later")))
    else:
        async with open_store(store_url) as other:
            await other.jobs.store_authored(job_of(render_task("later")))
    claimed, took = await _timed(asyncio.wait_for(staying, 20))
    assert claimed is not None
    assert took < 5


async def test_waits_that_ended_leave_nothing_listening(
    backend: str, store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LISTEN connection goes back to the pool without its listener: a
    NOTIFY after every wait has ended wakes nothing in this store."""
    if backend != "postgresql":
        pytest.skip("LISTEN is PostgreSQL's")
    worker = await create_worker(store)
    for _ in range(10):
        assert await store.scheduler.claim(worker.uuid, wait=0.02) is None
    heard: list[bool] = []
    wakeups = store.runner.wakeups
    monkeypatch.setattr(wakeups, "work", lambda: heard.append(True))
    async with open_store(store_url) as other:
        await other.jobs.store_authored(job_of(render_task("nobody waits")))
    await asyncio.sleep(0.3)
    assert heard == []

    def listening(conn: object) -> int:
        statement = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        return int(conn.execute(statement).scalar_one())  # type: ignore[attr-defined]

    assert await store.read(listening) == 0


async def test_closing_the_store_ends_its_waits(store_url: str, backend: str) -> None:
    from statestore import Unavailable

    async with open_store(store_url, create=backend == "sqlite-memory") as store:
        worker = await create_worker(store)
        waiting = asyncio.create_task(store.scheduler.claim(worker.uuid, wait=60))
        await asyncio.sleep(0.1)
    with pytest.raises(Unavailable, match="closed"):
        await asyncio.wait_for(waiting, 5)


async def test_a_wait_on_an_unreachable_database_fails_at_once(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("a server that is not there")
    from statestore import StoreError
    from statestore.store import open_store_unchecked

    async with open_store_unchecked("postgresql://postgres@127.0.0.1:1/nothing") as store:
        start = time.perf_counter()
        with pytest.raises(StoreError):
            await store.scheduler.claim("6f1c4c5e-8d1a-4c0b-9b1e-0f2d3c4b5a69", wait=60)
        assert time.perf_counter() - start < 10
