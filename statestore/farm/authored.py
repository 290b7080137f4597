"""Checking and encoding a submitted job (:class:`AuthoredJob`) and its tasks, before any SQL.

Every field is checked with a message naming the task and the field; the
dependency graph is checked whole (no unknown reference, no duplicate, no
self-dependency, no cycle), so a refused submission writes nothing.

A dependency is given as a ``uuid.UUID``, its string form, an
:class:`AuthoredTask`, or the name of a task of the job. A string is a uuid
whenever ``uuid.UUID(string)`` parses it (so a task whose name parses as a
uuid cannot be referred to by name), else a name. An ``AuthoredTask`` stands
for its ``uuid``: one of the tasks given, or — for tasks added to a stored
job — a task stored before. A name must be carried by exactly one task of the
job; for added tasks the job's stored tasks count too, so names are resolved
there by :func:`resolve_names`, inside the unit, with one query for all of
them. Resolution is one pass over the dependencies, with one dict of names
built only when a name is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from statestore.core.validate import SMALLINT, enum_value, integer, json_object, shown, text, uuid_value
from statestore.errors import InvalidInput, InvalidReference
from statestore.farm.fields import STEPS_MAX, encode_commands, task_type_value
from statestore.farm.records import AuthoredJob, AuthoredTask
from statestore.farm.statuses import JobStatus
from statestore.farm.tables import LENGTHS

_NAME = LENGTHS["name"]


_TYPE = LENGTHS["type"]


_AMBIGUOUS = -1
"""In the index of tasks by name: more than one task has the name."""


@dataclass(frozen=True, slots=True)
class NameReference:
    """A dependency given by name, among tasks added to a stored job."""

    task: int
    """The depending task's index among the given tasks."""
    position: int
    """The reference's index in that task's ``dependencies``."""
    name: str
    inside: UUID | None
    """The uuid of the one given task of that name (then no stored task may
    have it), or None (exactly one stored task must have it)."""


@dataclass(frozen=True, slots=True)
class EncodedTasks:
    """Validated tasks in authoring order, with their dependencies.

    ``rows`` hold the columns known before the job is stored; ``dependencies``
    is parallel to ``rows``, as uuids. ``outside`` lists dependency uuids that
    are not among these tasks (for :func:`encode_authored_tasks`: they must be
    tasks already stored in the job, which only the database can tell).
    ``names`` (only from :func:`encode_authored_tasks`) lists every dependency
    given by name; those not found among the given tasks are not yet in
    ``dependencies`` — :func:`resolve_names` adds them.
    """

    rows: list[dict[str, Any]]
    dependencies: list[list[UUID]]
    outside: frozenset[UUID]
    steps_total: int
    names: tuple[NameReference, ...] = ()


@dataclass(frozen=True, slots=True)
class EncodedJob:
    """A validated job: its own columns, its worker tag's uuid, its tasks."""

    values: dict[str, Any]
    worker_tag: UUID | None
    tasks: EncodedTasks


def _label(task: object) -> str:
    name = getattr(task, "name", None)
    return f"task {shown(name)}"


def _encode_task(task: object) -> tuple[dict[str, Any], Sequence[object]]:
    """The task's columns, and its dependencies as given (resolved by
    :func:`_check_graph` once every task's uuid and name are known)."""
    if not isinstance(task, AuthoredTask):
        raise InvalidInput(f"expected an AuthoredTask, got {type(task).__name__}")
    where = _label(task)
    commands, steps = encode_commands(task.commands, where)
    dependencies = task.dependencies
    if not isinstance(dependencies, (list, tuple)):
        raise InvalidInput(
            f"{where}.dependencies: expected a list of uuid.UUID, uuid strings, task names or AuthoredTask"
        )
    row = {
        "uuid": uuid_value(task.uuid, f"{where}.uuid"),
        "name": text(task.name, _NAME, f"{where}.name"),
        "type": task_type_value(task.type, f"{where}.type"),
        "priority": integer(task.priority, f"{where}.priority", SMALLINT),
        "commands": commands,
        "steps_total": steps,
    }
    return row, dependencies


def _parsed_uuid(value: str) -> UUID | None:
    if len(value) < 32:  # uuid.UUID needs 32 hex digits: most names are shorter
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def _by_name(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Each task name's index among ``rows`` (``_AMBIGUOUS`` if several)."""
    by_name: dict[str, int] = {}
    for index, row in enumerate(rows):
        name = row["name"]
        by_name[name] = _AMBIGUOUS if name in by_name else index
    return by_name


def _given(dependency: object, uuid: UUID) -> str:
    """A dependency as the caller gave it, for messages."""
    if isinstance(dependency, AuthoredTask):
        return f"task {shown(dependency.name)} ({uuid})"
    if isinstance(dependency, str) and _parsed_uuid(dependency) is None:
        return f"task {shown(dependency)} ({uuid})"
    return str(uuid)


def _ambiguous(where: str, name: str, count: int) -> InvalidReference:
    return InvalidReference(
        f"{where}: {count} tasks of this job are named {shown(name)}; refer to the one meant by uuid or AuthoredTask"
    )


def _check_graph(
    rows: list[dict[str, Any]], given: list[Sequence[object]], *, closed: bool
) -> tuple[list[list[UUID]], frozenset[UUID], tuple[NameReference, ...]]:
    """Resolve every task's dependencies to uuids; refuse duplicate task
    uuids, unknown or ambiguous names, self and duplicate dependencies, and
    cycles; with ``closed``, also any dependency outside ``rows``.

    Returns the dependencies as uuids (parallel to ``rows``), the dependency
    uuids outside ``rows`` and, without ``closed``, every dependency given by
    name (see :class:`NameReference`). Cycles can only run through the given
    tasks: stored tasks never depend on new ones.
    """
    position: dict[UUID, int] = {}
    for index, row in enumerate(rows):
        uuid = row["uuid"]
        if uuid in position:
            raise InvalidInput(
                f"task {shown(row['name'])}: uuid {uuid} is also used by task {shown(rows[position[uuid]]['name'])}"
            )
        position[uuid] = index
    by_name: dict[str, int] | None = None
    outside: set[UUID] = set()
    names: list[NameReference] = []
    resolved: list[list[UUID]] = []
    inside: list[list[int]] = []
    for index, (row, deps) in enumerate(zip(rows, given, strict=True)):
        uuids: list[UUID] = []
        local: list[int] = []
        for number, dep in enumerate(deps):
            if isinstance(dep, UUID):
                uuid = dep
            elif isinstance(dep, AuthoredTask):
                uuid = uuid_value(
                    dep.uuid, f"task {shown(row['name'])}.dependencies[{number}]: task {shown(dep.name)}.uuid"
                )
            elif isinstance(dep, str):
                parsed = _parsed_uuid(dep)
                if parsed is not None:
                    uuid = parsed
                else:
                    if by_name is None:
                        by_name = _by_name(rows)
                    found = by_name.get(dep)
                    if found == _AMBIGUOUS:
                        count = sum(1 for other in rows if other["name"] == dep)
                        raise _ambiguous(f"task {shown(row['name'])}.dependencies[{number}]", dep, count)
                    if found is None:
                        if closed:
                            raise InvalidReference(
                                f"task {shown(row['name'])}.dependencies[{number}]: "
                                f"no task of this job is named {shown(dep)} (and it is not a uuid)"
                            )
                        names.append(NameReference(index, number, dep, None))
                        continue
                    uuid = rows[found]["uuid"]
                    if not closed:
                        names.append(NameReference(index, number, dep, uuid))
            else:
                raise InvalidInput(
                    f"task {shown(row['name'])}.dependencies[{number}]: expected a uuid.UUID, a uuid string,"
                    f" a task name or an AuthoredTask, got {type(dep).__name__}"
                )
            found = position.get(uuid)
            if found is None:
                if closed:
                    raise InvalidReference(
                        f"task {shown(row['name'])}.dependencies[{number}]: "
                        f"{_given(dep, uuid)} is not a task of this job"
                    )
                outside.add(uuid)
            elif found == index:
                raise InvalidInput(f"task {shown(row['name'])} depends on itself (dependencies[{number}])")
            else:
                local.append(found)
            uuids.append(uuid)
        if len(uuids) > 1 and len(set(uuids)) != len(uuids):
            _refuse_duplicate(row["name"], uuids, {uuid: rows[at]["name"] for uuid, at in position.items()})
        resolved.append(uuids)
        inside.append(local)
    _refuse_cycles(rows, inside)
    return resolved, frozenset(outside), tuple(names)


def _refuse_duplicate(name: str, uuids: list[UUID], names: Mapping[UUID, str]) -> None:
    """Name the first dependency that task ``name`` lists twice (in any of
    the accepted forms); ``names`` gives the names of the tasks known."""
    seen: set[UUID] = set()
    for uuid in uuids:
        if uuid in seen:
            known = names.get(uuid)
            label = str(uuid) if known is None else f"task {shown(known)} ({uuid})"
            raise InvalidInput(f"task {shown(name)}: dependency {label} is listed twice")
        seen.add(uuid)


def _refuse_cycles(rows: list[dict[str, Any]], inside: list[list[int]]) -> None:
    """Kahn's algorithm; if tasks remain, follow their remaining
    dependencies until one repeats, and name the tasks of that cycle."""
    waiting = [len(deps) for deps in inside]
    dependents: list[list[int]] = [[] for _ in inside]
    for index, deps in enumerate(inside):
        for dep in deps:
            dependents[dep].append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    done = 0
    while ready:
        index = ready.pop()
        done += 1
        for dependent in dependents[index]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if done == len(inside):
        return
    node = next(index for index, count in enumerate(waiting) if count > 0)
    path: list[int] = []
    on_path: dict[int, int] = {}
    while node not in on_path:
        on_path[node] = len(path)
        path.append(node)
        node = next(dep for dep in inside[node] if waiting[dep] > 0)
    cycle = path[on_path[node] :]
    names = " → ".join(repr(rows[index]["name"]) for index in [*cycle, cycle[0]])
    raise InvalidInput(f"tasks depend on each other in a cycle: {names}")


def _encode_tasks(tasks: object, *, closed: bool) -> EncodedTasks:
    if not isinstance(tasks, (list, tuple)):
        raise InvalidInput(f"tasks: expected a list of AuthoredTask, got {type(tasks).__name__}")
    rows: list[dict[str, Any]] = []
    given: list[Sequence[object]] = []
    steps_total = 0
    for task in tasks:
        row, deps = _encode_task(task)
        rows.append(row)
        given.append(deps)
        steps_total += row["steps_total"]
    dependencies, outside, names = _check_graph(rows, given, closed=closed)
    return EncodedTasks(rows=rows, dependencies=dependencies, outside=outside, steps_total=steps_total, names=names)


def encode_authored_job(job: object) -> EncodedJob:
    """Validate a submitted job with all its tasks (nothing is stored yet)."""
    if not isinstance(job, AuthoredJob):
        raise InvalidInput(f"expected an AuthoredJob, got {type(job).__name__}")
    where = f"job {shown(job.name)}"
    tasks = _encode_tasks(job.tasks, closed=True)
    if tasks.steps_total > STEPS_MAX:
        raise InvalidInput(f"{where}: {tasks.steps_total} steps in total, at most {STEPS_MAX} allowed")
    tag = None if job.worker_tag is None else uuid_value(job.worker_tag, f"{where}.worker_tag")
    values = {
        "uuid": uuid_value(job.uuid, f"{where}.uuid"),
        "name": text(job.name, _NAME, f"{where}.name"),
        "job_type": text(job.job_type, _TYPE, f"{where}.job_type"),
        "priority": integer(job.priority, f"{where}.priority", SMALLINT),
        "status": enum_value(JobStatus, job.status, f"{where}.status").value,
        "activity": "",
        "settings": json_object(job.settings, f"{where}.settings"),
        "metadata": json_object(job.metadata, f"{where}.metadata"),
        "delete_requested_at": None,
        "storage_checkout_id": text(
            job.storage_checkout_id, LENGTHS["storage_checkout_id"], f"{where}.storage_checkout_id"
        ),
        "steps_completed": 0,
        "steps_total": tasks.steps_total,
    }
    return EncodedJob(values=values, worker_tag=tag, tasks=tasks)


def encode_authored_tasks(tasks: object) -> EncodedTasks:
    """Validate tasks to add to a stored job; their dependencies outside the
    given tasks, and every dependency given by name, are checked against the
    job's stored tasks in the unit (:func:`resolve_names`, then by uuid)."""
    return _encode_tasks(tasks, closed=False)


def resolve_names(tasks: EncodedTasks, stored: Mapping[str, Sequence[UUID]]) -> EncodedTasks:
    """``tasks`` with their dependencies given by name resolved, ``stored``
    holding the uuids of the job's stored tasks by name (for the names in
    ``tasks.names``; matched exactly, as Python compares strings).

    A name must be carried by exactly one task of the job, given or stored:
    none is InvalidReference, several too (ambiguous). The stored tasks found
    join ``outside``, so they are then checked and locked like dependencies
    given by uuid. Returns a new value: ``tasks`` is left as it was, for a
    unit that runs again.
    """
    added: dict[int, list[UUID]] = {}
    for reference in tasks.names:
        found = stored.get(reference.name, ())
        where = f"task {shown(tasks.rows[reference.task]['name'])}.dependencies[{reference.position}]"
        if reference.inside is not None:
            if found:
                raise _ambiguous(where, reference.name, len(found) + 1)
        elif not found:
            raise InvalidReference(
                f"{where}: no task of this job is named {shown(reference.name)} (and it is not a uuid)"
            )
        elif len(found) > 1:
            raise _ambiguous(where, reference.name, len(found))
        else:
            added.setdefault(reference.task, []).append(found[0])
    if not added:
        return replace(tasks, names=())
    dependencies = list(tasks.dependencies)
    outside = set(tasks.outside)
    for index, uuids in added.items():
        deps = [*dependencies[index], *uuids]
        if len(set(deps)) != len(deps):
            _refuse_duplicate(tasks.rows[index]["name"], deps, {})
        dependencies[index] = deps
        outside.update(uuids)
    return replace(tasks, dependencies=dependencies, outside=frozenset(outside), names=())
