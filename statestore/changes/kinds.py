"""What changed: the kinds of change records."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ChangeKind"]


class ChangeKind(StrEnum):
    """The kind of a change record, and which of its fields it fills.

    ``old`` and ``new`` are statuses or states where the kind is a change of
    one; the uuids name the entity and its parents.
    """

    JOB_STATUS = "job.status"
    """A job's status changed (``job``; ``old``, ``new``, ``reason``, ``who``)."""
    TASK_STATUS = "task.status"
    """A task's status changed (``job``, ``task``; ``old``, ``new``, ``reason``, ``who``)."""
    WORKER_STATUS = "worker.status"
    """A worker's status changed (``worker``; ``old``, ``new``)."""
    WORKER_REQUESTED = "worker.requested"
    """A manager asked a worker to change status (``worker``; ``old``: its
    status, ``new``: the status asked for, none where the request was
    cleared; ``reason``, ``who``)."""
    WORKER_FORGOTTEN = "worker.forgotten"
    """A worker was soft-deleted by the state machine, its active tasks
    given back (``worker``; ``old``: its status; ``reason``, ``who``)."""
    JOB_STORED = "job.stored"
    """A job was stored (``job``; ``new``: its status)."""
    JOB_DELETED = "job.deleted"
    """A job was deleted with its tasks (``job``; ``old``: its status)."""
    LOGBOOK_SAVED = "logbook.saved"
    """A logbook was saved (``logbook``)."""
    LOGBOOK_DESTROYED = "logbook.destroyed"
    """A logbook was destroyed with its flows (``logbook``)."""
    FLOW_STATE = "flow.state"
    """A flow detail's state changed (``logbook``, ``flow``; ``old``, ``new``)."""
    ATOM_STATE = "atom.state"
    """An atom detail's state changed (``flow``, ``atom``; ``old``, ``new``)."""
