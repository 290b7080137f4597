"""Builders for farm-model tests, after Flamenco's own test fixtures."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from statestore import Store
from statestore.farm import AuthoredJob, AuthoredTask, Command, Job, JobStatus, Worker, WorkerStatus

JOB_UUID = UUID("263fd47e-b9f8-4637-b726-fd7e47ecfdae")


def render_task(name: str, task_type: str = "blender", *, priority: int = 50, steps: int = 0) -> AuthoredTask:
    return AuthoredTask(
        name, task_type, priority=priority, commands=[Command("run", {"frames": name}, total_step_count=steps)]
    )


def authored_job(
    *,
    uuid: UUID | None = None,
    status: JobStatus = JobStatus.UNDER_CONSTRUCTION,
    priority: int = 50,
    name: str = "Test job",
    worker_tag: UUID | None = None,
) -> AuthoredJob:
    """Flamenco's ``createTestAuthoredJobWithTasks``: two render tasks and a
    preview video that depends on both."""
    first = render_task("render-1-3")
    second = render_task("render-4-6")
    video = AuthoredTask(
        "preview-video",
        "ffmpeg",
        commands=[Command("merge", {"images": "render-*"})],
        dependencies=[first.uuid, second.uuid],
    )
    job = AuthoredJob(
        name,
        "simple-blender-render",
        priority=priority,
        status=status,
        settings={"frames": "1-6", "chunk_size": 3.0},
        metadata={"author": "Sybren", "project": "Sprite Fright"},
        tasks=[first, second, video],
        worker_tag=worker_tag,
    )
    if uuid is not None:
        job.uuid = uuid
    return job


def job_of(
    *tasks: AuthoredTask, priority: int = 50, name: str = "job", status: JobStatus = JobStatus.QUEUED
) -> AuthoredJob:
    """A job with exactly ``tasks`` (the scheduler tests' ``constructTestJob``)."""
    return AuthoredJob(name, "test-job", priority=priority, status=status, tasks=list(tasks))


async def store_job(store: Store, job: AuthoredJob | None = None) -> Job:
    return await store.jobs.store_authored(job if job is not None else authored_job())


async def create_worker(
    store: Store,
    name: str = "дрон",
    *,
    task_types: Sequence[str] = ("blender", "ffmpeg", "file-management", "misc"),
    status: WorkerStatus = WorkerStatus.AWAKE,
    secret: str = "open sesame",
    uuid: UUID | None = None,
) -> Worker:
    """Flamenco's ``linuxWorker``/``createWorker``: an awake Linux worker."""
    return await store.workers.create(
        name,
        secret,
        uuid=uuid,
        status=status,
        address="fe80::5054:ff:fede:2ad7",
        platform="linux",
        software="3.0",
        supported_task_types=task_types,
    )
