"""Checking and encoding a submitted job (:class:`AuthoredJob`) and its tasks, before any SQL.

Every field is checked with a message naming the task and the field; the
dependency graph is checked whole (no unknown reference, no duplicate, no
self-dependency, no cycle), so a refused submission writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from statestore.core.validate import SMALLINT, enum_value, integer, json_object, text, uuid_value
from statestore.errors import InvalidInput, InvalidReference
from statestore.farm.fields import STEPS_MAX, encode_commands, task_type_value
from statestore.farm.records import AuthoredJob, AuthoredTask
from statestore.farm.statuses import JobStatus
from statestore.farm.tables import LENGTHS

_NAME = LENGTHS["name"]


_TYPE = LENGTHS["type"]


@dataclass(frozen=True, slots=True)
class EncodedTasks:
    """Validated tasks in authoring order, with their dependencies.

    ``rows`` hold the columns known before the job is stored; ``dependencies``
    is parallel to ``rows``. ``outside`` lists dependency uuids that are not
    among these tasks (for :func:`encode_authored_tasks`: they must be tasks
    already stored in the job, which only the database can tell).
    """

    rows: list[dict[str, Any]]
    dependencies: list[list[UUID]]
    outside: frozenset[UUID]
    steps_total: int


@dataclass(frozen=True, slots=True)
class EncodedJob:
    """A validated job: its own columns, its worker tag's uuid, its tasks."""

    values: dict[str, Any]
    worker_tag: UUID | None
    tasks: EncodedTasks


def _label(task: object) -> str:
    name = getattr(task, "name", None)
    return f"task {name!r}"


def _encode_task(task: object) -> tuple[dict[str, Any], list[UUID]]:
    if not isinstance(task, AuthoredTask):
        raise InvalidInput(f"expected an AuthoredTask, got {type(task).__name__}")
    where = _label(task)
    commands, steps = encode_commands(task.commands, where)
    dependencies = task.dependencies
    if not isinstance(dependencies, (list, tuple)):
        raise InvalidInput(f"{where}.dependencies: expected a list of uuid.UUID")
    for dependency in dependencies:
        if not isinstance(dependency, UUID):
            uuid_value(dependency, f"{where}.dependencies")
    row = {
        "uuid": uuid_value(task.uuid, f"{where}.uuid"),
        "name": text(task.name, _NAME, f"{where}.name"),
        "type": task_type_value(task.type, f"{where}.type"),
        "priority": integer(task.priority, f"{where}.priority", SMALLINT),
        "commands": commands,
        "steps_total": steps,
    }
    return row, list(dependencies)


def _check_graph(rows: list[dict[str, Any]], dependencies: list[list[UUID]], *, closed: bool) -> frozenset[UUID]:
    """Refuse duplicate task uuids, self and duplicate dependencies, and
    cycles; with ``closed``, also any dependency outside ``rows``.

    Returns the dependency uuids outside ``rows``. Cycles can only run through
    the given tasks: stored tasks never depend on new ones.
    """
    position: dict[UUID, int] = {}
    for index, row in enumerate(rows):
        uuid = row["uuid"]
        if uuid in position:
            raise InvalidInput(
                f"task {row['name']!r}: uuid {uuid} is also used by task {rows[position[uuid]]['name']!r}"
            )
        position[uuid] = index
    outside: set[UUID] = set()
    inside: list[list[int]] = []
    for row, deps in zip(rows, dependencies, strict=True):
        if len(set(deps)) != len(deps):
            duplicate = next(dep for number, dep in enumerate(deps) if dep in deps[:number])
            raise InvalidInput(f"task {row['name']!r}: dependency {duplicate} is listed twice")
        local: list[int] = []
        for dep in deps:
            found = position.get(dep)
            if found is None:
                if closed:
                    raise InvalidReference(f"task {row['name']!r}: dependency {dep} is not a task of this job")
                outside.add(dep)
            elif dep == row["uuid"]:
                raise InvalidInput(f"task {row['name']!r} depends on itself")
            else:
                local.append(found)
        inside.append(local)
    _refuse_cycles(rows, inside)
    return frozenset(outside)


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
    dependencies: list[list[UUID]] = []
    steps_total = 0
    for task in tasks:
        row, deps = _encode_task(task)
        rows.append(row)
        dependencies.append(deps)
        steps_total += row["steps_total"]
    outside = _check_graph(rows, dependencies, closed=closed)
    return EncodedTasks(rows=rows, dependencies=dependencies, outside=outside, steps_total=steps_total)


def encode_authored_job(job: object) -> EncodedJob:
    """Validate a submitted job with all its tasks (nothing is stored yet)."""
    if not isinstance(job, AuthoredJob):
        raise InvalidInput(f"expected an AuthoredJob, got {type(job).__name__}")
    where = f"job {job.name!r}"
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
    given tasks are checked against the job's tasks when stored."""
    return _encode_tasks(tasks, closed=False)
