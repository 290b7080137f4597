"""Text compares the same on every backend: MySQL/MariaDB would, by default,
compare case-insensitively, so that "GPU" and "gpu" collide as tag names and a
worker's "Blender" matches tasks of type "blender". The farm tables use binary
collation there."""

from __future__ import annotations

from statestore import Store
from tests.support.farm_fixtures import create_worker, job_of, render_task


async def test_tag_names_differing_in_case_are_two_tags(store: Store) -> None:
    upper = await store.worker_tags.create("GPU")
    lower = await store.worker_tags.create("gpu")
    assert upper.uuid != lower.uuid
    assert (await store.worker_tags.fetch_by_name("gpu")).uuid == lower.uuid
    assert [tag.name for tag in await store.worker_tags.list()] == ["GPU", "gpu"]


async def test_task_types_match_case_sensitively_in_the_scheduler(store: Store) -> None:
    worker = await create_worker(store, task_types=("Blender",))
    await store.jobs.store_authored(job_of(render_task("1", "blender")))
    assert await store.scheduler.claim(worker.uuid) is None


async def test_blocklisted_task_types_are_case_sensitive(store: Store) -> None:
    worker = await create_worker(store, task_types=("blender", "Blender"))
    job = await store.jobs.store_authored(job_of(render_task("1", "blender")))
    await store.blocklist.add(job.uuid, worker.uuid, "Blender")
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert scheduled.task.type == "blender"
    assert [entry.task_type for entry in await store.blocklist.entries(job.uuid)] == ["Blender"]
