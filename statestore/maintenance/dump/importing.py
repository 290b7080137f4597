"""Import: the dump's lines parsed, checked and merged into a store in
batches, in one transaction (see :mod:`statestore.maintenance.dump`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Table, bindparam, delete, exists, select, tuple_, update
from sqlalchemy.engine import Connection

from statestore.core.batches import chunks
from statestore.core.dialect import facts_of
from statestore.core.validate import (
    INTEGER,
    SMALLINT,
    aware_datetime,
    ensure_json,
    enum_value,
    integer,
    json_object,
    shown,
    text,
    type_name,
    uuid_value,
)
from statestore.core.wakeups import announce_work
from statestore.errors import Conflict, InvalidInput, InvalidReference, StoreError
from statestore.farm.derived import copy_job_priority, copy_job_schedulable, recount_job, resum_steps, schedulable
from statestore.farm.fields import STEPS_MAX, encode_commands, task_type_value
from statestore.farm.records import Command
from statestore.farm.secret_hashes import NO_HASH
from statestore.farm.sleep_schedules import time_of_day
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.farm.tables import (
    BLOCKS,
    DEPENDENCIES,
    FAILURES,
    JOBS,
    LAST_RENDERED,
    LENGTHS,
    MEMBERSHIP,
    SLEEP_SCHEDULES,
    STATUS_HISTORY,
    TASKS,
    WORKER_TAGS,
    WORKERS,
)
from statestore.flows.fields import atom_values, book_values, flow_values
from statestore.flows.rows import atom_from_row, book_from_row, flow_from_row
from statestore.flows.tables import ATOMS, BOOKS, FLOWS
from statestore.maintenance.dump.format import BATCH, FORMAT, FORMAT_VERSION, KINDS
from statestore.store import Store

__all__ = ["ImportReport", "import_lines"]


@dataclass
class ImportReport:
    """What an import did, per kind: records inserted, records updated (a
    record already stored under its key counts as updated even when nothing
    in it changed)."""

    lines: int = 0
    inserted: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON: lines read and per kind inserted/updated."""
        kinds = [kind for kind in KINDS if kind in self.inserted or kind in self.updated]
        return {
            "lines": self.lines,
            "kinds": {kind: {"inserted": self.inserted[kind], "updated": self.updated[kind]} for kind in kinds},
        }


class _Line:
    """A parsed line's fields, checked as they are read (InvalidInput naming
    the line number and the field)."""

    def __init__(self, number: int, kind: str, values: dict[str, Any]) -> None:
        self.number = number
        self.kind = kind
        self._values = values
        self._read: set[str] = {"kind"}

    def where(self, name: str) -> str:
        return f"line {self.number}: {self.kind}.{name}"

    def error(self, message: str) -> InvalidInput:
        return InvalidInput(f"line {self.number}: {self.kind}: {message}")

    def raw(self, name: str) -> Any:
        if name not in self._values:
            raise InvalidInput(f"line {self.number}: {self.kind} has no {name!r}")
        self._read.add(name)
        return self._values[name]

    def uuid(self, name: str) -> UUID:
        return uuid_value(self.raw(name), self.where(name))

    def optional_uuid(self, name: str) -> UUID | None:
        value = self.raw(name)
        return None if value is None else uuid_value(value, self.where(name))

    def text(self, name: str, limit: int) -> str:
        return text(self.raw(name), limit, self.where(name))

    def integer(self, name: str, bounds: tuple[int, int] = INTEGER) -> int:
        return integer(self.raw(name), self.where(name), bounds)

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            raise InvalidInput(f"{self.where(name)}: expected true or false, got {type_name(value)}")
        return value

    def when(self, name: str) -> datetime:
        value = self.raw(name)
        if not isinstance(value, str):
            raise InvalidInput(f"{self.where(name)}: expected an ISO 8601 date-time, got {type_name(value)}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{self.where(name)}: {shown(value)} is not an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            raise InvalidInput(f"{self.where(name)}: {shown(value)} has no time zone offset")
        return aware_datetime(parsed, self.where(name)).astimezone(UTC)

    def optional_when(self, name: str) -> datetime | None:
        return None if self.raw(name) is None else self.when(name)

    def stamps(self) -> dict[str, datetime]:
        return {"created_at": self.when("created_at"), "updated_at": self.when("updated_at")}

    def status(self, enum: Any, name: str = "status") -> str:
        return str(enum_value(enum, self.raw(name), self.where(name)).value)

    def done(self) -> None:
        """Refuse fields this kind does not have (a typo, or a newer format)."""
        unknown = sorted(set(self._values) - self._read)
        if unknown:
            raise InvalidInput(f"line {self.number}: {self.kind} has unknown fields {', '.join(unknown)}")


@dataclass
class _Parsed:
    """A line checked and turned into column values (references still uuids)."""

    number: int
    uuid: UUID | None
    values: dict[str, Any]
    refs: Mapping[str, UUID | None] = field(default_factory=dict)
    extra: Any = None


def _uuids(line: _Line, name: str) -> list[UUID]:
    value = line.raw(name)
    if not isinstance(value, list):
        raise InvalidInput(f"{line.where(name)}: expected a list of uuids, got {type_name(value)}")
    found = [uuid_value(item, f"{line.where(name)}[{index}]") for index, item in enumerate(value)]
    if len(set(found)) != len(found):
        raise InvalidInput(f"{line.where(name)}: a uuid is listed twice")
    return found


def _parse_tag(line: _Line) -> _Parsed:
    uuid = line.uuid("uuid")
    name = line.text("name", LENGTHS["name"])
    if not name:
        raise InvalidInput(f"{line.where('name')}: must not be empty")
    values = {"name": name, "description": line.text("description", LENGTHS["description"]), **line.stamps()}
    return _Parsed(line.number, uuid, values)


def _parse_worker(line: _Line) -> _Parsed:
    types = line.raw("supported_task_types")
    if not isinstance(types, list):
        raise InvalidInput(f"{line.where('supported_task_types')}: expected a list, got {type_name(types)}")
    joined = ",".join(
        task_type_value(item, f"{line.where('supported_task_types')}[{i}]") for i, item in enumerate(types)
    )
    if len(joined) > LENGTHS["supported_task_types"]:
        raise InvalidInput(f"{line.where('supported_task_types')}: too long when joined")
    requested = line.raw("status_requested")
    values = {
        "name": line.text("name", LENGTHS["name"]),
        "address": line.text("address", LENGTHS["address"]),
        "platform": line.text("platform", LENGTHS["platform"]),
        "software": line.text("software", LENGTHS["software"]),
        "status": line.status(WorkerStatus),
        "last_seen_at": line.optional_when("last_seen_at"),
        "status_requested": "" if requested == "" else line.status(WorkerStatus, "status_requested"),
        "lazy_status_request": line.boolean("lazy_status_request"),
        "supported_task_types": joined,
        "deleted_at": line.optional_when("deleted_at"),
        "can_restart": line.boolean("can_restart"),
        **line.stamps(),
    }
    return _Parsed(line.number, line.uuid("uuid"), values, extra=_uuids(line, "tags"))


def _parse_schedule(line: _Line) -> _Parsed:
    values: dict[str, Any] = {
        "is_active": line.boolean("is_active"),
        "days_of_week": line.text("days_of_week", LENGTHS["days_of_week"]),
        "start_time": time_of_day(line.raw("start_time"), line.where("start_time")),
        "end_time": time_of_day(line.raw("end_time"), line.where("end_time")),
        "next_check": line.optional_when("next_check"),
        **line.stamps(),
    }
    return _Parsed(line.number, line.uuid("uuid"), values, {"worker": line.uuid("worker")})


def _parse_job(line: _Line) -> _Parsed:
    values = {
        "name": line.text("name", LENGTHS["name"]),
        "job_type": line.text("type", LENGTHS["type"]),
        "priority": line.integer("priority", SMALLINT),
        "status": line.status(JobStatus),
        "activity": line.text("activity", LENGTHS["activity"]),
        "settings": json_object(line.raw("settings"), line.where("settings")),
        "metadata": json_object(line.raw("metadata"), line.where("metadata")),
        "delete_requested_at": line.optional_when("delete_requested_at"),
        "storage_checkout_id": line.text("storage_checkout_id", LENGTHS["storage_checkout_id"]),
        "steps_completed": line.integer("steps_completed", (0, STEPS_MAX)),
        "steps_total": line.integer("steps_total", (0, STEPS_MAX)),
        **line.stamps(),
    }
    return _Parsed(line.number, line.uuid("uuid"), values, {"worker_tag": line.optional_uuid("worker_tag")})


def _commands(line: _Line) -> list[dict[str, Any]]:
    value = line.raw("commands")
    where = line.where("commands")
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: expected a list, got {type_name(value)}")
    commands = []
    for index, command in enumerate(value):
        if not isinstance(command, dict) or set(command) - {"name", "parameters", "total_step_count"}:
            raise InvalidInput(f"{where}[{index}]: expected a dict of name, parameters, total_step_count")
        parameters = command.get("parameters")
        name: Any = command.get("name")
        commands.append(
            # encode_commands checks the name and the count
            Command(name, {} if parameters is None else parameters, command.get("total_step_count", 0))
        )
    return encode_commands(commands, where.removesuffix(".commands"))[0]


def _parse_task(line: _Line) -> _Parsed:
    uuid = line.uuid("uuid")
    dependencies = _uuids(line, "dependencies")
    if uuid in dependencies:
        raise InvalidInput(f"{line.where('dependencies')}: the task depends on itself")
    values = {
        "index_in_job": line.integer("index_in_job", (0, INTEGER[1])),
        "name": line.text("name", LENGTHS["name"]),
        "type": task_type_value(line.raw("type"), line.where("type")),
        "priority": line.integer("priority", SMALLINT),
        "status": line.status(TaskStatus),
        "last_touched_at": line.optional_when("last_touched_at"),
        "commands": _commands(line),
        "activity": line.text("activity", LENGTHS["activity"]),
        "steps_completed": line.integer("steps_completed", (0, STEPS_MAX)),
        "steps_total": line.integer("steps_total", (0, STEPS_MAX)),
        **line.stamps(),
    }
    refs = {"job": line.uuid("job"), "worker": line.optional_uuid("worker")}
    return _Parsed(line.number, uuid, values, refs, extra=dependencies)


def _parse_failure(line: _Line) -> _Parsed:
    refs = {"task": line.uuid("task"), "worker": line.uuid("worker")}
    return _Parsed(line.number, None, {"created_at": line.when("created_at")}, refs)


def _parse_block(line: _Line) -> _Parsed:
    values = {
        "task_type": task_type_value(line.raw("task_type"), line.where("task_type")),
        "created_at": line.when("created_at"),
    }
    return _Parsed(line.number, None, values, {"job": line.uuid("job"), "worker": line.uuid("worker")})


def _parse_history(line: _Line) -> _Parsed:
    values = {
        "old_status": line.text("old_status", 32),
        "new_status": line.text("new_status", 32),
        "reason": line.text("reason", LENGTHS["activity"]),
        "who": line.text("who", LENGTHS["who"]),
        "at": line.when("at"),
    }
    return _Parsed(line.number, None, values, {"job": line.uuid("job"), "task": line.optional_uuid("task")})


def _parse_rendered(line: _Line) -> _Parsed:
    return _Parsed(line.number, line.uuid("uuid"), line.stamps(), {"job": line.uuid("job")})


def _checked_flow_values(
    line: _Line, row: dict[str, Any], build: Callable[..., Any], check: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    try:
        record = build(row)
    except StoreError as error:
        raise InvalidInput(f"line {line.number}: {line.kind}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInput(f"line {line.number}: {line.kind}: malformed ({type(error).__name__}: {error})") from None
    try:
        return check(record)
    except InvalidInput as error:
        raise InvalidInput(f"line {line.number}: {error}") from None


def _parse_book(line: _Line) -> _Parsed:
    row = {
        "uuid": line.uuid("uuid"),
        "foreign_id": line.raw("foreign_id"),
        "name": line.raw("name"),
        "meta": line.raw("meta"),
    }
    row.update({"created_at": None, "updated_at": None})
    values = _checked_flow_values(line, row, book_from_row, book_values)
    return _Parsed(line.number, values["uuid"], {**values, **line.stamps()})


def _parse_flow(line: _Line) -> _Parsed:
    row = {
        "uuid": line.uuid("uuid"),
        "foreign_id": line.raw("foreign_id"),
        "name": line.raw("name"),
        "meta": line.raw("meta"),
        "state": line.raw("state"),
        "created_at": None,
        "updated_at": None,
    }
    values = _checked_flow_values(line, row, flow_from_row, flow_values)
    return _Parsed(line.number, values["uuid"], {**values, **line.stamps()}, {"logbook": line.uuid("logbook")})


def _parse_atom(line: _Line) -> _Parsed:
    row = {name: line.raw(name) for name in ("foreign_id", "name", "state", "intention", "results", "failure")}
    row.update({name: line.raw(name) for name in ("revert_results", "revert_failure", "version", "meta")})
    row.update({"uuid": line.uuid("uuid"), "kind": line.raw("atom_kind"), "created_at": None, "updated_at": None})
    for name in ("results", "revert_results"):
        ensure_json(row[name], line.where(name))
    values = _checked_flow_values(line, row, atom_from_row, atom_values)
    return _Parsed(line.number, values["uuid"], {**values, **line.stamps()}, {"flow_detail": line.uuid("flow_detail")})


_PARSERS: dict[str, Callable[[_Line], _Parsed]] = {
    "worker_tag": _parse_tag,
    "worker": _parse_worker,
    "sleep_schedule": _parse_schedule,
    "job": _parse_job,
    "task": _parse_task,
    "task_failure": _parse_failure,
    "job_block": _parse_block,
    "status_history": _parse_history,
    "last_rendered": _parse_rendered,
    "logbook": _parse_book,
    "flow_detail": _parse_flow,
    "atom_detail": _parse_atom,
}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _document(number: int, text_line: str) -> dict[str, Any]:
    try:
        document = json.loads(text_line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidInput(f"line {number}: not a JSON document ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("kind"), str):
        raise InvalidInput(f'line {number}: expected a JSON object with a string "kind"')
    return document


def _check_header(number: int, document: dict[str, Any]) -> None:
    if document.get("kind") != "header" or document.get("format") != FORMAT:
        raise InvalidInput(f"line {number}: expected the header of a {FORMAT} (the first line of an export)")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"line {number}: header version {shown(version)} is not a format version")
    if version > FORMAT_VERSION:
        raise InvalidInput(
            f"line {number}: the dump is in format version {version}, newer than this statestore reads "
            f"({FORMAT_VERSION}); import it with the statestore that wrote it"
        )


# --------------------------------------------------------------------------- writing


def _ids(connection: Connection, table: Table, uuids: Iterable[UUID | None], *extra: Any) -> dict[UUID, Any]:
    """uuid → row (id and ``extra`` columns) of the rows of ``table`` among ``uuids`` (None left out)."""
    found: dict[UUID, Any] = {}
    wanted = sorted({uuid for uuid in uuids if uuid is not None})
    for chunk in chunks(wanted):
        statement = select(table.c.uuid, table.c.id, *extra).where(table.c.uuid.in_(list(chunk)))
        found.update((row.uuid, row) for row in connection.execute(statement))
    return found


def _resolve(found: Mapping[UUID, Any], uuid: UUID | None, line: int, what: str) -> Any:
    if uuid is None:
        return None
    row = found.get(uuid)
    if row is None:
        raise InvalidReference(f"line {line}: no {what} {uuid} in the dump before this line nor in the store")
    return row


def _distinct(batch: Sequence[_Parsed], kind: str) -> None:
    seen: dict[Any, int] = {}
    for parsed in batch:
        if parsed.uuid in seen:
            raise InvalidInput(f"line {parsed.number}: {kind} {parsed.uuid} is also on line {seen[parsed.uuid]}")
        seen[parsed.uuid] = parsed.number


def _upsert(
    connection: Connection, table: Table, rows: list[dict[str, Any]], *, insert_only: Sequence[str] = ()
) -> None:
    if not rows:
        return
    columns = [name for name in rows[0] if name not in ("uuid", *insert_only)]
    connection.execute(facts_of(connection).upsert(table, "uuid", columns), rows)


class _Importer:
    """Writes batches of parsed lines of one kind; keeps what spans batches:
    the job whose tasks may continue in the next batch and the dependencies
    on tasks not imported yet."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self.open_job: int | None = None
        self.forward: dict[int, list[tuple[int, UUID, int]]] = {}
        """job id → (task id, dependency uuid, line) of dependencies on tasks not yet seen."""

    def count(self, kind: str, batch: Sequence[_Parsed], existing: int) -> None:
        self.report.inserted[kind] += len(batch) - existing
        self.report.updated[kind] += existing

    def write(self, connection: Connection, kind: str, batch: list[_Parsed]) -> None:
        if kind != "task":
            self.close_job(connection)
        getattr(self, f"_write_{kind}")(connection, batch)

    # -- the farm ---------------------------------------------------------------

    def _write_worker_tag(self, connection: Connection, batch: list[_Parsed]) -> None:
        _distinct(batch, "worker tag")
        existing = _ids(connection, WORKER_TAGS, [parsed.uuid for parsed in batch if parsed.uuid])
        names = {parsed.values["name"]: parsed for parsed in batch}
        for chunk in chunks(list(names)):
            for row in connection.execute(
                select(WORKER_TAGS.c.uuid, WORKER_TAGS.c.name).where(WORKER_TAGS.c.name.in_(list(chunk)))
            ):
                parsed = names.get(row.name)
                if parsed is not None and parsed.uuid != row.uuid:
                    raise Conflict(
                        f"line {parsed.number}: worker tag name {row.name!r} belongs to tag {row.uuid} in the store"
                    )
        _upsert(connection, WORKER_TAGS, [{"uuid": parsed.uuid, **parsed.values} for parsed in batch])
        self.count("worker_tag", batch, len(existing))

    def _write_worker(self, connection: Connection, batch: list[_Parsed]) -> None:
        _distinct(batch, "worker")
        existing = _ids(connection, WORKERS, [parsed.uuid for parsed in batch if parsed.uuid])
        tags = _ids(connection, WORKER_TAGS, [tag for parsed in batch for tag in parsed.extra])
        memberships = [
            (parsed.uuid or UUID(int=0), _resolve(tags, tag, parsed.number, "worker tag").id)
            for parsed in batch
            for tag in parsed.extra
        ]
        rows = [{"uuid": parsed.uuid, "secret_hash": NO_HASH, **parsed.values} for parsed in batch]
        _upsert(connection, WORKERS, rows, insert_only=("secret_hash",))
        ids = _ids(connection, WORKERS, [parsed.uuid for parsed in batch if parsed.uuid])
        worker_ids = [ids[parsed.uuid].id for parsed in batch if parsed.uuid]
        for chunk in chunks(worker_ids):
            connection.execute(delete(MEMBERSHIP).where(MEMBERSHIP.c.worker_id.in_(list(chunk))))
        if memberships:
            connection.execute(
                MEMBERSHIP.insert(),
                [{"worker_id": ids[worker].id, "worker_tag_id": tag_id} for worker, tag_id in memberships],
            )
        self.count("worker", batch, len(existing))

    def _write_sleep_schedule(self, connection: Connection, batch: list[_Parsed]) -> None:
        _distinct(batch, "sleep schedule")
        workers = _ids(connection, WORKERS, [parsed.refs["worker"] for parsed in batch if parsed.refs["worker"]])
        existing = _ids(connection, SLEEP_SCHEDULES, [parsed.uuid for parsed in batch if parsed.uuid])
        rows = []
        seen: dict[int, int] = {}
        for parsed in batch:
            worker_id = _resolve(workers, parsed.refs["worker"], parsed.number, "worker").id
            if worker_id in seen:
                raise InvalidInput(
                    f"line {parsed.number}: a second sleep schedule of its worker (line {seen[worker_id]})"
                )
            seen[worker_id] = parsed.number
            # A worker has one schedule: the dump's replaces one stored under another uuid.
            connection.execute(
                delete(SLEEP_SCHEDULES).where(
                    SLEEP_SCHEDULES.c.worker_id == worker_id, SLEEP_SCHEDULES.c.uuid != parsed.uuid
                )
            )
            rows.append({"uuid": parsed.uuid, "worker_id": worker_id, **parsed.values})
        _upsert(connection, SLEEP_SCHEDULES, rows)
        self.count("sleep_schedule", batch, len(existing))

    def _write_job(self, connection: Connection, batch: list[_Parsed]) -> None:
        _distinct(batch, "job")
        existing = _ids(connection, JOBS, [parsed.uuid for parsed in batch if parsed.uuid])
        tags = _ids(
            connection, WORKER_TAGS, [parsed.refs["worker_tag"] for parsed in batch if parsed.refs["worker_tag"]]
        )
        rows = []
        for parsed in batch:
            tag = _resolve(tags, parsed.refs["worker_tag"], parsed.number, "worker tag")
            rows.append({"uuid": parsed.uuid, **parsed.values, "worker_tag_id": None if tag is None else tag.id})
        _upsert(connection, JOBS, rows)
        for parsed in batch:
            stored = existing.get(parsed.uuid) if parsed.uuid else None
            if stored is not None:  # its tasks' copies of priority and schedulable follow
                copy_job_priority(connection, stored.id, parsed.values["priority"])
                copy_job_schedulable(connection, stored.id, parsed.values["status"])
                resum_steps(connection, stored.id)
        self.count("job", batch, len(existing))

    def _write_task(self, connection: Connection, batch: list[_Parsed]) -> None:
        _distinct(batch, "task")
        jobs = _ids(
            connection,
            JOBS,
            [parsed.refs["job"] for parsed in batch if parsed.refs["job"]],
            JOBS.c.priority,
            JOBS.c.status,
        )
        workers = _ids(connection, WORKERS, [parsed.refs["worker"] for parsed in batch if parsed.refs["worker"]])
        existing = _ids(connection, TASKS, [parsed.uuid for parsed in batch if parsed.uuid], TASKS.c.job_id)
        rows = []
        job_of: dict[UUID, Any] = {}
        for parsed in batch:
            job = _resolve(jobs, parsed.refs["job"], parsed.number, "job")
            worker = _resolve(workers, parsed.refs["worker"], parsed.number, "worker")
            stored = existing.get(parsed.uuid) if parsed.uuid else None
            if stored is not None and stored.job_id != job.id:
                raise Conflict(f"line {parsed.number}: task {parsed.uuid} is stored under another job")
            assert parsed.uuid is not None
            job_of[parsed.uuid] = job
            rows.append(
                {
                    "uuid": parsed.uuid,
                    "job_id": job.id,
                    **parsed.values,
                    "worker_id": None if worker is None else worker.id,
                    "job_priority": job.priority,
                    "job_schedulable": schedulable(job.status),
                    "pending_dependencies": 0,
                }
            )
        # Another task at the same place in its job would be overwritten by MariaDB's upsert.
        places = {
            (row["job_id"], row["index_in_job"]): (row["uuid"], parsed.number)
            for row, parsed in zip(rows, batch, strict=True)
        }
        for chunk in chunks(list(places)):
            taken = select(TASKS.c.job_id, TASKS.c.index_in_job, TASKS.c.uuid).where(
                tuple_(TASKS.c.job_id, TASKS.c.index_in_job).in_(list(chunk))
            )
            for row in connection.execute(taken):
                uuid, number = places[(row.job_id, row.index_in_job)]
                if row.uuid != uuid:
                    raise Conflict(
                        f"line {number}: task {row.uuid} of the store has index_in_job {row.index_in_job} in that job"
                    )
        _upsert(connection, TASKS, rows, insert_only=("pending_dependencies",))
        ids = _ids(connection, TASKS, job_of, TASKS.c.job_id)
        stored_ids = [ids[uuid].id for uuid in existing]
        for chunk in chunks(stored_ids):
            connection.execute(delete(DEPENDENCIES).where(DEPENDENCIES.c.task_id.in_(list(chunk))))
        targets = _ids(connection, TASKS, [uuid for parsed in batch for uuid in parsed.extra], TASKS.c.job_id)
        pairs = []
        for parsed in batch:
            assert parsed.uuid is not None
            task = ids[parsed.uuid]
            for dependency in parsed.extra:
                target = targets.get(dependency)
                if target is None:
                    self.forward.setdefault(task.job_id, []).append((task.id, dependency, parsed.number))
                elif target.job_id != task.job_id:
                    raise InvalidReference(f"line {parsed.number}: dependency {dependency} is a task of another job")
                else:
                    pairs.append({"task_id": task.id, "dependency_id": target.id})
        if pairs:
            connection.execute(DEPENDENCIES.insert(), pairs)
        # Jobs whose tasks ended in this batch are complete; the last may go on.
        order = list(dict.fromkeys(ids[uuid].job_id for uuid in job_of))
        if self.open_job is not None and self.open_job != order[0]:
            self.close_job(connection)
        for job_id in order[:-1]:
            self.finish_job(connection, job_id)
        self.open_job = order[-1]
        self.count("task", batch, len(existing))

    def close_job(self, connection: Connection) -> None:
        if self.open_job is not None:
            self.finish_job(connection, self.open_job)
            self.open_job = None

    def finish_job(self, connection: Connection, job_id: int) -> None:
        """Dependencies on tasks later in the dump, then the derived columns."""
        waiting = self.forward.pop(job_id, [])
        if waiting:
            targets = _ids(connection, TASKS, [uuid for _, uuid, _ in waiting], TASKS.c.job_id)
            pairs = []
            for task_id, dependency, number in waiting:
                target = targets.get(dependency)
                if target is None or target.job_id != job_id:
                    raise InvalidReference(f"line {number}: dependency {dependency} is no task of the same job")
                pairs.append({"task_id": task_id, "dependency_id": target.id})
            connection.execute(DEPENDENCIES.insert(), pairs)
        recount_job(connection, job_id)
        # recount_job counts the tasks that have dependencies; the others have none pending.
        connection.execute(
            update(TASKS)
            .where(
                TASKS.c.job_id == job_id,
                TASKS.c.pending_dependencies != 0,
                ~exists().where(DEPENDENCIES.c.task_id == TASKS.c.id),
            )
            .values(pending_dependencies=0, updated_at=TASKS.c.updated_at)
        )
        resum_steps(connection, job_id)

    def _write_task_failure(self, connection: Connection, batch: list[_Parsed]) -> None:
        tasks = _ids(connection, TASKS, [parsed.refs["task"] for parsed in batch if parsed.refs["task"]])
        workers = _ids(connection, WORKERS, [parsed.refs["worker"] for parsed in batch if parsed.refs["worker"]])
        keyed = {}
        for parsed in batch:
            key = (
                _resolve(tasks, parsed.refs["task"], parsed.number, "task").id,
                _resolve(workers, parsed.refs["worker"], parsed.number, "worker").id,
            )
            keyed[key] = parsed
        self._merge_keyed(connection, FAILURES, ("task_id", "worker_id"), keyed, "task_failure", batch)

    def _write_job_block(self, connection: Connection, batch: list[_Parsed]) -> None:
        jobs = _ids(connection, JOBS, [parsed.refs["job"] for parsed in batch if parsed.refs["job"]])
        workers = _ids(connection, WORKERS, [parsed.refs["worker"] for parsed in batch if parsed.refs["worker"]])
        keyed = {}
        for parsed in batch:
            key = (
                _resolve(jobs, parsed.refs["job"], parsed.number, "job").id,
                _resolve(workers, parsed.refs["worker"], parsed.number, "worker").id,
                parsed.values["task_type"],
            )
            keyed[key] = parsed
        self._merge_keyed(connection, BLOCKS, ("job_id", "worker_id", "task_type"), keyed, "job_block", batch)

    def _merge_keyed(
        self,
        connection: Connection,
        table: Table,
        names: tuple[str, ...],
        keyed: dict[tuple[Any, ...], _Parsed],
        kind: str,
        batch: list[_Parsed],
    ) -> None:
        """Rows keyed by their primary key: insert the new, set the stored ones' created_at."""
        if len(keyed) != len(batch):
            raise InvalidInput(f"line {batch[-1].number}: {kind} given twice in the dump")
        columns = [table.c[name] for name in names]
        stored: set[tuple[Any, ...]] = set()
        for chunk in chunks(list(keyed)):
            statement = select(*columns).where(tuple_(*columns).in_(list(chunk)))
            stored.update(tuple(row) for row in connection.execute(statement))
        fresh = [
            {**dict(zip(names, key, strict=True)), "created_at": parsed.values["created_at"]}
            for key, parsed in keyed.items()
            if key not in stored
        ]
        if fresh:
            connection.execute(table.insert(), fresh)
        if stored:
            restamp = (
                update(table)
                .where(*(table.c[name] == bindparam(f"k_{name}") for name in names))
                .values(created_at=bindparam("k_created_at"))
            )
            params = [
                {
                    **{f"k_{name}": value for name, value in zip(names, key, strict=True)},
                    "k_created_at": keyed[key].values["created_at"],
                }
                for key in stored
            ]
            connection.execute(restamp, params)
        self.count(kind, batch, len(stored))

    def _write_status_history(self, connection: Connection, batch: list[_Parsed]) -> None:
        jobs = _ids(connection, JOBS, [parsed.refs["job"] for parsed in batch if parsed.refs["job"]])
        tasks = _ids(connection, TASKS, [parsed.refs["task"] for parsed in batch if parsed.refs["task"]])
        rows = []
        for parsed in batch:
            job = _resolve(jobs, parsed.refs["job"], parsed.number, "job")
            task = _resolve(tasks, parsed.refs["task"], parsed.number, "task")
            rows.append({"job_id": job.id, "task_id": None if task is None else task.id, **parsed.values})
        # No uuid: an entry is known by all it says; one stored already is not appended again.
        names = ("job_id", "task_id", "old_status", "new_status", "reason", "who", "at")

        def key(row: Mapping[Any, Any]) -> tuple[Any, ...]:
            return tuple(row[name] for name in names)

        stored: Counter[tuple[Any, ...]] = Counter()
        job_ids = sorted({row["job_id"] for row in rows})
        moments = sorted({row["at"] for row in rows})
        for job_chunk in chunks(job_ids):
            for moment_chunk in chunks(moments):
                statement = select(*(STATUS_HISTORY.c[name] for name in names)).where(
                    STATUS_HISTORY.c.job_id.in_(list(job_chunk)), STATUS_HISTORY.c.at.in_(list(moment_chunk))
                )
                stored.update(key(row) for row in connection.execute(statement).mappings())
        fresh = []
        for row in rows:
            if stored[key(row)] > 0:
                stored[key(row)] -= 1
            else:
                fresh.append(row)
        if fresh:
            connection.execute(STATUS_HISTORY.insert(), fresh)
        self.count("status_history", batch, len(rows) - len(fresh))

    def _write_last_rendered(self, connection: Connection, batch: list[_Parsed]) -> None:
        parsed = batch[-1]  # one pointer: the last line given wins
        jobs = _ids(connection, JOBS, [parsed.refs["job"]] if parsed.refs["job"] else [])
        job = _resolve(jobs, parsed.refs["job"], parsed.number, "job")
        had = connection.execute(select(LAST_RENDERED.c.id).where(LAST_RENDERED.c.id == 1)).first() is not None
        row = {"id": 1, "uuid": parsed.uuid, "job_id": job.id, **parsed.values}
        connection.execute(
            facts_of(connection).upsert(LAST_RENDERED, "id", ["uuid", "job_id", "created_at", "updated_at"]), row
        )
        self.count("last_rendered", batch[-1:], 1 if had else 0)

    # -- the flow model ---------------------------------------------------------

    def _write_logbook(self, connection: Connection, batch: list[_Parsed]) -> None:
        _distinct(batch, "logbook")
        existing = _ids(connection, BOOKS, [parsed.uuid for parsed in batch if parsed.uuid])
        _upsert(connection, BOOKS, [dict(parsed.values) for parsed in batch])
        self.count("logbook", batch, len(existing))

    def _write_children(
        self,
        connection: Connection,
        batch: list[_Parsed],
        table: Table,
        parent: Table,
        ref: str,
        column: str,
        kind: str,
    ) -> None:
        _distinct(batch, kind)
        parents = _ids(connection, parent, [parsed.refs[ref] for parsed in batch if parsed.refs[ref]])
        existing = _ids(connection, table, [parsed.uuid for parsed in batch if parsed.uuid], table.c[column])
        rows = []
        for parsed in batch:
            parent_id = _resolve(parents, parsed.refs[ref], parsed.number, ref.replace("_", " ")).id
            stored = existing.get(parsed.uuid) if parsed.uuid else None
            if stored is not None and stored[2] != parent_id:
                raise Conflict(
                    f"line {parsed.number}: {kind} {parsed.uuid} is stored under another {ref.replace('_', ' ')}"
                )
            rows.append({**parsed.values, column: parent_id})
        _upsert(connection, table, rows)
        self.count(kind, batch, len(existing))

    def _write_flow_detail(self, connection: Connection, batch: list[_Parsed]) -> None:
        self._write_children(connection, batch, FLOWS, BOOKS, "logbook", "logbook_id", "flow_detail")

    def _write_atom_detail(self, connection: Connection, batch: list[_Parsed]) -> None:
        self._write_children(connection, batch, ATOMS, FLOWS, "flow_detail", "flow_detail_id", "atom_detail")

    def finish(self, connection: Connection) -> None:
        self.close_job(connection)
        if self.forward:  # tasks of a job whose run of lines never ended here (cannot happen): finish them
            for job_id in list(self.forward):
                self.finish_job(connection, job_id)
        announce_work(connection)  # imported tasks may be claimable


async def _numbered(lines: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[tuple[int, str]]:
    number = 0
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            number += 1
            yield number, line
    else:
        for line in lines:
            number += 1
            yield number, line


async def import_lines(
    store: Store,
    lines: Iterable[str] | AsyncIterable[str],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import an export (lines with or without their line ends) into
    ``store``, in one transaction: all of it or, on the first bad line,
    nothing (InvalidInput naming the line). Re-importing the same lines
    updates and never duplicates. ``progress(lines_read)`` is called after
    each batch is written. Returns the counts per kind."""
    if isinstance(lines, (str, bytes)):
        raise InvalidInput("lines: expected an iterable of lines, got a single string")
    report = ImportReport()
    importer = _Importer(report)
    batch: list[_Parsed] = []
    kind = ""
    header = False

    async def flush() -> None:
        if batch:
            written = list(batch)
            await store.write(lambda connection: importer.write(connection, kind, written))
            batch.clear()
            if progress is not None:
                progress(report.lines)

    async with store.transaction():
        async for number, raw in _numbered(lines):
            report.lines = number
            if not isinstance(raw, str):
                raise InvalidInput(f"line {number}: expected text, got {type_name(raw)}")
            stripped = raw.strip()
            if not stripped:
                continue
            document = _document(number, stripped)
            if not header:
                _check_header(number, document)
                header = True
                continue
            line_kind = document["kind"]
            parser = _PARSERS.get(line_kind)
            if parser is None:
                raise InvalidInput(
                    f"line {number}: unknown kind {shown(line_kind)}"
                    + (" (a second header)" if line_kind == "header" else "")
                )
            line = _Line(number, line_kind, document)
            parsed = parser(line)
            line.done()
            if line_kind != kind or len(batch) >= BATCH:
                await flush()
                kind = line_kind
            batch.append(parsed)
        if not header:
            raise InvalidInput("line 1: the dump is empty (no header)")
        await flush()
        await store.write(importer.finish)
    if progress is not None:
        progress(report.lines)
    return report
