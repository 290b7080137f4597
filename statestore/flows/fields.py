"""Records → the column values stored for them, every check done before any SQL.

Validation happens here, in Python, so that SQLite (which enforces neither
VARCHAR lengths nor JSON types) rejects exactly what PostgreSQL and MariaDB
reject, with a message naming the record and the field, before anything is
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statestore.core.validate import (
    MAX_JSON_DEPTH,
    aware_datetime,
    check_characters,
    ensure_json,
    enum_value,
    json_object,
    shown,
    text,
    type_name,
    uuid_value,
)
from statestore.errors import InvalidInput
from statestore.flows.foreign_ids import FOREIGN_ID_LENGTH, foreign_uuid
from statestore.flows.records import AtomDetail, Failure, FlowDetail, LogBook, RetryAttempt
from statestore.flows.states import AtomKind, AtomState, FlowState, Intention
from statestore.flows.tables import NAME_LENGTH, VERSION_LENGTH

__all__ = ["MUTABLE_ATOM_COLUMNS", "atom_values", "book_values", "distinct", "flow_values"]

MUTABLE_ATOM_COLUMNS = (
    "state",
    "intention",
    "results",
    "failure",
    "revert_results",
    "revert_failure",
    "version",
    "meta",
)
"""What a merge changes; ``name`` and ``kind`` are never changed by a merge."""


def _checked_failure(value: object, where: str, levels: int) -> Failure:
    """``value``, a Failure whose fields have their declared types (the
    sequences may be lists), its causes too, checked before ``to_dict``: that
    would turn a string of type names into its letters, fail on an int, and
    recurse without bound down a chain of causes. Each failure is a dict
    holding lists, so a chain deeper than the JSON depth is refused here."""
    if not isinstance(value, Failure):
        raise InvalidInput(f"{where}: expected a Failure, got {type_name(value)}")
    if levels < 2:
        raise InvalidInput(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels of lists and dicts")
    if not isinstance(value.exception_str, str):
        raise InvalidInput(f"{where}.exception_str: expected a string, got {type_name(value.exception_str)}")
    if value.traceback_str is not None and not isinstance(value.traceback_str, str):
        raise InvalidInput(f"{where}.traceback_str: expected a string or None, got {type_name(value.traceback_str)}")
    for name in ("exc_type_names", "exc_args", "causes"):
        if not isinstance(getattr(value, name), (tuple, list)):
            raise InvalidInput(f"{where}.{name}: expected a tuple, got {type_name(getattr(value, name))}")
    for index, entry in enumerate(value.exc_type_names):
        if not isinstance(entry, str):
            raise InvalidInput(f"{where}.exc_type_names[{index}]: expected a string, got {type_name(entry)}")
    for index, cause in enumerate(value.causes):
        _checked_failure(cause, f"{where}.causes[{index}]", levels - 2)
    return value


def _failure_document(value: object, where: str) -> dict[str, Any]:
    return dict(ensure_json(_checked_failure(value, where, MAX_JSON_DEPTH).to_dict(), where))


def _failure(value: object, where: str) -> dict[str, Any] | None:
    return None if value is None else _failure_document(value, where)


def _retry_history(value: object, where: str) -> list[Any] | None:
    """Encode a retry's history as ``[[data, {atom: failure}], …]``."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"{where}: a retry's results are a list of RetryAttempt")
    encoded: list[Any] = []
    for index, attempt in enumerate(value):
        if not isinstance(attempt, RetryAttempt):
            raise InvalidInput(f"{where}[{index}]: expected a RetryAttempt, got {type_name(attempt)}")
        if not isinstance(attempt.failures, Mapping):
            raise InvalidInput(f"{where}[{index}].failures: expected a dict, got {type_name(attempt.failures)}")
        failures: dict[str, Any] = {}
        for atom, failure in attempt.failures.items():
            if not isinstance(atom, str):
                raise InvalidInput(f"{where}[{index}].failures: key {shown(atom)} is not an atom name (a string)")
            check_characters(atom, f"{where}[{index}].failures: key {shown(atom)}")
            # Never None: it would be stored, and no read could rebuild the attempt.
            failures[atom] = _failure_document(failure, f"{where}[{index}].failures[{shown(atom)}]")
        encoded.append([ensure_json(attempt.data, f"{where}[{index}].data"), failures])
    return encoded


def _identity(record: AtomDetail | FlowDetail | LogBook, where: str) -> dict[str, Any]:
    """The checked ``uuid`` and ``foreign_id`` columns of ``record``: a
    foreign id must be the one its uuid is derived from, so that each
    foreign identifier names one record."""
    uuid = uuid_value(record.uuid, f"{where}.uuid")
    if record.foreign_id is None:
        return {"uuid": uuid, "foreign_id": None}
    foreign_id = text(record.foreign_id, FOREIGN_ID_LENGTH, f"{where}.foreign_id")
    if foreign_uuid(foreign_id) != uuid:
        raise InvalidInput(
            f"{where}.uuid: {uuid} is not the uuid of foreign id {shown(foreign_id)} "
            f"(statestore.flows.foreign_ids.foreign_uuid gives {foreign_uuid(foreign_id)})"
        )
    return {"uuid": uuid, "foreign_id": foreign_id}


def _record(value: object, cls: type | tuple[type, ...], what: str) -> None:
    # A non-record in a record's place is bad input, not an AttributeError.
    if not isinstance(value, cls):
        raise InvalidInput(f"expected {what}, got {type(value).__name__}")


def atom_values(atom: AtomDetail) -> dict[str, Any]:
    """Validated column values of ``atom`` (without ids and timestamps)."""
    _record(atom, AtomDetail, "an AtomDetail")
    where = f"atom {shown(atom.name)}"
    kind = enum_value(AtomKind, atom.kind, f"{where}.kind")
    results: Any
    if kind is AtomKind.RETRY:
        results = _retry_history(atom.results, f"{where}.results")
    else:
        results = ensure_json(atom.results, f"{where}.results")
    state = None if atom.state is None else enum_value(AtomState, atom.state, f"{where}.state")
    if state is AtomState.RETRYING and kind is AtomKind.TASK:
        raise InvalidInput(f"{where}.state: RETRYING applies to retries only")
    return {
        **_identity(atom, where),
        "name": text(atom.name, NAME_LENGTH, f"{where}.name"),
        "kind": kind.value,
        "state": None if state is None else state.value,
        "intention": enum_value(Intention, atom.intention, f"{where}.intention").value,
        "results": results,
        "failure": _failure(atom.failure, f"{where}.failure"),
        "revert_results": ensure_json(atom.revert_results, f"{where}.revert_results"),
        "revert_failure": _failure(atom.revert_failure, f"{where}.revert_failure"),
        "version": None if atom.version is None else text(atom.version, VERSION_LENGTH, f"{where}.version"),
        "meta": json_object(atom.meta, f"{where}.meta"),
    }


def flow_values(flow: FlowDetail) -> dict[str, Any]:
    """Validated column values of ``flow`` itself (its atoms are separate)."""
    _record(flow, FlowDetail, "a FlowDetail")
    _record(flow.atoms, (list, tuple), "a list of atom details in flow.atoms")
    where = f"flow detail {shown(flow.name)}"
    return {
        **_identity(flow, where),
        "name": text(flow.name, NAME_LENGTH, f"{where}.name"),
        "state": None if flow.state is None else enum_value(FlowState, flow.state, f"{where}.state").value,
        "meta": json_object(flow.meta, f"{where}.meta"),
    }


def book_values(book: LogBook, *, keep_timestamps: bool = False) -> dict[str, Any]:
    """Validated column values of ``book`` itself; with ``keep_timestamps``,
    its ``created_at``/``updated_at`` too where they are set."""
    _record(book, LogBook, "a LogBook")
    _record(book.flows, (list, tuple), "a list of flow details in book.flows")
    where = f"logbook {shown(book.name)}"
    values = {
        **_identity(book, where),
        "name": text(book.name, NAME_LENGTH, f"{where}.name"),
        "meta": json_object(book.meta, f"{where}.meta"),
    }
    for name in ("created_at", "updated_at") if keep_timestamps else ():
        moment = getattr(book, name)
        if moment is not None:
            values[name] = aware_datetime(moment, f"{where}.{name}")
    return values


def distinct(records: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """``records`` (checked values), refused if two have the same uuid: one
    call cannot store two versions of a record (which one won differed
    between backends, and PostgreSQL refused a flow detail given twice)."""
    seen: set[Any] = set()
    for values in records:
        if values["uuid"] in seen:
            raise InvalidInput(f"{what} {values['uuid']} is given twice")
        seen.add(values["uuid"])
    return records
