"""Run as a separate process: a stream of acknowledged writes, until killed.

``python -m tests.support.ack_writer URL SEED`` — several coroutines write
concurrently (so that, on SQLite, writes share group commits) and print one
line on stdout, flushed, after each write *returned*: the write is then
acknowledged, and must survive a SIGKILL at any later moment. Every value a
coroutine writes to one entity is larger than the one before, so a stored
value may be the acknowledged one or a later one, never an earlier one.

Lines (uuids in their string form)::

    worker W                a worker was created
    pair A1 A2              atoms A1 and A2 are always updated together
    book B K F              logbook B saved with meta {"n": K} and a new flow detail F
    atom A K                atom detail A updated with results {"n": K}
    job J TASKS DEPENDENCIES  job J stored whole, with that many tasks and dependencies
    task T RANK W           task T is at least at RANK (1 active, 2 completed), worker W's
    seen W ISO              worker W's heartbeat returned; it began at time ISO

A job's metadata holds its number of tasks and dependencies, so that a job
stored but not acknowledged can still be checked to be whole.
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, TaskStatus, WorkerStatus
from statestore.flows import AtomDetail, AtomState, FlowDetail, LogBook

STATUS_RANK = {TaskStatus.QUEUED: 0, TaskStatus.ACTIVE: 1, TaskStatus.COMPLETED: 2}
"""The order a task of the stream goes through its statuses."""


def ack(*fields: object) -> None:
    """Acknowledge a write that returned: one line, one write(2), flushed."""
    sys.stdout.write(" ".join(str(field) for field in fields) + "\n")
    sys.stdout.flush()


async def flow_stream(store: Store, name: str) -> None:
    """Logbook saves that add a flow detail, between atom updates."""
    atom = AtomDetail("a", state=AtomState.RUNNING, results={"n": 0})
    book = LogBook(name, meta={"n": 0}, flows=[FlowDetail("f0", atoms=[atom])])
    await store.logbooks.save(book)
    ack("book", book.uuid, 0, book.flows[0].uuid)
    for k in range(1, 1_000_000):
        if k % 5 == 0:
            flow = FlowDetail(f"f{k}", atoms=[AtomDetail("a"), AtomDetail("b")])
            await store.logbooks.save(LogBook(name, uuid=book.uuid, meta={"n": k}, flows=[flow]))
            ack("book", book.uuid, k, flow.uuid)
        else:
            atom.results = {"n": k}
            await store.atom_details.update(atom)
            ack("atom", atom.uuid, k)


async def pair_stream(store: Store) -> None:
    """Two atoms updated together in explicit transactions."""
    first, second = AtomDetail("first", results={"n": 0}), AtomDetail("second", results={"n": 0})
    await store.logbooks.save(LogBook("pair", flows=[FlowDetail("pair", atoms=[first, second])]))
    ack("pair", first.uuid, second.uuid)
    for k in range(1, 1_000_000):
        async with store.transaction():
            for atom in (first, second):
                atom.results = {"n": k}
                await store.atom_details.update(atom)
        ack("atom", first.uuid, k)
        ack("atom", second.uuid, k)
        # An uncontended transaction never yields to the event loop: without
        # this, this loop would starve every other coroutine of the process.
        await asyncio.sleep(0)


def authored_job(rng: random.Random, number: int, task_type: str) -> AuthoredJob:
    """A chain of tasks, some with a second dependency; now and then a big one."""
    count = rng.randint(150, 400) if rng.random() < 0.1 else rng.randint(1, 30)
    tasks: list[AuthoredTask] = []
    dependencies = 0
    for index in range(count):
        depends_on: list[Any] = []
        if index > 0:
            depends_on.append(tasks[index - 1])
        if index > 2 and rng.random() < 0.3:
            depends_on.append(tasks[rng.randrange(index - 1)])
        dependencies += len(depends_on)
        tasks.append(AuthoredTask(f"t{index}", task_type, dependencies=depends_on))
    metadata = {"tasks": count, "dependencies": dependencies}
    return AuthoredJob(f"job-{task_type}-{number}", "kill-test", metadata=metadata, tasks=tasks)


async def seen(store: Store, worker: UUID) -> None:
    began = datetime.now(UTC)
    await store.workers.seen(worker)
    ack("seen", worker, began.isoformat())


async def farm_stream(store: Store, rng: random.Random, name: str) -> None:
    """Jobs stored whole, then tasks claimed and completed by one worker."""
    task_type = f"type-{name}"
    worker = await store.workers.create(name, "secret", status=WorkerStatus.AWAKE, supported_task_types=[task_type])
    ack("worker", worker.uuid)
    for number in range(1_000_000):
        job = authored_job(rng, number, task_type)
        await store.jobs.store_authored(job)
        ack("job", job.uuid, job.metadata["tasks"], job.metadata["dependencies"])
        for _ in range(3):
            scheduled = await store.scheduler.claim(worker.uuid)
            if scheduled is None:
                break
            task = scheduled.task.uuid
            ack("task", task, STATUS_RANK[TaskStatus.ACTIVE], worker.uuid)
            await seen(store, worker.uuid)
            await store.tasks.save_status(task, TaskStatus.COMPLETED, activity=f"done by {name}")
            ack("task", task, STATUS_RANK[TaskStatus.COMPLETED], worker.uuid)


async def heartbeat_stream(store: Store, count: int) -> None:
    """Heartbeats of several workers at once (coalesced on PostgreSQL)."""
    workers = []
    for number in range(count):
        worker = await store.workers.create(f"beating-{number}", "secret", status=WorkerStatus.AWAKE)
        ack("worker", worker.uuid)
        workers.append(worker.uuid)
    while True:
        await asyncio.gather(*(seen(store, worker) for worker in workers))


async def main(url: str, seed: int) -> None:
    rng = random.Random(seed)
    options: dict[str, Any] = {} if url.startswith("sqlite") else {"pool_size": 12}
    async with open_store(url, **options) as store:
        await asyncio.gather(
            flow_stream(store, "book-1"),
            flow_stream(store, "book-2"),
            pair_stream(store),
            farm_stream(store, random.Random(rng.random()), "w1"),
            farm_stream(store, random.Random(rng.random()), "w2"),
            heartbeat_stream(store, 3),
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
