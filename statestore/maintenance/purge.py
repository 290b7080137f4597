"""Retention: remove finished work older than a date, in short chunks.

What goes, for ``purge(store, finished_before=WHEN)``:

* jobs ``completed``, ``canceled`` or ``failed`` last updated before WHEN,
  with their tasks and what hangs off them (dependencies, failure lists,
  blocklist, last-rendered, status history);
* logbooks last updated before WHEN whose flow details are all finished
  (``SUCCESS``, ``FAILURE`` or ``REVERTED``; a logbook without flows counts
  as finished), with their flow and atom details;
* status-history entries and change-feed records older than WHEN.

Every chunk is its own short transaction of at most ``chunk_size`` rows,
so a purge never holds SQLite's write lock or a server transaction for
long, and claims and completions go on meanwhile. A job's tasks and history
go first, a chunk at a time, each chunk re-checking under the job's row
lock that the job is still finished and old (a job requeued meanwhile is
left alone from then on); the job's row goes last, with a ``job.deleted``
change whose reason says it was purged. So an interrupted purge leaves no
task without its job, and the next run finishes it. Until then a job whose
purge was interrupted holds fewer tasks than its step sums count
(``statestore check`` reports that as drift).

Logbooks go one at a time (their atoms with them, by cascade), re-checked
in the deleting transaction, each with a ``logbook.destroyed`` change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, exists, func, not_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from statestore.changes.feed import number_changes
from statestore.changes.retention import purge_chunk
from statestore.changes.tables import CHANGES
from statestore.core.types import utcnow
from statestore.core.validate import INTEGER, aware_datetime, integer
from statestore.errors import InvalidInput
from statestore.farm.jobs import delete_job
from statestore.farm.statuses import JobStatus
from statestore.farm.tables import JOBS, STATUS_HISTORY, TASKS
from statestore.flows.logbooks import destroy_book
from statestore.flows.states import FlowState
from statestore.flows.tables import ATOMS, BOOKS, FLOWS
from statestore.store import Store

__all__ = ["DEFAULT_CHUNK", "FINISHED_FLOW_STATES", "FINISHED_JOB_STATUSES", "PurgeReport", "purge"]

DEFAULT_CHUNK = 2000
"""Rows deleted per transaction."""

FINISHED_JOB_STATUSES = (JobStatus.COMPLETED.value, JobStatus.CANCELED.value, JobStatus.FAILED.value)
FINISHED_FLOW_STATES = (FlowState.SUCCESS.value, FlowState.FAILURE.value, FlowState.REVERTED.value)
PURGED = "purged: finished before {}"
"""The reason of a purged job's ``job.deleted`` change."""
WHO = "statestore purge"

Progress = Callable[[str, int], None]
"""Told after every chunk: what (``tasks``, ``jobs``, …) and how many rows went."""


@dataclass(frozen=True)
class PurgeReport:
    """How many rows of each kind a purge removed (or, dry, would remove)."""

    jobs: int = 0
    tasks: int = 0
    logbooks: int = 0
    flow_details: int = 0
    atom_details: int = 0
    history: int = 0
    changes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


_cutoff: BindParameter[datetime] = bindparam("cutoff")

_OLD_FINISHED_JOB = and_(JOBS.c.status.in_(FINISHED_JOB_STATUSES), JOBS.c.updated_at < _cutoff)

_UNFINISHED_FLOW = exists().where(
    FLOWS.c.logbook_id == BOOKS.c.id,
    # A flow that has no state yet has not finished either.
    not_(func.coalesce(FLOWS.c.state, "").in_(FINISHED_FLOW_STATES)),
)
_OLD_FINISHED_BOOK = and_(BOOKS.c.updated_at < _cutoff, not_(_UNFINISHED_FLOW))


def _count(connection: Connection, cutoff: datetime) -> PurgeReport:
    """What a purge at ``cutoff`` would remove, in one snapshot."""
    jobs = select(JOBS.c.id).where(_OLD_FINISHED_JOB)
    books = select(BOOKS.c.id).where(_OLD_FINISHED_BOOK)
    flows = select(FLOWS.c.id).where(FLOWS.c.logbook_id.in_(books))

    def scalar(statement: Any) -> int:
        return int(connection.execute(statement, {"cutoff": cutoff}).scalar_one())

    in_jobs = STATUS_HISTORY.c.job_id.in_(jobs)
    return PurgeReport(
        jobs=scalar(select(func.count()).select_from(JOBS).where(_OLD_FINISHED_JOB)),
        tasks=scalar(select(func.count()).select_from(TASKS).where(TASKS.c.job_id.in_(jobs))),
        logbooks=scalar(select(func.count()).select_from(BOOKS).where(_OLD_FINISHED_BOOK)),
        flow_details=scalar(select(func.count()).select_from(FLOWS).where(FLOWS.c.logbook_id.in_(books))),
        atom_details=scalar(select(func.count()).select_from(ATOMS).where(ATOMS.c.flow_detail_id.in_(flows))),
        # Old entries, and every entry of a job that goes.
        history=scalar(
            select(func.count()).select_from(STATUS_HISTORY).where((STATUS_HISTORY.c.at < _cutoff) | in_jobs)
        ),
        changes=scalar(select(func.count()).select_from(CHANGES).where(CHANGES.c.at < _cutoff)),
    )


def _next_jobs(connection: Connection, cutoff: datetime, after: int, limit: int) -> list[tuple[int, UUID]]:
    statement = (
        select(JOBS.c.id, JOBS.c.uuid).where(_OLD_FINISHED_JOB, JOBS.c.id > after).order_by(JOBS.c.id).limit(limit)
    )
    return [(int(row.id), row.uuid) for row in connection.execute(statement, {"cutoff": cutoff})]


_JOB_STILL_OLD_AND_FINISHED = (
    select(JOBS.c.id).where(JOBS.c.id == bindparam("job_id"), _OLD_FINISHED_JOB).with_for_update()
)


def _delete_some_of_job(connection: Connection, job_id: int, cutoff: datetime, limit: int) -> tuple[int, int] | None:
    """Up to ``limit`` of the job's history entries, else up to ``limit`` of
    its tasks (their dependencies and failures by cascade), in this
    transaction; None if the job is no longer finished and old."""
    if connection.execute(_JOB_STILL_OLD_AND_FINISHED, {"job_id": job_id, "cutoff": cutoff}).first() is None:
        return None
    entries = list(
        connection.execute(
            select(STATUS_HISTORY.c.id)
            .where(STATUS_HISTORY.c.job_id == job_id)
            .order_by(STATUS_HISTORY.c.id)
            .limit(limit)
        ).scalars()
    )
    if entries:
        connection.execute(delete(STATUS_HISTORY).where(STATUS_HISTORY.c.id.in_(entries)))
        return 0, len(entries)
    tasks = list(
        connection.execute(
            select(TASKS.c.id).where(TASKS.c.job_id == job_id).order_by(TASKS.c.id).limit(limit)
        ).scalars()
    )
    if tasks:
        connection.execute(delete(TASKS).where(TASKS.c.id.in_(tasks)))
    return len(tasks), 0


def _delete_job_row(connection: Connection, job_id: int, uuid: UUID, cutoff: datetime) -> bool:
    """The job's row (its blocklist and last-rendered by cascade), if it is
    still finished and old; its tasks are gone by now."""
    if connection.execute(_JOB_STILL_OLD_AND_FINISHED, {"job_id": job_id, "cutoff": cutoff}).first() is None:
        return False
    delete_job(connection, uuid, reason=PURGED.format(cutoff.isoformat()), who=WHO)
    return True


def _next_books(connection: Connection, cutoff: datetime, after: int, limit: int) -> list[tuple[int, UUID]]:
    statement = (
        select(BOOKS.c.id, BOOKS.c.uuid).where(_OLD_FINISHED_BOOK, BOOKS.c.id > after).order_by(BOOKS.c.id).limit(limit)
    )
    return [(int(row.id), row.uuid) for row in connection.execute(statement, {"cutoff": cutoff})]


def _delete_book(connection: Connection, book_id: int, uuid: UUID, cutoff: datetime) -> tuple[int, int] | None:
    """The logbook with its flows and atoms, if still finished and old:
    (flow details, atom details) removed, or None."""
    still = select(BOOKS.c.id).where(BOOKS.c.id == bindparam("book_id"), _OLD_FINISHED_BOOK).with_for_update()
    if connection.execute(still, {"book_id": book_id, "cutoff": cutoff}).first() is None:
        return None
    flows = select(FLOWS.c.id).where(FLOWS.c.logbook_id == book_id)
    counted = (
        select(func.count()).select_from(FLOWS).where(FLOWS.c.logbook_id == book_id).scalar_subquery(),
        select(func.count()).select_from(ATOMS).where(ATOMS.c.flow_detail_id.in_(flows)).scalar_subquery(),
    )
    n_flows, n_atoms = connection.execute(select(*counted)).one()
    destroy_book(connection, uuid)
    return int(n_flows), int(n_atoms)


def _delete_old_history(connection: Connection, cutoff: datetime, limit: int) -> int:
    entries = list(
        connection.execute(
            select(STATUS_HISTORY.c.id).where(STATUS_HISTORY.c.at < cutoff).order_by(STATUS_HISTORY.c.id).limit(limit)
        ).scalars()
    )
    if entries:
        connection.execute(delete(STATUS_HISTORY).where(STATUS_HISTORY.c.id.in_(entries)))
    return len(entries)


async def purge(
    store: Store,
    *,
    finished_before: datetime,
    dry_run: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> PurgeReport:
    """Remove what finished before ``finished_before`` (an aware datetime,
    not in the future; see the module's docstring for what goes), a chunk
    of at most ``chunk_size`` rows per transaction. ``dry_run`` counts what
    would go and removes nothing. Returns what was removed."""
    cutoff = aware_datetime(finished_before, "finished_before")
    now = utcnow()
    if cutoff > now:
        raise InvalidInput(f"finished_before: {cutoff.isoformat()} is in the future")
    chunk = integer(chunk_size, "chunk_size", (1, INTEGER[1]))
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dry_run: expected a bool, got {type(dry_run).__name__}")
    if dry_run:
        return await store.read(partial(_count, cutoff=cutoff))
    told = progress or (lambda what, n: None)
    done = dict.fromkeys(PurgeReport().as_dict(), 0)

    after = 0
    while jobs := await store.read(partial(_next_jobs, cutoff=cutoff, after=after, limit=100)):
        for job_id, uuid in jobs:
            after = job_id
            while True:
                removed = await store.write(partial(_delete_some_of_job, job_id=job_id, cutoff=cutoff, limit=chunk))
                if removed is None or removed == (0, 0):
                    break
                done["tasks"] += removed[0]
                done["history"] += removed[1]
                told("tasks" if removed[0] else "history", sum(removed))
            if removed is not None and await store.write(
                partial(_delete_job_row, job_id=job_id, uuid=uuid, cutoff=cutoff)
            ):
                done["jobs"] += 1
                told("jobs", 1)

    after = 0
    while books := await store.read(partial(_next_books, cutoff=cutoff, after=after, limit=100)):
        for book_id, uuid in books:
            after = book_id
            gone = await store.write(partial(_delete_book, book_id=book_id, uuid=uuid, cutoff=cutoff))
            if gone is not None:
                done["logbooks"] += 1
                done["flow_details"] += gone[0]
                done["atom_details"] += gone[1]
                told("logbooks", 1)

    while removed_history := await store.write(partial(_delete_old_history, cutoff=cutoff, limit=chunk)):
        done["history"] += removed_history
        told("history", removed_history)

    # The feed's own purge, chunk by chunk, at exactly the cutoff. MariaDB
    # writes changes unnumbered and its purge passes only numbered ones:
    # number what is committed first, as a reader would.
    if store.runner.facts.change_order == "numbered":
        while await store.write(partial(number_changes, limit=chunk)) == chunk:
            pass  # a full batch: there may be more (later ones wait for the next run)
    while removed_changes := await store.write(partial(purge_chunk, before=cutoff, limit=chunk)):
        done["changes"] += removed_changes
        told("changes", removed_changes)
    return PurgeReport(**done)
