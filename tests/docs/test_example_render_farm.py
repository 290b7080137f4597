"""examples/render_farm.py is a smoke test of the farm model on the state
machine: run on the default SQLite file (and on each server), every job is
completed by the state machine, the task of the worker that dies mid-task is
given back by the housekeeper's time-out and finished by another worker, and
the flaky worker's failures are soft failures others make good."""

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
    for job in ("shot-010", "shot-020", "gpu-bake"):
        assert any(line.startswith(f"{job}: completed after") for line in lines), out

    # The doomed worker died holding a task; the housekeeper timed it out and gave the task back.
    (died,) = re.findall(r"^  doomed dies while running (\S+) (\S+) \(step 3 of 5\)$", out, flags=re.MULTILINE)
    job, task = died
    assert "doomed is error: the housekeeper timed it out" in lines
    assert "1 task given back by the housekeeper" in out
    assert f"status history of {job}, a few lines:" in lines
    history = lines[lines.index(f"status history of {job}, a few lines:") + 1 : -1]
    of_task = [line for line in history if line.startswith(f"  {task}: ")]
    given_back = of_task.index(f"  {task}: active → queued by housekeeper (the worker timed out)")
    finished = re.fullmatch(rf"  {task}: active → completed by (\S+) \(done by \1\)", of_task[-1])
    assert finished is not None, of_task
    assert finished[1] != "doomed"
    assert given_back < len(of_task) - 1
    assert history[-1].startswith("  job: active → completed by ")

    # The flaky worker's failures soft-failed its tasks; the history records them, and others completed them.
    assert re.search(r"^  flaky failed \S+ \S+: soft-failed$", out, flags=re.MULTILINE), out
    soft = re.search(r"status history: (\d+) soft failures", out)
    assert soft is not None
    assert int(soft[1]) >= 1
    # The history shown has one of them when flaky failed a task of that job.
    for line in history:
        if line.endswith("active → soft-failed by flaky (blender crashed)"):
            soft_task = line.split(":")[0]
            assert any(re.fullmatch(rf"{soft_task}: active → completed by (?!flaky)\S+ .*", h) for h in history)
