"""``statestore flows`` and ``flows show``, and the shapes they print
(:mod:`statestore.overview.flows`), on a SQLite file and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from statestore import NotFound, Store
from statestore.flows import AtomDetail, AtomKind, AtomState, FlowState, Intention, LogBook, RetryAttempt
from statestore.flows.foreign_ids import foreign_identity
from statestore.overview.flows import book_page, book_tree, find_book
from tests.cli.conftest import cli, invoke
from tests.support.flow_fixtures import book_with, failure, flow_with

LONG_NOTE = "n" * 300
"""Longer than any terminal line: the tree shortens it, ``--json`` never does."""


async def _seed(store: Store, name: str = "nightly") -> LogBook:
    """A book whose first flow has a result, a failure and a retry that
    retried once after a failure, and whose second flow is empty."""
    fetch = AtomDetail("fetch", state=AtomState.SUCCESS, results={"rows": [1, 2, 3], "note": LONG_NOTE}, version="1.2")
    load = AtomDetail("load", state=AtomState.FAILURE, intention=Intention.REVERT, failure=failure("disk full"))
    again = AtomDetail(
        "again",
        kind=AtomKind.RETRY,
        state=AtomState.RETRYING,
        intention=Intention.RETRY,
        results=[RetryAttempt(1, {"load": failure("first try")}), RetryAttempt({"x": 2}, {})],
    )
    etl = flow_with(fetch, load, again, name="etl")
    etl.state = FlowState.FAILURE
    return await store.logbooks.save(book_with(etl, flow_with(name="empty"), name=name))


def _failure(message: str) -> dict[str, Any]:
    """The shape of tests.support.flow_fixtures.failure(message)."""
    return {
        "type": "RuntimeError",
        "message": message,
        "causes": [{"type": "KeyError", "message": "'root cause'", "causes": []}],
    }


async def test_flows_lists_logbooks_a_page_at_a_time(store: Store, store_url: str) -> None:
    first = await _seed(store, "first")
    second = await store.logbooks.save(LogBook("second"))
    uuid, foreign_id = foreign_identity("nightly-2024-06-01")
    third = await store.logbooks.save(LogBook("third", uuid=uuid, foreign_id=foreign_id))

    table = await cli("flows", "--url", store_url, "--limit", "2")
    assert table.exit_code == 0, table.stderr
    assert str(first.uuid) in table.stdout
    assert str(second.uuid) in table.stdout
    assert str(third.uuid) not in table.stdout
    assert f"statestore flows --after {second.uuid}" in table.stdout

    page = (await cli("flows", "--url", store_url, "--limit", "2", "--json")).json()
    assert [(row["name"], row["flow_count"]) for row in page] == [("first", 2), ("second", 0)]
    assert page[0]["uuid"] == str(first.uuid)
    assert page[0]["meta"] == {"k": 1}
    rest = (await cli("flows", "--url", store_url, "--after", page[-1]["uuid"], "--json")).json()
    assert [(row["uuid"], row["foreign_id"]) for row in rest] == [(str(third.uuid), "nightly-2024-06-01")]

    everything = await cli("flows", "--url", store_url)
    assert "nightly-2024-06-01" in everything.stdout  # the foreign id, to find an imported book by
    assert "--after" not in everything.stdout  # no next page to point to


async def test_show_prints_the_tree_with_failures_and_the_retry_history(store: Store, store_url: str) -> None:
    book = await _seed(store)
    shown = await cli("flows", "show", str(book.uuid), "--url", store_url)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "nightly" in lines[0]
    assert str(book.uuid) in lines[0]

    def line_of(text: str) -> str:
        return next(line for line in lines if text in line)

    assert "FAILURE" in line_of("etl")
    fetch = line_of("fetch")
    assert "SUCCESS" in fetch
    assert "EXECUTE" in fetch
    assert '"rows": [1, 2, 3]' in fetch
    load = line_of("load ")
    assert "REVERT" in load
    assert "RuntimeError: disk full" in load
    assert "RETRYING" in line_of("again (retry)")
    assert "load: RuntimeError: first try" in line_of("attempt 1")
    assert '→ {"x": 2}' in line_of("attempt 2")
    # The tree nests: atoms under their flow, attempts under their retry.
    assert lines.index(line_of("etl")) < lines.index(fetch) < lines.index(line_of("attempt 1"))
    assert line_of("attempt 1").index("attempt") > line_of("again").index("again")


async def test_show_json_is_what_the_store_holds(store: Store, store_url: str) -> None:
    book = await _seed(store)
    shown = (await cli("flows", "show", str(book.uuid), "--url", store_url, "--json")).json()
    stored = await store.logbooks.get(book.uuid)
    identity = (shown["uuid"], shown["name"], shown["foreign_id"], shown["meta"])
    assert identity == (str(stored.uuid), "nightly", None, {"k": 1})
    assert stored.created_at is not None
    assert stored.updated_at is not None
    assert (shown["created_at"], shown["updated_at"]) == (stored.created_at.isoformat(), stored.updated_at.isoformat())
    assert shown["flow_count"] == 2
    assert [(flow["uuid"], flow["name"], flow["state"]) for flow in shown["flows"]] == [
        (str(flow.uuid), flow.name, flow.state) for flow in stored.flows
    ]
    assert [
        (atom["uuid"], atom["name"], atom["type"], atom["state"], atom["intention"], atom["version"])
        for atom in shown["flows"][0]["atoms"]
    ] == [
        (str(atom.uuid), atom.name, atom.kind.value, atom.state, atom.intention, atom.version)
        for atom in stored.flows[0].atoms
    ]
    assert shown["flows"][1]["atoms"] == []
    fetch, load, again = shown["flows"][0]["atoms"]
    assert fetch["result"] == {"rows": [1, 2, 3], "note": LONG_NOTE}  # whole
    assert (fetch["failure"], fetch["history"]) == (None, None)
    assert (load["result"], load["failure"]) == (None, _failure("disk full"))
    assert again["history"] == [
        {"result": 1, "failures": {"load": _failure("first try")}},
        {"result": {"x": 2}, "failures": {}},
    ]
    assert again["result"] == {"x": 2}  # a retry's result is its latest attempt's
    # The library's shape is the command's.
    assert await book_tree(store, book.uuid) == shown


async def test_a_book_imported_under_a_foreign_id_is_found_by_it(store: Store, store_url: str) -> None:
    uuid, foreign_id = foreign_identity("nightly-2024-06-01")
    await store.logbooks.save(LogBook("imported", uuid=uuid, foreign_id=foreign_id))
    by_name = await cli("flows", "show", "nightly-2024-06-01", "--url", store_url, "--json")
    assert by_name.exit_code == 0, by_name.stderr
    assert (by_name.json()["uuid"], by_name.json()["foreign_id"]) == (str(uuid), "nightly-2024-06-01")
    by_uuid = await cli("flows", "show", str(uuid), "--url", store_url)
    assert "foreign id nightly-2024-06-01" in by_uuid.stdout
    assert (await find_book(store, "nightly-2024-06-01", lazy=True)).name == "imported"


async def test_an_unknown_book_is_one_line_and_exit_2(store: Store, store_url: str) -> None:
    await _seed(store)
    for book in ("00000000-0000-4000-8000-000000000000", "no-such-book", " "):
        result = await cli("flows", "show", book, "--url", store_url)
        assert result.exit_code == 2, (book, result.stdout)
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    missing = await cli("flows", "show", "no-such-book", "--url", store_url)
    assert "foreign id" in missing.stderr  # says how an imported book is found
    with pytest.raises(NotFound):
        await find_book(store, "no-such-book")
    bad_cursor = await cli("flows", "--after", "not-a-uuid", "--url", store_url)
    assert bad_cursor.exit_code == 2
    assert "--after" in bad_cursor.stderr
    assert (await cli("flows", "--limit", "0", "--url", store_url)).exit_code == 2


async def test_a_narrow_terminal_truncates_the_tree_but_not_the_json(store: Store, store_url: str) -> None:
    book = await _seed(store)
    narrow = await cli("flows", "show", str(book.uuid), "--url", store_url, env={"COLUMNS": "60"})
    assert narrow.exit_code == 0, narrow.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60
    wide = await cli("flows", "show", str(book.uuid), "--url", store_url)
    assert len(narrow.stdout.splitlines()) == len(wide.stdout.splitlines())  # cut, not wrapped
    assert "…" in narrow.stdout
    assert LONG_NOTE not in narrow.stdout
    whole = await cli("flows", "show", str(book.uuid), "--url", store_url, "--json", env={"COLUMNS": "60"})
    assert LONG_NOTE in whole.stdout
    assert whole.json()["flows"][0]["atoms"][0]["result"]["note"] == LONG_NOTE
    listed = await cli("flows", "--url", store_url, env={"COLUMNS": "60"})
    assert max(len(line) for line in listed.stdout.splitlines()) <= 60
    assert str(book.uuid) in listed.stdout  # a uuid is what the next command takes: never cut


async def test_book_page_counts_flows_and_pages_by_keyset(store: Store) -> None:
    books = [await _seed(store, f"book-{i}") for i in range(3)]
    first = await book_page(store, limit=2)
    assert [row["name"] for row in first] == ["book-0", "book-1"]
    assert all(row["flow_count"] == 2 for row in first)
    rest = await book_page(store, after=first[-1]["uuid"], limit=2)
    assert [row["uuid"] for row in rest] == [str(books[2].uuid)]


async def test_the_url_given_to_flows_serves_show(store: Store, store_url: str) -> None:
    book = await _seed(store)
    shown = await cli("flows", "--url", store_url, "show", str(book.uuid), "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["uuid"] == str(book.uuid)


def test_reading_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for command in (["flows"], ["flows", "show", "x"], ["events"]):
        result = invoke(*command, "--url", f"sqlite:///{missing}")
        assert result.exit_code == 2, result.stdout
        assert str(missing) in result.stderr.replace("\n", "")
        assert not missing.exists()
