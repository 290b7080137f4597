"""Bad input: refused before any SQL, identically on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from statestore import InvalidInput, NotFound, Store
from statestore.flows import AtomDetail, Failure, LogBook, RetryAttempt
from tests.support.flow_fixtures import book_with, flow_with, retry

UNREPRESENTABLE: list[Any] = [
    {1, 2},
    b"bytes",
    datetime(2026, 1, 1, tzinfo=UTC),
    object(),
    float("nan"),
    float("inf"),
    {1: "int key"},
]


@pytest.mark.parametrize("value", UNREPRESENTABLE, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize("field", ["results", "meta", "revert_results"])
async def test_unrepresentable_atom_values_are_refused(store: Store, field: str, value: Any) -> None:
    atom = AtomDetail("the-atom", results={"kept": True})
    await store.logbooks.save(book_with(flow_with(atom)))
    setattr(atom, field, {"nested": [value]} if field == "meta" else [value])
    with pytest.raises(InvalidInput, match=rf"atom 'the-atom'\.{field}"):
        await store.atom_details.update(atom)
    stored = await store.atom_details.get(atom.uuid)
    assert stored.results == {"kept": True}
    assert stored.meta == {}


async def test_unrepresentable_retry_data_and_failure_args_are_refused(store: Store) -> None:
    atom = retry("the-retry")
    await store.logbooks.save(book_with(flow_with(atom)))
    atom.results = [RetryAttempt({1, 2})]
    with pytest.raises(InvalidInput, match=r"atom 'the-retry'\.results\[0\]\.data"):
        await store.atom_details.update(atom)
    bad_failure = Failure("boom", ("RuntimeError",), exc_args=(b"raw",))
    atom.results = [RetryAttempt(1, {"t": bad_failure})]
    with pytest.raises(InvalidInput, match="failures"):
        await store.atom_details.update(atom)
    task = AtomDetail("the-task", failure=bad_failure)
    with pytest.raises(InvalidInput, match=r"atom 'the-task'\.failure"):
        await store.logbooks.save(book_with(flow_with(task)))
    assert (await store.atom_details.get(atom.uuid)).results is None


async def test_one_bad_atom_fails_the_whole_save(store: Store) -> None:
    book = book_with(flow_with(AtomDetail("good"), AtomDetail("bad", results={"when": datetime.now(UTC)})))
    with pytest.raises(InvalidInput, match="'bad'"):
        await store.logbooks.save(book)
    with pytest.raises(NotFound):
        await store.logbooks.get(book.uuid)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogBook("x" * 256),
        lambda: book_with(flow_with(name="x" * 256)),
        lambda: book_with(flow_with(AtomDetail("x" * 256))),
        lambda: book_with(flow_with(AtomDetail("a", version="1" * 65))),
        lambda: book_with(flow_with(AtomDetail("a", state="BOGUS"))),  # type: ignore[arg-type]
        lambda: book_with(flow_with(AtomDetail("a", intention="NEVER"))),  # type: ignore[arg-type]
        lambda: book_with(flow_with(AtomDetail("a", kind="macro"))),  # type: ignore[arg-type]
        lambda: LogBook("b", meta=["not", "a", "dict"]),  # type: ignore[arg-type]
        lambda: LogBook("b", uuid="not-a-uuid"),  # type: ignore[arg-type]
    ],
    ids=["book-name", "flow-name", "atom-name", "version", "state", "intention", "kind", "meta", "uuid"],
)
async def test_invalid_fields_are_refused_on_every_backend(store: Store, make: Any) -> None:
    book = make()
    with pytest.raises(InvalidInput):
        await store.logbooks.save(book)
    assert [stored async for stored in store.logbooks.iterate()] == []


async def test_a_tuple_is_stored_as_a_list(store: Store) -> None:
    atom = AtomDetail("t", results=(1, (2, 3)))
    await store.logbooks.save(book_with(flow_with(atom)))
    assert (await store.atom_details.get(atom.uuid)).results == [1, [2, 3]]


async def test_a_bad_page_size_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.logbooks.page(limit=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda store: store.logbooks.save(LogBook("book", flows=[5])), "expected a FlowDetail, got int"),
        (lambda store: store.logbooks.save(5), "expected a LogBook, got int"),
        (lambda store: store.logbooks.save(LogBook("book", flows=5)), "expected a list of flow details"),
        (lambda store: store.flow_details.update(flow_with(5)), "expected an AtomDetail, got int"),
        (lambda store: store.atom_details.update("atom"), "expected an AtomDetail, got str"),
    ],
    ids=["int as flow", "int as book", "int as flows", "int as atom", "str as atom"],
)
async def test_a_non_record_in_a_records_place_is_invalid_input(store: Store, call: Any, message: str) -> None:
    """Not an AttributeError: InvalidInput naming what was expected, and the next call works."""
    with pytest.raises(InvalidInput, match=message):
        await call(store)
    await store.logbooks.save(book_with(flow_with(AtomDetail("fine"))))
