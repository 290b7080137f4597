"""TaskFlow's model objects ↔ statestore's flow records.

Identifiers. TaskFlow identifies everything by uuid *strings* (oslo's
``generate_uuid``: canonical lowercase uuid4); statestore by
:class:`uuid.UUID`. A string is converted only if it is a UUID in canonical
form, because the engine finds atoms by comparing uuid strings: a string we
would hand back differently spelled (``ABC…`` → ``abc…``) would silently
stop matching. Anything else is refused with a StorageFailure naming the
value, rather than mapped through ``uuid5`` to a second identity that the
database would know and TaskFlow would not. Lookups (``get_*``,
``destroy_logbook``) of a string that is not a UUID raise NotFound: no such
record can exist.

Timestamps. TaskFlow's are naive UTC, and a LogBook's ``updated_at`` stays
None until the book is written again — TaskFlow's SQL backend gets that from
a column with no default and an ``onupdate``; statestore sets both on insert,
so ``updated_at == created_at`` reads as "never updated".

Failures. A failure's ``exc_args`` are whatever the exception was built
with; an argument JSON cannot represent (an object, a set, bytes) is stored
as its ``repr`` rather than failing the save. Otherwise a task raising, say,
``ValueError(some_object)`` could not be recorded as failed at all, and the
engine would retry the save and give up instead of reverting. Results
remain strict: a task result JSON cannot store exactly is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from taskflow import exceptions as tf_exceptions
from taskflow.persistence import models
from taskflow.types import failure as tf_failure

from statestore.core.types import ensure_json
from statestore.errors import InvalidInput
from statestore.flows import AtomDetail, AtomKind, AtomState, Failure, FlowDetail, FlowState, Intention, LogBook
from statestore.flows.records import RetryAttempt

__all__ = [
    "atom_from_taskflow",
    "atom_to_taskflow",
    "book_from_taskflow",
    "book_to_taskflow",
    "flow_from_taskflow",
    "flow_to_taskflow",
    "lookup_uuid",
    "uuid_of",
]


def uuid_of(value: Any) -> UUID:
    """The UUID of a TaskFlow object being written (StorageFailure unless
    ``value`` is a UUID or a UUID string in canonical form)."""
    if isinstance(value, UUID):
        return value
    try:
        parsed = UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value:
        raise tf_exceptions.StorageFailure(
            f"statestore stores TaskFlow uuids as UUIDs; {value!r} is not one in canonical form "
            "(lowercase 8-4-4-4-12 hex, as TaskFlow generates)"
        )
    return parsed


def lookup_uuid(value: Any, what: str) -> UUID:
    """The UUID to look ``value`` up by (NotFound if it cannot be one)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise tf_exceptions.NotFound(f"{what} {value!r} not found (not a UUID)") from None


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
    return AtomDetail(
        name=atom.name,
        kind=AtomKind.RETRY if is_retry else AtomKind.TASK,
        uuid=uuid_of(atom.uuid),
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
    result = (models.RetryDetail if atom.kind is AtomKind.RETRY else models.TaskDetail)(atom.name, str(atom.uuid))
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
    return FlowDetail(
        name=flow.name,
        uuid=uuid_of(flow.uuid),
        state=None if flow.state is None else FlowState(flow.state),
        meta=dict(flow.meta or {}),
        atoms=[atom_from_taskflow(atom) for atom in flow],
    )


def flow_to_taskflow(flow: FlowDetail, reuse: Any = None) -> Any:
    """A TaskFlow FlowDetail of ``flow``.

    Atoms that ``reuse`` (the caller's own FlowDetail) holds are updated in
    place and returned as themselves, as TaskFlow's own backends do: the
    engine keeps using an atom object it just added to a flow (its
    ``inject`` does), so a copy in its place would silently drop later
    updates.
    """
    result = models.FlowDetail(flow.name, str(flow.uuid))
    result.state = None if flow.state is None else flow.state.value
    result.meta = flow.meta
    for atom in flow.atoms:
        converted = atom_to_taskflow(atom)
        mine = None if reuse is None else reuse.find(str(atom.uuid))
        if mine is not None and type(mine) is type(converted):
            mine.update(converted)
            converted = mine
        result.add(converted)
    return result


def book_from_taskflow(book: Any) -> LogBook:
    """A statestore record of a LogBook and everything it holds."""
    return LogBook(
        name=book.name,
        uuid=uuid_of(book.uuid),
        meta=dict(book.meta or {}),
        flows=[flow_from_taskflow(flow) for flow in book],
    )


def book_to_taskflow(book: LogBook) -> Any:
    """A new TaskFlow LogBook holding ``book``."""
    result = models.LogBook(book.name, uuid=str(book.uuid))
    result.meta = book.meta
    for flow in book.flows:
        result.add(flow_to_taskflow(flow))
    # After add(), which stamps updated_at with the current time. TaskFlow's
    # books have no updated_at until they are saved again.
    result.created_at = _naive_utc(book.created_at)
    result.updated_at = None if book.updated_at == book.created_at else _naive_utc(book.updated_at)
    return result
