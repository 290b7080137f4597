"""The Store: one database, its runner, its schema, its repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL

from statestore.changes.feed import ChangeFeed
from statestore.core.runner import ActiveTransaction, Runner, T, Unit
from statestore.core.server_runner import ServerRunner
from statestore.core.sqlite_runner import SqliteRunner
from statestore.core.sqlite_wal import DEFAULT_WAL_CHECKPOINT_BYTES, WalCheckpoint
from statestore.core.urls import Backend, resolve_url
from statestore.errors import InvalidInput, SchemaOutOfDate
from statestore.farm.blocklist import JobBlocklist
from statestore.farm.jobs import Jobs
from statestore.farm.last_rendered import LastRendered
from statestore.farm.scheduler import Scheduler
from statestore.farm.sleep_schedules import SleepSchedules
from statestore.farm.state_machine import StateMachine
from statestore.farm.status_history import StatusHistory
from statestore.farm.task_failures import TaskFailures
from statestore.farm.tasks import Tasks
from statestore.farm.worker_tags import WorkerTags
from statestore.farm.workers import Workers
from statestore.flows.atom_details import AtomDetails
from statestore.flows.flow_details import FlowDetails
from statestore.flows.logbooks import LogBooks
from statestore.schema import migrate
from statestore.schema.check import CheckReport, run_checks
from statestore.schema.vacuum import vacuum

__all__ = ["Store", "WalCheckpoint", "open_store", "open_store_unchecked"]


class Store:
    """An open database. Create it with :func:`open_store`.

    Repository calls made inside ``async with store.transaction():`` join that
    transaction; outside one, each call is its own short transaction.
    """

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.logbooks = LogBooks(runner)
        """Logbooks of the flow model (TaskFlow's LogBook)."""
        self.flow_details = FlowDetails(runner)
        """Flow details of the flow model (TaskFlow's FlowDetail)."""
        self.atom_details = AtomDetails(runner)
        """Task and retry details of the flow model (TaskFlow's AtomDetail)."""
        self.jobs = Jobs(runner)
        """Jobs of the farm model with their tasks as a whole (Flamenco)."""
        self.tasks = Tasks(runner)
        """Tasks of the farm model one at a time."""
        self.task_failures = TaskFailures(runner)
        """Which workers failed which task."""
        self.blocklist = JobBlocklist(runner)
        """Workers barred from a task type on a job."""
        self.workers = Workers(runner)
        """Workers of the farm model."""
        self.worker_tags = WorkerTags(runner)
        """Worker tags and their members."""
        self.sleep_schedules = SleepSchedules(runner)
        """Workers' sleep schedules."""
        self.last_rendered = LastRendered(runner)
        """The job rendered last."""
        self.scheduler = Scheduler(runner)
        """Hands the next runnable task to a worker."""
        self.state_machine = StateMachine(runner)
        """Flamenco's manager rules: status changes with their ripple, worker
        reports and failures, give-backs, time-outs and the housekeeper."""
        self.status_history = StatusHistory(runner)
        """Every job and task status change the state machine made."""
        self.changes = ChangeFeed(runner)
        """The change feed: ``store.changes(after=cursor)`` iterates over
        changes in commit order and follows new ones."""

    @property
    def backend(self) -> Backend:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        return self._runner.target.backend

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._runner.target.given

    @property
    def runner(self) -> Runner:
        """How units reach the database (for repositories and benchmarks)."""
        return self._runner

    # -- units of work (used by repositories) --------------------------------

    async def read(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        """Run a read-only unit; it never takes SQLite's write lock."""
        return await self._runner.read(unit, offload=offload, single_statement=single_statement)

    async def write(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        """Run a writing unit, committed when this returns (or joined to the
        caller's open transaction)."""
        return await self._runner.write(unit, offload=offload, single_statement=single_statement)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ActiveTransaction]:
        """One write transaction that every repository call inside joins.

        It commits when the block completes and rolls back if the block
        raises. A nested ``transaction()`` is a savepoint. On SQLite it takes
        the write lock at once (``BEGIN IMMEDIATE``), so a read-then-write
        inside it cannot lose an update to a concurrent writer.
        """
        async with self._runner.begin() as active:
            yield active
        # Committed: what it wrote may be work or changes someone waits for.
        self._runner.wakeups.work()

    # -- schema ----------------------------------------------------------------

    async def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema (idempotent), from a running loop."""
        await self._runner.admin(lambda conn: migrate.upgrade(conn, revision), foreign_keys_off=True)

    async def downgrade(self, revision: str) -> None:
        """Migrate down to ``revision``; ``"base"`` drops every table."""
        await self._runner.admin(lambda conn: migrate.downgrade(conn, revision), foreign_keys_off=True)

    async def schema_revision(self) -> str | None:
        """The database's migration revision (None: no statestore schema)."""
        return await self._runner.admin(migrate.current_revision)

    async def ensure_schema_current(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the database is at this
        version's head revision."""
        revision = await self.schema_revision()
        head = migrate.head_revision()
        if revision == head:
            return
        if revision is None:
            raise SchemaOutOfDate(
                f"{self.url} has no statestore schema; run `statestore upgrade` or open it with create=True"
            )
        raise SchemaOutOfDate(
            f"{self.url} is at schema revision {revision}, this statestore expects {head}; "
            "run `statestore upgrade` (or install the statestore that wrote it, if it is newer)"
        )

    async def check(self) -> CheckReport:
        """Integrity, foreign keys, schema revision and (SQLite file) the WAL's size, as a report."""
        return await self._runner.admin(run_checks)

    async def vacuum(self) -> None:
        """Give the space of deleted rows back and refresh the planner's
        statistics (see :mod:`statestore.schema.vacuum`). On SQLite it
        rewrites the file, holding the write lock meanwhile and needing as
        much free disk again; run it in a quiet hour."""
        await self._runner.admin(vacuum)

    async def checkpoint(self) -> WalCheckpoint | None:
        """SQLite file: copy the write-ahead log into the database and truncate it.

        The store does this by itself when the WAL grows past
        ``wal_checkpoint_bytes``; call it to shrink the log now (before a
        backup, say). It never waits for a lock and never blocks writers: a
        PASSIVE checkpoint, then TRUNCATE if that copied every frame. A
        reader still using the log leaves it as it is (``busy``); run it
        again later. Returns what SQLite reported and the WAL's size after;
        None where there is no WAL to checkpoint (SQLite in memory,
        PostgreSQL, MariaDB — their servers manage their own logs).
        """
        if isinstance(self._runner, SqliteRunner):
            return await self._runner.checkpoint()
        return None

    async def close(self) -> None:
        """Finish queued writes and release every connection."""
        await self._runner.close()


def _runner_for(url: str | URL | None, options: dict[str, Any]) -> Runner:
    target = resolve_url(url)
    echo = bool(options.pop("echo", False))
    if target.backend == "sqlite":
        busy_timeout = float(options.pop("busy_timeout", 30.0))
        readers = int(options.pop("readers", 4))
        wal_checkpoint_bytes = int(options.pop("wal_checkpoint_bytes", DEFAULT_WAL_CHECKPOINT_BYTES))
        options.pop("pre_ping", None)  # no server connection to check
        if options:
            raise InvalidInput(f"unknown SQLite options: {', '.join(sorted(options))}")
        return SqliteRunner(
            target, busy_timeout=busy_timeout, readers=readers, echo=echo, wal_checkpoint_bytes=wal_checkpoint_bytes
        )
    return ServerRunner(target, echo=echo, options=options)


@asynccontextmanager
async def open_store_unchecked(url: str | URL | None = None, **options: Any) -> AsyncIterator[Store]:
    """Open a store without checking its schema revision.

    For tools that inspect or migrate a database whatever its state (the
    ``statestore`` command); applications use :func:`open_store`.
    """
    store = Store(_runner_for(url, dict(options)))
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_store(url: str | URL | None = None, *, create: bool = False, **options: Any) -> AsyncIterator[Store]:
    """Open the store at ``url`` for the duration of an ``async with`` block.

    Args:
        url: a database URL; ``None`` uses ``$STATESTORE_URL``, else the
            SQLite file ``statestore.db`` in the working directory.
            ``sqlite:///path``, ``postgresql://…`` and ``mysql://…`` are
            mapped to the drivers statestore uses.
        create: create or migrate the schema to this version's head first.
            Without it, a database whose schema is behind raises
            :class:`SchemaOutOfDate`.
        **options: ``echo``; for SQLite ``busy_timeout`` (seconds another
            process may hold the write lock before :class:`Busy`, default 30),
            ``readers`` (threads for offloaded reads) and
            ``wal_checkpoint_bytes`` (the store checkpoints the write-ahead
            log when it grows past this size, and SQLite truncates it back to
            it; default 64 MiB); for servers, pool
            options passed to SQLAlchemy (``pool_size``, ``max_overflow``,
            ``pool_timeout``, ``pool_recycle``, ``connect_args``) and
            ``pre_ping`` (default False): ping a pooled connection at every
            check-out, and a held one idle for a second or more before
            reuse, to find connections that died without the server closing
            them; one round trip more. Connections the server closed are
            found without it. Ignored on SQLite.
    """
    async with open_store_unchecked(url, **options) as store:
        if create:
            await store.upgrade()
        else:
            await store.ensure_schema_current()
        yield store
