"""TaskFlow's persistence ``Backend`` and ``Connection`` over a statestore store.

``taskflow.persistence.backends.fetch({"connection": "statestore+sqlite:///flows.db"})``
finds :class:`StatestoreBackend` through the ``statestore`` entry point; the
part after ``statestore+`` is the statestore URL.

The engine opens a connection for every call (4N+6 times for N tasks), so a
:class:`StatestoreConnection` is a tiny object: the store is opened once per
backend, on the backend's private event-loop thread, on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from taskflow import exceptions as tf_exceptions
from taskflow.persistence import base

from statestore.compat.taskflow.bridge import LoopThread
from statestore.compat.taskflow.convert import (
    atom_from_taskflow,
    atom_to_taskflow,
    book_from_taskflow,
    book_to_taskflow,
    flow_from_taskflow,
    flow_to_taskflow,
    uuid_of,
)
from statestore.errors import NotFound, StoreError
from statestore.store import Store, open_store_unchecked

__all__ = ["StatestoreBackend", "StatestoreConnection", "store_options"]

T = TypeVar("T")
PREFIX = "statestore+"
PAGE = 500

# Keys TaskFlow's fetch() copies from the URI into conf: already in the URL.
_FROM_URI = {"connection", "username", "password", "hostname", "port"}
# TaskFlow's SQL backend keys → SQLAlchemy pool options (servers only).
_POOL_KEYS = {
    "max_pool_size": "pool_size",
    "max_overflow": "max_overflow",
    "pool_timeout": "pool_timeout",
    "idle_timeout": "pool_recycle",
}


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"statestore backend: {key} must be a number, got {value!r}") from None


def store_options(conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The statestore URL and ``open_store`` options a TaskFlow conf asks for.

    Honoured: ``echo``; ``busy_timeout`` (SQLite); ``max_pool_size``,
    ``max_overflow``, ``pool_timeout``, ``idle_timeout`` (servers; ignored on
    SQLite, which has one writer). Any other key is refused with ValueError
    rather than silently ignored.
    """
    connection = str(conf.get("connection", ""))
    if not connection.startswith(PREFIX):
        raise ValueError(f"statestore backend: connection must start with {PREFIX!r}, got {connection!r}")
    url = connection[len(PREFIX) :].split("?", 1)[0]
    sqlite = url.startswith("sqlite")
    options: dict[str, Any] = {}
    for key, value in conf.items():
        if key in _FROM_URI:
            continue
        if key == "echo":
            options["echo"] = str(value).lower() in ("1", "true", "yes", "on")
        elif key == "busy_timeout" and sqlite:
            options["busy_timeout"] = _number(key, value)
        elif key in _POOL_KEYS:
            if not sqlite:
                options[_POOL_KEYS[key]] = int(_number(key, value))
        else:
            raise ValueError(f"statestore backend: unknown configuration key {key!r}")
    return url, options


class StatestoreBackend(base.Backend):  # type: ignore[misc]
    """A TaskFlow persistence backend storing into statestore."""

    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        super().__init__(conf)
        self._url, self._options = store_options(self._conf)
        self._loop = LoopThread("statestore-taskflow")
        self._exit: AsyncExitStack | None = None
        self._store: Store | None = None
        self._upgrade_lock = threading.Lock()

    async def _opened(self) -> Store:
        if self._store is None:
            self._exit = AsyncExitStack()
            self._store = await self._exit.enter_async_context(open_store_unchecked(self._url, **self._options))
        return self._store

    def call(self, action: Callable[[Store], Awaitable[T]]) -> T:
        """Run ``action(store)`` on the backend's loop; statestore errors
        become the TaskFlow exceptions its callers expect."""

        async def run() -> T:
            return await action(await self._opened())

        try:
            return self._loop.call(run)
        except NotFound as error:
            raise tf_exceptions.NotFound(str(error)) from error
        except StoreError as error:
            raise tf_exceptions.StorageFailure(f"{type(error).__name__}: {error}", cause=error) from error

    def upgrade(self) -> None:
        """Create or migrate the schema; one thread at a time."""
        with self._upgrade_lock:
            self.call(lambda store: store.upgrade())

    def get_connection(self) -> StatestoreConnection:
        return StatestoreConnection(self)

    def close(self) -> None:
        """Close the store and stop the loop thread."""
        exit_stack, self._exit, self._store = self._exit, None, None
        if exit_stack is not None:
            self._loop.call(exit_stack.aclose)
        self._loop.stop()


class StatestoreConnection(base.Connection):  # type: ignore[misc]
    """TaskFlow's Connection API; every call is one store call."""

    def __init__(self, backend: StatestoreBackend) -> None:
        self._backend = backend

    @property
    def backend(self) -> StatestoreBackend:
        return self._backend

    def close(self) -> None:
        """Nothing to release: the store belongs to the backend."""

    def upgrade(self) -> None:
        self._backend.upgrade()

    def validate(self) -> None:
        report = self._backend.call(lambda store: store.check())
        if not report.ok:
            raise tf_exceptions.StorageFailure("statestore check failed: " + "; ".join(report.problems))

    def clear_all(self) -> None:
        self._backend.call(lambda store: store.logbooks.clear())

    def update_atom_details(self, atom_detail: Any, **_ignored: Any) -> Any:
        record = atom_from_taskflow(atom_detail)
        return atom_to_taskflow(self._backend.call(lambda store: store.atom_details.update(record)))

    def update_flow_details(self, flow_detail: Any, **_ignored: Any) -> Any:
        """Merge the flow detail; the result holds every atom of the flow,
        which the engine relies on (it replaces its atoms with these)."""
        record = flow_from_taskflow(flow_detail)
        stored = self._backend.call(lambda store: store.flow_details.update(record))
        return flow_to_taskflow(stored, reuse={atom.uuid: atom for atom in flow_detail})

    def save_logbook(self, book: Any) -> Any:
        record = book_from_taskflow(book)
        return book_to_taskflow(self._backend.call(lambda store: store.logbooks.save(record)))

    def destroy_logbook(self, book_uuid: Any) -> None:
        uuid = uuid_of(book_uuid)
        self._backend.call(lambda store: store.logbooks.destroy(uuid))

    def get_logbook(self, book_uuid: Any, lazy: bool = False) -> Any:
        uuid = uuid_of(book_uuid)
        return book_to_taskflow(self._backend.call(lambda store: store.logbooks.get(uuid, lazy=lazy)))

    def get_logbooks(self, lazy: bool = False) -> Iterator[Any]:
        return self._pages(
            lambda store, after: store.logbooks.page(after=after, limit=PAGE, lazy=lazy), book_to_taskflow
        )

    def get_flows_for_book(self, book_uuid: Any, lazy: bool = False) -> Iterator[Any]:
        uuid = uuid_of(book_uuid)
        return self._pages(
            lambda store, after: store.flow_details.page(uuid, after=after, limit=PAGE, lazy=lazy), flow_to_taskflow
        )

    def get_flow_details(self, fd_uuid: Any, lazy: bool = False) -> Any:
        uuid = uuid_of(fd_uuid)
        return flow_to_taskflow(self._backend.call(lambda store: store.flow_details.get(uuid, lazy=lazy)))

    def get_atom_details(self, ad_uuid: Any) -> Any:
        uuid = uuid_of(ad_uuid)
        return atom_to_taskflow(self._backend.call(lambda store: store.atom_details.get(uuid)))

    def get_atoms_for_flow(self, fd_uuid: Any) -> Iterator[Any]:
        uuid = uuid_of(fd_uuid)
        return self._pages(
            lambda store, after: store.atom_details.page(uuid, after=after, limit=PAGE), atom_to_taskflow
        )

    def _pages(self, fetch: Callable[..., Awaitable[list[Any]]], convert: Callable[[Any], Any]) -> Iterator[Any]:
        """A generator: nothing runs until it is iterated, one page at a time."""
        after: UUID | None = None
        while True:
            page = self._backend.call(partial(fetch, after=after))
            if not page:
                return
            for record in page:
                yield convert(record)
            after = page[-1].uuid
