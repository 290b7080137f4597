"""The flow model's change records: every committed write appends its changes
to the ``changes`` table in its own transaction, the same on every backend.

The table is read directly (not through ``store.changes()``), in id order:
these tests check what the writers append, the feed's own tests what it
reads. A refused call appends nothing, and a write that changes no state
appends no state change.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from statestore import AlreadyExists, InvalidInput, NotFound, Store
from statestore.changes.tables import CHANGES
from statestore.flows import AtomDetail, AtomKind, AtomState, FlowDetail, FlowState, LogBook
from tests.support.flow_fixtures import book_with, flow_with, retry

Row = tuple[str, UUID | None, UUID | None, UUID | None, str | None, str | None]
"""A change as these tests compare it: kind, logbook, flow, atom, old, new."""


def _read_changes(connection: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(select(CHANGES).order_by(CHANGES.c.id)).mappings()]


async def _changes(store: Store) -> list[dict[str, Any]]:
    return await store.read(_read_changes)


async def _rows(store: Store, after: int = 0) -> list[Row]:
    """The changes from the ``after``-th on, as (kind, logbook, flow, atom, old, new)."""
    return [
        (c["kind"], c["logbook_uuid"], c["flow_uuid"], c["atom_uuid"], c["old_value"], c["new_value"])
        for c in (await _changes(store))[after:]
    ]


async def _count(store: Store) -> int:
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(CHANGES)).scalar_one()))


def _saved(book: LogBook) -> Row:
    return ("logbook.saved", book.uuid, None, None, None, None)


def _flow(book: LogBook, flow: FlowDetail, old: str | None, new: str | None) -> Row:
    return ("flow.state", book.uuid, flow.uuid, None, old, new)


def _atom(book: LogBook, flow: FlowDetail, atom: AtomDetail, old: str | None, new: str | None) -> Row:
    return ("atom.state", book.uuid, flow.uuid, atom.uuid, old, new)


async def test_saving_a_new_logbook_records_it_and_every_flow_and_atom_inserted(store: Store) -> None:
    first, second, third = AtomDetail("a"), AtomDetail("b", state=AtomState.RUNNING), retry()
    idle, running = flow_with(first, second, name="idle"), flow_with(third, name="running")
    running.state = FlowState.RUNNING
    book = book_with(idle, running)
    saved = await store.logbooks.save(book)
    assert await _rows(store) == [
        _saved(book),
        _flow(book, idle, None, None),
        _flow(book, running, None, "RUNNING"),
        _atom(book, idle, first, None, None),
        _atom(book, idle, second, None, "RUNNING"),
        _atom(book, running, third, None, None),
    ]
    for stored in await _changes(store):
        # The write's own time, and no actor or reason in the flow model.
        assert stored["at"] == saved.updated_at
        assert (stored["reason"], stored["who"]) == ("", "")
        assert (stored["job_uuid"], stored["task_uuid"], stored["worker_uuid"]) == (None, None, None)


async def test_saving_again_records_the_logbook_and_only_the_states_that_changed(store: Store) -> None:
    atoms = [AtomDetail("a"), AtomDetail("b"), AtomDetail("c")]
    flow, other = flow_with(*atoms), flow_with(name="other")
    book = book_with(flow, other)
    await store.logbooks.save(book)
    seen = await _count(store)

    await store.logbooks.save(book)  # unchanged: the save alone
    assert await _rows(store, seen) == [_saved(book)]

    seen = await _count(store)
    flow.state = FlowState.RUNNING
    other.meta = {"only": "meta"}  # written, but its state is the same
    atoms[0].state = AtomState.SUCCESS
    atoms[1].results = {"only": "results"}  # likewise
    added = AtomDetail("d", state=AtomState.PENDING)
    flow.atoms.append(added)
    await store.logbooks.save(book)
    assert await _rows(store, seen) == [
        _saved(book),
        _flow(book, flow, None, "RUNNING"),
        _atom(book, flow, atoms[0], None, "SUCCESS"),
        _atom(book, flow, added, None, "PENDING"),
    ]


async def test_an_atom_update_records_a_state_change_and_nothing_else(store: Store) -> None:
    atom, neighbour = AtomDetail("a"), AtomDetail("b")
    flow = flow_with(atom, neighbour)
    book = book_with(flow)
    await store.logbooks.save(book)
    seen = await _count(store)

    atom.state = AtomState.RUNNING
    running = await store.atom_details.update(atom)
    atom.results = {"progress": 1}  # same state: the row is written, no change recorded
    await store.atom_details.update(atom)
    await store.atom_details.update(atom)
    atom.state, atom.results = AtomState.SUCCESS, {"done": True}
    done = await store.atom_details.update(atom)
    atom.state = None  # back to no state: a change too
    await store.atom_details.update(atom)

    assert await _rows(store, seen) == [
        _atom(book, flow, atom, None, "RUNNING"),
        _atom(book, flow, atom, "RUNNING", "SUCCESS"),
        _atom(book, flow, atom, "SUCCESS", None),
    ]
    stored = (await _changes(store))[seen:]
    assert [c["at"] for c in stored[:2]] == [running.updated_at, done.updated_at]
    assert all((c["reason"], c["who"]) == ("", "") for c in stored)
    assert (await store.atom_details.get(atom.uuid)).state is None


async def test_a_retry_update_records_its_state(store: Store) -> None:
    attempt = retry()
    flow = flow_with(attempt)
    book = book_with(flow)
    await store.logbooks.save(book)
    seen = await _count(store)
    attempt.state = AtomState.RETRYING
    await store.atom_details.update(attempt)
    assert await _rows(store, seen) == [_atom(book, flow, attempt, None, "RETRYING")]


async def test_a_flow_update_records_its_state_and_its_atoms_inserted_or_changed(store: Store) -> None:
    changed, results_only, untouched = AtomDetail("changed"), AtomDetail("results"), AtomDetail("untouched")
    flow = flow_with(changed, results_only, untouched)
    book = book_with(flow)
    await store.logbooks.save(book)
    seen = await _count(store)

    flow.state = FlowState.RUNNING
    changed.state = AtomState.RUNNING
    results_only.results = [1, 2]
    added = AtomDetail("added", state=AtomState.PENDING)
    updated = await store.flow_details.update(flow, atoms=[results_only, added, changed, untouched])
    assert await _rows(store, seen) == [
        _flow(book, flow, None, "RUNNING"),
        _atom(book, flow, added, None, "PENDING"),
        _atom(book, flow, changed, None, "RUNNING"),
    ]
    assert all(c["at"] == updated.updated_at for c in (await _changes(store))[seen:])

    seen = await _count(store)
    flow.meta = {"same": "state"}
    await store.flow_details.update(flow)  # same states everywhere
    assert await _rows(store, seen) == []

    flow.state = FlowState.SUCCESS
    await store.flow_details.update(flow, atoms=[])
    assert await _rows(store, seen) == [_flow(book, flow, "RUNNING", "SUCCESS")]


async def test_destroying_a_logbook_records_it_once(store: Store) -> None:
    flow = flow_with(AtomDetail("a"))
    book = book_with(flow)
    await store.logbooks.save(book)
    seen = await _count(store)
    await store.logbooks.destroy(book.uuid)
    assert await _rows(store, seen) == [("logbook.destroyed", book.uuid, None, None, None, None)]


async def test_clearing_records_every_logbook_destroyed(store: Store) -> None:
    books = [book_with(flow_with(AtomDetail("a")), name=f"b{index}") for index in range(3)]
    for book in books:
        await store.logbooks.save(book)
    seen = await _count(store)
    await store.logbooks.clear()
    rows = await _rows(store, seen)
    # One per logbook; which comes first is the DELETE's order.
    assert sorted(rows, key=lambda row: str(row[1])) == sorted(
        (("logbook.destroyed", book.uuid, None, None, None, None) for book in books), key=lambda row: str(row[1])
    )
    await store.logbooks.clear()  # nothing left: nothing recorded
    assert await _count(store) == seen + 3


async def test_the_changes_of_one_call_share_its_transaction(store: Store) -> None:
    atom = AtomDetail("a")
    flow = flow_with(atom)
    await store.logbooks.save(book_with(flow))
    atom.state = AtomState.RUNNING
    await store.atom_details.update(atom)
    stored = await _changes(store)
    save, update = stored[:-1], stored[-1]
    assert len({c["tx"] for c in save}) == 1
    if store.runner.facts.change_order == "transaction":  # PostgreSQL: the writer's transaction id
        assert save[0]["tx"] is not None
        assert update["tx"] is not None
        assert update["tx"] != save[0]["tx"]
    elif store.runner.facts.change_order == "insertion":  # SQLite: ids are commit order
        assert {c["tx"] for c in stored} == {0}
    else:  # MariaDB: numbered later by readers
        assert {c["tx"] for c in stored} == {None}


async def test_concurrent_updates_of_one_atom_record_a_chain_of_states(store: Store) -> None:
    atom = AtomDetail("a")
    await store.logbooks.save(book_with(flow_with(atom)))
    seen = await _count(store)
    states = [AtomState.RUNNING, AtomState.SUCCESS, AtomState.FAILURE, AtomState.REVERTING]

    async def writer(offset: int) -> None:
        for index in range(12):
            state = states[(index + offset) % len(states)]
            await store.atom_details.update(replace(atom, state=state, results=index))

    await asyncio.gather(*(writer(offset) for offset in range(4)))
    changes = await _rows(store, seen)
    final = (await store.atom_details.get(atom.uuid)).state
    # Each change's old state is the row's as the update found it, under its
    # lock; then the changes, whatever their order, form one path from no
    # state to the final one: every state is left as often as it is entered,
    # but the first (once more left) and the last (once more entered).
    assert all(old != new for _, _, _, _, old, new in changes)
    balance: Counter[str | None] = Counter()
    for _, _, _, _, old, new in changes:
        balance[old] += 1
        balance[new] -= 1
    expected: Counter[str | None] = Counter({None: 1})
    expected[None if final is None else final.value] -= 1
    assert {state: count for state, count in balance.items() if count} == {
        state: count for state, count in expected.items() if count
    }


async def _refused(store: Store, call: Any, error: type[Exception]) -> None:
    seen = await _changes(store)
    with pytest.raises(error):
        await call
    assert await _changes(store) == seen


async def test_refused_calls_record_nothing(store: Store) -> None:
    atom, retried = AtomDetail("a"), retry()
    flow = flow_with(atom, retried)
    book = book_with(flow)
    other_flow = flow_with(AtomDetail("elsewhere"), name="other")
    other_book = book_with(other_flow, name="other")
    await store.logbooks.save(book)
    await store.logbooks.save(other_book)

    # Missing records.
    await _refused(store, store.atom_details.update(AtomDetail("ghost", state=AtomState.RUNNING)), NotFound)
    await _refused(store, store.flow_details.update(FlowDetail("ghost", state=FlowState.RUNNING)), NotFound)
    await _refused(store, store.logbooks.destroy(uuid4()), NotFound)
    # An atom updated as another kind: refused after reading the row.
    as_retry = replace(atom, kind=AtomKind.RETRY, state=AtomState.RUNNING)
    await _refused(store, store.atom_details.update(as_retry), InvalidInput)
    # Invalid input, refused before any SQL.
    await _refused(store, store.atom_details.update(replace(atom, state="BOGUS")), InvalidInput)  # type: ignore[arg-type]
    # Conflicts found after some of the call's rows were written: all rolled back.
    flow.state = FlowState.RUNNING
    await _refused(store, store.logbooks.save(book_with(flow, other_flow, name="book")), AlreadyExists)
    moved = replace(other_flow.atoms[0], state=AtomState.RUNNING)
    await _refused(
        store, store.flow_details.update(flow, atoms=[replace(atom, state=AtomState.SUCCESS), moved]), AlreadyExists
    )
    task_as_retry = replace(retried, kind=AtomKind.TASK, state=AtomState.RUNNING)
    await _refused(store, store.flow_details.update(flow, atoms=[task_as_retry]), InvalidInput)

    # Nothing of the refused calls was written either, and the next call records as usual.
    assert (await store.atom_details.get(atom.uuid)).state is None
    assert (await store.flow_details.get(flow.uuid)).state is None
    seen = await _count(store)
    await store.flow_details.update(flow, atoms=[])
    assert await _rows(store, seen) == [_flow(book, flow, None, "RUNNING")]


async def test_a_rolled_back_transaction_records_nothing(store: Store) -> None:
    atom = AtomDetail("a")
    flow = flow_with(atom)
    book = book_with(flow)
    await store.logbooks.save(book)
    seen = await _changes(store)

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with store.transaction():
            atom.state = AtomState.RUNNING
            await store.atom_details.update(atom)
            flow.state = FlowState.RUNNING
            await store.flow_details.update(flow, atoms=[])
            await store.logbooks.save(book_with(name="another"))
            raise Undo
    assert await _changes(store) == seen


async def test_a_committed_transaction_records_its_calls_in_order(store: Store) -> None:
    atom = AtomDetail("a")
    flow = flow_with(atom)
    book = book_with(flow)
    await store.logbooks.save(book)
    seen = await _count(store)
    async with store.transaction():
        atom.state = AtomState.RUNNING
        await store.atom_details.update(atom)
        with pytest.raises(NotFound):  # a refused call inside: its own rows only are absent
            await store.atom_details.update(AtomDetail("ghost", state=AtomState.RUNNING))
        atom.state = AtomState.SUCCESS
        await store.atom_details.update(atom)
    assert await _rows(store, seen) == [
        _atom(book, flow, atom, None, "RUNNING"),
        _atom(book, flow, atom, "RUNNING", "SUCCESS"),
    ]


async def test_the_time_is_the_writes_own(store: Store) -> None:
    atom = AtomDetail("a")
    flow = flow_with(atom)
    await store.logbooks.save(book_with(flow))
    atom.state = AtomState.RUNNING
    before = await store.atom_details.get(atom.uuid)
    updated = await store.atom_details.update(atom)
    at: datetime = (await _changes(store))[-1]["at"]
    assert at == updated.updated_at == (await store.atom_details.get(atom.uuid)).updated_at
    assert before.updated_at is not None
    assert at > before.updated_at
