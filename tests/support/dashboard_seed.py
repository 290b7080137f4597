"""A store as an operator would open the dashboard on: a render job with a
task graph in mixed statuses, a job whose name is markup, workers (one with
tags and a sleep schedule running a task), and a logbook whose flow holds a
result, a failure and a retry's history."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from statestore import Store
from statestore.farm import AuthoredJob, AuthoredTask, Command, Job, JobStatus, TaskStatus, Worker
from statestore.flows import AtomDetail, AtomKind, AtomState, FlowDetail, Intention, LogBook, RetryAttempt
from tests.support.farm_fixtures import create_worker
from tests.support.flow_fixtures import failure

MARKUP = "<script>alert(1)</script>"
FRAMES = 8


@dataclass
class Seeded:
    """What :func:`seed` stored."""

    render: Job
    frames: list[UUID]
    video: UUID
    markup_job: Job
    box: Worker
    idle: Worker
    book: LogBook
    tasks_of: dict[UUID, list[UUID]] = field(default_factory=dict)


def render_job(frames: int = FRAMES, *, name: str = "Sprite Fright 010_0030", steps: int = 10) -> AuthoredJob:
    """``frames`` render tasks of ``steps`` steps, and a video task depending on all of them."""
    chunks = [
        AuthoredTask(
            f"render-{index * 10 + 1}-{index * 10 + 10}",
            "blender",
            commands=[
                Command("blender-render", {"frames": f"{index * 10 + 1}-{index * 10 + 10}"}, total_step_count=steps)
            ],
        )
        for index in range(frames)
    ]
    video = AuthoredTask(
        "preview-video", "ffmpeg", commands=[Command("frames-to-video", {})], dependencies=[t.uuid for t in chunks]
    )
    return AuthoredJob(name, "simple-blender-render", status=JobStatus.QUEUED, tasks=[*chunks, video])


def flow_book() -> LogBook:
    fetched = AtomDetail("fetch-assets", state=AtomState.SUCCESS, results={"files": 12, "bytes": 48_100_000})
    broken = AtomDetail(
        "transcode", state=AtomState.FAILURE, intention=Intention.REVERT, failure=failure("codec not found")
    )
    retried = AtomDetail(
        "retry-upload",
        kind=AtomKind.RETRY,
        state=AtomState.RETRYING,
        intention=Intention.RETRY,
        results=[RetryAttempt(1, {"upload": failure("connection reset")}), RetryAttempt(2)],
    )
    flow = FlowDetail("publish-shot", state="RUNNING", atoms=[fetched, broken, retried])
    return LogBook("nightly-2026-12-03", flows=[flow])


async def seed(store: Store) -> Seeded:
    authored = render_job()
    render = await store.jobs.store_authored(authored)
    frames = [task.uuid for task in authored.tasks[:-1]]
    markup = await store.jobs.store_authored(
        AuthoredJob(MARKUP, "simple-blender-render", status=JobStatus.QUEUED, tasks=[AuthoredTask(MARKUP, "blender")])
    )
    box = await create_worker(store, "render-box-01")
    idle = await create_worker(store, "render-box-02", task_types=("ffmpeg",))
    tag = await store.worker_tags.create("gpu")
    await store.worker_tags.set_worker_tags(box.uuid, [tag.uuid])
    await store.sleep_schedules.set(
        box.uuid, is_active=True, days_of_week="mo tu we th fr", start_time="09:00", end_time="18:00"
    )
    # Two frames done, one running on render-box-01, one failed once by render-box-01.
    for _ in range(2):
        claimed = await store.scheduler.claim(box.uuid)
        assert claimed is not None
        await store.state_machine.worker_task_update(box.uuid, claimed.task.uuid, status=TaskStatus.COMPLETED)
    claimed = await store.scheduler.claim(box.uuid)
    assert claimed is not None
    await store.state_machine.worker_task_failed(box.uuid, claimed.task.uuid, reason="blender crashed")
    running = await store.scheduler.claim(box.uuid)
    assert running is not None
    await store.state_machine.worker_task_update(
        box.uuid, running.task.uuid, steps_completed=4, activity="frame 4 of 10"
    )
    book = flow_book()
    await store.logbooks.save(book)
    return Seeded(render, frames, authored.tasks[-1].uuid, markup, box, idle, book)
