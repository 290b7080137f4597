"""Workers of the farm model: create, fetch, save, heartbeat, soft delete.

A worker's secret is kept only as a salted scrypt hash (see
:mod:`statestore.farm.secrets`); it is hashed and checked on a thread so the
event loop keeps serving other calls meanwhile, and it appears in no record,
repr, error message or log line.

Soft-deleted workers are invisible: fetches raise NotFound, listings and
counts leave them out, and no update reaches them. Their rows stay, so a
task last run by one still names it.

A worker's status goes to the change feed (``worker.status``) whenever a
write changes it, created workers included (from no status). A worker that
becomes able to get work (awake, with no status change pending) is work
for the scheduler: its transaction announces it (see
:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Uuid, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.coalesce import Coalescer
from statestore.core.dialect import facts_of
from statestore.core.direct import DirectStatement
from statestore.core.runner import Runner, current_transaction
from statestore.core.types import utcnow
from statestore.core.validate import aware_datetime, enum_value, shown, text, uuid_value
from statestore.errors import InvalidInput, NotFound
from statestore.farm.enabling import WorkSignal, enable_work, write_enabling
from statestore.farm.fields import boolean, optional_datetime, task_types
from statestore.farm.listings import WorkerListings
from statestore.farm.lookups import LIVE
from statestore.farm.records import Worker
from statestore.farm.rows import WORKER_COLUMNS, worker_from_row
from statestore.farm.secret_hashes import NO_HASH, secret_hash_of, set_new_secret_hash, set_secret_hash
from statestore.farm.secrets import MAX_SECRET_LENGTH, check_secret, check_secret_text, hash_secret, secret_matches
from statestore.farm.statuses import WorkerStatus
from statestore.farm.tables import LENGTHS, WORKERS

WORKER_BY_UUID = select(*WORKER_COLUMNS).where(WORKERS.c.uuid == bindparam("uuid"), LIVE)


_ALL = select(*WORKER_COLUMNS).where(LIVE).order_by(WORKERS.c.id)


_STATUS_COUNTS = (
    select(WORKERS.c.status, func.count().label("count"))
    .where(LIVE)
    .group_by(WORKERS.c.status)
    .order_by(WORKERS.c.status)
)


# Served by ix_workers_last_seen_at: the range on last_seen_at comes first.
_TIMED_OUT = (
    select(*WORKER_COLUMNS)
    .where(
        WORKERS.c.last_seen_at <= bindparam("before"),
        LIVE,
        WORKERS.c.status.not_in([WorkerStatus.ERROR.value, WorkerStatus.OFFLINE.value]),
    )
    .order_by(WORKERS.c.id)
)


def load_worker(connection: Connection, uuid: UUID) -> Worker:
    """Worker ``uuid`` (NotFound if absent or soft-deleted)."""
    row = connection.execute(WORKER_BY_UUID, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"worker {uuid} not found")
    return worker_from_row(row)


def list_workers(connection: Connection) -> list[Worker]:
    """Every worker not soft-deleted, in creation (id) order."""
    return [worker_from_row(row) for row in connection.execute(_ALL).mappings()]


def summarize_statuses(connection: Connection) -> dict[WorkerStatus, int]:
    """How many workers (not soft-deleted) are in each status; absent statuses are left out."""
    return {WorkerStatus(status): int(count) for status, count in connection.execute(_STATUS_COUNTS)}


def timed_out(connection: Connection, before: datetime) -> list[Worker]:
    """Workers last seen at or before ``before`` that are not already in
    error or offline (and not soft-deleted), in id order."""
    return [worker_from_row(row) for row in connection.execute(_TIMED_OUT, {"before": before}).mappings()]


MUTABLE_COLUMNS = (
    "name",
    "address",
    "platform",
    "software",
    "status",
    "last_seen_at",
    "status_requested",
    "lazy_status_request",
    "supported_task_types",
    "can_restart",
)
"""What :func:`save_worker` writes (besides ``updated_at``)."""


STATUS_COLUMNS = ("status", "status_requested", "lazy_status_request")
"""What :func:`save_status` writes (besides ``updated_at``)."""


def _live_update(columns: tuple[str, ...]) -> Update:
    values: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in (*columns, "updated_at")}
    return update(WORKERS).where(WORKERS.c.uuid == bindparam("b_uuid"), LIVE).values(values)


_SAVE = _live_update(MUTABLE_COLUMNS)


_SAVE_STATUS = _live_update(STATUS_COLUMNS)


_SEEN = DirectStatement(_live_update(("last_seen_at",)))


_SOFT_DELETE = _live_update(("deleted_at",))


# PostgreSQL: one array parameter, so one prepared statement for any batch size.
_SEEN_MANY = DirectStatement(
    update(WORKERS)
    .where(WORKERS.c.uuid == any_(bindparam("uuids", type_=ARRAY(Uuid()))), LIVE)
    .values(last_seen_at=bindparam("last_seen_at"), updated_at=bindparam("updated_at"))
    .returning(WORKERS.c.uuid)
)


def create_worker(connection: Connection, values: dict[str, Any]) -> Worker:
    """Insert a worker (``values`` holds every column but id and the
    timestamps): two statements, so the INSERT (logged, and quoted by its
    errors) holds no hash; the hash is set by a statement that is neither."""
    now = utcnow()
    row = {**values, "secret_hash": NO_HASH, "created_at": now, "updated_at": now, "deleted_at": None}
    result = connection.execute(insert(WORKERS).values(row))
    (worker_id,) = result.inserted_primary_key or (0,)  # always set: the id is generated by the INSERT
    set_new_secret_hash(connection, worker_id, values["secret_hash"], now)
    record(connection, [change(ChangeKind.WORKER_STATUS, at=now, worker=values["uuid"], new=values["status"])])
    return worker_from_row({**row, "id": worker_id})


def _update_returning_worker(connection: Connection, statement: Update, params: dict[str, Any]) -> Worker:
    """Run ``statement`` on one live worker and return it as stored afterwards."""
    if facts_of(connection).update_returning:
        row = connection.execute(statement.returning(*WORKER_COLUMNS), params).mappings().one_or_none()
    else:
        matched = connection.execute(statement, params).rowcount
        row = connection.execute(WORKER_BY_UUID, {"uuid": params["b_uuid"]}).mappings().one() if matched else None
    if row is None:
        raise NotFound(f"worker {params['b_uuid']} not found")
    return worker_from_row(row)


# The live worker's status and request, locked: what a save replaces is what
# the change feed reports, and whether the worker has just become able to get work.
_STATUS_LOCKED = (
    select(WORKERS.c.status, WORKERS.c.status_requested)
    .where(WORKERS.c.uuid == bindparam("uuid"), LIVE)
    .with_for_update()
)


def _may_get_work(status: str, status_requested: str) -> bool:
    # The claim's own rule (see farm.claim): awake, no status change pending.
    return status == WorkerStatus.AWAKE.value and not status_requested


def _save_with_status(
    connection: Connection, statement: Update, uuid: UUID, params: dict[str, Any], work: WorkSignal | None
) -> Worker:
    """Run ``statement`` (it writes the status) on live worker ``uuid``:
    the feed hears of a change of status, and work is announced if the
    worker may get work now and could not before."""
    old = connection.execute(_STATUS_LOCKED, {"uuid": uuid}).one_or_none()
    if old is None:
        raise NotFound(f"worker {uuid} not found")
    now = utcnow()
    worker = _update_returning_worker(connection, statement, {**params, "updated_at": now, "b_uuid": uuid})
    if worker.status.value != old.status:
        record(
            connection, [change(ChangeKind.WORKER_STATUS, at=now, worker=uuid, old=old.status, new=worker.status.value)]
        )
    requested = "" if worker.status_requested is None else worker.status_requested.value
    if _may_get_work(worker.status.value, requested) and not _may_get_work(old.status, old.status_requested):
        enable_work(connection, work)
    return worker


def save_worker(connection: Connection, uuid: UUID, values: dict[str, Any], work: WorkSignal | None = None) -> Worker:
    """Write every mutable column of worker ``uuid``."""
    params = {name: values[name] for name in MUTABLE_COLUMNS}
    return _save_with_status(connection, _SAVE, uuid, params, work)


def save_status(connection: Connection, uuid: UUID, values: dict[str, Any], work: WorkSignal | None = None) -> Worker:
    """Write only the status, the requested status and the lazy flag of worker ``uuid``."""
    params = {name: values[name] for name in STATUS_COLUMNS}
    return _save_with_status(connection, _SAVE_STATUS, uuid, params, work)


def _update_one(connection: Connection, statement: Update, params: dict[str, Any]) -> None:
    if connection.execute(statement, params).rowcount == 0:
        raise NotFound(f"worker {params['b_uuid']} not found")


def mark_seen(connection: Connection, uuid: UUID) -> None:
    """The heartbeat: ``last_seen_at = updated_at = now``, one statement."""
    now = utcnow()
    if _SEEN.execute(connection, {"last_seen_at": now, "updated_at": now, "b_uuid": uuid}).rowcount == 0:
        raise NotFound(f"worker {uuid} not found")


def mark_seen_many(connection: Connection, uuids: list[UUID]) -> set[UUID]:
    """The heartbeats of many workers in one statement (PostgreSQL); the
    uuids of the live workers it found."""
    now = utcnow()
    found = _SEEN_MANY.execute(connection, {"uuids": uuids, "last_seen_at": now, "updated_at": now}).rows
    return {uuid for (uuid,) in found}


def soft_delete(connection: Connection, uuid: UUID) -> None:
    """Mark worker ``uuid`` deleted; its rows elsewhere stay (no cascade fires)."""
    now = utcnow()
    _update_one(connection, _SOFT_DELETE, {"deleted_at": now, "updated_at": now, "b_uuid": uuid})


def worker_values(
    *,
    name: object,
    address: object,
    platform: object,
    software: object,
    status: object,
    last_seen_at: object,
    status_requested: object,
    lazy_status_request: object,
    supported_task_types: object,
    can_restart: object,
) -> dict[str, Any]:
    """Validated values of a worker's mutable columns."""
    where = f"worker {shown(name)}" if isinstance(name, str) else "worker"
    requested = (
        None if status_requested is None else enum_value(WorkerStatus, status_requested, f"{where}.status_requested")
    )
    return {
        "name": text(name, LENGTHS["name"], f"{where}.name"),
        "address": text(address, LENGTHS["address"], f"{where}.address"),
        "platform": text(platform, LENGTHS["platform"], f"{where}.platform"),
        "software": text(software, LENGTHS["software"], f"{where}.software"),
        "status": enum_value(WorkerStatus, status, f"{where}.status").value,
        "last_seen_at": optional_datetime(last_seen_at, f"{where}.last_seen_at"),
        "status_requested": "" if requested is None else requested.value,
        "lazy_status_request": boolean(lazy_status_request, f"{where}.lazy_status_request"),
        "supported_task_types": task_types(supported_task_types, f"{where}.supported_task_types"),
        "can_restart": boolean(can_restart, f"{where}.can_restart"),
    }


def _missing(uuid: UUID) -> NotFound:
    return NotFound(f"worker {uuid} not found")


class Workers(WorkerListings):
    """Workers of the farm model: create, fetch, save, heartbeat, soft delete."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._heartbeats: Coalescer[UUID] | None = None
        if runner.facts.coalesce_heartbeats:
            self._heartbeats = Coalescer(self._seen_many, self._seen_alone, _missing)

    async def create(
        self,
        name: str,
        secret: str,
        *,
        uuid: UUID | str | None = None,
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
        values["uuid"] = uuid4() if uuid is None else uuid_value(uuid, f"worker {shown(name)}.uuid")
        check_secret(secret)
        values["secret_hash"] = await asyncio.to_thread(hash_secret, secret)
        return await self._runner.write(partial(create_worker, values=values))  # two statements

    async def verify_secret(self, uuid: UUID | str, secret: str) -> bool:
        """Whether ``secret`` is worker ``uuid``'s secret. False for an unknown
        or soft-deleted worker too, after the same hashing work, so neither the
        answer nor its timing tells a missing worker from a wrong secret."""
        key = uuid_value(uuid, "worker uuid")
        # InvalidInput naming the type, or what is wrong, never the secret;
        # an empty or too long one is only a wrong secret.
        check_secret_text(secret)
        stored = await self._runner.read(partial(secret_hash_of, uuid=key), single_statement=True)
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            stored = None  # no stored secret is like this; still hash, as for a miss
        return await asyncio.to_thread(secret_matches, secret[:MAX_SECRET_LENGTH], stored)

    async def set_secret(self, uuid: UUID | str, secret: str) -> None:
        """Replace worker ``uuid``'s secret (NotFound if absent or soft-deleted)."""
        key = uuid_value(uuid, "worker uuid")
        check_secret(secret)
        secret_hash = await asyncio.to_thread(hash_secret, secret)
        await self._runner.write(partial(set_secret_hash, uuid=key, secret_hash=secret_hash), single_statement=True)

    async def fetch(self, uuid: UUID | str) -> Worker:
        """Worker ``uuid`` (NotFound if absent or soft-deleted)."""
        key = uuid_value(uuid, "worker uuid")
        return await self._runner.read(partial(load_worker, uuid=key), single_statement=True)

    async def list(self) -> builtins.list[Worker]:
        """Every worker not soft-deleted, in creation (id) order."""
        return await self._runner.read(list_workers, single_statement=True)

    async def save(self, worker: Worker) -> Worker:
        """Write every mutable field of ``worker`` (name, address, platform,
        software, status, last_seen_at, status_requested, lazy_status_request,
        supported_task_types, can_restart) and return it as stored, with
        ``updated_at`` bumped. NotFound if absent or soft-deleted."""
        if not isinstance(worker, Worker):
            raise InvalidInput(f"expected a Worker, got {type(worker).__name__}")
        uuid = uuid_value(worker.uuid, f"worker {shown(worker.name)}.uuid")
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
        return await write_enabling(self._runner, partial(save_worker, uuid=uuid, values=values))

    async def save_status(
        self, uuid: UUID | str, status: WorkerStatus, *, requested: WorkerStatus | None = None, lazy: bool = False
    ) -> Worker:
        """Write only the status, the requested status (None: no request) and
        whether the request is lazy; return the worker as stored. (Workers
        have no activity, so unlike the jobs' and tasks' there is none here.)"""
        key = uuid_value(uuid, "worker uuid")
        values = {
            "status": enum_value(WorkerStatus, status, "worker status").value,
            "status_requested": "" if requested is None else enum_value(WorkerStatus, requested, "requested").value,
            "lazy_status_request": boolean(lazy, "lazy"),
        }
        return await write_enabling(self._runner, partial(save_status, uuid=key, values=values))

    async def seen(self, uuid: UUID | str) -> None:
        """The heartbeat: ``last_seen_at`` and ``updated_at`` become now, in
        one statement (NotFound if absent or soft-deleted).

        On PostgreSQL, heartbeats of several workers arriving together
        (outside an explicit transaction) share one UPDATE and its time.
        """
        key = uuid_value(uuid, "worker uuid")
        if self._heartbeats is None or current_transaction(self._runner) is not None:
            await self._seen_alone(key)
        else:
            await self._heartbeats.submit(key)

    async def _seen_alone(self, uuid: UUID) -> None:
        await self._runner.write(partial(mark_seen, uuid=uuid), single_statement=True)

    async def _seen_many(self, uuids: builtins.list[UUID]) -> set[UUID]:
        return await self._runner.write(partial(mark_seen_many, uuids=uuids), single_statement=True)

    async def delete(self, uuid: UUID | str) -> None:
        """Soft-delete worker ``uuid`` (NotFound if absent or already deleted).

        Nothing cascades: tasks it ran still name it, and its tag memberships,
        failures and blocklist rows stay (the blocklist and the scheduler
        ignore soft-deleted workers).
        """
        key = uuid_value(uuid, "worker uuid")
        await self._runner.write(partial(soft_delete, uuid=key), single_statement=True)

    async def summarize_statuses(self) -> dict[WorkerStatus, int]:
        """How many workers (not soft-deleted) are in each status; statuses no worker has are left out."""
        return await self._runner.read(summarize_statuses, single_statement=True)

    async def timed_out(self, last_seen_before: datetime) -> builtins.list[Worker]:
        """Workers last seen at or before ``last_seen_before`` that are not in
        error or offline already (nor soft-deleted), in id order."""
        before = aware_datetime(last_seen_before, "last_seen_before")
        return await self._runner.read(partial(timed_out, before=before), single_statement=True)
