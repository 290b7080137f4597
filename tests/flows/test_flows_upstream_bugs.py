"""TaskFlow's two retry bugs (reference §3.5), fixed here."""

from __future__ import annotations

from statestore import Store
from statestore.flows import AtomState, RetryAttempt
from tests.support.flow_fixtures import book_with, failure, flow_with, retry


def _history() -> list[RetryAttempt]:
    flaky = failure("flaky failed")
    return [RetryAttempt(1, {"flaky": flaky}), RetryAttempt(2, {"flaky": flaky}), RetryAttempt(3, {})]


def _data(results: list[RetryAttempt]) -> list[object]:
    return [attempt.data for attempt in results]


async def test_retry_history_keeps_its_data_everywhere(store: Store) -> None:
    """TaskFlow's decoder replaced each entry's data by its last failure dict."""
    atom = retry()
    flow = flow_with(atom)
    book = book_with(flow)
    atom.results = _history()
    saved = await store.logbooks.save(book)
    assert _data(saved.flows[0].atoms[0].results) == [1, 2, 3]
    atom.results = [*_history(), RetryAttempt(4, {})]
    assert _data((await store.atom_details.update(atom)).results) == [1, 2, 3, 4]
    assert _data((await store.atom_details.get(atom.uuid)).results) == [1, 2, 3, 4]
    atom.results = [RetryAttempt({"attempt": 5}, {"flaky": failure()})]
    assert _data((await store.flow_details.update(flow)).atoms[0].results) == [{"attempt": 5}]
    loaded = await store.logbooks.get(book.uuid)
    (attempt,) = loaded.flows[0].atoms[0].results
    assert attempt.data == {"attempt": 5}
    assert attempt.failures["flaky"].exception_str == "boom"


async def test_retry_revert_results_and_revert_failure_are_persisted(store: Store) -> None:
    """TaskFlow's RetryDetail.merge dropped revert_results."""
    atom = retry()
    flow = flow_with(atom)
    await store.logbooks.save(book_with(flow))
    atom.state, atom.revert_results = AtomState.REVERTED, {"reverted": 1}
    await store.atom_details.update(atom)
    assert (await store.atom_details.get(atom.uuid)).revert_results == {"reverted": 1}
    atom.revert_results, atom.revert_failure = {"reverted": 2}, failure("revert broke")
    await store.flow_details.update(flow)
    stored = await store.atom_details.get(atom.uuid)
    assert stored.revert_results == {"reverted": 2}
    assert stored.revert_failure is not None
    assert stored.revert_failure.exception_str == "revert broke"
