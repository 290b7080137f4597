"""SQLite contention across processes: latency of mixed reads and writes.

N processes × M concurrent callers share one SQLite file, each caller in a
closed loop: with probability ``--writes`` it commits an update of its own
atom, otherwise it reads a random atom. Every call's latency is recorded; the
figures are p50, p99 and max of writes and of reads, and the calls per
second.

* statestore: each process opens the store and runs M coroutines calling
  ``store.atom_details.update(atom)`` and ``store.atom_details.get(uuid)``.
* baseline, in the same run: raw sqlite3 processes doing the same — M threads
  per process, each with its own connection set up as statestore sets up its
  own (WAL, synchronous=NORMAL, busy_timeout 30 s, SQLite's own busy
  handler), running ``BEGIN IMMEDIATE; UPDATE …; COMMIT`` and the same
  ``SELECT``, JSON decoded.

Both sides start from the same database (copied from one template), run for
the same time, and alternate for ``--rounds`` rounds; the figures pool every
round's calls. Goal: statestore's write p99 ≤ 100 ms at 8 × 8.

Usage: python bench/contention.py [--processes 8] [--callers 8] [--seconds 10]
       [--rounds 1] [--writes 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from queue import Empty
from typing import Any

from harness import raw_sqlite, sqlite_time

from statestore import Busy, open_store
from statestore.flows import AtomDetail, AtomState, FlowDetail, LogBook

RAW_UPDATE = "UPDATE atom_details SET state = ?, results = ?, updated_at = ? WHERE uuid = ?"
RAW_READ = "SELECT * FROM atom_details WHERE uuid = ?"
JSON_COLUMNS = (9, 10, 11, 12, 14)  # results, failure, revert_results, revert_failure, meta
GOAL_P99_MS = 100.0
RESULTS_SIZE = 200  # characters of JSON per written result: a small TaskFlow result


@dataclass
class Latencies:
    """One process's (or all processes') calls: seconds each, and failures."""

    writes: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    busy: int = 0
    seconds: float = 0.0
    wal_peak: int = 0
    """The largest size of the WAL file seen (sampled every 0.2 s)."""

    def merge(self, other: Latencies) -> None:
        self.writes += other.writes
        self.reads += other.reads
        self.busy += other.busy
        self.seconds = max(self.seconds, other.seconds)
        self.wal_peak = max(self.wal_peak, other.wal_peak)


# -- the database both sides start from -------------------------------------------


async def _template(path: str, atoms: int) -> list[str]:
    """A migrated database with one logbook of ``atoms`` atoms; their uuids."""
    book = LogBook("contention", flows=[FlowDetail("f", atoms=[AtomDetail(f"a{i}") for i in range(atoms)])])
    async with open_store(f"sqlite:///{path}", create=True) as store:
        await store.logbooks.save(book)
    with sqlite3.connect(path) as connection:  # fold the WAL in: both sides start alike
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return [atom.uuid.hex for atom in book.flows[0].atoms]


# -- one process of each side ------------------------------------------------------


def _result(index: int) -> dict[str, Any]:
    return {"step": index, "log": "x" * RESULTS_SIZE}


async def _store_process(path: str, mine: list[str], every: list[str], seconds: float, writes: float) -> Latencies:
    from uuid import UUID

    measured = Latencies()
    async with open_store(f"sqlite:///{path}") as store:
        atoms = [await store.atom_details.get(UUID(uuid)) for uuid in mine]
        everyone = [UUID(uuid) for uuid in every]
        _BARRIER.wait()
        deadline = time.perf_counter() + seconds

        async def caller(atom: AtomDetail, seed: int) -> None:
            chance = random.Random(seed)
            index = 0
            while time.perf_counter() < deadline:
                index += 1
                started = time.perf_counter()
                try:
                    if chance.random() < writes:
                        atom.state, atom.results = AtomState.RUNNING, _result(index)
                        await store.atom_details.update(atom)
                        measured.writes.append(time.perf_counter() - started)
                    else:
                        await store.atom_details.get(chance.choice(everyone))
                        measured.reads.append(time.perf_counter() - started)
                except Busy:
                    measured.busy += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller(atom, hash(atom.uuid)) for atom in atoms))
        measured.seconds = time.perf_counter() - started
    return measured


def _raw_process(path: str, mine: list[str], every: list[str], seconds: float, writes: float) -> Latencies:
    measured = Latencies()
    lock = threading.Lock()
    connected = threading.Barrier(len(mine) + 1)
    go = threading.Event()
    deadline: list[float] = []

    def caller(uuid: str, seed: int) -> None:
        connection = raw_sqlite(path)  # sqlite3 objects stay in their thread
        chance = random.Random(seed)
        mine_writes: list[float] = []
        mine_reads: list[float] = []
        busy = 0
        index = 0
        connected.wait()
        go.wait()
        while time.perf_counter() < deadline[0]:
            index += 1
            started = time.perf_counter()
            try:
                if chance.random() < writes:
                    connection.execute("BEGIN IMMEDIATE")
                    now = sqlite_time(datetime.now(UTC))
                    connection.execute(RAW_UPDATE, ("RUNNING", json.dumps(_result(index)), now, uuid))
                    connection.execute("COMMIT")
                    mine_writes.append(time.perf_counter() - started)
                else:
                    row = connection.execute(RAW_READ, (chance.choice(every),)).fetchone()
                    [json.loads(row[i]) if isinstance(row[i], str) else row[i] for i in JSON_COLUMNS]
                    mine_reads.append(time.perf_counter() - started)
            except sqlite3.OperationalError:
                busy += 1
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
        connection.close()
        with lock:
            measured.writes += mine_writes
            measured.reads += mine_reads
            measured.busy += busy

    threads = [threading.Thread(target=caller, args=(uuid, hash(uuid))) for uuid in mine]
    for thread in threads:
        thread.start()
    connected.wait()
    _BARRIER.wait()
    started = time.perf_counter()
    deadline.append(started + seconds)
    go.set()
    for thread in threads:
        thread.join()
    measured.seconds = time.perf_counter() - started
    return measured


_BARRIER: Any = None


def _worker(side: str, barrier: Any, queue: Any, args: tuple[Any, ...]) -> None:
    global _BARRIER
    _BARRIER = barrier
    measured = asyncio.run(_store_process(*args)) if side == "statestore" else _raw_process(*args)
    queue.put((measured.writes, measured.reads, measured.busy, measured.seconds))


def run_side(side: str, template: str, uuids: list[str], options: argparse.Namespace) -> Latencies:
    """One side's processes on a fresh copy of the template; their pooled calls."""
    directory = tempfile.mkdtemp(prefix="statestore-contention-")
    path = os.path.join(directory, "contention.db")
    shutil.copyfile(template, path)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(options.processes + 1)
    queue = context.Queue()
    per = options.callers
    processes = [
        context.Process(
            target=_worker,
            args=(side, barrier, queue, (path, uuids[n * per : (n + 1) * per], uuids, options.seconds, options.writes)),
        )
        for n in range(options.processes)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=120)  # every process is connected and ready
    except threading.BrokenBarrierError:
        codes = [process.exitcode for process in processes]
        for process in processes:
            process.kill()
        raise SystemExit(f"{side}: a process failed to start (exit codes {codes})") from None
    pooled = Latencies()
    reported, deadline = 0, time.monotonic() + options.seconds + 120
    while reported < options.processes:
        try:
            writes, reads, busy, seconds = queue.get(timeout=0.2)
        except Empty:
            assert time.monotonic() < deadline, f"{side}: the processes did not report in time"
            with contextlib.suppress(FileNotFoundError):
                pooled.wal_peak = max(pooled.wal_peak, os.stat(f"{path}-wal").st_size)
            continue
        pooled.merge(Latencies(writes, reads, busy, seconds))
        reported += 1
    for process in processes:
        process.join()
    shutil.rmtree(directory)
    return pooled


# -- the report ---------------------------------------------------------------------


def _ms(values: list[float], quantile: float) -> float:
    if not values:
        return float("nan")
    if quantile >= 1.0:
        return max(values) * 1000
    return statistics.quantiles(values, n=1000, method="inclusive")[int(quantile * 1000) - 1] * 1000


def report(results: dict[str, Latencies], options: argparse.Namespace) -> None:
    print(
        f"\n{options.processes} processes x {options.callers} callers, {options.writes:.0%} writes, "
        f"{options.seconds:g} s x {options.rounds} round(s) per side"
    )
    header = f"{'side':<12} {'calls/s':>9} {'busy':>5}  {'write p50':>9} {'p99':>8} {'max':>8}  "
    print(header + f"{'read p50':>9} {'p99':>8} {'max':>8}   (ms)  {'WAL peak':>9}")
    for side, measured in results.items():
        calls = len(measured.writes) + len(measured.reads)
        print(
            f"{side:<12} {calls / (measured.seconds * options.rounds):>9,.0f} {measured.busy:>5}  "
            f"{_ms(measured.writes, 0.5):>9.1f} {_ms(measured.writes, 0.99):>8.1f} {_ms(measured.writes, 1):>8.1f}  "
            f"{_ms(measured.reads, 0.5):>9.1f} {_ms(measured.reads, 0.99):>8.1f} {_ms(measured.reads, 1):>8.1f}"
            f"         {measured.wal_peak / 2**20:>5.1f} MiB"
        )
    ours, raw = results["statestore"], results["raw sqlite3"]
    p99 = _ms(ours.writes, 0.99)
    print(
        f"ratios statestore/raw: write p50 {_ms(ours.writes, 0.5) / _ms(raw.writes, 0.5):.2f}x, "
        f"write p99 {p99 / _ms(raw.writes, 0.99):.2f}x, "
        f"calls/s {(len(ours.writes) + len(ours.reads)) / (len(raw.writes) + len(raw.reads)):.2f}x"
    )
    print(f"goal: statestore write p99 <= {GOAL_P99_MS:g} ms: {'met' if p99 <= GOAL_P99_MS else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--callers", type=int, default=8, help="coroutines (statestore) or threads (raw) per process")
    parser.add_argument("--seconds", type=float, default=10.0, help="per side and round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--writes", type=float, default=0.5, help="share of calls that write")
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="statestore-contention-")
    template = os.path.join(directory, "template.db")
    uuids = asyncio.run(_template(template, options.processes * options.callers))
    results = {"raw sqlite3": Latencies(), "statestore": Latencies()}
    for _ in range(options.rounds):
        for side in ("raw sqlite3", "statestore"):
            results[side].merge(run_side(side, template, uuids, options))
    shutil.rmtree(directory)
    report(results, options)


if __name__ == "__main__":
    main()
