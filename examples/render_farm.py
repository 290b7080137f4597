"""A render farm in one process: a manager, a housekeeper and twelve workers.

The manager submits three jobs (one limited to GPU workers by a tag), starts
the housekeeper and waits for every job to finish. The workers claim tasks
from the scheduler and report to the state machine (``store.state_machine``),
which applies Flamenco's rules: the last task completed completes its job, a
reported failure soft-fails the task so that another worker runs it, and a
worker unseen for too long is timed out and its task given back. Nobody
completes a job by hand.

Two workers misbehave: ``flaky`` fails every task it gets (after three failed
tasks of a job it is blocklisted for their type), and ``doomed`` dies in the
middle of its first task; the housekeeper's time-out gives that task back and
another worker finishes it. At the end the manager reads the status history
of that task's job.

Run it with no arguments to use the embedded default (``statestore.db`` in the
working directory, or ``$STATESTORE_URL``), or pass a database URL:

    python examples/render_farm.py
    python examples/render_farm.py postgresql://postgres@127.0.0.1/mydb
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, Command, Job, JobStatus, TaskStatus, Worker, WorkerStatus

# Short time-outs so that the example finishes in seconds (Flamenco's are minutes).
WORKER_TIMEOUT = timedelta(seconds=1)  # a worker not heard from this long goes to "error", its task is queued again
TASK_TIMEOUT = timedelta(seconds=2)  # a task not touched this long fails; longer, so a dead worker's time-out wins
SWEEP_INTERVAL = timedelta(seconds=0.2)
DEADLINE = 60  # seconds: the manager gives up if the jobs are not finished by then

FINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass
class Farmhand:
    """A simulated worker: what it runs, and how it misbehaves."""

    name: str
    task_types: tuple[str, ...]
    tagged: bool = False  # one of the GPU workers
    flaky: bool = False  # fails every task it gets
    doomed: bool = False  # dies in the middle of its first task


FARMHANDS = [
    *(Farmhand(f"blender-{n}", ("blender",)) for n in range(1, 5)),
    *(Farmhand(f"allround-{n}", ("blender", "ffmpeg", "file-management")) for n in range(1, 4)),
    Farmhand("gpu-1", ("blender",), tagged=True),
    Farmhand("gpu-2", ("blender", "ffmpeg", "file-management"), tagged=True),
    Farmhand("janitor", ("file-management",)),
    Farmhand("flaky", ("blender",), flaky=True),
    Farmhand("doomed", ("blender",), doomed=True),
]


def shot(name: str, frames: int, chunk: int, *, priority: int = 50, tag: UUID | None = None) -> AuthoredJob:
    """Render ``frames`` in chunks, then a preview video of them all, then clean up."""
    renders = [
        AuthoredTask(
            f"render-{start}-{start + chunk - 1}",
            "blender",
            commands=[Command("blender-render", {"frames": f"{start}-{start + chunk - 1}"}, total_step_count=chunk)],
        )
        for start in range(1, frames + 1, chunk)
    ]
    video = AuthoredTask("preview-video", "ffmpeg", commands=[Command("ffmpeg")], dependencies=renders)
    cleanup = AuthoredTask("cleanup", "file-management", commands=[Command("remove-tree")], dependencies=[video])
    return AuthoredJob(
        name, "simple-blender-render", priority=priority, tasks=[*renders, video, cleanup], worker_tag=tag
    )


async def work(store: Store, hand: Farmhand, worker: Worker, job_names: dict[UUID, str], done: asyncio.Event) -> None:
    """Claim a task, report progress on it step by step, report the outcome; until the manager says done."""
    rng = random.Random(hand.name)
    while not done.is_set():
        scheduled = await store.scheduler.claim(worker.uuid)  # a claim also tells the manager we are alive
        if scheduled is None:
            await asyncio.sleep(0.03)  # nothing to do yet: ask again shortly
            continue
        task = scheduled.task
        job_name = job_names.get(task.job_uuid, "an older job")  # a database used before may have work left
        label = f"{job_name} {task.name}"
        if hand.flaky:
            failed = await store.state_machine.worker_task_failed(worker.uuid, task.uuid, reason="blender crashed")
            print(f"  {hand.name} failed {label}: {failed.task_status}")
            if failed.blocklisted:
                print(f"  {hand.name} is now blocklisted for {task.type} tasks of {job_name}")
            continue
        for step in range(1, task.steps_total + 1):
            await asyncio.sleep(rng.uniform(0.02, 0.05))  # "rendering"
            if hand.doomed and step == 3:
                # Like a killed process: no report, no heartbeat, the task stays active on this worker.
                print(f"  {hand.name} dies while running {label} (step {step} of {task.steps_total})")
                return
            # A progress report is also the heartbeat of the task and of the worker.
            await store.state_machine.worker_task_update(
                worker.uuid, task.uuid, steps_completed=step, activity=f"step {step} of {task.steps_total}"
            )
        await store.state_machine.worker_task_update(
            worker.uuid, task.uuid, status="completed", activity=f"done by {hand.name}"
        )


async def wait_for_jobs(store: Store, jobs: list[Job], housekeeper: asyncio.Task[None]) -> None:
    """Read the jobs' statuses until each one is final; the state machine sets them, not the manager."""
    started = time.monotonic()
    waiting = {job.uuid: job.name for job in jobs}
    while waiting:
        await asyncio.sleep(0.1)
        if housekeeper.done():
            housekeeper.result()  # it runs until cancelled: re-raise whatever stopped it
        for uuid, name in list(waiting.items()):
            job = await store.jobs.fetch(uuid)
            if job.status in FINAL:
                print(f"{name}: {job.status} after {time.monotonic() - started:.1f} s")
                del waiting[uuid]


async def report(store: Store, jobs: list[Job], workers: list[Worker]) -> None:
    """What happened, as the status history tells it."""
    for worker in workers:
        status = (await store.workers.fetch(worker.uuid)).status
        if status is not WorkerStatus.AWAKE:
            print(f"{worker.name} is {status}: the housekeeper timed it out")
    history = [entry for job in jobs for entry in await store.status_history.of_job(job.uuid, limit=1000)]
    soft_failed = [entry for entry in history if entry.new_status == TaskStatus.SOFT_FAILED]
    given_back = [entry for entry in history if entry.who == "housekeeper"]
    print(f"status history: {len(soft_failed)} soft failures, {len(given_back)} task given back by the housekeeper")
    if not given_back:
        return
    # One job's story: its own changes, the task given back, and one task that soft-failed.
    job = next(job for job in jobs if job.uuid == given_back[0].job_uuid)
    soft = next((entry.task_uuid for entry in soft_failed if entry.job_uuid == job.uuid), None)
    shown = {None, given_back[0].task_uuid, soft}  # None: a change of the job itself
    names = {str(worker.uuid): worker.name for worker in workers}  # the history names a worker by its uuid
    tasks = {task.uuid: task.name for task in await store.tasks.of_job(job.uuid)}
    print(f"status history of {job.name}, a few lines:")
    for entry in history:
        if entry.job_uuid == job.uuid and entry.task_uuid in shown:
            what = "job" if entry.task_uuid is None else tasks[entry.task_uuid]
            by = names.get(entry.who, entry.who)
            print(f"  {what}: {entry.old_status} → {entry.new_status} by {by} ({entry.reason})")


async def main(url: str | None) -> None:
    async with open_store(url, create=True) as store:
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
        job_names = {job.uuid: job.name for job in jobs}
        print(f"{len(workers)} workers, {len(jobs)} jobs, {sum(job.steps_total for job in jobs)} steps to run")

        # The housekeeper times out silent workers and untouched tasks, every SWEEP_INTERVAL, until cancelled.
        housekeeper = asyncio.create_task(
            store.state_machine.housekeeper(
                task_timeout=TASK_TIMEOUT, worker_timeout=WORKER_TIMEOUT, interval=SWEEP_INTERVAL
            )
        )
        done = asyncio.Event()
        farm = [
            asyncio.create_task(work(store, *pair, job_names, done)) for pair in zip(FARMHANDS, workers, strict=True)
        ]
        try:
            async with asyncio.timeout(DEADLINE):
                await wait_for_jobs(store, jobs, housekeeper)
        except TimeoutError:
            raise SystemExit(f"the jobs did not finish within {DEADLINE} s") from None
        finally:
            housekeeper.cancel()
            done.set()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeper
        await asyncio.gather(*farm)  # a worker that raised raises here

        await report(store, jobs, workers)
        statuses = [(await store.jobs.fetch(job.uuid)).status for job in jobs]
        if any(status is not JobStatus.COMPLETED for status in statuses):
            raise SystemExit("not every job completed")
        print("all jobs completed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
