"""Export and import a store as JSON Lines: one JSON document per line.

The first line is the header, ``{"kind": "header", "format":
"statestore-dump", "version": 1, "schema": <revision>}``; every other line is
one record, ``{"kind": ..., ...}``, in an order where a record comes after
what it refers to:

* the farm: ``worker_tag``; ``worker`` (its tags by uuid, never its secret
  hash); ``sleep_schedule``; then, a page of jobs at a time, the ``job``
  lines, their ``task`` lines (dependencies by uuid), ``task_failure``,
  ``job_block`` and ``status_history`` lines; then ``last_rendered``;
* the flow model, a page of logbooks at a time: ``logbook``, their
  ``flow_detail`` lines, their ``atom_detail`` lines.

Records are named by uuid, never by row id, and keep the timestamps the
store holds; an export of a store an import just filled is equal to the
export it was filled from, line for line.

``since`` exports what was updated at or after it, by whole units: a job
with all its tasks, failures, blocklist and history if any of them changed;
a logbook with all its flows and atoms if any of them changed. (Worker tag
memberships carry no timestamp: a worker's tags are exported when the worker
itself was updated.)

Both directions stream: pages are keyset reads and an import writes batches
of :data:`BATCH` lines, so memory does not grow with the store or the dump
(an import keeps, besides a batch, only the dependencies on tasks later in
the dump, which an export never writes unless a task depends on one authored
after it). An export is read a page at a time, not in one snapshot: export a
store nobody writes to meanwhile, or records written during the export may
be missing or refer to records that are.

An import **merges**: a record of the dump is inserted, or overwrites the
stored record with its uuid (status history, failures and blocklist entries,
which have no uuid, by their natural key); records the store holds that the
dump lacks are left alone, except a worker's tags and a task's dependencies,
which become the dump's. Derived columns (a task's pending dependencies and
copies of its job's priority and schedulable flag, a job's step sums) are
recomputed. A new worker gets no secret hash: nothing authenticates as it
until it is given a new secret.

A header from an older schema revision is accepted: the format version,
not the schema, says how lines read. Status history entries are matched by
everything they hold (job, task, statuses, reason, who, time): two identical
entries of one dump that fall into different batches import as one.

**Guarantee**: the whole import is one transaction. A malformed line, an
unknown kind or a dangling reference raises :class:`InvalidInput` (or
:class:`InvalidReference`, :class:`Conflict`) naming the line number, and
nothing of the dump is written. The import writes nothing to the change
feed: it restores state, it does not make changes happen.
"""

from __future__ import annotations

from statestore.maintenance.dump.exporting import export_lines
from statestore.maintenance.dump.format import BATCH, FORMAT, FORMAT_VERSION, KINDS
from statestore.maintenance.dump.importing import ImportReport, import_lines

__all__ = ["BATCH", "FORMAT", "FORMAT_VERSION", "KINDS", "ImportReport", "export_lines", "import_lines"]
