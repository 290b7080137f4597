"""What every benchmark here shares: figures, interleaved rounds, a throwaway
PostgreSQL database, the report.

Benchmarks run as scripts (``python bench/<name>.py``), so this module is
imported by its bare name from the scripts' own directory.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = [
    "Figure",
    "asyncpg_dsn",
    "interleaved",
    "percentiles",
    "rate",
    "raw_sqlite",
    "report",
    "sqlite_time",
    "throwaway_mysql",
    "throwaway_postgres",
]


@dataclass
class Figure:
    """One measured figure: the store against a baseline of the same run."""

    name: str
    store: float
    baseline: float
    unit: str
    goal: float
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """How many times slower than the baseline (1.0 = as fast)."""
        return self.baseline / self.store if self.higher_is_better else self.store / self.baseline

    @property
    def met(self) -> bool:
        return self.ratio <= self.goal


async def rate(action: Callable[[int], Awaitable[None]], count: int) -> float:
    """Calls of ``action`` per second, one after another."""
    started = time.perf_counter()
    for index in range(count):
        await action(index)
    return count / (time.perf_counter() - started)


async def interleaved(
    raw: Callable[[], Awaitable[float]], ours: Callable[[], Awaitable[float]], rounds: int
) -> tuple[float, float]:
    """(ours, raw): the median of each over ``rounds`` alternating rounds, so
    the machine's noise hits both."""
    raw_rates, our_rates = [], []
    for _ in range(rounds):
        raw_rates.append(await raw())
        our_rates.append(await ours())
    return statistics.median(our_rates), statistics.median(raw_rates)


def raw_sqlite(path: str) -> sqlite3.Connection:
    """A raw sqlite3 connection set up as statestore sets up its own (WAL,
    synchronous=NORMAL, a busy timeout), in autocommit: the baseline issues
    its own BEGIN IMMEDIATE … COMMIT."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("PRAGMA busy_timeout = 30000")
    return raw


def sqlite_time(moment: datetime) -> str:
    """A UTC datetime as statestore stores it on SQLite (for raw baselines)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


@asynccontextmanager
async def throwaway_postgres(admin_url: str) -> AsyncIterator[str]:
    """A new database beside ``admin_url``'s, dropped afterwards; yields its URL."""
    name = f"statestore_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(make_url(admin_url).set(drivername="postgresql+asyncpg"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


@asynccontextmanager
async def throwaway_mysql(admin_url: str) -> AsyncIterator[str]:
    """A new MySQL/MariaDB database beside ``admin_url``'s (``mysql://…``),
    dropped afterwards; yields its URL."""
    from statestore.core.urls import resolve_url

    name = f"statestore_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(resolve_url(admin_url).url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await admin.dispose()


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy-style PostgreSQL URL as asyncpg's own DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def percentiles(timings: list[float]) -> tuple[float, float]:
    """(p50, p99) of ``timings``."""
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def report(figures: list[Figure], note: str = "ratio = times slower than the raw driver") -> None:
    print(f"{'figure':<60} {'statestore':>12} {'baseline':>12} {'ratio':>7} {'goal':>7}  met")
    for figure in figures:
        print(
            f"{figure.name:<60} {figure.store:>12,.1f} {figure.baseline:>12,.1f} "
            f"{figure.ratio:>6.2f}x {figure.goal:>6.1f}x  {'yes' if figure.met else 'NO'}"
        )
    print(f"({note})")
