"""Worker tags and which workers carry them.

A job limited to a tag runs only on workers carrying that tag. Tags are
listed in creation (id) order, which is what Flamenco's SQLite gives.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from statestore.core.dialect import update_returning
from statestore.core.validate import ROW_ID, integer, text, uuid_value
from statestore.errors import InvalidInput
from statestore.farm import tag_units
from statestore.farm.records import WorkerTag
from statestore.farm.tables import LENGTHS
from statestore.farm.worker_codec import tag_values, uuids

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["WorkerTags"]


class WorkerTags:
    """Worker tags and which workers carry them."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, name: str, description: str = "", *, uuid: UUID | None = None) -> WorkerTag:
        """Store a new tag (AlreadyExists if its name or uuid is taken)."""
        values = tag_values(name=name, description=description)
        values["uuid"] = uuid4() if uuid is None else uuid_value(uuid, f"worker tag {name!r}.uuid")
        return await self._store.write(partial(tag_units.create_tag, values=values), single_statement=True)

    async def fetch(self, uuid: UUID) -> WorkerTag:
        """Tag ``uuid`` (NotFound if absent)."""
        key = uuid_value(uuid, "worker tag uuid")
        return await self._store.read(partial(tag_units.load_tag, by="uuid", key=key), single_statement=True)

    async def fetch_by_name(self, name: str) -> WorkerTag:
        """The tag named ``name`` (NotFound if absent)."""
        key = text(name, LENGTHS["name"], "worker tag name")
        return await self._store.read(partial(tag_units.load_tag, by="name", key=key), single_statement=True)

    async def fetch_by_id(self, id: int) -> WorkerTag:
        """The tag with primary key ``id`` (NotFound if absent)."""
        key = integer(id, "worker tag id", ROW_ID)
        return await self._store.read(partial(tag_units.load_tag, by="id", key=key), single_statement=True)

    async def list(self) -> builtins.list[WorkerTag]:
        """Every tag, in creation (id) order."""
        return await self._store.read(tag_units.list_tags, single_statement=True)

    async def has_any(self) -> bool:
        """Whether any tag exists (Flamenco's scheduler changes its tag filter then)."""
        return await self._store.read(tag_units.has_tags, single_statement=True)

    async def save(self, tag: WorkerTag) -> WorkerTag:
        """Write ``tag``'s name and description; return it as stored
        (NotFound if absent, AlreadyExists if another tag has the name)."""
        if not isinstance(tag, WorkerTag):
            raise InvalidInput(f"expected a WorkerTag, got {type(tag).__name__}")
        uuid = uuid_value(tag.uuid, f"worker tag {tag.name!r}.uuid")
        values = tag_values(name=tag.name, description=tag.description)
        return await self._store.write(
            partial(tag_units.save_tag, uuid=uuid, values=values),
            single_statement=update_returning(self._store.runner.dialect),
        )

    async def delete(self, uuid: UUID) -> None:
        """Delete tag ``uuid`` (NotFound if absent). Its memberships go with
        it, and jobs limited to it become untagged (runnable by any worker)."""
        uuid_value(uuid, "worker tag uuid")
        await self._store.write(partial(tag_units.delete_tag, uuid=uuid), single_statement=True)

    async def set_worker_tags(self, worker_uuid: UUID, tag_uuids: Collection[UUID]) -> builtins.list[WorkerTag]:
        """Make ``tag_uuids`` the worker's only tags, in one transaction, and
        return them in id order; duplicates count once, an empty collection
        removes every tag. NotFound for an unknown or soft-deleted worker.

        Deliberately stricter than Flamenco, whose ``WorkerSetTags`` silently
        ignores tag uuids that do not exist: here one unknown tag uuid raises
        InvalidReference and the worker keeps the tags it had, so a typo or a
        tag deleted meanwhile is not mistaken for "fewer tags".
        """
        uuid_value(worker_uuid, "worker uuid")
        tags = uuids(tag_uuids, "tag uuids")
        return await self._store.write(partial(tag_units.set_worker_tags, worker_uuid=worker_uuid, tag_uuids=tags))

    async def of_worker(self, worker_uuid: UUID) -> builtins.list[WorkerTag]:
        """The worker's tags in id order (an unknown worker has none, as in Flamenco)."""
        uuid_value(worker_uuid, "worker uuid")
        return await self._store.read(partial(tag_units.tags_of_worker, worker_uuid=worker_uuid), single_statement=True)
