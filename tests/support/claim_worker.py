"""Run as a separate process: simulated workers claiming and completing tasks.

``python -m tests.support.claim_worker URL JOB_UUID COROUTINES LOG`` — each coroutine
is a worker of its own; it claims, checks in the database that every
dependency of what it got is completed, completes it, and logs a JSON line per
task. It stops when every task of the job is completed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore import Store, open_store
from statestore.farm import TaskStatus, WorkerStatus
from statestore.farm.tables import DEPENDENCIES, TASKS

_DEPENDENCY_STATUSES = (
    select(TASKS.c.status)
    .join(DEPENDENCIES, DEPENDENCIES.c.dependency_id == TASKS.c.id)
    .where(DEPENDENCIES.c.task_id == bindparam("task_id"))
)


def _dependency_statuses(connection: Connection, task_id: int) -> list[str]:
    return list(connection.execute(_DEPENDENCY_STATUSES, {"task_id": task_id}).scalars())


async def _work(store: Store, job: UUID, name: str, log: list[dict[str, object]]) -> None:
    worker = await store.workers.create(name, "secret", status=WorkerStatus.AWAKE, supported_task_types=["blender"])
    while True:
        scheduled = await store.scheduler.claim(worker.uuid)
        if scheduled is None:
            completed, total = await store.jobs.count_tasks_in_status(job, TaskStatus.COMPLETED)
            if completed == total:
                return
            await asyncio.sleep(0.002)
            continue
        claimed_at = time.time()
        task = scheduled.task
        statuses = await store.read(lambda conn, task_id=task.id: _dependency_statuses(conn, task_id))
        await asyncio.sleep(0)  # hold the task while others claim
        completing_at = time.time()
        await store.tasks.save_status(task.uuid, TaskStatus.COMPLETED)
        log.append(
            {
                "task": str(task.uuid),
                "worker": name,
                "claimed_at": claimed_at,
                "completing_at": completing_at,
                "dependency_statuses": statuses,
            }
        )


async def main(url: str, job: UUID, coroutines: int, name: str) -> list[dict[str, object]]:
    log: list[dict[str, object]] = []
    # SQLite waits for other processes' write locks; servers need a
    # connection per coroutine so claims really run side by side.
    options: dict[str, object] = {"busy_timeout": 60} if url.startswith("sqlite") else {"pool_size": 2 * coroutines}
    async with open_store(url, **options) as store:
        await asyncio.gather(*(_work(store, job, f"{name}-{n}", log) for n in range(coroutines)))
    return log


if __name__ == "__main__":
    log_path = Path(sys.argv[4])
    entries = asyncio.run(main(sys.argv[1], UUID(sys.argv[2]), int(sys.argv[3]), log_path.stem))
    log_path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
