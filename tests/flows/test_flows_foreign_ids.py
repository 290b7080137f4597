"""Foreign identifiers and a logbook's own timestamps, through the flow API.

Another system's identifier (TaskFlow's ``'42'``) is stored in
``foreign_id`` beside the uuid derived from it, on every backend alike;
what does not fit is refused before any SQL, and nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statestore import InvalidInput, Store
from statestore.flows import AtomDetail, FlowDetail, LogBook
from statestore.flows.foreign_ids import FOREIGN_ID_LENGTH, foreign_identity, foreign_uuid
from tests.support.statements import statements


def _named(identifier: str) -> tuple[LogBook, FlowDetail, AtomDetail]:
    uuids = [foreign_identity(f"{kind}:{identifier}") for kind in ("book", "flow", "atom")]
    atom = AtomDetail("task", uuid=uuids[2][0], foreign_id=uuids[2][1])
    flow = FlowDetail("flow", uuid=uuids[1][0], foreign_id=uuids[1][1], atoms=[atom])
    return LogBook("book", uuid=uuids[0][0], foreign_id=uuids[0][1], flows=[flow]), flow, atom


def test_the_rule_maps_canonical_uuids_to_themselves() -> None:
    canonical = uuid4()
    assert foreign_identity(str(canonical)) == (canonical, None)
    upper = str(canonical).upper()
    assert foreign_identity(upper) == (foreign_uuid(upper), upper)
    assert foreign_uuid(upper) != canonical
    assert foreign_uuid("42") == foreign_uuid("42") != foreign_uuid("43")


async def test_foreign_ids_are_stored_and_read_back(store: Store) -> None:
    book, flow, atom = _named("nightly-2024-06-01")
    saved = await store.logbooks.save(book)
    assert saved.foreign_id == "book:nightly-2024-06-01"
    assert saved.flows[0].foreign_id == "flow:nightly-2024-06-01"
    assert saved.flows[0].atoms[0].foreign_id == "atom:nightly-2024-06-01"
    assert (await store.logbooks.get(book.uuid)).foreign_id == book.foreign_id
    assert (await store.flow_details.get(flow.uuid)).foreign_id == flow.foreign_id
    assert (await store.atom_details.get(atom.uuid)).foreign_id == atom.foreign_id
    assert [b.foreign_id for b in await store.logbooks.page()] == [book.foreign_id]
    # Updates neither need nor change it.
    atom.state = None
    atom.meta = {"k": 1}
    assert (await store.atom_details.update(atom)).foreign_id == atom.foreign_id
    assert (await store.atom_details.get(atom.uuid)).meta == {"k": 1}


@pytest.mark.parametrize(
    ("foreign_id", "uuid", "message"),
    [
        ("42", uuid4(), "is not the uuid of foreign id '42'"),
        ("nul\x00", None, "foreign_id"),
        ("x" * (FOREIGN_ID_LENGTH + 1), None, f"at most {FOREIGN_ID_LENGTH}"),
        (42, None, "foreign_id: expected a string"),
    ],
)
async def test_bad_foreign_ids_are_refused_before_any_sql(
    store: Store, foreign_id: object, uuid: object, message: str
) -> None:
    derived = uuid if uuid is not None else foreign_uuid(foreign_id) if isinstance(foreign_id, str) else uuid4()
    for record in (
        LogBook("book", uuid=derived, foreign_id=foreign_id),  # type: ignore[arg-type]
        LogBook("book", flows=[FlowDetail("flow", uuid=derived, foreign_id=foreign_id)]),  # type: ignore[arg-type]
        LogBook(
            "book",
            flows=[FlowDetail("flow", atoms=[AtomDetail("a", uuid=derived, foreign_id=foreign_id)])],  # type: ignore[arg-type]
        ),
    ):
        with statements(store) as seen, pytest.raises(InvalidInput, match=message):
            await store.logbooks.save(record)
        assert seen == []
    assert await store.logbooks.page() == []


async def test_a_book_keeps_its_own_timestamps_when_asked(store: Store) -> None:
    created = datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=UTC)
    updated = created + timedelta(days=1)
    book = LogBook("book", created_at=created, updated_at=updated)
    saved = await store.logbooks.save(book, keep_timestamps=True)
    assert (saved.created_at, saved.updated_at) == (created, updated)
    # Saved again with other timestamps: they replace the stored ones.
    book.created_at, book.updated_at = created - timedelta(days=1), created
    saved = await store.logbooks.save(book, keep_timestamps=True)
    assert (saved.created_at, saved.updated_at) == (created - timedelta(days=1), created)
    # Without keep_timestamps the store's own apply, as before.
    saved = await store.logbooks.save(book)
    assert saved.created_at == created - timedelta(days=1)
    assert saved.updated_at > datetime.now(UTC) - timedelta(minutes=5)


async def test_kept_timestamps_are_checked_before_any_sql(store: Store) -> None:
    naive = LogBook("book", created_at=datetime(2001, 2, 3))
    with statements(store) as seen, pytest.raises(InvalidInput, match="created_at: naive datetime"):
        await store.logbooks.save(naive, keep_timestamps=True)
    with statements(store) as seen, pytest.raises(InvalidInput, match="keep_timestamps: expected a bool"):
        await store.logbooks.save(LogBook("book"), keep_timestamps="yes")  # type: ignore[arg-type]
    assert seen == []
    assert await store.logbooks.page() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(identifier=st.text(max_size=80))
async def test_any_text_round_trips_or_is_refused_alike(store: Store, identifier: str) -> None:
    """Fuzzed identifiers: stored and read back exactly, or refused as
    InvalidInput (a NUL or a lone surrogate) with nothing written."""
    book, _, atom = _named(identifier)
    try:
        await store.logbooks.save(book)
    except InvalidInput:
        assert "\x00" in identifier or any(0xD800 <= ord(c) <= 0xDFFF for c in identifier)
        assert await store.logbooks.page() == []
        return
    assert (await store.atom_details.get(atom.uuid)).foreign_id == atom.foreign_id
    await store.logbooks.destroy(book.uuid)
