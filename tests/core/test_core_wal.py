"""SQLite's write-ahead log stays reclaimable: a long reader may let it grow,
but once the reader lets go the store shrinks it by itself, with the store
still open; ``store.checkpoint()``, ``check()`` and the CLI show its size.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from statestore import Store, Unavailable, open_store
from statestore.cli import app
from statestore.flows import AtomDetail, AtomState, FlowDetail, LogBook
from statestore.store import WalCheckpoint

MiB = 2**20


def _wal(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


@contextmanager
def _long_reader(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding a read snapshot (an open read transaction)."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM atom_details").fetchone()
    try:
        yield reader
    finally:
        if reader.in_transaction:
            reader.execute("COMMIT")
        reader.close()


async def _one_atom(store: Store) -> AtomDetail:
    book = LogBook("wal", flows=[FlowDetail("f", atoms=[AtomDetail("a")])])
    await store.logbooks.save(book)
    return book.flows[0].atoms[0]


async def _grow(store: Store, atom: AtomDetail, updates: int, size: int) -> None:
    for index in range(updates):
        # Random text: SQLite skips rewriting overflow pages whose content is unchanged.
        atom.state, atom.results = AtomState.RUNNING, {"index": index, "blob": secrets.token_hex(size // 2)}
        await store.atom_details.update(atom)


async def _shrinks_to(path: Path, limit: int, within: float) -> float:
    """Seconds until the WAL file is at most ``limit`` bytes (fails after ``within``)."""
    started = time.monotonic()
    while _wal(path) > limit:
        assert time.monotonic() - started < within, f"WAL still {_wal(path):,} bytes after {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_wal_grown_past_64_mib_under_a_long_reader_shrinks_after_it_lets_go(tmp_path: Path) -> None:
    """The issue as reported, at the default limit: atom updates while a
    reader holds its snapshot grow the WAL past 64 MiB; after the reader
    releases it, the WAL is back under 64 MiB within seconds, no further
    write needed, the store still open."""
    path = tmp_path / "wal.db"
    async with open_store(f"sqlite:///{path}", create=True) as store:
        atom = await _one_atom(store)
        with _long_reader(path):
            await _grow(store, atom, updates=72, size=MiB)  # ~1 MiB of overflow pages each
            assert _wal(path) > 64 * MiB
            await asyncio.sleep(0.3)  # the store's checkpoints cannot reset a log a reader uses
            assert _wal(path) > 64 * MiB
        await _shrinks_to(path, 64 * MiB, within=5)
        stored = await store.atom_details.get(atom.uuid)
        assert stored.results["index"] == 71


async def test_a_small_threshold_keeps_the_wal_small(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with open_store(f"sqlite:///{path}", create=True, wal_checkpoint_bytes=MiB) as store:
        atom = await _one_atom(store)
        with _long_reader(path):
            await _grow(store, atom, updates=60, size=100_000)
            assert _wal(path) > 4 * MiB
        await _shrinks_to(path, MiB, within=5)
        # Without a reader, writes keep it under the threshold (give or take
        # the 0.25 s between looks at its size).
        await _grow(store, atom, updates=200, size=20_000)
        await _shrinks_to(path, MiB, within=5)
        assert (await store.atom_details.get(atom.uuid)).results["index"] == 199


async def test_every_connection_limits_the_journal_size(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'wal.db'}", create=True, wal_checkpoint_bytes=3 * MiB) as store:
        limits = await asyncio.gather(
            store.read(lambda conn: conn.exec_driver_sql("PRAGMA journal_size_limit").scalar()),
            store.read(lambda conn: conn.exec_driver_sql("PRAGMA journal_size_limit").scalar(), offload=True),
        )
        with store.runner.sync_engine.connect() as connection:
            limits.append(connection.exec_driver_sql("PRAGMA journal_size_limit").scalar())
        assert limits == [3 * MiB] * 3


async def test_checkpoint_reports_and_truncates(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with open_store(f"sqlite:///{path}", create=True) as store:
        atom = await _one_atom(store)
        await _grow(store, atom, updates=20, size=10_000)
        with _long_reader(path):
            await _grow(store, atom, updates=20, size=10_000)
            pinned = await store.checkpoint()
            assert isinstance(pinned, WalCheckpoint)
            assert pinned.busy
            assert pinned.log_frames > pinned.checkpointed_frames >= 0
            assert pinned.wal_bytes == _wal(path) > 0
        done = await store.checkpoint()
        assert done is not None
        assert (done.busy, done.checkpointed_frames, done.wal_bytes) == (False, done.log_frames, 0)
        assert done.log_frames > 0
        assert _wal(path) == 0
        report = await store.check()
        assert report.ok
        assert report.wal_bytes == 0
        await _grow(store, atom, updates=1, size=10)
        assert (await store.check()).wal_bytes == _wal(path) > 0


async def test_checkpoint_and_wal_size_elsewhere(store: Store, backend: str) -> None:
    """No WAL file to speak of: SQLite in memory and the servers."""
    if backend == "sqlite-file":
        assert isinstance(await store.checkpoint(), WalCheckpoint)
        assert isinstance((await store.check()).wal_bytes, int)
    else:
        assert await store.checkpoint() is None
        assert (await store.check()).wal_bytes is None


async def test_checkpoint_never_creates_a_database(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'wal.db'}", create=True) as store:
        os.remove(tmp_path / "wal.db")  # gone under the open store (unlinked, still open)
        with pytest.raises(Unavailable):
            await store.checkpoint()
    assert not (tmp_path / "wal.db").exists()


# -- the command -----------------------------------------------------------------------

cli = CliRunner()


def _migrated(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "cli.db"
    assert cli.invoke(app, ["upgrade", "--url", f"sqlite:///{path}"]).exit_code == 0
    return path, f"sqlite:///{path}"


def test_cli_checkpoint_truncates_the_wal(tmp_path: Path) -> None:
    path, url = _migrated(tmp_path)
    writer = sqlite3.connect(path, isolation_level=None)  # keeps the WAL from going with the last connection
    writer.execute("CREATE TABLE filler (x)")
    writer.execute("INSERT INTO filler VALUES (randomblob(100000))")
    assert _wal(path) > 0
    result = cli.invoke(app, ["checkpoint", "--url", url])
    assert result.exit_code == 0, result.output
    assert "write-ahead log now" in result.output
    assert _wal(path) == 0
    writer.close()


def test_cli_checkpoint_with_a_reader_in_the_way_exits_1(tmp_path: Path) -> None:
    path, url = _migrated(tmp_path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE filler (x)")
    with _long_reader(path):
        writer.execute("INSERT INTO filler VALUES (randomblob(100000))")
        result = cli.invoke(app, ["checkpoint", "--url", url])
    writer.close()
    assert result.exit_code == 1
    assert "a reader still uses the log" in result.output


def test_cli_checkpoint_in_memory_is_nothing_to_do() -> None:
    result = cli.invoke(app, ["checkpoint", "--url", "sqlite://"])
    assert result.exit_code == 0
    assert "nothing to checkpoint" in result.output


def test_cli_check_and_stats_show_the_wal(tmp_path: Path) -> None:
    _, url = _migrated(tmp_path)
    checked = cli.invoke(app, ["check", "--url", url])
    assert checked.exit_code == 0
    assert "write-ahead log" in checked.output
    stats = cli.invoke(app, ["stats", "--url", url])
    assert stats.exit_code == 0
    assert "write-ahead log:" in stats.output
