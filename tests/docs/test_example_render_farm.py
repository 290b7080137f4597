"""examples/render_farm.py is a smoke test of the farm model on the state
machine, the waiting claim and the change feed: run on the default SQLite
file (and on each server), the workers wait for work in
``scheduler.claim(wait=…)``, the manager prints the jobs' progress from
``store.changes()`` and stops when every job is completed by the state
machine; the task of the worker that dies mid-task is given back by the
housekeeper's time-out and finished by another worker, and the flaky
worker's failures are soft failures others make good."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.backends import discard_database, new_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite-file", "postgresql", "mysql"])
async def url_argument(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[str]]:
    """No argument (the default SQLite file), or the URL of a new server database."""
    if request.param == "sqlite-file":
        yield []
        return
    database = await new_database(request.param, tmp_path)
    yield [database.url]
    await discard_database(database)


def test_render_farm_example_runs_every_job_to_completion(url_argument: list[str], tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "STATESTORE_URL"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "render_farm.py"), *url_argument],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "statestore housekeeper" not in result.stderr  # every round of the housekeeper went through
    if not url_argument:
        assert (tmp_path / "statestore.db").exists()  # the default SQLite file
    out = result.stdout
    lines = out.splitlines()
    assert lines[-1] == "all jobs completed"

    # The manager's progress, from the change feed in commit order: each job becomes active, each of its tasks
    # is completed once (counted up to the job's total), after every task it depends on, and the job is
    # completed after its last task.
    for job, renders in (("shot-010", 12), ("shot-020", 6), ("gpu-bake", 5)):
        total = renders + 2
        active = lines.index(f"{job}: queued → active")
        done = [
            (i, m)
            for i, line in enumerate(lines)
            if (m := re.fullmatch(rf"  {job} (\S+) completed by \S+ \((\d+)/{total}\)", line))
        ]
        assert [int(m[2]) for _, m in done] == list(range(1, total + 1)), out
        assert len({m[1] for _, m in done}) == total, out
        assert [m[1] for _, m in done][-2:] == ["preview-video", "cleanup"], out
        (completed,) = (
            i for i, line in enumerate(lines) if re.fullmatch(rf"{job}: active → completed after \d+\.\d s", line)
        )
        assert active < done[0][0] < done[-1][0] < completed, out

    # The doomed worker died holding a task; the housekeeper timed it out and gave the task back, as the feed
    # shows live and the task's status history tells at the end; another worker finished it.
    (died,) = re.findall(r"^  doomed dies while running (\S+) (\S+) \(step 3 of 5\)$", out, flags=re.MULTILINE)
    job, task = died
    timed_out = lines.index("  doomed: awake → error")
    given_back = lines.index(f"  {job} {task}: active → queued by housekeeper (the worker timed out)")
    (finished,) = (i for i, line in enumerate(lines) if line.startswith(f"  {job} {task} completed by "))
    finisher = lines[finished].split()[4]
    assert timed_out < given_back < finished, out
    assert finisher != "doomed"
    history = lines[lines.index(f"status history of {job} {task}:") + 1 : -1]
    assert history[:2] == [
        "  queued → active by doomed (claimed by the worker)",
        "  active → queued by housekeeper (the worker timed out)",
    ], out
    assert history[-1] == f"  active → completed by {finisher} (rendered)", out

    # The flaky worker's failures soft-failed its tasks; other workers completed them later.
    soft = re.findall(r"^  (\S+) (\S+): active → soft-failed by flaky \(blender crashed\)$", out, flags=re.MULTILINE)
    assert soft, out
    for job, task in soft:
        failed = lines.index(f"  {job} {task}: active → soft-failed by flaky (blender crashed)")
        assert any(re.fullmatch(rf"  {job} {task} completed by (?!flaky)\S+ .*", line) for line in lines[failed:]), out
