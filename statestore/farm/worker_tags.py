"""Worker tags and which workers carry them.

A job limited to a tag runs only on workers carrying that tag. Tags are
listed in creation (id) order, which is what Flamenco's SQLite gives.

Changing a worker's tags, or deleting a tag (its jobs become untagged), can
give workers tasks they could not take before: those transactions announce
work, and the repository wakes this process's claim waiters after the
commit (see :mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import bindparam, delete, exists, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from statestore.core.dialect import facts_of
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import shown, text, uuid_value
from statestore.errors import InvalidInput, InvalidReference, NotFound
from statestore.farm.enabling import enable_work, notify_splits
from statestore.farm.fields import uuids
from statestore.farm.lookups import LIVE, live_worker_id
from statestore.farm.records import WorkerTag
from statestore.farm.rows import tag_from_row
from statestore.farm.tables import LENGTHS, MEMBERSHIP, WORKER_TAGS, WORKERS


def tag_values(*, name: object, description: object) -> dict[str, Any]:
    """Validated values of a worker tag; its name is its second key, so not empty."""
    where = f"worker tag {shown(name)}" if isinstance(name, str) else "worker tag"
    checked = text(name, LENGTHS["name"], f"{where}.name")
    if not checked:
        raise InvalidInput(f"{where}.name: must not be empty")
    return {"name": checked, "description": text(description, LENGTHS["description"], f"{where}.description")}


_BY = {
    "uuid": select(WORKER_TAGS).where(WORKER_TAGS.c.uuid == bindparam("key")),
    "name": select(WORKER_TAGS).where(WORKER_TAGS.c.name == bindparam("key")),
}


_ALL = select(WORKER_TAGS).order_by(WORKER_TAGS.c.id)


_ANY = select(exists().select_from(WORKER_TAGS))


_SET: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in ("name", "description", "updated_at")}


_SAVE = update(WORKER_TAGS).where(WORKER_TAGS.c.uuid == bindparam("b_uuid")).values(_SET)


_DELETE = delete(WORKER_TAGS).where(WORKER_TAGS.c.uuid == bindparam("uuid"))


# From the worker, outer-joined: one row of NULLs when it has no tags, none
# when there is no such live worker — one statement tells the two apart.
_OF_WORKER = (
    select(WORKER_TAGS)
    .select_from(
        WORKERS.outerjoin(MEMBERSHIP, MEMBERSHIP.c.worker_id == WORKERS.c.id).outerjoin(
            WORKER_TAGS, WORKER_TAGS.c.id == MEMBERSHIP.c.worker_tag_id
        )
    )
    .where(WORKERS.c.uuid == bindparam("worker_uuid"), LIVE)
    .order_by(WORKER_TAGS.c.id)
)


_CLEAR_MEMBERSHIPS = delete(MEMBERSHIP).where(MEMBERSHIP.c.worker_id == bindparam("worker_id"))


def create_tag(connection: Connection, values: dict[str, Any]) -> WorkerTag:
    """Insert a tag (``values``: uuid, name, description)."""
    now = utcnow()
    row = {**values, "created_at": now, "updated_at": now}
    (tag_id,) = connection.execute(insert(WORKER_TAGS).values(row)).inserted_primary_key or (None,)
    return tag_from_row({**row, "id": tag_id})


def load_tag(connection: Connection, by: str, key: object) -> WorkerTag:
    """The tag whose ``by`` (uuid or name) is ``key`` (NotFound if none)."""
    row = connection.execute(_BY[by], {"key": key}).mappings().one_or_none()
    if by == "name" and row is not None and row["name"] != key:
        row = None  # MariaDB compares padded: 'gpu' = 'gpu ' even in binary collation
    if row is None:
        raise NotFound(f"worker tag with {by} {key!r} not found" if by != "uuid" else f"worker tag {key} not found")
    return tag_from_row(row)


def list_tags(connection: Connection) -> list[WorkerTag]:
    """Every tag, in creation (id) order."""
    return [tag_from_row(row) for row in connection.execute(_ALL).mappings()]


def has_tags(connection: Connection) -> bool:
    """Whether any tag exists."""
    return bool(connection.execute(_ANY).scalar_one())


def save_tag(connection: Connection, uuid: UUID, values: dict[str, Any]) -> WorkerTag:
    """Write a tag's name and description; return it as stored."""
    params = {**values, "updated_at": utcnow(), "b_uuid": uuid}
    if facts_of(connection).update_returning:
        row = connection.execute(_SAVE.returning(*WORKER_TAGS.c), params).mappings().one_or_none()
    else:
        matched = connection.execute(_SAVE, params).rowcount
        row = connection.execute(_BY["uuid"], {"key": uuid}).mappings().one() if matched else None
    if row is None:
        raise NotFound(f"worker tag {uuid} not found")
    return tag_from_row(row)


def delete_tag(connection: Connection, uuid: UUID) -> None:
    """Delete a tag; its memberships go with it and its jobs become untagged
    (work for any worker: announced)."""
    if connection.execute(_DELETE, {"uuid": uuid}).rowcount == 0:
        raise NotFound(f"worker tag {uuid} not found")
    enable_work(connection, None)


def set_worker_tags(connection: Connection, worker_uuid: UUID, tag_uuids: Sequence[UUID]) -> list[WorkerTag]:
    """Make ``tag_uuids`` (distinct) the worker's only tags; refuse, before
    changing anything, if one of them does not exist. The worker's row is
    locked first: two concurrent replacements take turns instead of one
    inserting a membership the other just inserted."""
    worker_id = live_worker_id(connection, worker_uuid, lock=True)
    tags: list[WorkerTag] = []
    if tag_uuids:
        rows = connection.execute(
            select(WORKER_TAGS).where(WORKER_TAGS.c.uuid.in_(tag_uuids)).order_by(WORKER_TAGS.c.id)
        ).mappings()
        tags = [tag_from_row(row) for row in rows]
        missing = set(tag_uuids) - {tag.uuid for tag in tags}
        if missing:
            names = ", ".join(str(uuid) for uuid in tag_uuids if uuid in missing)
            raise InvalidReference(f"worker {worker_uuid}: no worker tag {names}; the worker's tags are unchanged")
    connection.execute(_CLEAR_MEMBERSHIPS, {"worker_id": worker_id})
    if tags:
        connection.execute(insert(MEMBERSHIP), [{"worker_tag_id": tag.id, "worker_id": worker_id} for tag in tags])
    enable_work(connection, None)  # the worker may take tasks of jobs it could not before
    return tags


def tags_of_worker(connection: Connection, worker_uuid: UUID) -> list[WorkerTag]:
    """The worker's tags in id order (NotFound for an unknown or soft-deleted worker)."""
    rows = connection.execute(_OF_WORKER, {"worker_uuid": worker_uuid}).mappings().all()
    if not rows:
        raise NotFound(f"worker {worker_uuid} not found")
    return [tag_from_row(row) for row in rows if row["uuid"] is not None]


class WorkerTags:
    """Worker tags and which workers carry them."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def create(self, name: str, description: str = "", *, uuid: UUID | str | None = None) -> WorkerTag:
        """Store a new tag (AlreadyExists if its name or uuid is taken)."""
        values = tag_values(name=name, description=description)
        values["uuid"] = uuid4() if uuid is None else uuid_value(uuid, f"worker tag {shown(name)}.uuid")
        return await self._runner.write(partial(create_tag, values=values), single_statement=True)

    async def fetch(self, uuid: UUID | str) -> WorkerTag:
        """Tag ``uuid`` (NotFound if absent)."""
        key = uuid_value(uuid, "worker tag uuid")
        return await self._runner.read(partial(load_tag, by="uuid", key=key), single_statement=True)

    async def fetch_by_name(self, name: str) -> WorkerTag:
        """The tag named ``name`` (NotFound if absent)."""
        key = text(name, LENGTHS["name"], "worker tag name")
        return await self._runner.read(partial(load_tag, by="name", key=key), single_statement=True)

    async def list(self) -> builtins.list[WorkerTag]:
        """Every tag, in creation (id) order."""
        return await self._runner.read(list_tags, single_statement=True)

    async def has_any(self) -> bool:
        """Whether any tag exists (Flamenco's scheduler changes its tag filter then)."""
        return await self._runner.read(has_tags, single_statement=True)

    async def save(self, tag: WorkerTag) -> WorkerTag:
        """Write ``tag``'s name and description; return it as stored
        (NotFound if absent, AlreadyExists if another tag has the name)."""
        if not isinstance(tag, WorkerTag):
            raise InvalidInput(f"expected a WorkerTag, got {type(tag).__name__}")
        uuid = uuid_value(tag.uuid, f"worker tag {shown(tag.name)}.uuid")
        values = tag_values(name=tag.name, description=tag.description)
        return await self._runner.write(
            partial(save_tag, uuid=uuid, values=values),
            single_statement=self._runner.facts.update_returning,
        )

    async def delete(self, uuid: UUID | str) -> None:
        """Delete tag ``uuid`` (NotFound if absent). Its memberships go with
        it, and jobs limited to it become untagged (runnable by any worker)."""
        key = uuid_value(uuid, "worker tag uuid")
        await self._runner.write(partial(delete_tag, uuid=key), single_statement=not notify_splits(self._runner))
        self._runner.wakeups.work()

    async def set_worker_tags(
        self, worker_uuid: UUID | str, tag_uuids: Collection[UUID | str]
    ) -> builtins.list[WorkerTag]:
        """Make ``tag_uuids`` the worker's only tags, in one transaction, and
        return them in id order; duplicates count once, an empty collection
        removes every tag. NotFound for an unknown or soft-deleted worker.

        Deliberately stricter than Flamenco, whose ``WorkerSetTags`` silently
        ignores tag uuids that do not exist: here one unknown tag uuid raises
        InvalidReference and the worker keeps the tags it had, so a typo or a
        tag deleted meanwhile is not mistaken for "fewer tags".
        """
        worker = uuid_value(worker_uuid, "worker uuid")
        tags = uuids(tag_uuids, "tag uuids")
        tagged = await self._runner.write(partial(set_worker_tags, worker_uuid=worker, tag_uuids=tags))
        self._runner.wakeups.work()
        return tagged

    async def of_worker(self, worker_uuid: UUID | str) -> builtins.list[WorkerTag]:
        """The worker's tags in id order. NotFound for an unknown or
        soft-deleted worker (Flamenco lists none for an unknown worker; here a
        typo is not mistaken for "no tags")."""
        worker = uuid_value(worker_uuid, "worker uuid")
        return await self._runner.read(partial(tags_of_worker, worker_uuid=worker), single_statement=True)
