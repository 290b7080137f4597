"""Every table of statestore, registered on one metadata (for alembic and DDL)."""

from __future__ import annotations

from statestore.changes.tables import ChangeFeedRow, ChangeRow
from statestore.core.base import Base
from statestore.farm.tables import (
    JobBlockRow,
    JobRow,
    LastRenderedRow,
    SleepScheduleRow,
    TaskDependencyRow,
    TaskFailureRow,
    TaskRow,
    WorkerRow,
    WorkerTagMembershipRow,
    WorkerTagRow,
)
from statestore.flows.tables import AtomDetailRow, FlowDetailRow, LogBookRow

__all__ = [
    "AtomDetailRow",
    "Base",
    "ChangeFeedRow",
    "ChangeRow",
    "FlowDetailRow",
    "JobBlockRow",
    "JobRow",
    "LastRenderedRow",
    "LogBookRow",
    "SleepScheduleRow",
    "TaskDependencyRow",
    "TaskFailureRow",
    "TaskRow",
    "WorkerRow",
    "WorkerTagMembershipRow",
    "WorkerTagRow",
    "metadata",
]

metadata = Base.metadata
