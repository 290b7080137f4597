"""A TaskFlow run killed with SIGKILL mid-flow resumes from the logbook in a
new process; completed tasks are not run again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.taskflow_support import drop_database, make_database

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "taskflow_resume.py"


@pytest.mark.parametrize("backend_kind", ["sqlite-file", "postgresql"])
def test_a_killed_flow_resumes_in_a_new_process(backend_kind: str) -> None:
    database, connection = make_database(backend_kind)
    try:
        done = subprocess.run([sys.executable, str(EXAMPLE), connection], capture_output=True, text=True, timeout=300)
    finally:
        drop_database(database)
    assert done.returncode == 0, done.stderr
    assert "killed the first run (exit -9)" in done.stdout
    # 'one' completed before the kill and is not repeated; 'two' was cut short.
    assert "journal: one, two, two, three" in done.stdout
    assert "flow 'resumable': SUCCESS" in done.stdout
    for step in ("one", "two", "three"):
        assert f"{step:<6} SUCCESS  {step} done" in done.stdout
