"""Crash a TaskFlow run with SIGKILL mid-flow, then resume it from statestore.

    python examples/taskflow_resume.py [statestore+URL]

The parent creates a logbook, starts the flow in a child process, waits until
the child is inside the second task, kills it with SIGKILL (no cleanup at
all), then resumes the same flow detail in a *new* process. The first task is
not run again: its result is read back from the logbook.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import backends, models
from taskflow.utils import persistence_utils


class Step(task.Task):  # type: ignore[misc]
    """Appends its name to a journal file; the hanging one then waits forever."""

    def __init__(self, name: str, journal: str, hang: bool = False) -> None:
        super().__init__(name=name, provides=name)
        self.journal, self.hang = journal, hang

    def execute(self) -> str:
        with open(self.journal, "a") as journal:
            journal.write(f"{self.name}\n")
        if self.hang and os.environ.get("STATESTORE_EXAMPLE_HANG") == "1":
            Path(self.journal + ".inside").touch()
            time.sleep(600)
        return f"{self.name} done"


def make_flow(journal: str) -> Any:
    return linear_flow.Flow("resumable").add(
        Step("one", journal), Step("two", journal, hang=True), Step("three", journal)
    )


def run(connection: str, book_uuid: str, flow_uuid: str, journal: str) -> None:
    """Run (or resume) the flow detail ``flow_uuid`` to completion."""
    backend = backends.fetch({"connection": connection})
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            book = conn.get_logbook(book_uuid)
        engine = taskflow.engines.load(make_flow(journal), flow_detail=book.find(flow_uuid), book=book, backend=backend)
        engine.run()
    finally:
        backend.close()


def main(connection: str) -> int:
    workdir = tempfile.mkdtemp(prefix="statestore-resume-")
    journal = os.path.join(workdir, "journal.txt")
    backend = backends.fetch({"connection": connection})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    book = models.LogBook("resume-example")
    flow_detail = persistence_utils.create_flow_detail(make_flow(journal), book=book, backend=backend)
    backend.close()

    child = [sys.executable, __file__, "--run", connection, book.uuid, flow_detail.uuid, journal]
    first = subprocess.Popen(child, env={**os.environ, "STATESTORE_EXAMPLE_HANG": "1"})
    while not Path(journal + ".inside").exists():
        if first.poll() is not None:
            raise SystemExit("the first run ended before reaching the second task")
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    print(f"killed the first run (exit {first.returncode}) inside task 'two'")

    second = subprocess.run(child, env={**os.environ, "STATESTORE_EXAMPLE_HANG": "0"}, check=True)
    print(f"resumed in a new process (exit {second.returncode})")
    print("journal:", ", ".join(Path(journal).read_text().split()))

    backend = backends.fetch({"connection": connection})
    with contextlib.closing(backend.get_connection()) as conn:
        stored = conn.get_flow_details(flow_detail.uuid)
    backend.close()
    print(f"flow {stored.name!r}: {stored.state}")
    for atom in stored:
        print(f"  {atom.name:<6} {atom.state:<8} {atom.results}")
    return 0 if stored.state == "SUCCESS" else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        run(*sys.argv[2:6])
    else:
        default = f"statestore+sqlite:///{os.path.join(tempfile.mkdtemp(), 'resume.db')}"
        raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else default))
