"""``statestore check`` finds drift of the maintained columns, and
``check --repair`` fixes it (on a SQLite file and on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from statestore import Store
from statestore.farm.tables import JOBS, TASKS
from tests.cli.conftest import cli, invoke
from tests.support.farm_fixtures import create_worker, job_of, render_task, store_job
from tests.support.state_machine_fixtures import set_columns


async def _stuck_task(store: Store) -> str:
    """A queued job's task that can never be claimed: its count of pending
    dependencies was set by hand; its uuid."""
    task = render_task("stuck")
    await store_job(store, job_of(task))
    await set_columns(store, TASKS, task.uuid, pending_dependencies=3)
    return str(task.uuid)


async def test_check_exits_1_and_shows_the_drift(store: Store, store_url: str) -> None:
    task = await _stuck_task(store)
    result = await cli("check", "--url", store_url)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "1 drifted" in result.stdout
    row = next(line for line in result.stdout.splitlines() if task in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["tasks", task, "pending_dependencies", "3", "0"]
    assert "drift: 1" in result.stdout


async def test_check_json_lists_the_drift(store: Store, store_url: str) -> None:
    task = await _stuck_task(store)
    result = await cli("check", "--url", store_url, "--json")
    assert result.exit_code == 1
    shown = result.json()
    assert shown["ok"] is False
    assert shown["problems"] == []
    assert shown["drift"] == [
        {"table": "tasks", "uuid": task, "column": "pending_dependencies", "stored": 3, "expected": 0}
    ]
    assert shown["repaired"] is None


async def test_check_repair_fixes_the_drift_and_a_second_check_passes(store: Store, store_url: str) -> None:
    task = await _stuck_task(store)
    worker = await create_worker(store)
    assert await store.scheduler.claim(worker.uuid) is None
    repaired = await cli("check", "--repair", "--url", store_url, "--json")
    assert repaired.exit_code == 0, repaired.stdout + repaired.stderr
    shown = repaired.json()
    assert shown["ok"] is True
    assert shown["drift"] == []
    assert shown["repaired"] == [
        {"table": "tasks", "uuid": task, "column": "pending_dependencies", "stored": 3, "expected": 0}
    ]
    again = await cli("check", "--url", store_url)
    assert again.exit_code == 0, again.stdout
    assert "no drift" in again.stdout
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert str(scheduled.task.uuid) == task


async def test_check_repair_shows_what_it_changed(store: Store, store_url: str) -> None:
    job = await store_job(store, job_of(render_task("a", steps=2), render_task("b", steps=3)))
    await set_columns(store, JOBS, job.uuid, steps_total=1)
    result = await cli("check", "--repair", "--url", store_url)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "1 maintained values rewritten" in result.stdout
    assert "repaired: 1" in result.stdout
    row = next(line for line in result.stdout.splitlines() if str(job.uuid) in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["jobs", str(job.uuid), "steps_total", "1", "5"]
    assert (await store.jobs.fetch(job.uuid)).steps_total == 5
    assert (await cli("check", "--repair", "--url", store_url, "--json")).json()["repaired"] == []


async def test_the_drift_table_is_limited_and_fits_the_terminal(store: Store, store_url: str) -> None:
    tasks = [render_task(f"t{n}") for n in range(3)]
    await store_job(store, job_of(*tasks, priority=40))
    for task in tasks:
        await set_columns(store, TASKS, task.uuid, job_priority=41)
    limited = await cli("check", "--url", store_url, "--limit", "2")
    assert limited.exit_code == 1
    assert "drift: 3" in limited.stdout
    assert "and 1 more" in limited.stdout
    assert sum(str(task.uuid) in limited.stdout for task in tasks) == 2
    narrow = await cli("check", "--url", store_url, env={"COLUMNS": "60"})
    assert narrow.exit_code == 1
    assert "…" in narrow.stdout
    assert all(len(line) <= 60 for line in narrow.stdout.splitlines())
    # JSON is never truncated.
    assert len((await cli("check", "--url", store_url, "--limit", "1", "--json")).json()["drift"]) == 3


def test_a_bad_limit_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("upgrade", "--url", url)
    result = invoke("check", "--url", url, "--limit", "0")
    assert result.exit_code == 2
    assert "--limit" in result.stderr


def test_repair_creates_no_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = invoke("check", "--repair", "--url", f"sqlite:///{missing}")
    assert result.exit_code == 2
    assert str(missing) in result.stderr.replace("\n", "")
    assert not missing.exists()


def test_repair_on_an_unmigrated_database_reports_the_schema(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = invoke("check", "--repair", "--url", f"sqlite:///{tmp_path / 'empty.db'}", "--json")
    assert result.exit_code == 1
    shown = result.json()
    assert shown["drift"] is None
    assert shown["repaired"] is None
    assert any("schema at revision none" in problem for problem in shown["problems"])
