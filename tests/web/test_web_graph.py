"""A job's task graph: layers, the summary of a large job, and where the
picture puts each part."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from statestore import Store
from statestore.errors import InvalidInput, NotFound
from statestore.farm import AuthoredJob, AuthoredTask, JobStatus, TaskStatus
from statestore.farm.tables import DEPENDENCIES
from statestore.overview.graph import SUMMARY_GROUPS, job_graph, layers_of
from statestore.web.drawing import draw

ORDER = [status.value for status in TaskStatus]


@st.composite
def dags(draw_: st.DrawFn) -> tuple[list[int], list[tuple[int, int]]]:
    """Tasks 1..n, each depending on some earlier ones."""
    n = draw_(st.integers(0, 40))
    edges = []
    for task in range(2, n + 1):
        for dependency in draw_(st.sets(st.integers(1, task - 1), max_size=3)):
            edges.append((task, dependency))
    return list(range(1, n + 1)), edges


@given(dags())
def test_every_dependency_is_in_a_lower_layer_and_a_task_right_above_its_deepest(
    graph: tuple[list[int], list[tuple[int, int]]],
) -> None:
    ids, edges = graph
    layer = layers_of(ids, edges)
    assert set(layer) == set(ids)
    for task in ids:
        below = [layer[dependency] for t, dependency in edges if t == task]
        assert layer[task] == (max(below) + 1 if below else 0)


def test_tasks_on_a_cycle_go_past_the_rest() -> None:
    # The store refuses cycles when a job is authored; a hand-made import could still hold one.
    layer = layers_of([1, 2, 3, 4], [(2, 1), (3, 4), (4, 3)])
    assert layer == {1: 0, 2: 1, 3: 2, 4: 2}


async def test_a_small_job_is_drawn_task_by_task(store: Store) -> None:
    first, second = AuthoredTask("a", "blender"), AuthoredTask("b", "blender")
    last = AuthoredTask("c", "ffmpeg", dependencies=[first.uuid, second.uuid])
    job = await store.jobs.store_authored(AuthoredJob("j", "t", status=JobStatus.QUEUED, tasks=[first, second, last]))
    graph = await job_graph(store, job.uuid)
    assert (graph["tasks"], graph["layers"], graph["summarised"]) == (3, 2, False)
    assert [(n["name"], n["layer"], n["row"], n["status"]) for n in graph["nodes"]] == [
        ("a", 0, 0, "queued"),
        ("b", 0, 1, "queued"),
        ("c", 1, 0, "queued"),
    ]
    assert sorted(graph["edges"]) == sorted([[str(first.uuid), str(last.uuid)], [str(second.uuid), str(last.uuid)]])
    drawing = draw(graph, ORDER)
    assert len(drawing.nodes) == 3
    assert len(drawing.edges) == 2
    assert drawing.nodes[2]["x"] > drawing.nodes[0]["x"]


async def test_a_deep_job_is_summarised_in_groups_of_layers(store: Store) -> None:
    tasks = [AuthoredTask("t0", "blender")]
    for n in range(1, 450):
        tasks.append(AuthoredTask(f"t{n}", "blender", dependencies=[tasks[-1].uuid]))
    job = await store.jobs.store_authored(AuthoredJob("chain", "t", status=JobStatus.QUEUED, tasks=tasks))
    graph = await job_graph(store, job.uuid)
    assert (graph["tasks"], graph["layers"], graph["summarised"]) == (450, 450, True)
    groups = graph["nodes"]
    assert len(groups) <= SUMMARY_GROUPS
    assert groups[0]["first_layer"] == 0
    assert groups[-1]["last_layer"] == 449
    assert sum(group["tasks"] for group in groups) == 450
    assert all(group["counts"] == {"queued": group["tasks"]} for group in groups)
    assert graph["edges"] == [[n, n + 1] for n in range(len(groups) - 1)]
    drawing = draw(graph, ORDER)
    assert len(drawing.nodes) == len(groups)
    assert drawing.nodes[0]["segments"][0]["status"] == "queued"


async def test_a_dependency_on_another_jobs_task_leaves_the_graph(store: Store) -> None:
    # Authoring keeps dependencies within a job; a hand-made import could cross jobs.
    here, there = AuthoredTask("here", "blender"), AuthoredTask("there", "blender")
    job = await store.jobs.store_authored(AuthoredJob("a", "t", status=JobStatus.QUEUED, tasks=[here]))
    await store.jobs.store_authored(AuthoredJob("b", "t", status=JobStatus.QUEUED, tasks=[there]))
    ids = {task.uuid: task.id for task in [*await store.tasks.of_job(job.uuid)]}
    other = await store.tasks.fetch(there.uuid)

    def cross(connection: Connection) -> None:
        connection.execute(insert(DEPENDENCIES).values(task_id=ids[here.uuid], dependency_id=other.id))

    await store.write(cross)
    graph = await job_graph(store, job.uuid)
    assert (graph["tasks"], graph["layers"], graph["edges"]) == (1, 1, [])


async def test_graph_of_what_is_not_a_job(store: Store) -> None:
    with pytest.raises(NotFound):
        await job_graph(store, uuid4())
    with pytest.raises(InvalidInput):
        await job_graph(store, "job-1")
