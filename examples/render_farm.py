"""A render farm in one process: a manager, a housekeeper and twelve workers.

The manager submits three jobs (one limited to GPU workers by a tag), starts
the housekeeper and prints the jobs' progress from the change feed
(``store.changes()``) as it is committed, until every job is finished. The
workers wait for work (``store.scheduler.claim(worker, wait=…)``) and report
to the state machine (``store.state_machine``), which applies Flamenco's
rules: the last task completed completes its job, a reported failure
soft-fails the task so that another worker runs it, and a worker unseen for
too long is timed out and its task given back. Nobody completes a job by
hand, and nobody polls.

Two workers misbehave: ``flaky`` fails every task it gets (after three failed
tasks of a job it is blocklisted for their type), and ``doomed`` dies in the
middle of its first task; the housekeeper's time-out gives that task back and
another worker finishes it. At the end the manager prints that task's status
history.

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
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from statestore import ChangeKind, Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, Command, Job, JobStatus, TaskStatus, Worker, WorkerStatus

# Short time-outs so that the example finishes in seconds (Flamenco's are minutes).
WORKER_TIMEOUT = timedelta(seconds=1)  # a worker not heard from this long goes to "error", its task is queued again
TASK_TIMEOUT = timedelta(seconds=2)  # a task not touched this long fails; longer, so a dead worker's time-out wins
SWEEP_INTERVAL = timedelta(seconds=0.2)
CLAIM_WAIT = 0.25  # seconds a claim waits for work; a claim is the worker's heartbeat: keep it under WORKER_TIMEOUT
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
    video = AuthoredTask("preview-video", "ffmpeg", commands=[Command("ffmpeg")], dependencies=[*renders])
    cleanup = AuthoredTask("cleanup", "file-management", commands=[Command("remove-tree")], dependencies=[video])
    return AuthoredJob(
        name, "simple-blender-render", priority=priority, tasks=[*renders, video, cleanup], worker_tag=tag
    )


async def work(store: Store, hand: Farmhand, worker: Worker, job_names: dict[UUID, str], done: asyncio.Event) -> None:
    """Wait for a task, report progress on it step by step, report the outcome; until the manager says done."""
    rng = random.Random(hand.name)
    while not done.is_set():
        # Returns as soon as a task is claimable for this worker (woken by the commit that made it so),
        # or None after CLAIM_WAIT; either way the claim told the manager that the worker is alive.
        scheduled = await store.scheduler.claim(worker.uuid, wait=CLAIM_WAIT)
        if scheduled is None:
            continue
        task = scheduled.task
        job_name = job_names.get(task.job_uuid, "an older job")  # a database used before may have work left
        if hand.flaky:
            failed = await store.state_machine.worker_task_failed(worker.uuid, task.uuid, reason="blender crashed")
            if failed.blocklisted:
                print(f"  {hand.name} is now blocklisted for {task.type} tasks of {job_name}")
            continue
        for step in range(1, task.steps_total + 1):
            await asyncio.sleep(rng.uniform(0.02, 0.05))  # "rendering"
            if hand.doomed and step == 3:
                # Like a killed process: no report, no heartbeat, the task stays active on this worker.
                print(f"  {hand.name} dies while running {job_name} {task.name} (step {step} of {task.steps_total})")
                return
            # A progress report is also the heartbeat of the task and of the worker.
            await store.state_machine.worker_task_update(
                worker.uuid, task.uuid, steps_completed=step, activity=f"step {step} of {task.steps_total}"
            )
        await store.state_machine.worker_task_update(worker.uuid, task.uuid, status="completed", activity="rendered")


async def follow(store: Store, after: str, jobs: list[Job], workers: list[Worker]) -> UUID | None:
    """Print the jobs' progress from the change feed, in commit order, until every job is finished.
    Returns the task the housekeeper gave back, if it gave one back."""
    job_names = {job.uuid: job.name for job in jobs}
    tasks = {task.uuid: task for job in jobs for task in await store.tasks.of_job(job.uuid)}
    total = Counter(task.job_uuid for task in tasks.values())
    completed: Counter[UUID] = Counter()
    names = {str(worker.uuid): worker.name for worker in workers}  # a change names a worker by its uuid
    unfinished = set(job_names)
    given_back = None
    started = time.monotonic()
    kinds = [ChangeKind.JOB_STATUS, ChangeKind.TASK_STATUS, ChangeKind.WORKER_STATUS]
    # The changes after `after`, then each one as it is committed; leaving the block stops following.
    async with contextlib.aclosing(store.changes(after, kinds=kinds)) as changes:
        async for change in changes:
            by = names.get(change.who, change.who)
            if change.kind is ChangeKind.WORKER_STATUS:
                if str(change.worker) in names:
                    print(f"  {names[str(change.worker)]}: {change.old} → {change.new}")
            elif change.job not in job_names:
                continue  # a change of a job left in the database by an earlier run
            elif change.task is None:  # the job's own status
                job = job_names[change.job]
                if change.new not in FINAL:
                    print(f"{job}: {change.old} → {change.new}")
                    continue
                print(f"{job}: {change.old} → {change.new} after {time.monotonic() - started:.1f} s")
                unfinished.remove(change.job)
                if not unfinished:
                    return given_back
            elif change.new == TaskStatus.COMPLETED:
                completed[change.job] += 1
                label = f"{job_names[change.job]} {tasks[change.task].name}"
                print(f"  {label} completed by {by} ({completed[change.job]}/{total[change.job]})")
            elif change.new != TaskStatus.ACTIVE:  # claims make tasks active: too many to show
                label = f"{job_names[change.job]} {tasks[change.task].name}"
                print(f"  {label}: {change.old} → {change.new} by {by} ({change.reason})")
                if change.who == "housekeeper" and change.new == TaskStatus.QUEUED:
                    given_back = change.task
    raise AssertionError("a change feed that follows never ends")


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
        cursor = await store.changes.cursor()  # the feed's newest change: the manager shows what comes after it
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
                given_back = await follow(store, cursor, jobs, workers)
        except TimeoutError:
            raise SystemExit(f"the jobs did not finish within {DEADLINE} s") from None
        finally:
            housekeeper.cancel()
            done.set()  # the workers stop once their claim returns
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeper  # re-raises whatever else stopped it
        await asyncio.gather(*farm)  # a worker that raised raises here

        if given_back is not None:
            names = {str(worker.uuid): worker.name for worker in workers}  # the history names a worker by its uuid
            task = await store.tasks.fetch(given_back)
            print(f"status history of {job_names[task.job_uuid]} {task.name}:")
            for entry in await store.status_history.of_task(given_back):
                by = names.get(entry.who, entry.who)
                print(f"  {entry.old_status} → {entry.new_status} by {by} ({entry.reason})")
        statuses = [(await store.jobs.fetch(job.uuid)).status for job in jobs]
        if any(status is not JobStatus.COMPLETED for status in statuses):
            raise SystemExit("not every job completed")
        print("all jobs completed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
