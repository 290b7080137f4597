"""Core table handles of the farm model, for the job and task units.

The declarative classes in :mod:`statestore.farm.tables` define the schema;
units of work build Core statements on these ``Table`` objects.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from statestore.farm.tables import (
    JobRow,
    TaskDependencyRow,
    TaskFailureRow,
    TaskRow,
    WorkerRow,
    WorkerTagRow,
)

__all__ = ["DEPENDENCIES", "FAILURES", "JOBS", "TAGS", "TASKS", "WORKERS"]

JOBS = cast(Table, JobRow.__table__)
TASKS = cast(Table, TaskRow.__table__)
DEPENDENCIES = cast(Table, TaskDependencyRow.__table__)
FAILURES = cast(Table, TaskFailureRow.__table__)
WORKERS = cast(Table, WorkerRow.__table__)
TAGS = cast(Table, WorkerTagRow.__table__)
