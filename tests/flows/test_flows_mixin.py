"""TaskFlow's PersistenceTestMixin (18 scenarios), restated on the native API."""

from __future__ import annotations

from datetime import UTC
from uuid import uuid4

import pytest

from statestore import NotFound, Store
from statestore.flows import AtomDetail, AtomKind, AtomState, FlowDetail, Intention, LogBook, RetryAttempt
from tests.support.flow_fixtures import book_with, failure, flow_with, retry


async def test_task_detail_update_not_existing(store: Store) -> None:
    flow = flow_with(AtomDetail("t1"))
    await store.logbooks.save(book_with(flow))
    flow.atoms.append(AtomDetail("t2"))
    await store.flow_details.update(flow)
    stored = await store.flow_details.get(flow.uuid)
    assert [atom.name for atom in stored.atoms] == ["t1", "t2"]


async def test_flow_detail_update_not_existing(store: Store) -> None:
    book = book_with(flow_with())
    await store.logbooks.save(book)
    book.flows.append(FlowDetail("second"))
    await store.logbooks.save(book)
    stored = await store.logbooks.get(book.uuid)
    assert [flow.name for flow in stored.flows] == ["flow", "second"]


async def test_logbook_save_retrieve_many(store: Store) -> None:
    books = [LogBook(f"book-{index}") for index in range(10)]
    with pytest.raises(NotFound):
        await store.logbooks.get(books[0].uuid)
    for book in books:
        await store.logbooks.save(book)
    listed = [book.uuid async for book in store.logbooks.iterate()]
    assert listed == [book.uuid for book in books]


async def test_logbook_save_retrieve(store: Store) -> None:
    book = LogBook("lb-1", meta={"1": 2})
    with pytest.raises(NotFound):
        await store.logbooks.get(book.uuid)
    await store.logbooks.save(book)
    stored = await store.logbooks.get(book.uuid)
    assert stored.name == "lb-1"
    assert stored.meta == {"1": 2}
    assert stored.flows == []
    assert stored.created_at is not None
    assert stored.created_at.tzinfo is UTC
    assert stored.updated_at == stored.created_at


async def test_flow_detail_save(store: Store) -> None:
    flow = flow_with()
    with pytest.raises(NotFound):
        await store.flow_details.update(flow)
    await store.logbooks.save(book_with(flow))
    assert (await store.flow_details.update(flow)).uuid == flow.uuid


async def test_flow_detail_meta_update(store: Store) -> None:
    flow = flow_with()
    await store.logbooks.save(book_with(flow))
    flow.meta = {"test": 42}
    await store.flow_details.update(flow)
    assert (await store.flow_details.get(flow.uuid)).meta == {"test": 42}


async def test_flow_detail_lazy_fetch(store: Store) -> None:
    flow = flow_with(AtomDetail("t1"))
    await store.logbooks.save(book_with(flow))
    assert (await store.flow_details.get(flow.uuid, lazy=True)).atoms == []
    assert len((await store.flow_details.get(flow.uuid)).atoms) == 1


async def test_task_detail_save(store: Store) -> None:
    atom = AtomDetail("t1")
    flow = flow_with(atom)
    with pytest.raises(NotFound):
        await store.flow_details.update(flow)
    with pytest.raises(NotFound):
        await store.atom_details.update(atom)
    await store.logbooks.save(book_with(flow))
    assert (await store.atom_details.update(atom)).uuid == atom.uuid


async def test_task_detail_meta_update(store: Store) -> None:
    atom = AtomDetail("t1")
    await store.logbooks.save(book_with(flow_with(atom)))
    atom.meta = {"test": 42}
    await store.atom_details.update(atom)
    stored = await store.atom_details.get(atom.uuid)
    assert stored.meta == {"test": 42}
    assert stored.kind is AtomKind.TASK


async def test_task_detail_with_failure(store: Store) -> None:
    atom = AtomDetail("t1", failure=failure("Woot!"))
    await store.logbooks.save(book_with(flow_with(atom)))
    stored = await store.atom_details.get(atom.uuid)
    assert stored.failure is not None
    assert stored.failure.exception_str == "Woot!"
    assert stored.failure.check("RuntimeError") == "RuntimeError"
    assert stored.failure.traceback_str == "Traceback (most recent call last): ..."


async def test_logbook_merge_flow_detail(store: Store) -> None:
    uuid = uuid4()
    await store.logbooks.save(LogBook("lb", uuid=uuid, flows=[FlowDetail("f1")]))
    await store.logbooks.save(LogBook("lb", uuid=uuid, flows=[FlowDetail("f2")]))
    assert len((await store.logbooks.get(uuid)).flows) == 2


async def test_logbook_add_flow_detail(store: Store) -> None:
    book = book_with(FlowDetail("flow-name"))
    await store.logbooks.save(book)
    assert (await store.logbooks.get(book.uuid)).flows[0].name == "flow-name"


async def test_logbook_lazy_fetch(store: Store) -> None:
    book = book_with(flow_with())
    await store.logbooks.save(book)
    assert (await store.logbooks.get(book.uuid, lazy=True)).flows == []


async def test_logbook_add_task_detail(store: Store) -> None:
    atom = AtomDetail("atom-name", version="4.2")
    book = book_with(flow_with(atom))
    await store.logbooks.save(book)
    stored = (await store.logbooks.get(book.uuid)).flows[0].atoms[0]
    assert (stored.name, stored.version, stored.intention) == ("atom-name", "4.2", Intention.EXECUTE)


async def test_logbook_delete(store: Store) -> None:
    book = LogBook("lb")
    with pytest.raises(NotFound):
        await store.logbooks.destroy(book.uuid)
    await store.logbooks.save(book)
    await store.logbooks.destroy(book.uuid)
    with pytest.raises(NotFound):
        await store.logbooks.destroy(book.uuid)


async def test_task_detail_retry_type(store: Store) -> None:
    atom = AtomDetail("r", kind=AtomKind.RETRY, intention=Intention.REVERT)
    await store.logbooks.save(book_with(flow_with(atom)))
    stored = await store.atom_details.get(atom.uuid)
    assert (stored.kind, stored.intention) == (AtomKind.RETRY, Intention.REVERT)


async def test_retry_detail_save_with_task_failure(store: Store) -> None:
    atom = retry()
    atom.results = [RetryAttempt("data", {"flaky": failure("Woot!")})]
    await store.logbooks.save(book_with(flow_with(atom)))
    stored = await store.atom_details.get(atom.uuid)
    (attempt,) = stored.results
    assert attempt.failures["flaky"].exception_str == "Woot!"
    assert attempt.data == "data"  # TaskFlow's own test never checks this


async def test_retry_detail_save_intention(store: Store) -> None:
    atom = retry()
    await store.logbooks.save(book_with(flow_with(atom)))
    atom.intention, atom.state = Intention.REVERT, AtomState.REVERTING
    await store.atom_details.update(atom)
    stored = await store.atom_details.get(atom.uuid)
    assert (stored.intention, stored.state) == (Intention.REVERT, AtomState.REVERTING)
