"""Fixtures of the command's tests: each runs on a SQLite file and on
PostgreSQL, through typer's test runner.

A test seeds its database through ``store`` (the conformance suite's
fixture, on the same database as ``store_url``) and runs the command with
:func:`cli`, in a thread, as the command runs its own event loop."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from statestore.cli import app
from statestore.cli import root as cli_root

CLI_BACKENDS = ("sqlite-file", "postgresql")


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The command is tested on a SQLite file and on PostgreSQL."""
    return str(request.param)


@dataclass
class Ran:
    """What one run of the command did."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    def json(self) -> Any:
        """stdout parsed as one JSON document."""
        return json.loads(self.stdout)


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Ran:
    """Run ``statestore ARGS…`` through typer's test runner (stdin is not a
    terminal there, as in a script), with a wide terminal."""
    result = CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "200", **(env or {})})
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return Ran(result.exit_code, result.stdout, result.stderr, exception)


async def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Ran:
    """:func:`invoke` from an async test: in a thread, since the command
    runs its own event loop."""
    return await asyncio.to_thread(invoke, *args, input=input, env=env)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command believes it runs on a terminal: destructive commands ask
    (answer through ``input=``) instead of refusing."""
    monkeypatch.setattr(cli_root, "interactive", lambda: True)
