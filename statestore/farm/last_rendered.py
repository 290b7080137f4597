"""The last-rendered job: one pointer for the whole farm.

It is the single row ``id = 1`` of ``last_rendered``, always written by an
upsert on that id, so there is never a second row. Deleting the job deletes
the row (``ON DELETE CASCADE``): then nothing was rendered last.
"""

from __future__ import annotations

from functools import partial
from uuid import UUID, uuid4

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore.core.dialect import facts_of
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import uuid_value
from statestore.errors import NotFound
from statestore.farm.tables import JOBS, LAST_RENDERED

__all__ = ["LastRendered"]

_SINGLETON_ID = 1
_JOB_ID = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("uuid"))
_JOB_UUID = (
    select(JOBS.c.uuid)
    .join(LAST_RENDERED, LAST_RENDERED.c.job_id == JOBS.c.id)
    .where(LAST_RENDERED.c.id == _SINGLETON_ID)
)


def _set(connection: Connection, job_uuid: UUID) -> None:
    job_id = connection.execute(_JOB_ID, {"uuid": job_uuid}).scalar_one_or_none()
    if job_id is None:
        raise NotFound(f"job {job_uuid} not found")
    now = utcnow()
    connection.execute(
        facts_of(connection).upsert(LAST_RENDERED, "id", ["job_id", "updated_at"]),
        {"id": _SINGLETON_ID, "uuid": uuid4(), "job_id": job_id, "created_at": now, "updated_at": now},
    )


def _get(connection: Connection) -> UUID | None:
    return connection.execute(_JOB_UUID).scalar_one_or_none()


class LastRendered:
    """The last-rendered job: one pointer for the whole farm."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def set(self, job_uuid: UUID | str) -> None:
        """Make job ``job_uuid`` the last rendered one (NotFound if it does not exist)."""
        job = uuid_value(job_uuid, "job uuid")
        await self._runner.write(partial(_set, job_uuid=job))

    async def get(self) -> UUID | None:
        """The uuid of the last-rendered job; None if none was set (or it was deleted)."""
        return await self._runner.read(_get, single_statement=True)
