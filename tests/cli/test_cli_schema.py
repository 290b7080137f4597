"""The schema's commands, and the conventions every command keeps: exit
codes, one-line errors, ``--version``, ``--json``, ``$STATESTORE_URL``, no
database created by a read-only command, no destruction without consent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statestore import Store
from statestore.schema.migrate import head_revision
from tests.cli.conftest import cli, invoke


def _url(tmp_path: Path, name: str = "cli.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def test_upgrade_then_current_shows_head(tmp_path: Path) -> None:
    url = _url(tmp_path)
    assert invoke("upgrade", "--url", url).exit_code == 0
    shown = invoke("current", "--url", url)
    assert shown.exit_code == 0
    assert f"database: {head_revision()}" in shown.stdout
    assert invoke("current", "--url", url, "--json").json() == {"database": head_revision(), "code": head_revision()}


def test_the_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = _url(tmp_path)
    assert invoke("upgrade", env={"STATESTORE_URL": url}).exit_code == 0
    assert invoke("current", "--json", env={"STATESTORE_URL": url}).json()["database"] == head_revision()


def test_check_passes_on_a_migrated_database(tmp_path: Path) -> None:
    url = _url(tmp_path)
    invoke("upgrade", "--url", url)
    assert invoke("check", "--url", url).exit_code == 0
    assert invoke("check", "--url", url, "--json").json()["ok"] is True


def test_check_reports_an_unmigrated_database(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = invoke("check", "--url", _url(tmp_path, "empty.db"))
    assert result.exit_code == 1
    assert "schema at revision none" in result.stdout


@pytest.mark.parametrize(
    "command",
    [["stats"], ["current"], ["check"], ["checkpoint"], ["vacuum"], ["downgrade", "base", "--yes"], ["jobs"]],
)
def test_a_mistyped_path_is_an_error_naming_it_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo.db"
    result = invoke(*command, "--url", f"sqlite:///{missing}")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert str(missing) in result.stderr.replace("\n", "")
    assert result.stderr.count("\n") == 1  # one line
    assert "Traceback" not in result.stderr
    assert not missing.exists()


def test_downgrade_refuses_without_a_terminal_and_asks_on_one(tmp_path: Path, terminal: None) -> None:
    url = _url(tmp_path)
    invoke("upgrade", "--url", url)
    refused = invoke("downgrade", "base", "--url", url, input="n\n")
    assert refused.exit_code == 1
    assert "nothing done" in refused.stderr
    assert invoke("current", "--url", url, "--json").json()["database"] == head_revision()
    assert invoke("downgrade", "base", "--url", url, input="y\n").exit_code == 0
    assert invoke("current", "--url", url, "--json").json()["database"] is None


def test_downgrade_without_a_terminal_refuses_unless_yes(tmp_path: Path) -> None:
    url = _url(tmp_path)
    invoke("upgrade", "--url", url)
    refused = invoke("downgrade", "base", "--url", url)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert invoke("current", "--url", url, "--json").json()["database"] == head_revision()
    assert invoke("downgrade", "base", "--url", url, "--yes").exit_code == 0
    assert "database: none" in invoke("current", "--url", url).stdout


def test_schema_prints_ddl_of_a_dialect() -> None:
    result = invoke("schema", "--dialect", "postgresql")
    assert result.exit_code == 0
    assert "CREATE TABLE log_books" in result.stdout
    assert "meta JSON NOT NULL" in result.stdout  # json, not jsonb: numbers come back as written


def test_stats_on_an_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = invoke("stats", "--url", _url(tmp_path, "empty.db"))
    assert result.exit_code == 2
    assert "SchemaOutOfDate" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_stack(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = invoke("--debug", "stats", "--url", _url(tmp_path, "empty.db"))
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_bad_url_exits_2_naming_the_scheme() -> None:
    result = invoke("current", "--url", "oracle://somewhere/db")
    assert result.exit_code == 2
    assert "oracle" in result.stderr


def test_version_and_usage_errors() -> None:
    shown = invoke("--version")
    assert shown.exit_code == 0
    assert shown.stdout.startswith("statestore ")
    assert invoke("no-such-command").exit_code == 2
    assert invoke("stats", "--no-such-option").exit_code == 2


async def test_stats_counts_rows_and_shows_the_wal(backend: str, store: Store, store_url: str) -> None:
    await store.worker_tags.create("gpu")
    table = await cli("stats", "--url", store_url)
    assert table.exit_code == 0
    assert "log_books" in table.stdout
    assert "write-ahead log" in table.stdout
    counted = (await cli("stats", "--url", store_url, "--json")).json()
    assert counted["tables"]["worker_tags"] == 1
    assert (counted["wal_bytes"] is None) == (backend != "sqlite-file")


async def test_vacuum_and_checkpoint_run_on_every_backend(backend: str, store: Store, store_url: str) -> None:
    await store.worker_tags.create("gpu")
    assert (await cli("vacuum", "--url", store_url)).exit_code == 0
    done = await cli("checkpoint", "--url", store_url, "--json")
    assert done.exit_code == 0
    assert (json.loads(done.stdout) is None) == (backend != "sqlite-file")
    assert [tag.name for tag in await store.worker_tags.list()] == ["gpu"]


def test_the_installed_command_completes_in_a_shell() -> None:
    """The console script itself (the entry point), as bash's completion calls it."""
    script = Path(sys.executable).parent / "statestore"
    env = {**os.environ, "_STATESTORE_COMPLETE": "complete_bash", "COMP_WORDS": "statestore dow", "COMP_CWORD": "1"}
    completed = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert completed.stdout.split() == ["downgrade"], completed.stderr
    shown = subprocess.run([str(script), "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert "_statestore_completion" in shown.stdout
