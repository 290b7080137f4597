"""A job's task graph as a plain JSON-ready shape, laid out in layers.

A task's layer is the length of the longest dependency chain below it (a
task without dependencies is in layer 0), so every edge points from a lower
layer to a higher one. Up to :data:`DRAWN_TASKS` tasks the shape lists
every task as a node, placed by layer and by authoring order within it, and
every dependency as an edge; beyond that it is summarised: at most
:data:`SUMMARY_GROUPS` nodes, each a run of consecutive layers with its
tasks counted by status, and an edge between groups that dependencies
join. Either way it costs two queries — the job's tasks' lean
columns and the job's dependency pairs — whatever the job's size.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import Any, Final
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore.core.validate import uuid_value
from statestore.errors import NotFound
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS
from statestore.store import Store

__all__ = ["DRAWN_TASKS", "SUMMARY_GROUPS", "job_graph", "layers_of"]

DRAWN_TASKS: Final = 400
"""Jobs with more tasks than this get the summarised graph."""

SUMMARY_GROUPS: Final = 40
"""At most this many nodes in a summarised graph: deeper jobs group layers."""

_TASKS = (
    select(TASKS.c.id, TASKS.c.uuid, TASKS.c.name, TASKS.c.status, TASKS.c.type)
    .join(JOBS, JOBS.c.id == TASKS.c.job_id)
    .where(JOBS.c.uuid == bindparam("job"))
    .order_by(TASKS.c.index_in_job)
)
_EDGES = (
    select(DEPENDENCIES.c.task_id, DEPENDENCIES.c.dependency_id)
    .join(TASKS, TASKS.c.id == DEPENDENCIES.c.task_id)
    .join(JOBS, JOBS.c.id == TASKS.c.job_id)
    .where(JOBS.c.uuid == bindparam("job"))
)
_JOB = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("job"))


def layers_of(ids: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """Each task's layer: 0 without dependencies, else one more than its
    deepest dependency (Kahn's order, linear in tasks and edges). Tasks on a
    dependency cycle — which the store's authoring refuses, but a hand-made
    import might hold — go one layer past the rest rather than nowhere."""
    dependents: dict[int, list[int]] = defaultdict(list)
    waiting = dict.fromkeys(ids, 0)
    for task, dependency in edges:
        dependents[dependency].append(task)
        waiting[task] += 1
    layer = dict.fromkeys(ids, 0)
    ready = deque(task for task in ids if waiting[task] == 0)
    placed = 0
    while ready:
        task = ready.popleft()
        placed += 1
        for dependent in dependents[task]:
            layer[dependent] = max(layer[dependent], layer[task] + 1)
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if placed < len(ids):
        beyond = max(layer.values(), default=0) + 1
        for task, count in waiting.items():
            if count:
                layer[task] = beyond
    return layer


def _read(connection: Connection, job: UUID) -> tuple[list[Any], list[tuple[int, int]]]:
    tasks = list(connection.execute(_TASKS, {"job": job}))
    if not tasks and connection.execute(_JOB, {"job": job}).first() is None:
        raise NotFound(f"job {job} not found")
    edges = [(int(task), int(dependency)) for task, dependency in connection.execute(_EDGES, {"job": job})]
    return tasks, edges


async def job_graph(store: Store, job: UUID | str, *, drawn_tasks: int = DRAWN_TASKS) -> dict[str, Any]:
    """Job ``job``'s task graph (NotFound if there is no such job).

    ``summarised`` False: ``nodes`` are the tasks (uuid, name, type,
    status, layer, row: the place within the layer), ``edges`` are
    ``[dependency, task]`` pairs of uuids. ``summarised`` True: ``nodes``
    are groups of consecutive layers (``first_layer``, ``last_layer``,
    ``tasks``, ``counts`` by status), ``edges`` are ``[lower group, higher
    group]`` index pairs that some dependency joins. ``layers`` is the
    number of layers, ``tasks`` the number of tasks."""
    job_id = uuid_value(job, "job")
    tasks, all_edges = await store.read(lambda connection: _read(connection, job_id))
    ids = [int(task.id) for task in tasks]
    # Authoring keeps dependencies within a job; a hand-made import may not. Such an edge
    # leaves the graph rather than the page.
    known = set(ids)
    edges = [(task, dependency) for task, dependency in all_edges if dependency in known]
    layer = layers_of(ids, edges)
    depth = max(layer.values(), default=-1) + 1
    shape: dict[str, Any] = {"job": str(job_id), "tasks": len(tasks), "layers": depth}
    if len(tasks) > drawn_tasks:
        per_group = -(-depth // SUMMARY_GROUPS)
        groups = -(-depth // per_group)
        counts: list[Counter[str]] = [Counter() for _ in range(groups)]
        for task in tasks:
            counts[layer[int(task.id)] // per_group][str(task.status)] += 1
        joined = sorted(
            {(layer[dependency] // per_group, layer[task] // per_group) for task, dependency in edges}
            - {(group, group) for group in range(groups)}
        )
        shape["summarised"] = True
        shape["nodes"] = [
            {
                "first_layer": index * per_group,
                "last_layer": min(depth, (index + 1) * per_group) - 1,
                "tasks": sum(count.values()),
                "counts": dict(sorted(count.items())),
            }
            for index, count in enumerate(counts)
        ]
        shape["edges"] = [list(pair) for pair in joined]
        return shape
    rows: Counter[int] = Counter()
    uuid_of: dict[int, str] = {}
    nodes = []
    for task in tasks:
        at = layer[int(task.id)]
        uuid_of[int(task.id)] = str(task.uuid)  # a Uuid column: a UUID on every dialect
        nodes.append(
            {
                "uuid": uuid_of[int(task.id)],
                "name": task.name,
                "type": task.type,
                "status": str(task.status),
                "layer": at,
                "row": rows[at],
            }
        )
        rows[at] += 1
    shape["summarised"] = False
    shape["nodes"] = nodes
    shape["edges"] = [[uuid_of[dependency], uuid_of[task]] for task, dependency in edges]
    return shape
