"""``statestore export`` and ``statestore import``."""

from __future__ import annotations

import json
from pathlib import Path

from statestore import Store, open_store
from statestore.farm import JobStatus
from tests.cli.conftest import cli
from tests.support.backends import discard_database, new_database
from tests.support.farm_fixtures import authored_job, create_worker
from tests.support.flow_fixtures import book_with, flow_with


async def seed(store: Store) -> None:
    tag = await store.worker_tags.create("gpu")
    worker = await create_worker(store, "w1")
    await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    await store.jobs.store_authored(authored_job(status=JobStatus.QUEUED, worker_tag=tag.uuid))
    await store.logbooks.save(book_with(flow_with()))


async def test_stdout_is_jsonl_with_a_header(store: Store, store_url: str) -> None:
    await seed(store)
    ran = await cli("export", "--url", store_url)
    assert ran.exit_code == 0, ran.stderr
    documents = [json.loads(line) for line in ran.stdout.splitlines()]
    assert documents[0]["kind"] == "header"
    assert documents[0]["version"] == 1
    assert [document["kind"] for document in documents[1:]] == [
        "worker_tag",
        "worker",
        "job",
        "task",
        "task",
        "task",
        "logbook",
        "flow_detail",
    ]
    jobs_only = await cli("export", "--url", store_url, "--jobs")
    assert "logbook" not in jobs_only.stdout
    assert "worker_tag" in jobs_only.stdout
    flows_only = await cli("export", "--url", store_url, "--flows")
    assert [json.loads(line)["kind"] for line in flows_only.stdout.splitlines()] == ["header", "logbook", "flow_detail"]


async def test_since_takes_a_date_and_refuses_garbage(store: Store, store_url: str) -> None:
    await seed(store)
    future = await cli("export", "--url", store_url, "--since", "2999-01-01")
    assert future.exit_code == 0, future.stderr
    assert [json.loads(line)["kind"] for line in future.stdout.splitlines()] == ["header"]
    bad = await cli("export", "--url", store_url, "--since", "yesterday")
    assert bad.exit_code == 2
    assert "--since" in bad.stderr


async def test_sqlite_to_postgresql_to_sqlite_compares_equal(store: Store, store_url: str, tmp_path: Path) -> None:
    await seed(store)
    first = tmp_path / "first.jsonl"
    ran = await cli("export", "--url", store_url, "--output", str(first))
    assert ran.exit_code == 0, ran.stderr
    made = []
    try:
        for backend in ("postgresql", "sqlite-file"):
            directory = tmp_path / backend
            directory.mkdir()
            database = await new_database(backend, directory)
            made.append(database)
            async with open_store(database.url, create=True):
                pass
        postgresql, sqlite = (database.url for database in made)
        imported = await cli("import", str(first), "--url", postgresql, "--json")
        assert imported.exit_code == 0, imported.stderr
        assert imported.json()["kinds"]["task"] == {"inserted": 3, "updated": 0}
        second = await cli("export", "--url", postgresql)
        assert second.stdout == first.read_text(encoding="utf-8")
        back = await cli("import", "-", "--url", sqlite, input=second.stdout)
        assert back.exit_code == 0, back.stderr
        third = await cli("export", "--url", sqlite)
        assert third.stdout == first.read_text(encoding="utf-8")
    finally:
        for database in made:
            await discard_database(database)


async def test_import_into_a_store_with_data_asks_first(store: Store, store_url: str, tmp_path: Path) -> None:
    await seed(store)
    dump = tmp_path / "dump.jsonl"
    assert (await cli("export", "--url", store_url, "-o", str(dump))).exit_code == 0
    refused = await cli("import", str(dump), "--url", store_url)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    done = await cli("import", str(dump), "--url", store_url, "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json()["kinds"]["job"] == {"inserted": 0, "updated": 1}


async def test_import_asks_on_a_terminal(store: Store, store_url: str, tmp_path: Path, terminal: None) -> None:
    await seed(store)
    dump = tmp_path / "dump.jsonl"
    assert (await cli("export", "--url", store_url, "-o", str(dump))).exit_code == 0
    declined = await cli("import", str(dump), "--url", store_url, input="n\n")
    assert declined.exit_code == 1


async def test_an_empty_store_needs_no_confirmation(store: Store, store_url: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    header = {"kind": "header", "format": "statestore-dump", "version": 1, "schema": None}
    dump.write_text(json.dumps(header) + "\n", encoding="utf-8")
    ran = await cli("import", str(dump), "--url", store_url)
    assert ran.exit_code == 0, ran.stderr
    assert "imported 1 lines" in ran.stdout


async def test_a_mistyped_path_is_an_error(store_url: str, tmp_path: Path) -> None:
    ran = await cli("import", str(tmp_path / "nope.jsonl"), "--url", store_url)
    assert ran.exit_code == 2
    assert "no file at" in ran.stderr
    assert "nope.jsonl" in ran.stderr


async def test_import_never_creates_a_database(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"kind": "header", "format": "statestore-dump", "version": 1}\n', encoding="utf-8")
    missing = tmp_path / "missing.db"
    ran = await cli("import", str(dump), "--url", f"sqlite:///{missing}")
    assert ran.exit_code == 2
    assert not missing.exists()


async def test_a_bad_line_is_one_red_line_naming_it(store_url: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"kind": "header", "format": "statestore-dump", "version": 1}\n{"kind": "x"}\n', encoding="utf-8")
    ran = await cli("import", str(dump), "--url", store_url)
    assert ran.exit_code == 2
    assert "line 2: unknown kind 'x'" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
