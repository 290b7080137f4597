"""Size and concurrency: fixed query counts, pagination, only changed atoms written."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from statestore import Store
from statestore.flows import AtomDetail, AtomState, FlowDetail, FlowState
from tests.support.flow_fixtures import book_with, flow_with


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, bool]]]:
    """Collect (SQL, executemany) of every statement SQLAlchemy executes."""
    seen: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, sql: str, _params: Any, _context: Any, executemany: bool) -> None:
        seen.append((sql, executemany))

    engine = store.runner.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _big_flow(store: Store, count: int) -> FlowDetail:
    flow = flow_with(*(AtomDetail(f"a{index:05d}") for index in range(count)))
    await store.logbooks.save(book_with(flow))
    return flow


@pytest.mark.slow
async def test_iterating_10k_atoms_pages_through_all_in_order(store: Store) -> None:
    flow = await _big_flow(store, 10_000)
    names = [atom.name async for atom in store.atom_details.iterate(flow.uuid, page_size=1000)]
    assert names == [atom.name for atom in flow.atoms]
    page = await store.atom_details.page(flow.uuid, after=flow.atoms[4999].uuid, limit=100)
    assert [atom.name for atom in page] == [atom.name for atom in flow.atoms[5000:5100]]


async def test_a_full_logbook_loads_in_three_queries(store: Store) -> None:
    book = book_with(*(flow_with(*(AtomDetail(f"a{i}") for i in range(500)), name=f"f{f}") for f in range(2)))
    await store.logbooks.save(book)
    with statements(store) as seen:
        loaded = await store.logbooks.get(book.uuid)
    selects = [sql for sql, _ in seen if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 3
    assert sum(len(flow.atoms) for flow in loaded.flows) == 1000


async def test_a_flow_state_change_writes_no_atom(store: Store) -> None:
    flow = await _big_flow(store, 500)
    flow.state = FlowState.RUNNING
    with statements(store) as seen:
        updated = await store.flow_details.update(flow)
    atom_writes = [sql for sql, _ in seen if "atom_details" in sql and not sql.lstrip().upper().startswith("SELECT")]
    assert atom_writes == []
    assert updated.state is FlowState.RUNNING
    assert len(updated.atoms) == 500


async def test_changing_one_atom_of_500_writes_one_row(store: Store) -> None:
    flow = await _big_flow(store, 500)
    flow.atoms[250].state = AtomState.RUNNING
    with statements(store) as seen:
        updated = await store.flow_details.update(flow)
    writes = [
        sql for sql, _ in seen if sql.lstrip().upper().startswith(("UPDATE ATOM_DETAILS", "INSERT INTO ATOM_DETAILS"))
    ]
    assert len(writes) == 1
    assert updated.atoms[250].state is AtomState.RUNNING
    assert (await store.atom_details.get(flow.atoms[250].uuid)).state is AtomState.RUNNING


async def test_two_writers_on_different_atoms_lose_nothing(store: Store) -> None:
    first, second = AtomDetail("first"), AtomDetail("second")
    await store.logbooks.save(book_with(flow_with(first, second)))

    async def writer(atom: AtomDetail) -> None:
        for index in range(50):
            atom.state, atom.results = AtomState.RUNNING, {"step": index}
            await store.atom_details.update(atom)

    await asyncio.gather(writer(first), writer(second))
    for atom in (first, second):
        assert (await store.atom_details.get(atom.uuid)).results == {"step": 49}


async def test_concurrent_flow_updates_each_adding_an_atom_keep_all(store: Store) -> None:
    flow = flow_with()
    await store.logbooks.save(book_with(flow))

    async def add(index: int) -> None:
        mine = FlowDetail(flow.name, uuid=flow.uuid, state=FlowState.RUNNING)
        await store.flow_details.update(mine, atoms=[AtomDetail(f"added-{index}")])

    await asyncio.gather(*(add(index) for index in range(20)))
    stored = await store.flow_details.get(flow.uuid)
    assert sorted(atom.name for atom in stored.atoms) == sorted(f"added-{index}" for index in range(20))


async def test_iterating_survives_deletion_of_the_record_it_just_yielded(store: Store) -> None:
    """Paging continues after the last row seen, not after a uuid that a
    concurrent delete can remove (which silently ended the iteration)."""
    from statestore.flows import LogBook

    books = [LogBook(f"b{index}") for index in range(5)]
    for book in books:
        await store.logbooks.save(book)
    seen = []
    async for book in store.logbooks.iterate(page_size=2):
        seen.append(book.name)
        if book.name == "b1":
            await store.logbooks.destroy(book.uuid)  # the page's cursor row
    assert seen == ["b0", "b1", "b2", "b3", "b4"]


async def test_a_page_after_a_deleted_cursor_is_not_found_rather_than_empty(store: Store) -> None:
    from statestore import NotFound
    from statestore.flows import LogBook

    books = [LogBook(f"b{index}") for index in range(3)]
    for book in books:
        await store.logbooks.save(book)
    await store.logbooks.destroy(books[0].uuid)
    with pytest.raises(NotFound, match="cursor"):
        await store.logbooks.page(after=books[0].uuid)
    assert [book.name for book in await store.logbooks.page(after=books[1].uuid)] == ["b2"]
