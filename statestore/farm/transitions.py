"""Which job and task status changes the state machine accepts, as data.

:data:`TASK_TRANSITIONS` and :data:`JOB_TRANSITIONS` are sets of
``(old, new)`` pairs. They hold every change Flamenco's rules make (a worker
running, finishing or failing a task; the ripples of §3.3–3.4 of the
reference), the give-backs, and the overrides Flamenco's web UI offers a
manager (requeue a finished task or job, cancel, pause). What is not in them
is refused with :class:`~statestore.errors.Conflict` and changes nothing:
a canceled task cannot become completed, a completed one cannot become active
again without being requeued first.

A change to the status a thing already has is not a transition: the state
machine treats it as done and writes nothing.
"""

from __future__ import annotations

from typing import Literal

from statestore.core.validate import shown
from statestore.errors import InvalidInput
from statestore.farm.statuses import JobStatus, TaskStatus

__all__ = ["JOB_TRANSITIONS", "TASK_TRANSITIONS", "is_allowed"]

_T = TaskStatus
_J = JobStatus

TASK_TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        # A worker takes a task, and reports on it.
        (_T.QUEUED, _T.ACTIVE),
        (_T.SOFT_FAILED, _T.ACTIVE),
        (_T.ACTIVE, _T.COMPLETED),
        (_T.ACTIVE, _T.SOFT_FAILED),
        (_T.ACTIVE, _T.FAILED),
        # Given back (signed off, timed out): queued again, or paused with its job.
        (_T.ACTIVE, _T.QUEUED),
        (_T.ACTIVE, _T.PAUSED),
        (_T.FAILED, _T.PAUSED),
        # A manager marks a task that failed once as done (Flamenco's own tests do).
        (_T.SOFT_FAILED, _T.COMPLETED),
        # A failure decided by the manager, not by the worker running it.
        (_T.QUEUED, _T.FAILED),
        (_T.SOFT_FAILED, _T.FAILED),
        # Cancel: anything that may still run.
        (_T.QUEUED, _T.CANCELED),
        (_T.ACTIVE, _T.CANCELED),
        (_T.SOFT_FAILED, _T.CANCELED),
        (_T.PAUSED, _T.CANCELED),
        # Pause: what waits to run.
        (_T.QUEUED, _T.PAUSED),
        (_T.SOFT_FAILED, _T.PAUSED),
        # Requeue: from every other status.
        (_T.SOFT_FAILED, _T.QUEUED),
        (_T.PAUSED, _T.QUEUED),
        (_T.FAILED, _T.QUEUED),
        (_T.CANCELED, _T.QUEUED),
        (_T.COMPLETED, _T.QUEUED),
    }
)
"""Allowed ``(old, new)`` task statuses."""

_EVERY_JOB_STATUS = frozenset(JobStatus)

JOB_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        # A job being built, then released (or given up).
        (_J.UNDER_CONSTRUCTION, _J.QUEUED),
        (_J.UNDER_CONSTRUCTION, _J.REQUEUEING),
        (_J.UNDER_CONSTRUCTION, _J.CANCEL_REQUESTED),
        (_J.UNDER_CONSTRUCTION, _J.CANCELED),
        (_J.UNDER_CONSTRUCTION, _J.FAILED),
        # A task went active or soft-failed: the job is active (Flamenco
        # makes any job active then, but a cancel-requested one).
        *((old, _J.ACTIVE) for old in _EVERY_JOB_STATUS - {_J.ACTIVE, _J.CANCEL_REQUESTED}),
        # Its tasks finished: completed, failed at the fail percentage, or
        # canceled when the last runnable task was.
        *((old, _J.COMPLETED) for old in (_J.QUEUED, _J.ACTIVE, _J.PAUSE_REQUESTED, _J.REQUEUEING)),
        *((old, _J.FAILED) for old in (_J.QUEUED, _J.ACTIVE, _J.PAUSE_REQUESTED, _J.PAUSED, _J.CANCEL_REQUESTED)),
        *((old, _J.CANCELED) for old in (_J.QUEUED, _J.ACTIVE, _J.PAUSE_REQUESTED, _J.PAUSED, _J.CANCEL_REQUESTED)),
        # A manager cancels, pauses or requeues.
        *((old, _J.CANCEL_REQUESTED) for old in (_J.QUEUED, _J.ACTIVE, _J.PAUSE_REQUESTED, _J.PAUSED)),
        *((old, _J.PAUSE_REQUESTED) for old in (_J.QUEUED, _J.ACTIVE)),
        (_J.PAUSE_REQUESTED, _J.PAUSED),
        *((old, _J.REQUEUEING) for old in _EVERY_JOB_STATUS - {_J.REQUEUEING, _J.CANCEL_REQUESTED}),
        # A requeue ends queued; a queued job whose tasks are all done completes.
        (_J.REQUEUEING, _J.QUEUED),
        (_J.PAUSED, _J.QUEUED),
    }
)
"""Allowed ``(old, new)`` job statuses."""


def is_allowed(kind: Literal["job", "task"], old: str, new: str) -> bool:
    """Whether the state machine accepts ``old`` → ``new`` for a ``kind``
    ("job" or "task"); statuses may be given as enum members or strings.
    False for a status that does not exist."""
    if kind == "job":
        return _pair(JobStatus, old, new) in JOB_TRANSITIONS
    if kind == "task":
        return _pair(TaskStatus, old, new) in TASK_TRANSITIONS
    raise InvalidInput(f"kind must be 'job' or 'task', not {shown(kind)}")


def _pair(enum: type[JobStatus] | type[TaskStatus], old: str, new: str) -> tuple[str, str] | None:
    values = {member.value for member in enum}
    if not isinstance(old, str) or not isinstance(new, str) or old not in values or new not in values:
        return None
    return (enum(old), enum(new))
