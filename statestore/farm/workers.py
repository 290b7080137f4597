"""Workers of the farm model: create, fetch, save, heartbeat, soft delete.

A worker's secret is kept only as a salted scrypt hash (see
:mod:`statestore.farm.secrets`); it is hashed and checked on a thread so the
event loop keeps serving other calls meanwhile, and it appears in no record,
repr, error message or log line.

Soft-deleted workers are invisible: fetches raise NotFound, listings and
counts leave them out, and no update reaches them. Their rows stay, so a
task last run by one still names it.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from statestore.core.coalesce import Coalescer
from statestore.core.dialect import update_returning
from statestore.core.runner import current_transaction
from statestore.core.validate import ROW_ID, aware_datetime, enum_value, integer, uuid_value
from statestore.errors import InvalidInput, NotFound
from statestore.farm import worker_loading, worker_writing
from statestore.farm.records import Worker
from statestore.farm.secrets import MAX_SECRET_LENGTH, check_secret, hash_secret, secret_matches
from statestore.farm.statuses import WorkerStatus
from statestore.farm.worker_codec import boolean, worker_values

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Workers"]


def _missing(uuid: UUID) -> NotFound:
    return NotFound(f"worker {uuid} not found")


class Workers:
    """Workers of the farm model: create, fetch, save, heartbeat, soft delete."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._heartbeats: Coalescer[UUID] | None = None
        if store.runner.dialect.name == "postgresql":
            self._heartbeats = Coalescer(self._seen_many, self._seen_alone, _missing)

    def _one_statement_update(self) -> bool:
        """An update returning the row is one statement, except on MariaDB."""
        return update_returning(self._store.runner.dialect)

    async def create(
        self,
        name: str,
        secret: str,
        *,
        uuid: UUID | None = None,
        status: WorkerStatus = WorkerStatus.STARTING,
        address: str = "",
        platform: str = "",
        software: str = "",
        supported_task_types: Sequence[str] = (),
        can_restart: bool = False,
        last_seen_at: datetime | None = None,
    ) -> Worker:
        """Store a new worker whose secret is ``secret`` (stored only as a
        salted hash). AlreadyExists if a worker (even a soft-deleted one) has
        ``uuid``."""
        values = worker_values(
            name=name,
            address=address,
            platform=platform,
            software=software,
            status=status,
            last_seen_at=last_seen_at,
            status_requested=None,
            lazy_status_request=False,
            supported_task_types=supported_task_types,
            can_restart=can_restart,
        )
        values["uuid"] = uuid4() if uuid is None else uuid_value(uuid, f"worker {name!r}.uuid")
        check_secret(secret)
        values["secret_hash"] = await asyncio.to_thread(hash_secret, secret)
        return await self._store.write(partial(worker_writing.create_worker, values=values), single_statement=True)

    async def verify_secret(self, uuid: UUID, secret: str) -> bool:
        """Whether ``secret`` is worker ``uuid``'s secret. False for an unknown
        or soft-deleted worker too, after the same hashing work, so neither the
        answer nor its timing tells a missing worker from a wrong secret."""
        uuid_value(uuid, "worker uuid")
        if not isinstance(secret, str):
            check_secret(secret)  # raises InvalidInput naming the type only
        stored = await self._store.read(partial(worker_loading.secret_hash_of, uuid=uuid), single_statement=True)
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            stored = None  # no stored secret is like this; still hash, as for a miss
        return await asyncio.to_thread(secret_matches, secret[:MAX_SECRET_LENGTH], stored)

    async def set_secret(self, uuid: UUID, secret: str) -> None:
        """Replace worker ``uuid``'s secret (NotFound if absent or soft-deleted)."""
        uuid_value(uuid, "worker uuid")
        check_secret(secret)
        secret_hash = await asyncio.to_thread(hash_secret, secret)
        await self._store.write(
            partial(worker_writing.set_secret_hash, uuid=uuid, secret_hash=secret_hash), single_statement=True
        )

    async def fetch(self, uuid: UUID) -> Worker:
        """Worker ``uuid`` (NotFound if absent or soft-deleted)."""
        uuid_value(uuid, "worker uuid")
        return await self._store.read(partial(worker_loading.load_worker, uuid=uuid), single_statement=True)

    async def fetch_by_id(self, id: int) -> Worker:
        """The worker with primary key ``id`` (NotFound if absent or soft-deleted)."""
        integer(id, "worker id", ROW_ID)
        return await self._store.read(partial(worker_loading.load_worker_by_id, worker_id=id), single_statement=True)

    async def list(self) -> builtins.list[Worker]:
        """Every worker not soft-deleted, in creation (id) order."""
        return await self._store.read(worker_loading.list_workers, single_statement=True)

    async def save(self, worker: Worker) -> Worker:
        """Write every mutable field of ``worker`` (name, address, platform,
        software, status, last_seen_at, status_requested, lazy_status_request,
        supported_task_types, can_restart) and return it as stored, with
        ``updated_at`` bumped. NotFound if absent or soft-deleted."""
        if not isinstance(worker, Worker):
            raise InvalidInput(f"expected a Worker, got {type(worker).__name__}")
        uuid = uuid_value(worker.uuid, f"worker {worker.name!r}.uuid")
        values = worker_values(
            name=worker.name,
            address=worker.address,
            platform=worker.platform,
            software=worker.software,
            status=worker.status,
            last_seen_at=worker.last_seen_at,
            status_requested=worker.status_requested,
            lazy_status_request=worker.lazy_status_request,
            supported_task_types=worker.supported_task_types,
            can_restart=worker.can_restart,
        )
        return await self._store.write(
            partial(worker_writing.save_worker, uuid=uuid, values=values),
            single_statement=self._one_statement_update(),
        )

    async def save_status(
        self, uuid: UUID, status: WorkerStatus, *, requested: WorkerStatus | None = None, lazy: bool = False
    ) -> Worker:
        """Write only the status, the requested status (None: no request) and
        whether the request is lazy; return the worker as stored."""
        uuid_value(uuid, "worker uuid")
        values = {
            "status": enum_value(WorkerStatus, status, "worker status").value,
            "status_requested": "" if requested is None else enum_value(WorkerStatus, requested, "requested").value,
            "lazy_status_request": boolean(lazy, "lazy"),
        }
        return await self._store.write(
            partial(worker_writing.save_status, uuid=uuid, values=values),
            single_statement=self._one_statement_update(),
        )

    async def seen(self, uuid: UUID) -> None:
        """The heartbeat: ``last_seen_at`` and ``updated_at`` become now, in
        one statement (NotFound if absent or soft-deleted).

        On PostgreSQL, heartbeats of several workers arriving together
        (outside an explicit transaction) share one UPDATE and its time.
        """
        uuid_value(uuid, "worker uuid")
        if self._heartbeats is None or current_transaction(self._store.runner) is not None:
            await self._seen_alone(uuid)
        else:
            await self._heartbeats.submit(uuid)

    async def _seen_alone(self, uuid: UUID) -> None:
        await self._store.write(partial(worker_writing.mark_seen, uuid=uuid), single_statement=True)

    async def _seen_many(self, uuids: builtins.list[UUID]) -> set[UUID]:
        return await self._store.write(partial(worker_writing.mark_seen_many, uuids=uuids), single_statement=True)

    async def delete(self, uuid: UUID) -> None:
        """Soft-delete worker ``uuid`` (NotFound if absent or already deleted).

        Nothing cascades: tasks it ran still name it, and its tag memberships,
        failures and blocklist rows stay (the blocklist and the scheduler
        ignore soft-deleted workers).
        """
        uuid_value(uuid, "worker uuid")
        await self._store.write(partial(worker_writing.soft_delete, uuid=uuid), single_statement=True)

    async def summarize_statuses(self) -> dict[WorkerStatus, int]:
        """How many workers (not soft-deleted) are in each status; statuses no worker has are left out."""
        return await self._store.read(worker_loading.summarize_statuses, single_statement=True)

    async def timed_out(self, last_seen_before: datetime) -> builtins.list[Worker]:
        """Workers last seen at or before ``last_seen_before`` that are not in
        error or offline already (nor soft-deleted), in id order."""
        before = aware_datetime(last_seen_before, "last_seen_before")
        return await self._store.read(partial(worker_loading.timed_out, before=before), single_statement=True)
