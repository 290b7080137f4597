"""Units for worker tags and their memberships.

Tags are listed in creation (id) order everywhere, as Flamenco's SQLite
returns them. Deleting a tag relies on the foreign keys: memberships cascade
and jobs limited to it become untagged (``ON DELETE SET NULL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, exists, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from statestore.core.dialect import update_returning
from statestore.core.types import utcnow
from statestore.errors import InvalidReference, NotFound
from statestore.farm.records import WorkerTag
from statestore.farm.tables import MEMBERSHIP, WORKERS
from statestore.farm.tables import WORKER_TAGS as TAGS
from statestore.farm.worker_codec import tag_from_row
from statestore.farm.worker_loading import live_worker_id

__all__ = [
    "create_tag",
    "delete_tag",
    "has_tags",
    "list_tags",
    "load_tag",
    "save_tag",
    "set_worker_tags",
    "tags_of_worker",
]


_BY = {
    "uuid": select(TAGS).where(TAGS.c.uuid == bindparam("key")),
    "name": select(TAGS).where(TAGS.c.name == bindparam("key")),
    "id": select(TAGS).where(TAGS.c.id == bindparam("key")),
}
_ALL = select(TAGS).order_by(TAGS.c.id)
_ANY = select(exists().select_from(TAGS))
_SET: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in ("name", "description", "updated_at")}
_SAVE = update(TAGS).where(TAGS.c.uuid == bindparam("b_uuid")).values(_SET)
_DELETE = delete(TAGS).where(TAGS.c.uuid == bindparam("uuid"))
_OF_WORKER = (
    select(TAGS)
    .join(MEMBERSHIP, MEMBERSHIP.c.worker_tag_id == TAGS.c.id)
    .join(WORKERS, WORKERS.c.id == MEMBERSHIP.c.worker_id)
    .where(WORKERS.c.uuid == bindparam("worker_uuid"))
    .order_by(TAGS.c.id)
)
_CLEAR_MEMBERSHIPS = delete(MEMBERSHIP).where(MEMBERSHIP.c.worker_id == bindparam("worker_id"))


def create_tag(connection: Connection, values: dict[str, Any]) -> WorkerTag:
    """Insert a tag (``values``: uuid, name, description)."""
    now = utcnow()
    row = {**values, "created_at": now, "updated_at": now}
    (tag_id,) = connection.execute(insert(TAGS).values(row)).inserted_primary_key or (None,)
    return tag_from_row({**row, "id": tag_id})


def load_tag(connection: Connection, by: str, key: object) -> WorkerTag:
    """The tag whose ``by`` (uuid, name or id) is ``key`` (NotFound if none)."""
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
    if update_returning(connection.dialect):
        row = connection.execute(_SAVE.returning(*TAGS.c), params).mappings().one_or_none()
    else:
        matched = connection.execute(_SAVE, params).rowcount
        row = connection.execute(_BY["uuid"], {"key": uuid}).mappings().one() if matched else None
    if row is None:
        raise NotFound(f"worker tag {uuid} not found")
    return tag_from_row(row)


def delete_tag(connection: Connection, uuid: UUID) -> None:
    """Delete a tag; its memberships go with it and its jobs become untagged."""
    if connection.execute(_DELETE, {"uuid": uuid}).rowcount == 0:
        raise NotFound(f"worker tag {uuid} not found")


def set_worker_tags(connection: Connection, worker_uuid: UUID, tag_uuids: Sequence[UUID]) -> list[WorkerTag]:
    """Make ``tag_uuids`` (distinct) the worker's only tags; refuse, before
    changing anything, if one of them does not exist. The worker's row is
    locked first: two concurrent replacements take turns instead of one
    inserting a membership the other just inserted."""
    worker_id = live_worker_id(connection, worker_uuid, lock=True)
    tags: list[WorkerTag] = []
    if tag_uuids:
        rows = connection.execute(select(TAGS).where(TAGS.c.uuid.in_(tag_uuids)).order_by(TAGS.c.id)).mappings()
        tags = [tag_from_row(row) for row in rows]
        missing = set(tag_uuids) - {tag.uuid for tag in tags}
        if missing:
            names = ", ".join(str(uuid) for uuid in tag_uuids if uuid in missing)
            raise InvalidReference(f"worker {worker_uuid}: no worker tag {names}; the worker's tags are unchanged")
    connection.execute(_CLEAR_MEMBERSHIPS, {"worker_id": worker_id})
    if tags:
        connection.execute(insert(MEMBERSHIP), [{"worker_tag_id": tag.id, "worker_id": worker_id} for tag in tags])
    return tags


def tags_of_worker(connection: Connection, worker_uuid: UUID) -> list[WorkerTag]:
    """The worker's tags in id order (none for an unknown worker, as in Flamenco)."""
    return [tag_from_row(row) for row in connection.execute(_OF_WORKER, {"worker_uuid": worker_uuid}).mappings()]
