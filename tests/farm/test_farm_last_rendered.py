"""The last-rendered job: Flamenco's last_rendered_test.go against our API."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy import select

from statestore import InvalidInput, NotFound, Store
from statestore.schema.metadata import LastRenderedRow
from tests.support.farm_fixtures import authored_job, store_job


async def _rows(store: Store) -> list[tuple[int, int]]:
    table = LastRenderedRow.__table__
    statement = select(table.c.id, table.c.job_id)
    return [(row.id, row.job_id) for row in await store.read(lambda conn: conn.execute(statement).all())]


async def test_set_last_rendered_keeps_exactly_one_row(store: Store) -> None:
    job1 = await store_job(store, authored_job(name="first"))
    job2 = await store_job(store, authored_job(name="second"))
    await store.last_rendered.set(job1.uuid)
    assert await _rows(store) == [(1, job1.id)]
    await store.last_rendered.set(job2.uuid)
    assert await _rows(store) == [(1, job2.id)]
    await store.last_rendered.set(job2.uuid)
    assert await _rows(store) == [(1, job2.id)]


async def test_get_last_rendered_job_uuid(store: Store) -> None:
    assert await store.last_rendered.get() is None
    job1 = await store_job(store, authored_job(name="first"))
    job2 = await store_job(store, authored_job(name="second"))
    await store.last_rendered.set(job1.uuid)
    assert await store.last_rendered.get() == job1.uuid
    await store.last_rendered.set(job2.uuid)
    assert await store.last_rendered.get() == job2.uuid


async def test_unknown_and_deleted_jobs(store: Store) -> None:
    job = await store_job(store)
    await store.last_rendered.set(job.uuid)
    with pytest.raises(NotFound, match="job"):
        await store.last_rendered.set(uuid4())
    assert await store.last_rendered.get() == job.uuid
    await store.jobs.delete(job.uuid)
    assert await store.last_rendered.get() is None
    assert await _rows(store) == []


async def test_a_non_uuid_is_refused(store: Store) -> None:
    job = await store_job(store)
    for bad in ("not-a-uuid", "", "1234", 1234, job.uuid.bytes, None):
        with pytest.raises(InvalidInput, match="job uuid"):
            await store.last_rendered.set(bad)  # type: ignore[arg-type]
    assert await _rows(store) == []
    await store.last_rendered.set(str(job.uuid))
    assert len(await _rows(store)) == 1
    assert await store.last_rendered.get() == job.uuid
