"""TaskFlow's model objects ↔ statestore's flow records.

TaskFlow identifies everything by uuid *strings* (uuid4 from oslo); statestore
by :class:`uuid.UUID`. A TaskFlow uuid that is not a UUID is refused with
StorageFailure rather than silently mapped. TaskFlow timestamps are naive UTC,
and a LogBook's ``updated_at`` stays None until the book is updated again, as
with TaskFlow's own SQL backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from taskflow import exceptions as tf_exceptions
from taskflow.persistence import models
from taskflow.types import failure as tf_failure

from statestore.flows import AtomDetail, AtomKind, AtomState, Failure, FlowDetail, FlowState, Intention, LogBook
from statestore.flows.records import RetryAttempt

__all__ = [
    "atom_from_taskflow",
    "atom_to_taskflow",
    "book_from_taskflow",
    "book_to_taskflow",
    "flow_from_taskflow",
    "flow_to_taskflow",
    "uuid_of",
]


def uuid_of(value: Any) -> UUID:
    """TaskFlow's uuid string as a UUID (StorageFailure if it is not one)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise tf_exceptions.StorageFailure(f"statestore needs UUID identifiers; {value!r} is not one") from None


def _naive_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _failure_in(value: Any) -> Failure | None:
    return None if value is None else _failure(value)


def _failure(value: Any) -> Failure:
    return Failure.from_dict(value.to_dict())


def _failure_out(value: Failure | None) -> Any:
    return None if value is None else tf_failure.Failure.from_dict(value.to_dict())


def atom_from_taskflow(atom: Any) -> AtomDetail:
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
    return FlowDetail(
        name=flow.name,
        uuid=uuid_of(flow.uuid),
        state=None if flow.state is None else FlowState(flow.state),
        meta=dict(flow.meta or {}),
        atoms=[atom_from_taskflow(atom) for atom in flow],
    )


def flow_to_taskflow(flow: FlowDetail, reuse: dict[str, Any] | None = None) -> Any:
    """A TaskFlow FlowDetail of ``flow``.

    Atoms found in ``reuse`` (the caller's own objects, by uuid string) are
    updated in place and returned as themselves, as TaskFlow's backends do:
    the engine keeps using an atom object it just added to a flow (its
    ``inject`` does), so a copy in its place would silently drop later
    updates.
    """
    result = models.FlowDetail(flow.name, str(flow.uuid))
    result.state = None if flow.state is None else flow.state.value
    result.meta = flow.meta
    for atom in flow.atoms:
        converted = atom_to_taskflow(atom)
        mine = (reuse or {}).get(str(atom.uuid))
        if mine is not None and type(mine) is type(converted):
            mine.update(converted)
            converted = mine
        result.add(converted)
    return result


def book_from_taskflow(book: Any) -> LogBook:
    return LogBook(
        name=book.name,
        uuid=uuid_of(book.uuid),
        meta=dict(book.meta or {}),
        flows=[flow_from_taskflow(flow) for flow in book],
    )


def book_to_taskflow(book: LogBook) -> Any:
    result = models.LogBook(book.name, uuid=str(book.uuid))
    result.meta = book.meta
    result.created_at = _naive_utc(book.created_at)
    # TaskFlow's books have no updated_at until they are saved again.
    result.updated_at = None if book.updated_at == book.created_at else _naive_utc(book.updated_at)
    for flow in book.flows:
        result.add(flow_to_taskflow(flow))
    return result
