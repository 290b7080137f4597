"""``statestore events``: the change feed, as lines and as JSON Lines;
resuming after a cursor, filters, an expired cursor, and ``--follow`` (to
``--limit`` and to Ctrl-C), on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from statestore import Change, ChangeKind, Store
from statestore.cli import events_command
from statestore.farm import Job
from tests.cli.conftest import cli
from tests.support.farm_fixtures import authored_job, store_job
from tests.support.feed_reading import settled
from tests.support.flow_fixtures import book_with, flow_with, retry

WAIT = 60
"""Seconds before a follower that never gets its change fails the test
instead of hanging it (a guard, not a measure: it normally takes well under one)."""


async def _changes(store: Store, after: str | None = None, **filters: Any) -> list[Change]:
    return [change async for change in store.changes(after, follow=False, **filters)]


async def _seed(store: Store) -> tuple[list[Change], Job, Job]:
    """A logbook saved (logbook, flow and atom changes) and two jobs stored;
    every change settled. Returns the changes as the library reads them,
    and the two jobs."""
    await store.logbooks.save(book_with(flow_with(retry("r"), name="f")))
    first = await store_job(store, authored_job(name="first"))
    second = await store_job(store, authored_job(name="second"))
    await settled(store)
    return await _changes(store), first, second


def _expected(change: Change) -> dict[str, Any]:
    """A change's JSON object, field by field."""

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return {
        "cursor": change.cursor,
        "kind": change.kind.value,
        "at": change.at.isoformat(),
        "job": text(change.job),
        "task": text(change.task),
        "worker": text(change.worker),
        "logbook": text(change.logbook),
        "flow": text(change.flow),
        "atom": text(change.atom),
        "old": change.old,
        "new": change.new,
        "reason": change.reason,
        "who": change.who,
    }


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


async def test_events_lists_one_line_per_change(store: Store, store_url: str) -> None:
    changes, first, _ = await _seed(store)
    assert len(changes) >= 5
    listed = await cli("events", "--url", store_url)
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == len(changes)
    for line, change in zip(lines, changes, strict=True):
        assert change.kind.value in line
        assert line.endswith(change.cursor)
    stored = next(line for line in lines if "job.stored" in line)
    assert f"job {first.uuid}" in stored
    assert "→ under-construction" in stored


async def test_json_lines_are_the_changes_whole(store: Store, store_url: str) -> None:
    changes, _, _ = await _seed(store)
    listed = await cli("events", "--url", store_url, "--json")
    assert listed.exit_code == 0, listed.stderr
    assert _lines(listed.stdout) == [_expected(change) for change in changes]


async def test_after_resumes_exactly_after_the_cursor(store: Store, store_url: str) -> None:
    changes, _, _ = await _seed(store)
    everything = _lines((await cli("events", "--url", store_url, "--json")).stdout)
    for middle in (0, 2, len(everything) - 1):
        cursor = everything[middle]["cursor"]
        rest = _lines((await cli("events", "--url", store_url, "--json", "--after", cursor)).stdout)
        assert [line["cursor"] for line in rest] == [change.cursor for change in changes[middle + 1 :]]
    first_two = _lines((await cli("events", "--url", store_url, "--json", "--limit", "2")).stdout)
    assert [line["cursor"] for line in first_two] == [change.cursor for change in changes[:2]]


async def test_filters_by_kind_job_and_flow(store: Store, store_url: str) -> None:
    changes, first, second = await _seed(store)
    stored = _lines((await cli("events", "--url", store_url, "--json", "--kind", "job.stored")).stdout)
    assert [line["job"] for line in stored] == [str(first.uuid), str(second.uuid)]
    states = _lines(
        (await cli("events", "--url", store_url, "--json", "--kind", "flow.state", "--kind", "atom.state")).stdout
    )
    assert {line["kind"] for line in states} == {"flow.state", "atom.state"}
    assert len(states) == sum(change.kind in (ChangeKind.FLOW_STATE, ChangeKind.ATOM_STATE) for change in changes)
    of_second = _lines((await cli("events", "--url", store_url, "--json", "--job", str(second.uuid))).stdout)
    assert of_second
    assert [line["cursor"] for line in of_second] == [change.cursor for change in changes if change.job == second.uuid]
    flow = next(change.flow for change in changes if change.kind is ChangeKind.FLOW_STATE)
    of_flow = _lines((await cli("events", "--url", store_url, "--json", "--flow", str(flow))).stdout)
    assert [line["cursor"] for line in of_flow] == [change.cursor for change in changes if change.flow == flow]
    assert {line["kind"] for line in of_flow} == {"flow.state", "atom.state"}


async def test_bad_arguments_are_one_line_naming_them(store: Store, store_url: str) -> None:
    for args, named in (
        (["--kind", "job.nope"], "--kind"),
        (["--job", "not-a-uuid"], "--job"),
        (["--flow", "42"], "--flow"),
        (["--after", "12"], "--after"),
        (["--limit", "0"], "--limit"),
    ):
        result = await cli("events", "--url", store_url, *args)
        assert result.exit_code == 2, args
        assert named in result.stderr, args
        assert "Traceback" not in result.stderr


async def test_an_expired_cursor_is_one_red_line_and_exit_2(store: Store, store_url: str) -> None:
    changes, _, _ = await _seed(store)
    assert await store.changes.purge(older_than=timedelta(0)) == len(changes)
    expired = await cli("events", "--url", store_url, "--after", changes[0].cursor)
    assert expired.exit_code == 2
    assert "CursorExpired" in expired.stderr
    assert "retention" in expired.stderr
    assert expired.stderr.count("\n") == 1
    assert expired.stdout == ""
    # The last change purged is where reading on loses nothing.
    assert (await cli("events", "--url", store_url, "--after", changes[-1].cursor)).exit_code == 0


async def test_follow_receives_a_change_committed_after_it_started(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes, _, _ = await _seed(store)
    # Told when the follower has printed every change stored so far, so the
    # next one is committed while it follows, not before it started.
    caught_up = threading.Event()
    printed: list[Change] = []
    shape = events_command.change_row

    def observed(change: Change) -> dict[str, Any]:
        printed.append(change)
        if len(printed) == len(changes):
            caught_up.set()
        return shape(change)

    monkeypatch.setattr(events_command, "change_row", observed)
    limit = str(len(changes) + 1)
    following = asyncio.create_task(cli("events", "--url", store_url, "--follow", "--json", "--limit", limit))
    assert await asyncio.to_thread(caught_up.wait, WAIT), "the follower never printed the stored changes"
    later = await store_job(store, authored_job(name="later"))
    ran = await asyncio.wait_for(following, WAIT)
    assert ran.exit_code == 0, ran.stderr
    lines = _lines(ran.stdout)
    assert len(lines) == len(changes) + 1
    assert (lines[-1]["kind"], lines[-1]["job"]) == ("job.stored", str(later.uuid))
    assert lines[-1]["cursor"] > changes[-1].cursor


async def test_ctrl_c_ends_a_follower_quietly(store: Store, store_url: str) -> None:
    """The installed command in its own process, as an operator runs it:
    each change comes as it is committed, and Ctrl-C is exit 0 without a stack."""
    changes, _, _ = await _seed(store)
    script = Path(sys.executable).parent / "statestore"
    follower = await asyncio.create_subprocess_exec(
        str(script),
        *("events", "--follow", "--url", store_url, "--after", changes[-1].cursor),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        later = await store_job(store, authored_job(name="later"))
        assert follower.stdout is not None
        line = (await asyncio.wait_for(follower.stdout.readline(), WAIT)).decode()  # flushed at once
        assert f"job.stored  job {later.uuid}" in line
        follower.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(follower.communicate(), WAIT)
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    assert follower.returncode == 0, err
    assert err == b""
    assert out == b""  # nothing else changed
