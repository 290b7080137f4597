"""Merge rules, lazy and full loads, cascades, transitions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from statestore import InvalidInput, NotFound, Store
from statestore.flows import AtomDetail, AtomKind, AtomState, FlowDetail, FlowState, Intention, LogBook, is_allowed
from statestore.schema.metadata import AtomDetailRow, FlowDetailRow, LogBookRow
from tests.support.flow_fixtures import book_with, failure, flow_with, retry


async def _count(store: Store, model: type) -> int:
    table = model.__table__  # type: ignore[attr-defined]
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


async def test_names_never_change_by_a_merge(store: Store) -> None:
    atom = AtomDetail("task")
    flow = flow_with(atom)
    book = book_with(flow, name="original")
    await store.logbooks.save(book)
    book.name, flow.name, atom.name = "renamed", "renamed", "renamed"
    saved = await store.logbooks.save(book)
    assert (saved.name, saved.flows[0].name, saved.flows[0].atoms[0].name) == ("original", "flow", "task")
    assert (await store.atom_details.update(atom)).name == "task"
    assert (await store.flow_details.update(flow)).name == "flow"


async def test_mutable_fields_are_replaced(store: Store) -> None:
    atom = AtomDetail("task", meta={"a": 1}, version="1.0", results={"old": True})
    await store.logbooks.save(book_with(flow_with(atom)))
    atom.state, atom.intention, atom.version = AtomState.REVERTED, Intention.REVERT, "2.0"
    atom.meta, atom.results, atom.revert_results = {"b": 2}, [1, 2], {"undone": True}
    atom.failure = failure()
    stored = await store.atom_details.update(atom)
    reloaded = await store.atom_details.get(atom.uuid)
    for record in (stored, reloaded):
        assert record.state is AtomState.REVERTED
        assert record.intention is Intention.REVERT
        assert record.version == "2.0"
        assert record.meta == {"b": 2}
        assert record.results == [1, 2]
        assert record.revert_results == {"undone": True}
        assert record.failure == atom.failure


async def test_saving_another_object_with_the_same_uuid_keeps_stored_children(store: Store) -> None:
    first = book_with(flow_with(AtomDetail("a1"), name="f1"))
    await store.logbooks.save(first)
    second = LogBook("book", uuid=first.uuid, flows=[flow_with(AtomDetail("a2"), name="f2")])
    merged = await store.logbooks.save(second)
    assert [flow.name for flow in merged.flows] == ["f1", "f2"]
    assert [[atom.name for atom in flow.atoms] for flow in merged.flows] == [["a1"], ["a2"]]


async def test_flow_update_returns_every_atom_even_those_not_given(store: Store) -> None:
    atoms = [AtomDetail(f"t{index}") for index in range(5)]
    flow = flow_with(*atoms)
    await store.logbooks.save(book_with(flow))
    flow.state = FlowState.RUNNING
    atoms[2].state = AtomState.RUNNING
    updated = await store.flow_details.update(flow, atoms=[atoms[2]])
    assert updated.state is FlowState.RUNNING
    assert [atom.name for atom in updated.atoms] == [f"t{index}" for index in range(5)]
    assert updated.atom("t2").state is AtomState.RUNNING
    assert updated == await store.flow_details.get(flow.uuid)


async def test_lazy_and_full_loads(store: Store) -> None:
    book = book_with(flow_with(AtomDetail("a"), AtomDetail("b")), flow_with(name="empty"))
    await store.logbooks.save(book)
    lazy = await store.logbooks.get(book.uuid, lazy=True)
    full = await store.logbooks.get(book.uuid)
    assert lazy.flows == []
    assert [len(flow.atoms) for flow in full.flows] == [2, 0]
    assert (await store.flow_details.get(book.flows[0].uuid, lazy=True)).atoms == []


async def test_an_atom_cannot_change_kind(store: Store) -> None:
    atom = AtomDetail("task")
    await store.logbooks.save(book_with(flow_with(atom)))
    with pytest.raises(InvalidInput, match="stored as a task"):
        await store.atom_details.update(AtomDetail("task", uuid=atom.uuid, kind=AtomKind.RETRY))


async def test_failure_with_causes_round_trips(store: Store) -> None:
    atom = AtomDetail("task", failure=failure("outer"))
    await store.logbooks.save(book_with(flow_with(atom)))
    stored = (await store.atom_details.get(atom.uuid)).failure
    assert stored is not None
    assert atom.failure is not None
    assert stored.to_dict() == atom.failure.to_dict()
    assert stored.causes[0].exception_str == "'root cause'"
    assert stored.check("KeyError", "RuntimeError") == "RuntimeError"


async def test_destroy_cascades_and_leaves_no_orphans(store: Store) -> None:
    atom = AtomDetail("a")
    flow = flow_with(atom)
    book = book_with(flow)
    keep = book_with(flow_with(AtomDetail("other")), name="keep")
    await store.logbooks.save(book)
    await store.logbooks.save(keep)
    await store.logbooks.destroy(book.uuid)
    with pytest.raises(NotFound):
        await store.flow_details.get(flow.uuid)
    with pytest.raises(NotFound):
        await store.atom_details.get(atom.uuid)
    assert (await _count(store, FlowDetailRow), await _count(store, AtomDetailRow)) == (1, 1)
    report = await store.check()
    assert report.ok, report.problems


async def test_clear_empties_every_table(store: Store) -> None:
    for index in range(3):
        await store.logbooks.save(book_with(flow_with(AtomDetail("a")), name=f"b{index}"))
    await store.logbooks.clear()
    assert [await _count(store, model) for model in (LogBookRow, FlowDetailRow, AtomDetailRow)] == [0, 0, 0]


async def test_listing_an_unknown_parent_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.flow_details.page(LogBook("x").uuid)
    with pytest.raises(NotFound):
        await store.atom_details.page(FlowDetail("x").uuid)


def test_transitions_are_taskflows() -> None:
    assert is_allowed("flow", "PENDING", "RUNNING")
    assert not is_allowed("flow", "RUNNING", "RUNNING")
    assert not is_allowed("flow", "PENDING", "SUCCESS")
    assert is_allowed("task", "RUNNING", "SUCCESS")
    assert is_allowed("task", "REVERTED", "PENDING")
    assert not is_allowed("task", "SUCCESS", "RETRYING")
    assert is_allowed("retry", "SUCCESS", "RETRYING")
    assert is_allowed("retry", "RETRYING", "RUNNING")
    assert is_allowed(AtomKind.RETRY, "RUNNING", "FAILURE")


def test_retrying_is_for_retries_only() -> None:
    from statestore.flows.fields import atom_values

    assert (
        atom_values(
            retry(),
        )["kind"]
        == "retry"
    )
    with pytest.raises(InvalidInput, match="RETRYING"):
        atom_values(AtomDetail("t", state=AtomState.RETRYING))
