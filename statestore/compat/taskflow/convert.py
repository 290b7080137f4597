"""TaskFlow's model objects ↔ statestore's flow records.

Identifiers. TaskFlow identifies everything by strings: usually canonical
uuid4s, but any string its backends accept ('42' in its own tests,
'nightly-2024-06-01' in users'). A canonical uuid string is stored as that
uuid; any other string as a uuid derived from it, with the string itself
kept in the record's ``foreign_id`` (:mod:`statestore.flows.foreign_ids`).
Reads hand back exactly the string that was written, which matters: the
engine finds atoms by comparing uuid strings.

Timestamps. TaskFlow's are naive UTC, and a LogBook's ``updated_at`` stays
None until the book is saved again. A book is saved with its own timestamps
(``keep_timestamps``), as TaskFlow's SQL backend keeps them; statestore's
``updated_at`` is never NULL, so "never updated" is stored as
``updated_at == created_at`` and read back as None.

Values. Like TaskFlow's own backends, the objects handed back after an
update hold the caller's values, not copies decoded from JSON: a result
``(1, 3, 5)`` stays a tuple and a Failure keeps its ``exc_info``, so a
resumed engine re-raises the original exception. What is *stored* is JSON.

Failures. A failure's ``exc_args`` are whatever the exception was built
with; an argument JSON cannot represent (an object, a set, bytes) is stored
as its ``repr`` rather than failing the save. Otherwise a task raising, say,
``ValueError(some_object)`` could not be recorded as failed at all, and the
engine would retry the save and give up instead of reverting. Results
remain strict: a task result JSON cannot store exactly is refused.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from taskflow import exceptions as tf_exceptions
from taskflow.persistence import models
from taskflow.types import failure as tf_failure

from statestore.core.types import ensure_json
from statestore.errors import InvalidInput
from statestore.flows import AtomDetail, AtomKind, AtomState, Failure, FlowDetail, FlowState, Intention, LogBook
from statestore.flows.foreign_ids import foreign_identity, foreign_uuid
from statestore.flows.records import RetryAttempt

__all__ = [
    "atom_from_taskflow",
    "atom_to_taskflow",
    "book_from_taskflow",
    "book_to_taskflow",
    "flow_from_taskflow",
    "flow_to_taskflow",
    "identifier_of",
    "lookup_uuid",
    "merged_atom",
    "merged_book",
    "merged_flow",
]


def _identity(value: Any) -> tuple[UUID, str | None]:
    """``(uuid, foreign_id)`` of a TaskFlow object being written
    (StorageFailure for an identifier that is neither a string nor a UUID)."""
    if isinstance(value, UUID):
        return value, None
    if not isinstance(value, str):
        raise tf_exceptions.StorageFailure(f"a TaskFlow uuid must be a string, got {type(value).__name__} {value!r}")
    return foreign_identity(value)


def identifier_of(record: AtomDetail | FlowDetail | LogBook) -> str:
    """The TaskFlow identifier ``record`` was stored under."""
    return str(record.uuid) if record.foreign_id is None else record.foreign_id


def lookup_uuid(value: Any, what: str) -> UUID:
    """The uuid a record TaskFlow names ``value`` is stored under (NotFound
    if ``value`` cannot name one)."""
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise tf_exceptions.NotFound(f"{what} {value!r} not found (not a string)")
    return foreign_uuid(value)


def _aware_utc(moment: datetime | None) -> datetime | None:
    """TaskFlow's naive-UTC timestamp (or an aware one) as an aware UTC one."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _naive_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _storable_arg(value: Any) -> Any:
    try:
        return ensure_json(value, "exc_args")
    except InvalidInput:
        return repr(value)


def _storable_failure(data: dict[str, Any]) -> dict[str, Any]:
    """``Failure.to_dict()`` with arguments JSON cannot hold replaced by their repr."""
    return {
        **data,
        "exc_args": [_storable_arg(arg) for arg in data.get("exc_args") or ()],
        "causes": [_storable_failure(cause) for cause in data.get("causes") or ()],
    }


def _failure(value: Any) -> Failure:
    return Failure.from_dict(_storable_failure(value.to_dict()))


def _failure_in(value: Any) -> Failure | None:
    return None if value is None else _failure(value)


def _failure_out(value: Failure | None) -> Any:
    return None if value is None else tf_failure.Failure.from_dict(value.to_dict())


def atom_from_taskflow(atom: Any) -> AtomDetail:
    """A statestore record of a TaskDetail or RetryDetail.

    A retry's results ``[(data, {atom: Failure})]`` become RetryAttempts,
    whose data statestore keeps intact (TaskFlow's decoder loses it).
    """
    is_retry = isinstance(atom, models.RetryDetail)
    results = atom.results
    if is_retry and results is not None:
        results = [
            RetryAttempt(data, {name: _failure(item) for name, item in (failures or {}).items()})
            for data, failures in results
        ]
    uuid, foreign_id = _identity(atom.uuid)
    return AtomDetail(
        name=atom.name,
        kind=AtomKind.RETRY if is_retry else AtomKind.TASK,
        uuid=uuid,
        foreign_id=foreign_id,
        state=None if atom.state is None else AtomState(atom.state),
        intention=Intention(atom.intention),
        results=results,
        failure=_failure_in(atom.failure),
        revert_results=atom.revert_results,
        revert_failure=_failure_in(atom.revert_failure),
        version=None if atom.version is None else str(atom.version),
        meta=dict(atom.meta or {}),
    )


def atom_to_taskflow(atom: AtomDetail) -> Any:
    """A new TaskDetail or RetryDetail holding ``atom``."""
    result = (models.RetryDetail if atom.kind is AtomKind.RETRY else models.TaskDetail)(atom.name, identifier_of(atom))
    result.state = None if atom.state is None else atom.state.value
    result.intention = atom.intention.value
    if atom.kind is AtomKind.RETRY:
        result.results = [
            (attempt.data, {name: _failure_out(item) for name, item in attempt.failures.items()})
            for attempt in atom.results or []
        ]
    else:
        result.results = atom.results
    result.failure = _failure_out(atom.failure)
    result.revert_results = atom.revert_results
    result.revert_failure = _failure_out(atom.revert_failure)
    result.version = atom.version
    result.meta = atom.meta
    return result


def flow_from_taskflow(flow: Any) -> FlowDetail:
    """A statestore record of a FlowDetail and every atom it holds."""
    uuid, foreign_id = _identity(flow.uuid)
    return FlowDetail(
        name=flow.name,
        uuid=uuid,
        foreign_id=foreign_id,
        state=None if flow.state is None else FlowState(flow.state),
        meta=dict(flow.meta or {}),
        atoms=[atom_from_taskflow(atom) for atom in flow],
    )


def flow_to_taskflow(flow: FlowDetail) -> Any:
    """A new TaskFlow FlowDetail holding ``flow`` and its atoms."""
    result = models.FlowDetail(flow.name, identifier_of(flow))
    result.state = None if flow.state is None else flow.state.value
    result.meta = flow.meta
    for atom in flow.atoms:
        result.add(atom_to_taskflow(atom))
    return result


def merged_atom(stored: AtomDetail, given: Any) -> Any:
    """What an atom update hands back: the stored atom merged with the
    caller's, as TaskFlow's SQL backend returns it: the caller's values
    (its tuples, its Failures with their exc_info) in a new object."""
    result = atom_to_taskflow(stored)
    if type(result) is type(given):
        result.merge(given)
    return result


def merged_flow(stored: FlowDetail, given: Any) -> Any:
    """What a flow update hands back: every stored atom, the caller's own
    atom objects where it holds them, and the caller's state and meta.

    The engine keeps using atom objects it just added to its flow detail
    (``inject`` does), so a copy in their place would silently drop its
    later updates; and the values it holds stay its own, not their JSON.
    """
    result = models.FlowDetail(stored.name, identifier_of(stored))
    result.state = None if stored.state is None else stored.state.value
    result.meta = stored.meta
    result.merge(given)
    for atom in stored.atoms:
        mine = given.find(identifier_of(atom))
        result.add(mine if mine is not None else atom_to_taskflow(atom))
    return result


def book_from_taskflow(book: Any) -> LogBook:
    """A statestore record of a LogBook and everything it holds."""
    uuid, foreign_id = _identity(book.uuid)
    created_at = _aware_utc(book.created_at)
    return LogBook(
        name=book.name,
        uuid=uuid,
        foreign_id=foreign_id,
        created_at=created_at,
        # TaskFlow's "never updated" is statestore's updated_at == created_at.
        updated_at=_aware_utc(book.updated_at) or created_at,
        meta=dict(book.meta or {}),
        flows=[flow_from_taskflow(flow) for flow in book],
    )


def book_to_taskflow(book: LogBook) -> Any:
    """A new TaskFlow LogBook holding ``book``."""
    result = models.LogBook(book.name, uuid=identifier_of(book))
    result.meta = book.meta
    for flow in book.flows:
        result.add(flow_to_taskflow(flow))
    # After add(), which stamps updated_at with the current time. TaskFlow's
    # books have no updated_at until they are saved again.
    result.created_at = _naive_utc(book.created_at)
    result.updated_at = None if book.updated_at == book.created_at else _naive_utc(book.updated_at)
    return result


def merged_book(stored: LogBook, given: Any) -> Any:
    """What a save hands back: the stored book with every flow detail, the
    caller's own meta and timestamps, and its flow details merged as by a
    flow update where it gave them."""
    result = book_to_taskflow(replace(stored, flows=[]))
    for flow in stored.flows:
        mine = given.find(identifier_of(flow))
        result.add(flow_to_taskflow(flow) if mine is None else merged_flow(flow, mine))
    result.merge(given)  # after add(), which stamps updated_at with the current time
    return result
