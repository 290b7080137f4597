"""A render farm in one process: a manager and a dozen simulated workers.

The manager submits three jobs (one limited to GPU workers by a tag) and
watches them; twelve workers of different kinds claim tasks from the
scheduler, heart-beat while they "render", and report back. One worker is
broken and fails every task it gets: after three failed tasks of a job it is
blocklisted for that job's task type and the others finish its work.

Run it from anywhere: ``python examples/render_farm.py`` keeps its state in
``statestore.db`` (the default SQLite file) in the working directory.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from uuid import UUID

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, Command, Job, JobStatus, TaskStatus, Worker, WorkerStatus

BLOCKLIST_THRESHOLD = 3
FAIL_AFTER_WORKERS = 3  # a task that failed on this many workers fails for good


@dataclass
class Farmhand:
    """A simulated worker: what it runs and whether it is broken."""

    name: str
    task_types: tuple[str, ...]
    broken: bool = False
    tagged: bool = False


FARMHANDS = [
    *(Farmhand(f"blender-{n}", ("blender",)) for n in range(1, 6)),
    *(Farmhand(f"allround-{n}", ("blender", "ffmpeg", "file-management")) for n in range(1, 4)),
    Farmhand("gpu-1", ("blender",), tagged=True),
    Farmhand("gpu-2", ("blender", "ffmpeg", "file-management"), tagged=True),
    Farmhand("janitor", ("file-management",)),
    Farmhand("broken", ("blender",), broken=True),
]


def shot(name: str, frames: int, chunk: int, *, priority: int = 50, tag: UUID | None = None) -> AuthoredJob:
    """Render ``frames`` in chunks, then a preview video of them all, then clean up."""
    renders = [
        AuthoredTask(
            f"render-{start}-{min(start + chunk - 1, frames)}",
            "blender",
            commands=[Command("blender-render", {"frames": f"{start}-{start + chunk - 1}"}, total_step_count=chunk)],
        )
        for start in range(1, frames + 1, chunk)
    ]
    video = AuthoredTask("preview-video", "ffmpeg", dependencies=[task.uuid for task in renders])
    cleanup = AuthoredTask("cleanup", "file-management", dependencies=[video.uuid])
    tasks = [*renders, video, cleanup]
    return AuthoredJob(name, "simple-blender-render", priority=priority, tasks=tasks, worker_tag=tag)


async def work(store: Store, hand: Farmhand, worker: Worker, done: asyncio.Event) -> None:
    """Claim, render (heart-beating), report; until the manager says done."""
    rng = random.Random(hand.name)
    while not done.is_set():
        scheduled = await store.scheduler.claim(worker.uuid)
        if scheduled is None:
            await asyncio.sleep(0.02)
            continue
        task = scheduled.task
        if not hand.broken:
            for _ in range(3):  # rendering, touching the task as a real worker does
                await asyncio.sleep(rng.uniform(0.005, 0.02))
                await store.tasks.touched_by_worker(task.uuid)
                await store.workers.seen(worker.uuid)
            await store.tasks.save_status(task.uuid, TaskStatus.COMPLETED, f"done by {hand.name}")
            continue
        outcome = await store.task_failures.record(task.uuid, worker.uuid, blocklist_threshold=BLOCKLIST_THRESHOLD)
        status = TaskStatus.FAILED if outcome.failed_workers >= FAIL_AFTER_WORKERS else TaskStatus.SOFT_FAILED
        await store.tasks.save_status(task.uuid, status, f"{hand.name} crashed")
        print(f"  {hand.name} failed {task.name} ({outcome.worker_failures_on_job} failed tasks on this job)")
        if outcome.blocklisted:
            print(f"  {hand.name} is now blocklisted for {task.type!r} tasks of job {task.job_uuid}")


async def manage(store: Store, jobs: list[Job], done: asyncio.Event) -> None:
    """Mark jobs completed when all their tasks are, and print progress."""
    remaining = {job.uuid: job.name for job in jobs}
    while remaining:
        await asyncio.sleep(0.25)
        line = []
        for uuid, name in list(remaining.items()):
            completed, total = await store.jobs.count_tasks_in_status(uuid, TaskStatus.COMPLETED)
            line.append(f"{name} {completed}/{total}")
            if completed == total:
                await store.jobs.save_status(uuid, JobStatus.COMPLETED, "all tasks completed")
                del remaining[uuid]
                print(f"{name}: completed")
        if line:
            print("progress: " + ", ".join(line))
    done.set()


async def main() -> None:
    async with open_store(create=True) as store:
        gpu = await store.worker_tags.create(f"gpu-{random.randrange(10**6)}", "workers with a GPU")
        workers = []
        for hand in FARMHANDS:
            worker = await store.workers.create(
                hand.name, f"secret of {hand.name}", status=WorkerStatus.AWAKE, supported_task_types=hand.task_types
            )
            if hand.tagged:
                await store.worker_tags.set_worker_tags(worker.uuid, [gpu.uuid])
            workers.append(worker)
        jobs = [
            await store.jobs.store_authored(shot("shot-010", frames=60, chunk=5)),
            await store.jobs.store_authored(shot("shot-020", frames=30, chunk=5, priority=80)),
            await store.jobs.store_authored(shot("gpu-bake", frames=20, chunk=4, tag=gpu.uuid)),
        ]
        print(f"{len(workers)} workers, {len(jobs)} jobs, {sum(j.steps_total for j in jobs)} steps to render")
        done = asyncio.Event()
        hands = zip(FARMHANDS, workers, strict=True)
        await asyncio.gather(manage(store, jobs, done), *(work(store, hand, worker, done) for hand, worker in hands))
        broken = workers[-1]
        for job in jobs:
            for entry in await store.blocklist.entries(job.uuid):
                if entry.worker_uuid == broken.uuid:
                    print(f"{job.name}: {entry.worker_name} blocklisted for {entry.task_type}")
        print("all jobs completed")


if __name__ == "__main__":
    asyncio.run(main())
