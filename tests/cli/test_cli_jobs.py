"""``statestore jobs``, ``jobs show``, the steering commands (cancel, pause,
requeue, delete), ``tasks requeue`` and ``blocklist clear``: they read and
change what ``store`` sees, with the operator's reason in the history."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from statestore import Store
from statestore.errors import InvalidInput, NotFound
from statestore.farm import Job, JobStatus, TaskStatus
from statestore.overview.jobs import job_detail
from tests.cli.conftest import cli
from tests.support.farm_fixtures import authored_job, create_worker, job_of, render_task, store_job
from tests.support.state_machine_fixtures import C, F, Q, activate, job_with
from tests.support.statements import statements

LONG_NAME = "a-long-job-name-that-no-narrow-terminal-can-show-in-full-" + "x" * 7


async def test_jobs_lists_and_filters_by_status(store: Store, store_url: str) -> None:
    queued, _ = await job_with(store, Q, Q, name="queued-job")
    done, _ = await job_with(store, C, job_status=JobStatus.COMPLETED, name="done-job")
    listed = await cli("jobs", "--url", store_url)
    assert listed.exit_code == 0, listed.stderr
    assert "queued-job" in listed.stdout
    assert "done-job" in listed.stdout
    only = await cli("jobs", "--url", store_url, "--status", "completed", "--json")
    assert [row["uuid"] for row in only.json()] == [str(done.uuid)]
    both = await cli("jobs", "--url", store_url, "--status", "completed", "--status", "queued", "--json")
    assert {row["uuid"] for row in both.json()} == {str(done.uuid), str(queued.uuid)}
    assert len((await cli("jobs", "--url", store_url, "--limit", "1", "--json")).json()) == 1
    bad = await cli("jobs", "--url", store_url, "--status", "sleeping")
    assert bad.exit_code == 2
    assert "--status" in bad.stderr
    assert "sleeping" in bad.stderr


async def test_jobs_json_is_the_job_rows(store: Store, store_url: str) -> None:
    job, _ = await job_with(store, C, Q, steps=3, name="half")
    [row] = (await cli("jobs", "--json", "--url", store_url)).json()
    assert row["uuid"] == str(job.uuid)
    assert row["name"] == "half"
    assert row["status"] == "queued"
    assert (row["steps_completed"], row["steps_total"]) == (3, 6)
    assert row["delete_requested"] is False


async def test_show_a_job_with_tasks_failures_blocklist_and_history(store: Store, store_url: str) -> None:
    job, tasks = await job_with(store, Q, Q, Q, name="shown")
    worker = await create_worker(store, "render-box")
    await store.task_failures.add(tasks[1], worker.uuid)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    await store.state_machine.task_status_change(tasks[0], TaskStatus.CANCELED, reason="not needed")
    detail = (await cli("jobs", "show", str(job.uuid), "--url", store_url, "--json", "--tasks", "2")).json()
    assert detail["name"] == "shown"
    assert [task["uuid"] for task in detail["tasks"]] == [str(tasks[0]), str(tasks[1])]
    assert detail["tasks_total"] == 3
    assert detail["tasks_not_listed"] == 1
    assert detail["task_counts"] == {"canceled": 1, "queued": 2}
    assert detail["tasks"][1]["failed_by"] == [{"uuid": str(worker.uuid), "name": "render-box"}]
    assert detail["tasks"][0]["failed_by"] == []
    assert [(b["worker"]["uuid"], b["task_type"]) for b in detail["blocklist"]] == [(str(worker.uuid), "blender")]
    assert [(h["task"], h["new_status"], h["reason"]) for h in detail["history"]] == [
        (str(tasks[0]), "canceled", "not needed")
    ]
    shown = await cli("jobs", "show", str(job.uuid), "--url", store_url)
    assert shown.exit_code == 0, shown.stderr
    for text in ("shown", "render-box", "blender", "not needed", "canceled"):
        assert text in shown.stdout


async def test_show_lists_dependencies_by_uuid(store: Store, store_url: str) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    detail = (await cli("jobs", "show", str(job.uuid), "--url", store_url, "--json")).json()
    first, second, _video = authored.tasks
    assert detail["tasks"][2]["dependencies"] == [str(first.uuid), str(second.uuid)]
    assert detail["tasks"][0]["dependencies"] == []


@pytest.mark.parametrize(
    ("command", "status"),
    [("cancel", JobStatus.CANCELED), ("pause", JobStatus.PAUSED), ("requeue", JobStatus.QUEUED)],
)
async def test_steering_changes_the_job_with_the_reason(
    store: Store, store_url: str, command: str, status: JobStatus
) -> None:
    start = JobStatus.FAILED if command == "requeue" else JobStatus.QUEUED
    job, _ = await job_with(store, Q, C, job_status=start)
    ran = await cli("jobs", command, str(job.uuid), "--reason", "rush order", "--url", store_url, "--json")
    assert ran.exit_code == 0, ran.stderr
    assert (await store.jobs.fetch(job.uuid)).status is status
    assert ran.json()[-1]["new_status"] == status.value
    history = await store.status_history.of_job(job.uuid)
    job_changes = [entry for entry in history if entry.task_uuid is None]
    assert job_changes
    assert all(entry.reason == "rush order" for entry in job_changes)
    assert all(entry.who.startswith("operator:") for entry in job_changes)


async def test_steering_without_a_reason_names_the_command(store: Store, store_url: str) -> None:
    job, _ = await job_with(store, Q)
    ran = await cli("jobs", "cancel", str(job.uuid), "--url", store_url)
    assert ran.exit_code == 0, ran.stderr
    assert "canceled" in ran.stdout
    history = await store.status_history.of_job(job.uuid)
    assert "statestore jobs cancel" in history[0].reason


async def test_a_refused_transition_is_one_red_line(store: Store, store_url: str) -> None:
    job, _ = await job_with(store, C, job_status=JobStatus.COMPLETED)
    ran = await cli("jobs", "pause", str(job.uuid), "--url", store_url)
    assert ran.exit_code == 2
    assert "Conflict" in ran.stderr
    assert ran.stderr.count("\n") == 1
    assert "Traceback" not in ran.stderr
    assert (await store.jobs.fetch(job.uuid)).status is JobStatus.COMPLETED


async def test_delete_without_yes_is_refused_and_deletes_nothing(store: Store, store_url: str) -> None:
    job, _ = await job_with(store, Q)
    ran = await cli("jobs", "delete", str(job.uuid), "--url", store_url)
    assert ran.exit_code == 2
    assert "--yes" in ran.stderr
    assert (await store.jobs.fetch(job.uuid)).uuid == job.uuid


async def test_delete_asks_on_a_terminal(store: Store, store_url: str, terminal: None) -> None:
    job, _ = await job_with(store, Q)
    refused = await cli("jobs", "delete", str(job.uuid), "--url", store_url, input="n\n")
    assert refused.exit_code == 1
    assert (await store.jobs.fetch(job.uuid)).uuid == job.uuid
    assert (await cli("jobs", "delete", str(job.uuid), "--url", store_url, input="y\n")).exit_code == 0
    with pytest.raises(NotFound):
        await store.jobs.fetch(job.uuid)


async def test_delete_with_yes(store: Store, store_url: str) -> None:
    job, tasks = await job_with(store, Q, C, name="doomed")
    ran = await cli("jobs", "delete", str(job.uuid), "--yes", "--url", store_url, "--json")
    assert ran.exit_code == 0, ran.stderr
    assert ran.json()["deleted"]["name"] == "doomed"
    with pytest.raises(NotFound):
        await store.jobs.fetch(job.uuid)
    with pytest.raises(NotFound):
        await store.tasks.fetch(tasks[0])


async def test_delete_refuses_a_job_with_an_active_task(store: Store, store_url: str) -> None:
    job, tasks = await job_with(store, Q, Q)
    await activate(store, await create_worker(store), tasks[0])
    ran = await cli("jobs", "delete", str(job.uuid), "--yes", "--url", store_url)
    assert ran.exit_code == 2
    assert "cancel" in ran.stderr
    assert (await store.jobs.fetch(job.uuid)).uuid == job.uuid


async def test_tasks_requeue(store: Store, store_url: str) -> None:
    job, tasks = await job_with(store, C, F, job_status=JobStatus.ACTIVE)
    ran = await cli("tasks", "requeue", str(tasks[1]), "--reason", "bad frame", "--url", store_url)
    assert ran.exit_code == 0, ran.stderr
    assert (await store.tasks.fetch(tasks[1])).status is TaskStatus.QUEUED
    assert (await store.tasks.fetch(tasks[0])).status is TaskStatus.COMPLETED
    assert (await store.jobs.fetch(job.uuid)).status is JobStatus.ACTIVE
    history = await store.status_history.of_task(tasks[1])
    assert [(entry.new_status, entry.reason) for entry in history] == [("queued", "bad frame")]


async def test_blocklist_clear(store: Store, store_url: str) -> None:
    job, _ = await job_with(store, Q)
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    refused = await cli("blocklist", "clear", str(job.uuid), "--url", store_url)
    assert refused.exit_code == 2
    assert len(await store.blocklist.entries(job.uuid)) == 1
    ran = await cli("blocklist", "clear", str(job.uuid), "--yes", "--url", store_url, "--json")
    assert ran.exit_code == 0, ran.stderr
    assert ran.json() == {"job": str(job.uuid), "cleared": 1}
    assert await store.blocklist.entries(job.uuid) == []


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "show"],
        ["jobs", "cancel"],
        ["jobs", "delete", "--yes"],
        ["tasks", "requeue"],
        ["blocklist", "clear", "--yes"],
    ],
)
async def test_an_unknown_uuid_is_an_error_naming_it(store_url: str, command: list[str]) -> None:
    missing = str(uuid4())
    ran = await cli(*command, missing, "--url", store_url)
    assert ran.exit_code == 2
    assert missing in ran.stderr
    assert ran.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [["jobs", "show"], ["jobs", "pause"], ["tasks", "requeue"]])
async def test_a_malformed_uuid_is_an_error_naming_the_argument(store_url: str, command: list[str]) -> None:
    ran = await cli(*command, "not-a-uuid", "--url", store_url)
    assert ran.exit_code == 2
    assert "not-a-uuid" in ran.stderr
    assert ran.stderr.count("\n") == 1
    assert ("TASK" if command[0] == "tasks" else "JOB") in ran.stderr


async def test_a_narrow_terminal_truncates_the_table_but_not_the_json(store: Store, store_url: str) -> None:
    assert len(LONG_NAME) == 64  # the longest name a job may have
    await store_job(store, job_of(render_task("frames"), name=LONG_NAME))
    narrow = await cli("jobs", "--url", store_url, env={"COLUMNS": "60"})
    assert narrow.exit_code == 0, narrow.stderr
    assert LONG_NAME not in narrow.stdout
    assert "…" in narrow.stdout
    assert all(len(line) <= 60 for line in narrow.stdout.splitlines())
    assert (await cli("jobs", "--url", store_url, "--json", env={"COLUMNS": "60"})).json()[0]["name"] == LONG_NAME


async def _job_of_size(store: Store, size: int, worker: UUID) -> tuple[Job, list[UUID]]:
    authored = job_of(*[render_task(f"frames-{index}") for index in range(size)], name=f"{size} tasks")
    authored.tasks[1].dependencies = [authored.tasks[0].uuid]
    job = await store_job(store, authored)
    uuids = [task.uuid for task in authored.tasks]
    for task in uuids[:3]:
        await store.task_failures.add(task, worker)
    return job, uuids


async def test_job_detail_costs_the_same_queries_for_a_small_and_a_big_job(store: Store) -> None:
    worker = await create_worker(store, "box")
    small, _ = await _job_of_size(store, 12, worker.uuid)
    big, big_tasks = await _job_of_size(store, 400, worker.uuid)
    with statements(store) as small_statements:
        await job_detail(store, small.uuid, task_limit=10)
    with statements(store) as big_statements:
        detail = await job_detail(store, big.uuid, task_limit=10)
    assert len(big_statements) == len(small_statements)
    assert [task["uuid"] for task in detail["tasks"]] == [str(task) for task in big_tasks[:10]]
    assert detail["tasks_not_listed"] == 390
    assert detail["tasks"][1]["dependencies"] == [str(big_tasks[0])]
    assert [len(task["failed_by"]) for task in detail["tasks"][:4]] == [1, 1, 1, 0]
    everything = await job_detail(store, big.uuid, task_limit=1000)
    assert len(everything["tasks"]) == 400
    assert everything["tasks_not_listed"] == 0


async def test_job_detail_checks_its_arguments_before_any_sql(store: Store) -> None:
    with statements(store) as seen:
        with pytest.raises(InvalidInput, match="job"):
            await job_detail(store, "not-a-uuid")
        with pytest.raises(InvalidInput, match="task_limit"):
            await job_detail(store, uuid4(), task_limit=-1)
    assert seen == []
    with pytest.raises(NotFound):
        await job_detail(store, uuid4())
