"""TaskFlow's states, intentions and allowed transitions, as data."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = [
    "FLOW_TRANSITIONS",
    "RETRY_TRANSITIONS",
    "TASK_TRANSITIONS",
    "AtomKind",
    "AtomState",
    "FlowState",
    "Intention",
    "is_allowed",
]


class FlowState(StrEnum):
    """States of a flow detail."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVERTED = "REVERTED"
    SUSPENDING = "SUSPENDING"
    SUSPENDED = "SUSPENDED"
    RESUMING = "RESUMING"


class AtomState(StrEnum):
    """States of a task or retry detail (RETRYING applies to retries only)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVERTING = "REVERTING"
    REVERTED = "REVERTED"
    REVERT_FAILURE = "REVERT_FAILURE"
    IGNORE = "IGNORE"
    RETRYING = "RETRYING"


class Intention(StrEnum):
    """What the engine intends to do with an atom next."""

    EXECUTE = "EXECUTE"
    IGNORE = "IGNORE"
    REVERT = "REVERT"
    RETRY = "RETRY"


class AtomKind(StrEnum):
    """Which TaskFlow atom detail class a row is."""

    TASK = "task"
    RETRY = "retry"


_F = FlowState
FLOW_TRANSITIONS: frozenset[tuple[FlowState, FlowState]] = frozenset(
    {
        (_F.PENDING, _F.RUNNING),
        (_F.RUNNING, _F.SUCCESS),
        (_F.RUNNING, _F.FAILURE),
        (_F.RUNNING, _F.REVERTED),
        (_F.RUNNING, _F.SUSPENDING),
        (_F.RUNNING, _F.RESUMING),
        (_F.SUCCESS, _F.RUNNING),
        (_F.SUCCESS, _F.PENDING),
        (_F.FAILURE, _F.RUNNING),
        (_F.REVERTED, _F.PENDING),
        (_F.SUSPENDING, _F.SUSPENDED),
        (_F.SUSPENDING, _F.SUCCESS),
        (_F.SUSPENDING, _F.FAILURE),
        (_F.SUSPENDING, _F.REVERTED),
        (_F.SUSPENDING, _F.RESUMING),
        (_F.SUSPENDED, _F.RUNNING),
        (_F.RESUMING, _F.SUSPENDED),
    }
)

_A = AtomState
TASK_TRANSITIONS: frozenset[tuple[AtomState, AtomState]] = frozenset(
    {
        (_A.PENDING, _A.RUNNING),
        (_A.PENDING, _A.IGNORE),
        (_A.RUNNING, _A.SUCCESS),
        (_A.RUNNING, _A.FAILURE),
        (_A.FAILURE, _A.REVERTING),
        (_A.SUCCESS, _A.REVERTING),
        (_A.REVERTING, _A.REVERTED),
        (_A.REVERTING, _A.REVERT_FAILURE),
        (_A.REVERTED, _A.PENDING),
        (_A.IGNORE, _A.PENDING),
    }
)
RETRY_TRANSITIONS: frozenset[tuple[AtomState, AtomState]] = TASK_TRANSITIONS | {
    (_A.SUCCESS, _A.RETRYING),
    (_A.RETRYING, _A.RUNNING),
}


def is_allowed(kind: Literal["flow", "task", "retry"] | AtomKind, old: str, new: str) -> bool:
    """Whether TaskFlow allows moving from ``old`` to ``new`` (same state: False)."""
    if kind == "flow":
        return (FlowState(old), FlowState(new)) in FLOW_TRANSITIONS
    table = RETRY_TRANSITIONS if kind == AtomKind.RETRY else TASK_TRANSITIONS
    return (AtomState(old), AtomState(new)) in table
