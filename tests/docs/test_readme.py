"""The README's promises: its commands are what CI runs, its example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from statestore import open_store
from statestore.farm import TaskStatus

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    first, second = (block.strip() for block in _fenced("sh")[:2])
    assert "examples/quickstart.py" in first
    assert "pytest" in second
    assert README.index(first) < README.index("## What it is")
    assert second in (ROOT / ".ci" / "run").read_text()


def test_readme_usage_example_runs(tmp_path: Path) -> None:
    (example,) = (block for block in _fenced("python") if "open_store" in block)
    assert len(example.strip().splitlines()) <= 20
    script = tmp_path / "usage.py"
    script.write_text(example)
    env = {key: value for key, value in os.environ.items() if key != "STATESTORE_URL"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "app.bin" in done.stdout


def test_quickstart_runs_on_the_default_sqlite_file(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "STATESTORE_URL"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "statestore.db").exists()
    assert "integrity check: ok" in done.stdout
    assert "2 tests failed" in done.stdout


async def test_readme_farm_example_runs() -> None:
    (example,) = (block for block in _fenced("python") if "async def render_one" in block)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    render_one = namespace["render_one"]
    async with open_store("sqlite+aiosqlite://", create=True) as store:
        await render_one(store)  # type: ignore[operator]
        (job,) = await store.jobs.list()
        assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.COMPLETED) == (1, 2)
        (worker,) = await store.workers.list()
        scheduled = await store.scheduler.claim(worker.uuid)
        assert scheduled is not None
        assert scheduled.task.name == "preview"


def _command_paths() -> list[str]:
    """Every command of ``statestore``, as typed: ``jobs show``, ``purge``…"""
    import typer.main

    from statestore.cli import app

    def walk(command: Any, prefix: str) -> list[str]:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            return [prefix]
        found = [prefix] if prefix and getattr(command, "invoke_without_command", False) else []
        for name, sub in subcommands.items():
            found += walk(sub, f"{prefix} {name}".strip())
        return found

    return walk(typer.main.get_command(app), "")


def test_readme_shows_every_command() -> None:
    """The operator's sections (operating, schema) name every command the
    ``statestore`` script has."""
    start = README.index("## Operating statestore")
    section = README[start : README.index("\n## Tests", start)]
    missing = [path for path in _command_paths() if f"statestore {path}" not in section]
    assert not missing, f"the README's operating section does not show: {missing}"
