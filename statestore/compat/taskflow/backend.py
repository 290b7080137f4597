"""TaskFlow's persistence ``Backend`` and ``Connection`` over a statestore store.

``taskflow.persistence.backends.fetch({"connection": "statestore+sqlite:///flows.db"})``
finds :class:`StatestoreBackend` through the ``statestore`` entry point; the
part after ``statestore+`` is the statestore URL.

The engine opens a connection for every call (4N+6 times for N tasks), so a
:class:`StatestoreConnection` is a tiny object: the store is opened once per
backend, on the backend's private event loop, on first use. The calling
threads run that loop themselves, one at a time (:mod:`.bridge`), so a call
crosses to no other thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any, TypeVar, cast
from uuid import UUID

from taskflow import exceptions as tf_exceptions
from taskflow.persistence import base

from statestore.compat.taskflow.bridge import SharedLoop
from statestore.compat.taskflow.convert import (
    atom_from_taskflow,
    atom_to_taskflow,
    book_from_taskflow,
    book_to_taskflow,
    flow_from_taskflow,
    flow_to_taskflow,
    lookup_uuid,
    merged_atom,
    merged_book,
    merged_flow,
)
from statestore.compat.taskflow.options import store_options, validate_retries
from statestore.errors import NotFound, StoreError, Unavailable
from statestore.store import Store, open_store_unchecked

__all__ = ["StatestoreBackend", "StatestoreConnection"]

T = TypeVar("T")
PAGE = 500
"""Records per page of the listing generators (a page is one store call)."""


@contextmanager
def _taskflow_errors() -> Iterator[None]:
    """Raise what TaskFlow's callers catch: NotFound for a missing record,
    StorageFailure (with the original as ``cause``) for anything else that
    goes wrong storing or converting a value."""
    try:
        yield
    except tf_exceptions.TaskFlowException:
        raise
    except NotFound as error:
        raise tf_exceptions.NotFound(str(error), cause=error) from error
    except (StoreError, ValueError, TypeError) as error:
        raise tf_exceptions.StorageFailure(f"{type(error).__name__}: {error}", cause=error) from error


class StatestoreBackend(base.Backend):  # type: ignore[misc]
    """A TaskFlow persistence backend storing into statestore.

    ``conf`` is TaskFlow's: ``connection`` (``statestore+<statestore URL>``)
    and the options :func:`~statestore.compat.taskflow.options.store_options`
    accepts. Nothing is opened until first use; :meth:`close` closes the
    store and closes its event loop, and a later call opens them again.
    """

    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        super().__init__(conf)
        self._url, self._options = store_options(self._conf)
        self.validate_retries = validate_retries(self._conf)
        self._loop = SharedLoop("statestore-taskflow")
        self._exit: AsyncExitStack | None = None
        self._store: Store | None = None
        self._upgrade_lock = threading.Lock()

    async def _opened(self) -> Store:
        if self._store is None:
            exit_stack = AsyncExitStack()
            store = await exit_stack.enter_async_context(open_store_unchecked(self._url, **self._options))
            if self._store is None:  # not opened meanwhile by a concurrent first call
                self._exit, self._store = exit_stack, store
            else:
                await exit_stack.aclose()
        return self._store

    async def _on_store(self, action: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        store = self._store  # open after the first call: no await of _opened on the hot path
        return await action(store if store is not None else await self._opened(), *args)

    def call(self, action: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await action(store, *args)`` on the backend's loop, run by the
        calling thread itself when no other thread is running it (see
        :mod:`.bridge`), with statestore's errors raised as TaskFlow's."""
        try:
            return cast(T, self._loop.call(self._on_store, action, args))
        except Exception:  # translated here, not in a with-block around every call: it costs per call
            with _taskflow_errors():
                raise

    def upgrade(self) -> None:
        """Create or migrate the schema; idempotent, one thread at a time."""
        with self._upgrade_lock:
            self.call(Store.upgrade)

    def get_connection(self) -> StatestoreConnection:
        """A new connection: a two-attribute object, cheap enough for the
        engine's connection-per-call."""
        return StatestoreConnection(self)

    def close(self) -> None:
        """Close the store and its event loop."""
        exit_stack, self._exit, self._store = self._exit, None, None
        try:
            if exit_stack is not None:
                with _taskflow_errors():
                    self._loop.call(exit_stack.aclose)
        finally:
            self._loop.stop()


# Store operations, as plain functions so that a call passes no closure.
async def _check(store: Store) -> Any:
    return await store.check()


async def _clear(store: Store) -> None:
    await store.logbooks.clear()


async def _update_atom(store: Store, record: Any) -> Any:
    return await store.atom_details.update(record)


async def _update_flow(store: Store, record: Any) -> Any:
    return await store.flow_details.update(record)


async def _save_book(store: Store, record: Any) -> Any:
    return await store.logbooks.save(record, keep_timestamps=True)


async def _destroy_book(store: Store, uuid: UUID) -> None:
    await store.logbooks.destroy(uuid)


async def _get_book(store: Store, uuid: UUID, lazy: bool) -> Any:
    return await store.logbooks.get(uuid, lazy=lazy)


async def _get_flow(store: Store, uuid: UUID, lazy: bool) -> Any:
    return await store.flow_details.get(uuid, lazy=lazy)


async def _get_atom(store: Store, uuid: UUID) -> Any:
    return await store.atom_details.get(uuid)


async def _page_books(store: Store, after: UUID | None, lazy: bool) -> list[Any]:
    return await store.logbooks.page(after=after, limit=PAGE, lazy=lazy)


async def _page_flows(store: Store, after: UUID | None, book: UUID, lazy: bool) -> list[Any]:
    return await store.flow_details.page(book, after=after, limit=PAGE, lazy=lazy)


async def _page_atoms(store: Store, after: UUID | None, flow: UUID) -> list[Any]:
    return await store.atom_details.page(flow, after=after, limit=PAGE)


class StatestoreConnection(base.Connection):  # type: ignore[misc]
    """TaskFlow's Connection API; every method is one store call (a listing,
    one per page)."""

    __slots__ = ("_backend",)

    def __init__(self, backend: StatestoreBackend) -> None:
        self._backend = backend

    @property
    def backend(self) -> StatestoreBackend:
        return self._backend

    def close(self) -> None:
        """Nothing to release: the store belongs to the backend."""

    def upgrade(self) -> None:
        """Create or migrate the schema (idempotent, thread-safe)."""
        self._backend.upgrade()

    def validate(self) -> None:
        """StorageFailure unless ``statestore check`` finds the database
        sound. A database that cannot be reached is tried ``max_retries``
        more times (conf), waiting 1, 2, 4 … up to 16 seconds between, as
        TaskFlow's SQL backend does."""
        for attempt in range(self._backend.validate_retries + 1):
            try:
                report = self._backend.call(_check)
                break
            except tf_exceptions.StorageFailure as error:
                if attempt == self._backend.validate_retries or not isinstance(error.cause, Unavailable):
                    raise
                time.sleep(min(2**attempt, 16))
        if not report.ok:
            raise tf_exceptions.StorageFailure("statestore check failed: " + "; ".join(report.problems))

    def clear_all(self) -> None:
        """Delete every logbook with its flow and atom details."""
        self._backend.call(_clear)

    def update_atom_details(self, atom_detail: Any, ignore_missing: bool = False) -> Any:
        """Merge an atom detail into the stored one and return the result,
        holding the caller's values (as TaskFlow's SQL backend returns them).

        An atom that is not stored is NotFound, or with ``ignore_missing``
        handed back unchanged and not stored: unlike TaskFlow's path-based
        backends, statestore keeps no atom outside its flow detail.
        """
        return self._update(atom_detail, atom_from_taskflow, _update_atom, merged_atom, ignore_missing)

    def update_flow_details(self, flow_detail: Any, ignore_missing: bool = False) -> Any:
        """Merge the flow detail and its atoms (only atoms that changed are
        written); the result holds *every* atom of the flow, which the
        engine relies on (it replaces its atoms with these), with the
        caller's own atom objects where it has them.

        A flow detail that is not stored is NotFound, or with
        ``ignore_missing`` handed back unchanged and not stored: statestore
        keeps no flow detail outside its logbook.
        """
        return self._update(flow_detail, flow_from_taskflow, _update_flow, merged_flow, ignore_missing)

    def _update(
        self,
        given: Any,
        convert: Callable[[Any], Any],
        update: Callable[..., Awaitable[Any]],
        merge: Callable[[Any, Any], Any],
        ignore_missing: bool,
    ) -> Any:
        """One update: ``given`` converted, stored by ``update``, the stored
        record merged with ``given``; a missing one handed back as it is
        when ``ignore_missing`` (truthy, as the path-based backends test it)."""
        with _taskflow_errors():
            record = convert(given)
        try:
            stored = self._backend.call(update, record)
        except tf_exceptions.NotFound:
            if ignore_missing:
                return given
            raise
        return merge(stored, given)

    def save_logbook(self, book: Any) -> Any:
        """Upsert the book with its flow and atom details (a merge: stored
        children missing from ``book`` are kept), with the book's own
        timestamps; return the stored book, holding the caller's objects
        and values for what the caller gave."""
        with _taskflow_errors():
            record = book_from_taskflow(book)
        return merged_book(self._backend.call(_save_book, record), book)

    def destroy_logbook(self, book_uuid: Any) -> None:
        """Delete a book with everything in it (NotFound if absent)."""
        self._backend.call(_destroy_book, lookup_uuid(book_uuid, "logbook"))

    def get_logbook(self, book_uuid: Any, lazy: bool = False) -> Any:
        """A book; without its flow details if ``lazy``."""
        return book_to_taskflow(self._backend.call(_get_book, lookup_uuid(book_uuid, "logbook"), lazy))

    def get_logbooks(self, lazy: bool = False) -> Iterator[Any]:
        """A generator of every book, oldest first, read a page at a time."""
        return self._pages(_page_books, (lazy,), book_to_taskflow)

    def get_flows_for_book(self, book_uuid: Any, lazy: bool = False) -> Iterator[Any]:
        """A generator of a book's flow details (NotFound, when iterated,
        if the book does not exist)."""
        return self._pages(_page_flows, (lookup_uuid(book_uuid, "logbook"), lazy), flow_to_taskflow)

    def get_flow_details(self, fd_uuid: Any, lazy: bool = False) -> Any:
        """A flow detail; without its atoms if ``lazy``."""
        return flow_to_taskflow(self._backend.call(_get_flow, lookup_uuid(fd_uuid, "flow detail"), lazy))

    def get_atom_details(self, ad_uuid: Any) -> Any:
        """One atom detail."""
        return atom_to_taskflow(self._backend.call(_get_atom, lookup_uuid(ad_uuid, "atom detail")))

    def get_atoms_for_flow(self, fd_uuid: Any) -> Iterator[Any]:
        """A generator of a flow detail's atoms (NotFound, when iterated, if
        the flow detail does not exist)."""
        return self._pages(_page_atoms, (lookup_uuid(fd_uuid, "flow detail"),), atom_to_taskflow)

    def _pages(
        self, fetch: Callable[..., Awaitable[list[Any]]], args: tuple[Any, ...], convert: Callable[[Any], Any]
    ) -> Iterator[Any]:
        """Nothing runs until the generator is iterated; then one store
        call per page, so a listing never holds more than a page of records."""
        after: UUID | None = None
        while True:
            page = self._backend.call(fetch, after, *args)
            if not page:
                return
            yield from (convert(record) for record in page)
            if len(page) < PAGE:
                return
            after = page[-1].uuid
