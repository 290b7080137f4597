"""TaskFlow's engine on four persistence backends, in one run.

A linear flow of N tasks (default 200) runs on the serial engine with:
(a) TaskFlow's memory backend, (b) TaskFlow's own SQLAlchemy backend on a
SQLite file, (c) statestore on a SQLite file, (d) statestore on PostgreSQL
when ``--postgres URL`` is given (a throwaway database is made and dropped).
Rounds are interleaved (a, b, c, d, a, b, …) so that the machine's noise
hits every backend alike; each backend's median of R rounds (default 5) is
printed with its ratio to (a)'s median. Goal: (c) <= 1.25x (a).

The engine makes 4N+1 atom updates and 4 flow updates per run, each on a
fresh connection, all from the engine's own thread; that is what the
backends are timed on. statestore's backend runs its event loop on that
calling thread (``statestore.compat.taskflow.bridge``), so a call costs no
thread hand-off.

Usage: python bench/taskflow_engine.py [--tasks N] [--rounds R] [--postgres URL] [--skip-taskflow-sql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import statistics
import tempfile
import time
import uuid
from typing import Any

import taskflow.engines
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import backends, models

GOAL = 1.25
"""(c) statestore on a SQLite file, at most this many times (a) TaskFlow's memory backend."""


class Noop(task.Task):  # type: ignore[misc]
    def execute(self) -> int:
        return 1


def _flow(tasks: int) -> Any:
    return linear_flow.Flow("bench").add(*(Noop(f"task-{index}") for index in range(tasks)))


def _time_run(conf: dict[str, Any], tasks: int) -> float:
    """One timed engine run on a fresh backend.

    Garbage left by the previous run (TaskFlow's SQL backend leaves
    thousands of SQLAlchemy objects) is collected first, so that no backend
    pays for another's collections; that alone moved the ratios by 0.2-0.3x.
    """
    backend = backends.fetch(conf)
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
        gc.collect()
        started = time.perf_counter()
        engine = taskflow.engines.load(_flow(tasks), backend=backend, book=models.LogBook("bench"))
        engine.run()
        return time.perf_counter() - started
    finally:
        backend.close()


async def _server_database(admin_url: str, create: bool, name: str) -> None:
    engine = create_async_engine(make_url(admin_url).set(drivername="postgresql+asyncpg"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        if create:
            await connection.execute(text(f"CREATE DATABASE {name}"))
        else:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per backend; medians are compared")
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--skip-taskflow-sql", action="store_true", help="leave out (b), which takes ~10x as long as the others"
    )
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="statestore-bench-")
    confs: dict[str, Any] = {"(a) TaskFlow memory": lambda index: {"connection": "memory://"}}
    if not options.skip_taskflow_sql:
        confs["(b) TaskFlow SQLAlchemy, SQLite file"] = lambda index: {
            "connection": f"sqlite:///{directory}/taskflow-{index}.db"
        }
    confs["(c) statestore, SQLite file"] = lambda index: {
        "connection": f"statestore+sqlite:///{directory}/statestore-{index}.db"
    }
    database = f"statestore_bench_{uuid.uuid4().hex[:8]}"
    if options.postgres:
        asyncio.run(_server_database(options.postgres, True, database))
        url = make_url(options.postgres).set(database=database).render_as_string(hide_password=False)
        confs["(d) statestore, PostgreSQL"] = lambda index: {"connection": f"statestore+{url}"}
    times: dict[str, list[float]] = {name: [] for name in confs}
    try:
        for conf in confs.values():  # warm-up: imports, first compilations
            _time_run(conf("warm"), 10)
        for index in range(options.rounds):  # interleaved, so noise hits every backend
            for name, conf in confs.items():
                times[name].append(_time_run(conf(index), options.tasks))
    finally:
        if options.postgres:
            asyncio.run(_server_database(options.postgres, False, database))
        shutil.rmtree(directory, ignore_errors=True)
    memory = statistics.median(times["(a) TaskFlow memory"])
    print(
        f"{options.tasks}-task linear flow, serial engine, median of {options.rounds} runs (min-max); "
        "ratio of medians, and median of each round's ratio"
    )
    for name, samples in times.items():
        median = statistics.median(samples)
        # A burst of noise slows a whole round: a round's own ratio cancels most of it.
        paired = statistics.median(t / m for t, m in zip(samples, times["(a) TaskFlow memory"], strict=True))
        print(
            f"  {name:<40} {median:7.3f} s  {median / memory:6.2f}x memory  (per round {paired:.2f}x)"
            f"  ({min(samples):.3f}-{max(samples):.3f} s)"
        )
    ours = statistics.median(times["(c) statestore, SQLite file"]) / memory
    verdict = f"goal (c) <= {GOAL}x memory: {'met' if ours <= GOAL else 'NOT met'} ({ours:.2f}x)"
    if "(b) TaskFlow SQLAlchemy, SQLite file" in times:
        theirs = statistics.median(times["(b) TaskFlow SQLAlchemy, SQLite file"]) / memory
        verdict += f"; statestore is {theirs / ours:.1f}x faster than TaskFlow's SQLAlchemy backend"
    print(verdict)


if __name__ == "__main__":
    main()
