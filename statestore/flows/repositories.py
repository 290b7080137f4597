"""The flow model's public API: one repository per level of the hierarchy.

Each method validates and encodes its input first (bad input raises
InvalidInput before any SQL), then runs one unit of work: its own short
transaction, or the caller's ``store.transaction()`` if one is open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from statestore.core.dialect import update_returning
from statestore.errors import InvalidInput
from statestore.flows import loading, writing
from statestore.flows.codec import atom_values, book_values, flow_values
from statestore.flows.loading import Cursor, Page
from statestore.flows.records import AtomDetail, FlowDetail, LogBook

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["AtomDetails", "FlowDetails", "LogBooks"]

DEFAULT_PAGE = 1000
Item = TypeVar("Item", LogBook, FlowDetail, AtomDetail)


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
    return limit


async def _stream(fetch: Callable[[Cursor], Awaitable[Page[Item]]]) -> AsyncIterator[Item]:
    """Every record, a page at a time, continuing after the last row's id:
    records deleted meanwhile neither end nor repeat the iteration."""
    after: Cursor = None
    while True:
        page, last_id = await fetch(after)
        for item in page:
            yield item
        if last_id is None:
            return
        after = last_id


class LogBooks:
    """Logbooks: save (merge) whole trees, load them, list and destroy them."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, book: LogBook) -> LogBook:
        """Upsert ``book`` with its flow details and atoms; return the stored
        book, complete. Children stored earlier but missing from ``book`` are
        kept; a name is never changed by a save."""
        values = book_values(book)
        flows = [(flow_values(flow), [atom_values(atom) for atom in flow.atoms]) for flow in book.flows]
        return await self._store.write(partial(writing.save_book, book=values, flows=flows))

    async def get(self, uuid: UUID, *, lazy: bool = False) -> LogBook:
        """The logbook ``uuid``; without flow details if ``lazy`` (NotFound if missing)."""
        return await self._store.read(partial(loading.load_book, uuid=uuid, lazy=lazy))

    async def page(self, *, after: UUID | None = None, limit: int = DEFAULT_PAGE, lazy: bool = True) -> list[LogBook]:
        """Up to ``limit`` logbooks stored after logbook ``after``, oldest
        first (NotFound if ``after`` no longer exists)."""
        return (await self._page(after, limit, lazy))[0]

    async def _page(self, after: Cursor, limit: int, lazy: bool) -> Page[LogBook]:
        return await self._store.read(
            partial(loading.page_books, after=after, limit=_limit(limit), lazy=lazy), offload=not lazy
        )

    def iterate(self, *, lazy: bool = True, page_size: int = DEFAULT_PAGE) -> AsyncIterator[LogBook]:
        """Every logbook, oldest first, fetched ``page_size`` at a time."""
        return _stream(lambda after: self._page(after, page_size, lazy))

    async def destroy(self, uuid: UUID) -> None:
        """Delete logbook ``uuid`` with all its flow and atom details."""
        await self._store.write(partial(writing.destroy_book, uuid=uuid), single_statement=True)

    async def clear(self) -> None:
        """Delete every logbook, flow detail and atom detail."""
        await self._store.write(writing.clear_all, single_statement=True)


class FlowDetails:
    """Flow details: merge one (with new or changed atoms), load, list."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def update(self, flow: FlowDetail, *, atoms: Iterable[AtomDetail] | None = None) -> FlowDetail:
        """Merge ``flow`` into the stored flow detail (NotFound if absent).

        Its state and meta are replaced; ``atoms`` (default: ``flow.atoms``)
        are inserted when new and merged when they differ from what is
        stored — unchanged atoms are not written. Returns the complete flow
        detail, every stored atom included.
        """
        values = flow_values(flow)
        given = [atom_values(atom) for atom in (flow.atoms if atoms is None else atoms)]
        return await self._store.write(partial(writing.update_flow, flow=values, atoms=given))

    async def get(self, uuid: UUID, *, lazy: bool = False) -> FlowDetail:
        """Flow detail ``uuid``; without atoms if ``lazy`` (NotFound if missing)."""
        return await self._store.read(partial(loading.load_flow, uuid=uuid, lazy=lazy))

    async def page(
        self, book: UUID, *, after: UUID | None = None, limit: int = DEFAULT_PAGE, lazy: bool = True
    ) -> list[FlowDetail]:
        """Up to ``limit`` flow details of logbook ``book`` after ``after``
        (NotFound if the book or ``after`` no longer exists)."""
        return (await self._page(book, after, limit, lazy))[0]

    async def _page(self, book: UUID, after: Cursor, limit: int, lazy: bool) -> Page[FlowDetail]:
        return await self._store.read(
            partial(loading.page_flows, book_uuid=book, after=after, limit=_limit(limit), lazy=lazy),
            offload=not lazy,
        )

    def iterate(self, book: UUID, *, lazy: bool = True, page_size: int = DEFAULT_PAGE) -> AsyncIterator[FlowDetail]:
        """Every flow detail of logbook ``book``, oldest first."""
        return _stream(lambda after: self._page(book, after, page_size, lazy))


class AtomDetails:
    """Atom details: merge one (the engine's hottest call), load, list."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def update(self, atom: AtomDetail) -> AtomDetail:
        """Merge ``atom`` into the stored atom detail (NotFound if absent) and
        return the stored result. One statement where the database has
        UPDATE … RETURNING."""
        values = atom_values(atom)
        one_statement = update_returning(self._store.runner.dialect)
        return await self._store.write(partial(writing.update_atom, values=values), single_statement=one_statement)

    async def get(self, uuid: UUID) -> AtomDetail:
        """Atom detail ``uuid`` (NotFound if missing)."""
        return await self._store.read(partial(loading.load_atom, uuid=uuid), single_statement=True)

    async def page(self, flow: UUID, *, after: UUID | None = None, limit: int = DEFAULT_PAGE) -> list[AtomDetail]:
        """Up to ``limit`` atom details of flow detail ``flow`` after ``after``
        (NotFound if the flow or ``after`` no longer exists)."""
        return (await self._page(flow, after, limit))[0]

    async def _page(self, flow: UUID, after: Cursor, limit: int) -> Page[AtomDetail]:
        return await self._store.read(partial(loading.page_atoms, flow_uuid=flow, after=after, limit=_limit(limit)))

    def iterate(self, flow: UUID, *, page_size: int = DEFAULT_PAGE) -> AsyncIterator[AtomDetail]:
        """Every atom detail of flow detail ``flow``, oldest first."""
        return _stream(lambda after: self._page(flow, after, page_size))
