"""The flow model as plain JSON-ready shapes: a logbook's row in a listing,
and a logbook's whole tree (its flow details and their atoms).

Results are kept whole here — a task's result may be any JSON value — and
only a terminal view shortens them. A book is named by its uuid or, when
another system (TaskFlow) gave it a non-uuid identifier, by that identifier
(its ``foreign_id``, :mod:`statestore.flows.foreign_ids`).
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from statestore.core.batches import chunks
from statestore.core.pages import DEFAULT_PAGE, page_limit
from statestore.core.validate import shown, type_name
from statestore.errors import InvalidInput, NotFound
from statestore.flows.foreign_ids import foreign_identity
from statestore.flows.records import AtomDetail, Failure, FlowDetail, LogBook, RetryAttempt
from statestore.flows.states import AtomKind
from statestore.flows.tables import BOOKS, FLOWS
from statestore.overview.json_values import plain
from statestore.store import Store

__all__ = [
    "atom_row",
    "book_page",
    "book_row",
    "book_tree",
    "failure_row",
    "find_book",
    "flow_row",
    "tree_of",
]


def failure_row(failure: Failure | None) -> dict[str, Any] | None:
    """A failure as its exception's type and message, with the failures that
    caused it (``causes``, same shape); None for no failure. The traceback
    is left out: it is TaskFlow's to show, and long."""
    if failure is None:
        return None
    return {
        "type": failure.exc_type_names[0] if failure.exc_type_names else None,
        "message": failure.exception_str,
        "causes": [failure_row(cause) for cause in failure.causes],
    }


def _attempt_row(attempt: RetryAttempt) -> dict[str, Any]:
    return {
        "result": plain(attempt.data),
        "failures": {name: failure_row(failure) for name, failure in attempt.failures.items()},
    }


def atom_row(atom: AtomDetail) -> dict[str, Any]:
    """An atom detail. ``type`` is ``task`` or ``retry``. ``result`` is a
    task's result, or a retry's latest attempt's; a retry's ``history`` lists
    every attempt, oldest first, with its result and the failures (by atom
    name) that made it retry. A task's ``history`` is None."""
    history: list[dict[str, Any]] | None = None
    result: Any = atom.results
    if atom.kind is AtomKind.RETRY:
        attempts: list[RetryAttempt] = list(atom.results or [])
        history = [_attempt_row(attempt) for attempt in attempts]
        result = attempts[-1].data if attempts else None
    return {
        "uuid": str(atom.uuid),
        "foreign_id": atom.foreign_id,
        "name": atom.name,
        "type": atom.kind.value,
        "state": plain(atom.state),
        "intention": plain(atom.intention),
        "version": atom.version,
        "result": plain(result),
        "failure": failure_row(atom.failure),
        "revert_result": plain(atom.revert_results),
        "revert_failure": failure_row(atom.revert_failure),
        "history": history,
        "meta": plain(atom.meta),
        "created_at": plain(atom.created_at),
        "updated_at": plain(atom.updated_at),
    }


def flow_row(flow: FlowDetail) -> dict[str, Any]:
    """A flow detail with its atoms (as loaded: none when loaded lazily)."""
    return {
        "uuid": str(flow.uuid),
        "foreign_id": flow.foreign_id,
        "name": flow.name,
        "state": plain(flow.state),
        "meta": plain(flow.meta),
        "created_at": plain(flow.created_at),
        "updated_at": plain(flow.updated_at),
        "atoms": [atom_row(atom) for atom in flow.atoms],
    }


def book_row(book: LogBook, flow_count: int | None = None) -> dict[str, Any]:
    """A logbook in a listing: without its flows, but how many it has
    (``flow_count``; by default the flows ``book`` was loaded with)."""
    return {
        "uuid": str(book.uuid),
        "foreign_id": book.foreign_id,
        "name": book.name,
        "created_at": plain(book.created_at),
        "updated_at": plain(book.updated_at),
        "flow_count": len(book.flows) if flow_count is None else flow_count,
        "meta": plain(book.meta),
    }


def tree_of(book: LogBook) -> dict[str, Any]:
    """A fully loaded logbook: its row, and its flows with their atoms."""
    return {**book_row(book), "flows": [flow_row(flow) for flow in book.flows]}


def _flow_counts(connection: Connection, uuids: list[UUID]) -> dict[UUID, int]:
    counts: dict[UUID, int] = {}
    for chunk in chunks(uuids):
        rows = connection.execute(
            select(BOOKS.c.uuid, func.count(FLOWS.c.id))
            .select_from(BOOKS.outerjoin(FLOWS, FLOWS.c.logbook_id == BOOKS.c.id))
            .where(BOOKS.c.uuid.in_(chunk))
            .group_by(BOOKS.c.uuid)
        )
        counts.update((uuid, int(count)) for uuid, count in rows)
    return counts


async def book_page(
    store: Store, *, after: UUID | str | None = None, limit: int = DEFAULT_PAGE
) -> list[dict[str, Any]]:
    """Up to ``limit`` logbook rows after logbook ``after``, oldest first
    (a keyset page: pass the last row's uuid as ``after`` for the next).
    Books load without their flows; their flows are counted in one query."""
    books = await store.logbooks.page(after=after, limit=page_limit(limit), lazy=True)
    counts = await store.read(lambda connection: _flow_counts(connection, [book.uuid for book in books]))
    # A book destroyed between the two reads has no count: it has no flows left either.
    return [book_row(book, counts.get(book.uuid, 0)) for book in books]


def _candidates(identifier: UUID | str) -> list[UUID]:
    """The uuids ``identifier`` may name, most exact first: a canonical uuid
    names itself only (foreign ids map it to itself); any other string is a
    foreign id first, then — if it parses as one, say in capitals — a uuid."""
    if isinstance(identifier, UUID):
        return [identifier]
    if not isinstance(identifier, str):
        raise InvalidInput(f"book: expected a logbook uuid or foreign id, got {type_name(identifier)}")
    if not identifier.strip():
        raise InvalidInput(f"book: {shown(identifier)} is neither a logbook uuid nor a foreign id")
    uuid, foreign_id = foreign_identity(identifier)
    found = [uuid]
    if foreign_id is not None:
        with contextlib.suppress(ValueError):  # not a uuid in any spelling: only a foreign id
            found.append(UUID(identifier))
    return found


async def find_book(store: Store, identifier: UUID | str, *, lazy: bool = False) -> LogBook:
    """The logbook named by its uuid or its foreign id (the identifier
    TaskFlow gave it when not a uuid); loaded whole unless ``lazy``.
    NotFound if neither names a stored logbook."""
    for uuid in _candidates(identifier):
        try:
            return await store.logbooks.get(uuid, lazy=lazy)
        except NotFound:
            continue
    raise NotFound(
        f"no logbook has uuid or foreign id {shown(str(identifier))}; "
        "'statestore flows' lists each logbook's uuid and foreign id"
    )


async def book_tree(store: Store, book: UUID | str) -> dict[str, Any]:
    """Logbook ``book`` (its uuid or foreign id) → its flow details → their
    atom details, read in one transaction (:func:`tree_of`)."""
    return tree_of(await find_book(store, book))
