"""The `statestore` command on a SQLite file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from statestore.cli import app
from statestore.schema.migrate import head_revision

runner = CliRunner()


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_upgrade_then_current_shows_head(tmp_path: Path) -> None:
    url = _url(tmp_path)
    assert runner.invoke(app, ["upgrade", "--url", url]).exit_code == 0
    shown = runner.invoke(app, ["current", "--url", url])
    assert shown.exit_code == 0
    assert f"database: {head_revision()}" in shown.output


def test_check_passes_on_a_migrated_database(tmp_path: Path) -> None:
    url = _url(tmp_path)
    runner.invoke(app, ["upgrade", "--url", url])
    assert runner.invoke(app, ["check", "--url", url]).exit_code == 0


def test_check_reports_an_unmigrated_database(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--url", _url(tmp_path)])
    assert result.exit_code == 1
    assert "schema at revision none" in result.output


def test_downgrade_to_base_leaves_no_revision(tmp_path: Path) -> None:
    url = _url(tmp_path)
    runner.invoke(app, ["upgrade", "--url", url])
    assert runner.invoke(app, ["downgrade", "base", "--url", url]).exit_code == 0
    assert "database: none" in runner.invoke(app, ["current", "--url", url]).output


def test_schema_prints_ddl_of_a_dialect() -> None:
    result = runner.invoke(app, ["schema", "--dialect", "postgresql"])
    assert result.exit_code == 0
    assert "CREATE TABLE log_books" in result.output
    assert "meta JSON NOT NULL" in result.output  # json, not jsonb: numbers come back as written


def test_stats_lists_every_table(tmp_path: Path) -> None:
    url = _url(tmp_path)
    runner.invoke(app, ["upgrade", "--url", url])
    result = runner.invoke(app, ["stats", "--url", url])
    assert result.exit_code == 0
    for table in ("log_books", "flow_details", "atom_details"):
        assert table in result.output


def test_stats_on_an_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["stats", "--url", _url(tmp_path)])
    assert result.exit_code == 2
    assert "SchemaOutOfDate" in result.output


def test_bad_url_exits_2_naming_the_scheme() -> None:
    result = runner.invoke(app, ["current", "--url", "oracle://x"])
    assert result.exit_code == 2
    assert "oracle" in result.output
    assert "Traceback" not in result.output
