"""The farm's repository classes by the store attribute that holds each: the
tests that cover every farm API (properties, uuid forms) enumerate them."""

from __future__ import annotations

from statestore.farm.blocklist import JobBlocklist
from statestore.farm.jobs import Jobs
from statestore.farm.last_rendered import LastRendered
from statestore.farm.scheduler import Scheduler
from statestore.farm.sleep_schedules import SleepSchedules
from statestore.farm.task_failures import TaskFailures
from statestore.farm.tasks import Tasks
from statestore.farm.worker_tags import WorkerTags
from statestore.farm.workers import Workers

__all__ = ["REPOSITORIES"]

REPOSITORIES: dict[str, type] = {
    "jobs": Jobs,
    "tasks": Tasks,
    "workers": Workers,
    "worker_tags": WorkerTags,
    "blocklist": JobBlocklist,
    "task_failures": TaskFailures,
    "sleep_schedules": SleepSchedules,
    "last_rendered": LastRendered,
    "scheduler": Scheduler,
}
