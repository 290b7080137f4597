"""A cancelled call raises CancelledError on every backend, leaves the
database holding all of its write or none of it, and leaves the store
usable.

On SQLite the outcome is exact: a write cancelled before its transaction
began is never run; once begun it runs to its end before CancelledError
reaches the caller, so nothing of a cancelled call is still in flight.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS
from tests.support.core_model import COUNTERS, counters_table

SQLITE = ("sqlite-file", "sqlite-memory")


def _job(tasks: int) -> AuthoredJob:
    """A chain: every task depends on the one before."""
    authored = [AuthoredTask(f"t{index}", "blender") for index in range(tasks)]
    for before, after in itertools.pairwise(authored):
        after.dependencies = [before.uuid]
    return AuthoredJob("cancel me", "simple-blender-render", tasks=authored)


async def _stored(store: Store, job: UUID) -> tuple[int, int, int]:
    """(jobs, tasks, dependencies) stored for ``job``."""
    job_id = select(JOBS.c.id).where(JOBS.c.uuid == job).scalar_subquery()
    task_ids = select(TASKS.c.id).where(TASKS.c.job_id == job_id)

    def count(conn: Connection) -> tuple[int, int, int]:
        return (
            conn.execute(select(func.count()).select_from(JOBS).where(JOBS.c.uuid == job)).scalar_one(),
            conn.execute(select(func.count()).select_from(TASKS).where(TASKS.c.job_id == job_id)).scalar_one(),
            conn.execute(
                select(func.count()).select_from(DEPENDENCIES).where(DEPENDENCIES.c.task_id.in_(task_ids))
            ).scalar_one(),
        )

    return await store.read(count)


@pytest.mark.parametrize("tasks", [20, 600], ids=["inline", "offloaded"])  # jobs of > 500 tasks run off the loop
async def test_cancelled_job_submissions_are_all_or_nothing(store: Store, backend: str, tasks: int) -> None:
    chance = random.Random(f"{backend}-{tasks}")
    started = time.perf_counter()
    await store.jobs.store_authored(_job(tasks))  # how long one takes here
    took = time.perf_counter() - started
    trials = 24 if tasks == 20 else 8
    outcomes: Counter[str] = Counter()
    for trial in range(trials):
        job = _job(tasks)
        call = asyncio.create_task(store.jobs.store_authored(job))
        if trial % 2:  # a few turns of the loop: the points inside the runner
            for _ in range(chance.randrange(6)):
                await asyncio.sleep(0)
        else:  # anywhere in the call
            await asyncio.sleep(chance.uniform(0, 1.2 * took))
        call.cancel()
        try:
            await call
        except asyncio.CancelledError:
            returned = False
        else:
            returned = True
        stored = await _stored(store, job.uuid)
        assert stored in {(0, 0, 0), (1, tasks, tasks - 1)}, f"trial {trial}: part of the job is stored: {stored}"
        if returned:
            assert stored == (1, tasks, tasks - 1)
        outcomes[("returned" if returned else "cancelled") + (", stored" if stored[0] else ", not stored")] += 1
    # The store (and the connection the cancelled calls used) works on.
    after = _job(3)
    await store.jobs.store_authored(after)
    assert await _stored(store, after.uuid) == (1, 3, 2)
    assert outcomes["returned, not stored"] == 0
    if backend in SQLITE and tasks == 20:
        # Cancellation at the runner's own points is exact on SQLite: both
        # outcomes of a cancelled call show up.
        assert outcomes["cancelled, not stored"] > 0, outcomes
        assert outcomes["cancelled, stored"] + outcomes["returned, stored"] > 0, outcomes


# -- SQLite: exactly when a cancelled write is run ----------------------------------------


def _add(name: str) -> Callable[[Connection], object]:
    return lambda conn: conn.execute(insert(COUNTERS), {"name": name})


async def _names(store: Store) -> list[str]:
    return await store.read(lambda conn: sorted(conn.execute(select(COUNTERS.c.name)).scalars()))


@pytest.mark.parametrize("offload", [False, True], ids=["inline", "offloaded"])
async def test_a_write_cancelled_while_another_process_writes_is_never_run(tmp_path: Path, offload: bool) -> None:
    path = tmp_path / "c.db"
    async with open_store(f"sqlite:///{path}", create=True) as store, counters_table(store):
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # as another process would
        call = asyncio.create_task(store.write(_add("cancelled"), offload=offload))
        await asyncio.sleep(0.1)  # waiting for the lock by now
        cancelled_at = time.monotonic()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert time.monotonic() - cancelled_at < 0.5  # at once, not when the lock comes free
        other.execute("COMMIT")
        other.close()
        await asyncio.sleep(0.1)
        await store.write(_add("after"))
        assert await _names(store) == ["after"]


async def test_a_write_cancelled_while_this_process_holds_the_lock_is_never_run(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}", create=True) as store, counters_table(store):
        async with store.transaction():
            # A caller outside the transaction (a context of its own) queues behind it.
            call = asyncio.create_task(store.write(_add("cancelled")), context=contextvars.Context())
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await store.write(_add("inside"))
        await store.write(_add("after"))
        assert await _names(store) == ["after", "inside"]


async def test_a_write_cancelled_once_begun_finishes_before_cancelled_error(tmp_path: Path) -> None:
    """An offloaded unit runs on the writer thread: cancelling its caller
    cannot stop it midway, so the caller waits for its COMMIT, then gets
    CancelledError; the write is committed."""
    running, go_on = threading.Event(), threading.Event()

    def slow_add(conn: Connection) -> object:
        conn.execute(insert(COUNTERS), {"name": "begun"})
        running.set()
        go_on.wait(10)
        return conn.execute(insert(COUNTERS), {"name": "finished"})

    async with open_store(f"sqlite:///{tmp_path / 'c.db'}", create=True) as store, counters_table(store):
        call = asyncio.create_task(store.write(slow_add, offload=True))
        assert await asyncio.to_thread(running.wait, 10)
        call.cancel()
        await asyncio.sleep(0.1)
        assert not call.done()  # still running its transaction
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await _names(store) == ["begun", "finished"]
        await store.write(_add("after"))
        assert await _names(store) == ["after", "begun", "finished"]


async def test_a_write_cancelled_after_its_commit_still_raises_cancelled_error(tmp_path: Path) -> None:
    """The case of the issue: the group commit ran the unit, then the caller
    was cancelled before it resumed. Cancellation wins (asyncio's rule); the
    write stays committed."""
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}", create=True) as store, counters_table(store):
        call = asyncio.create_task(store.write(_add("committed")))
        for _ in range(20):  # until the flush has settled its future
            await asyncio.sleep(0)
            if "committed" in await _names(store):
                break
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await _names(store) == ["committed"]


async def test_a_write_cancelled_while_it_runs_after_a_wait_finishes_first(tmp_path: Path) -> None:
    """Units that waited for another process run on the lock-waiter thread
    once it has the lock: a caller cancelled meanwhile waits for the COMMIT."""
    path = tmp_path / "c.db"
    running, go_on = threading.Event(), threading.Event()

    def slow_add(conn: Connection) -> object:
        conn.execute(insert(COUNTERS), {"name": "begun"})
        running.set()
        go_on.wait(5)
        return conn.execute(insert(COUNTERS), {"name": "finished"})

    async with open_store(f"sqlite:///{path}", create=True) as store, counters_table(store):
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        call = asyncio.create_task(store.write(slow_add))
        await asyncio.sleep(0.1)
        other.execute("COMMIT")
        other.close()
        assert await asyncio.to_thread(running.wait, 5)
        call.cancel()
        await asyncio.sleep(0.1)
        assert not call.done()
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await _names(store) == ["begun", "finished"]
