"""``statestore workers``, ``workers show`` and the steering commands
(sleep, wake, forget): they read and change what ``store`` sees, and never
show a worker's secret."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy import select

from statestore import NotFound, Store
from statestore.farm import TaskStatus, WorkerStatus
from statestore.farm.tables import WORKERS
from tests.cli.conftest import cli
from tests.support.farm_fixtures import create_worker
from tests.support.feed_reading import settled_changes
from tests.support.state_machine_fixtures import Q, activate, job_with, task_statuses

LONG_NAME = "a-render-node-with-a-name-no-narrow-terminal-can-show-" + "x" * 9


async def _secret_hash(store: Store) -> str:
    return str(await store.read(lambda connection: connection.execute(select(WORKERS.c.secret_hash)).scalars().first()))


async def test_workers_list_show_and_json(store: Store, store_url: str) -> None:
    worker = await create_worker(store, "box-1")
    asleep = await create_worker(store, "box-2", status=WorkerStatus.ASLEEP)
    tag = await store.worker_tags.create("gpu")
    await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    await store.sleep_schedules.set(
        worker.uuid, is_active=True, days_of_week="mo tu", start_time="22:00", end_time="06:00"
    )
    job, tasks = await job_with(store, Q, name="frames")
    await activate(store, worker, tasks[0])
    listed = await cli("workers", "--url", store_url)
    assert listed.exit_code == 0, listed.stderr
    assert "box-1" in listed.stdout
    assert "box-2" in listed.stdout
    assert "gpu" in listed.stdout
    rows = (await cli("workers", "--url", store_url, "--json")).json()
    assert [row["name"] for row in rows] == ["box-1", "box-2"]
    assert rows[0]["current_task"] == {
        "uuid": str(tasks[0]),
        "name": "frames-0",
        "job": str(job.uuid),
        "job_name": "frames",
    }
    assert rows[0]["tags"] == [{"uuid": str(tag.uuid), "name": "gpu"}]
    assert rows[1]["current_task"] is None
    only = (await cli("workers", "--url", store_url, "--status", "asleep", "--json")).json()
    assert [row["uuid"] for row in only] == [str(asleep.uuid)]
    assert len((await cli("workers", "--url", store_url, "--limit", "1", "--json")).json()) == 1
    bad = await cli("workers", "--url", store_url, "--status", "dozing")
    assert bad.exit_code == 2
    assert "dozing" in bad.stderr
    detail = (await cli("workers", "show", str(worker.uuid), "--url", store_url, "--json")).json()
    assert detail["sleep_schedule"]["days_of_week"] == "mo tu"
    assert detail["current_task"]["uuid"] == str(tasks[0])
    shown = await cli("workers", "show", str(worker.uuid), "--url", store_url)
    assert shown.exit_code == 0
    for expected in ("box-1", "frames-0", "gpu", "22:00"):
        assert expected in shown.stdout
    secret = await _secret_hash(store)
    for output in (listed.stdout, shown.stdout, str(rows), str(detail)):
        assert secret not in output
        assert "open sesame" not in output


async def test_sleep_and_wake_request_a_status_with_the_reason(store: Store, store_url: str) -> None:
    worker = await create_worker(store, "box")
    slept = await cli("workers", "sleep", str(worker.uuid), "--lazy", "--reason", "night shift", "--url", store_url)
    assert slept.exit_code == 0, slept.stderr
    found = await store.workers.fetch(worker.uuid)
    assert (found.status_requested, found.lazy_status_request) == (WorkerStatus.ASLEEP, True)
    woken = await cli("workers", "wake", str(worker.uuid), "--url", store_url, "--json")
    assert woken.json()["status_requested"] is None  # it is awake: the request is cleared
    assert (await store.workers.fetch(worker.uuid)).status_requested is None
    reasons = [c.reason for c in await settled_changes(store, kinds=["worker.requested"])]
    assert reasons == ["night shift", "by the operator (statestore workers wake)"]


async def test_forget_asks_and_gives_the_tasks_back(store: Store, store_url: str) -> None:
    worker = await create_worker(store, "box")
    _, tasks = await job_with(store, Q)
    await activate(store, worker, tasks[0])
    refused = await cli("workers", "forget", str(worker.uuid), "--url", store_url)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert (await store.workers.fetch(worker.uuid)).name == "box"
    done = await cli("workers", "forget", str(worker.uuid), "--yes", "--url", store_url, "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json()["given_back"] == [
        {"task": str(tasks[0]), "job": done.json()["given_back"][0]["job"], "status": "queued"}
    ]
    assert await task_statuses(store, tasks) == [TaskStatus.QUEUED]
    with pytest.raises(NotFound):
        await store.workers.fetch(worker.uuid)


async def test_forget_on_a_terminal_answered_no_keeps_the_worker(store: Store, store_url: str, terminal: None) -> None:
    worker = await create_worker(store, "box")
    answered = await cli("workers", "forget", str(worker.uuid), "--url", store_url, input="n\n")
    assert answered.exit_code == 1
    assert (await store.workers.fetch(worker.uuid)).name == "box"


async def test_unknown_and_malformed_workers_exit_2(store: Store, store_url: str) -> None:
    unknown = str(uuid4())
    for command in (["show"], ["sleep"], ["wake"], ["forget", "--yes"]):
        missing = await cli("workers", command[0], unknown, *command[1:], "--url", store_url)
        assert missing.exit_code == 2, (command, missing.stdout)
        assert unknown in missing.stderr
        malformed = await cli("workers", command[0], "box-1", *command[1:], "--url", store_url)
        assert malformed.exit_code == 2
        assert "WORKER" in malformed.stderr
        assert "Traceback" not in malformed.stderr


async def test_a_narrow_terminal_truncates_but_json_does_not(store: Store, store_url: str) -> None:
    await create_worker(store, LONG_NAME)
    narrow = await cli("workers", "--url", store_url, env={"COLUMNS": "60"})
    assert narrow.exit_code == 0
    assert LONG_NAME not in narrow.stdout
    assert "…" in narrow.stdout
    assert all(len(line) <= 60 for line in narrow.stdout.splitlines())
    assert (await cli("workers", "--url", store_url, "--json", env={"COLUMNS": "60"})).json()[0]["name"] == LONG_NAME
