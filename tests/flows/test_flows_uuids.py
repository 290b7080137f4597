"""Uuid arguments of the flow repositories: a UUID or its string, checked before any SQL.

A malformed uuid must be InvalidInput on every backend (not a driver error
on one, NotFound on another), must reach no SQL, and must leave the store —
and an open transaction — usable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from statestore import InvalidInput, NotFound, Store
from statestore.flows import AtomDetail, FlowDetail, LogBook
from tests.support.flow_fixtures import book_with, flow_with
from tests.support.statements import statements


@dataclass(frozen=True)
class Tree:
    """Two logbooks; the first has two flow details, the first of which has two atoms."""

    books: tuple[LogBook, LogBook]

    @property
    def book(self) -> LogBook:
        return self.books[0]

    @property
    def flow(self) -> FlowDetail:
        return self.book.flows[0]

    @property
    def atom(self) -> AtomDetail:
        return self.flow.atoms[0]


@pytest.fixture
async def tree(store: Store) -> Tree:
    first = book_with(flow_with(AtomDetail("a1"), AtomDetail("a2"), name="f1"), flow_with(name="f2"), name="b1")
    second = book_with(name="b2")
    await store.logbooks.save(first)
    await store.logbooks.save(second)
    return Tree((first, second))


async def _all(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@dataclass(frozen=True)
class Call:
    """A repository call whose one uuid argument is ``value``."""

    run: Callable[[Store, Tree, Any], Awaitable[Any]]
    valid: Callable[[Tree], UUID]
    """The stored object's uuid this call is made with."""


READS: dict[str, Call] = {
    "logbooks.get": Call(lambda s, t, u: s.logbooks.get(u), lambda t: t.book.uuid),
    "logbooks.get-lazy": Call(lambda s, t, u: s.logbooks.get(u, lazy=True), lambda t: t.book.uuid),
    "logbooks.page-after": Call(lambda s, t, u: s.logbooks.page(after=u), lambda t: t.book.uuid),
    "logbooks.page-after-full": Call(lambda s, t, u: s.logbooks.page(after=u, lazy=False), lambda t: t.book.uuid),
    "flow_details.get": Call(lambda s, t, u: s.flow_details.get(u), lambda t: t.flow.uuid),
    "flow_details.get-lazy": Call(lambda s, t, u: s.flow_details.get(u, lazy=True), lambda t: t.flow.uuid),
    "flow_details.page-book": Call(lambda s, t, u: s.flow_details.page(u), lambda t: t.book.uuid),
    "flow_details.page-after": Call(
        lambda s, t, u: s.flow_details.page(t.book.uuid, after=u, lazy=False), lambda t: t.flow.uuid
    ),
    "flow_details.iterate": Call(lambda s, t, u: _all(s.flow_details.iterate(u)), lambda t: t.book.uuid),
    "atom_details.get": Call(lambda s, t, u: s.atom_details.get(u), lambda t: t.atom.uuid),
    "atom_details.page-flow": Call(lambda s, t, u: s.atom_details.page(u), lambda t: t.flow.uuid),
    "atom_details.page-after": Call(lambda s, t, u: s.atom_details.page(t.flow.uuid, after=u), lambda t: t.atom.uuid),
    "atom_details.iterate": Call(lambda s, t, u: _all(s.atom_details.iterate(u)), lambda t: t.flow.uuid),
}

MALFORMED: list[Any] = [
    "not-a-uuid",
    "",
    "0" * 31,
    42,
]


@pytest.mark.parametrize("name", READS)
async def test_the_string_form_reads_like_the_uuid(store: Store, tree: Tree, name: str) -> None:
    call = READS[name]
    expected = await call.run(store, tree, call.valid(tree))
    assert expected, "the call must find something for the comparison to mean anything"
    assert await call.run(store, tree, str(call.valid(tree))) == expected
    assert await call.run(store, tree, str(call.valid(tree)).upper()) == expected


@pytest.mark.parametrize("value", MALFORMED, ids=repr)
@pytest.mark.parametrize("name", READS)
async def test_a_malformed_uuid_is_refused_before_any_sql(store: Store, tree: Tree, name: str, value: Any) -> None:
    call = READS[name]
    with statements(store) as seen, pytest.raises(InvalidInput):
        await call.run(store, tree, value)
    assert seen == []
    assert await call.run(store, tree, call.valid(tree))


@pytest.mark.parametrize("name", READS)
async def test_a_malformed_uuid_leaves_the_transaction_usable(store: Store, tree: Tree, name: str) -> None:
    call = READS[name]
    async with store.transaction():
        with pytest.raises(InvalidInput):
            await call.run(store, tree, "not-a-uuid")
        assert await call.run(store, tree, str(call.valid(tree)))
        await store.logbooks.save(LogBook("written-after-the-error"))
    assert [book.name for book in await store.logbooks.page()][-1] == "written-after-the-error"


async def test_destroy_takes_the_string_form(store: Store, tree: Tree) -> None:
    await store.logbooks.destroy(str(tree.book.uuid))
    with pytest.raises(NotFound):
        await store.logbooks.get(tree.book.uuid)
    with pytest.raises(NotFound):
        await store.logbooks.destroy(str(tree.book.uuid))
    assert await store.logbooks.get(str(tree.books[1].uuid))


@pytest.mark.parametrize("value", MALFORMED, ids=repr)
async def test_destroy_refuses_a_malformed_uuid(store: Store, tree: Tree, value: Any) -> None:
    with statements(store) as seen, pytest.raises(InvalidInput):
        await store.logbooks.destroy(value)
    assert seen == []
    assert len(await store.logbooks.page()) == 2
    await store.logbooks.destroy(tree.book.uuid)
    assert [book.uuid for book in await store.logbooks.page()] == [tree.books[1].uuid]


async def test_records_may_carry_the_string_form(store: Store, tree: Tree) -> None:
    atom = AtomDetail("a1", uuid=str(tree.atom.uuid), results={"n": 1})  # type: ignore[arg-type]
    assert (await store.atom_details.update(atom)).uuid == tree.atom.uuid
    flow = FlowDetail("f1", uuid=str(tree.flow.uuid), meta={"m": 2})  # type: ignore[arg-type]
    updated = await store.flow_details.update(flow, atoms=[])
    assert (updated.uuid, updated.meta) == (tree.flow.uuid, {"m": 2})
    assert updated.atom("a1").results == {"n": 1}
    saved = await store.logbooks.save(LogBook("b1", uuid=str(tree.book.uuid), meta={"k": 3}))  # type: ignore[arg-type]
    assert (saved.uuid, saved.meta, len(saved.flows)) == (tree.book.uuid, {"k": 3}, 2)


@pytest.mark.parametrize("value", ["not-a-uuid", ""])
async def test_records_with_a_malformed_uuid_are_refused(store: Store, tree: Tree, value: str) -> None:
    with statements(store) as seen:
        with pytest.raises(InvalidInput):
            await store.atom_details.update(AtomDetail("a1", uuid=value))  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            await store.flow_details.update(FlowDetail("f1", uuid=value))  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            await store.logbooks.save(LogBook("b1", uuid=value))  # type: ignore[arg-type]
    assert seen == []
    assert (await store.atom_details.get(tree.atom.uuid)).results is None
