"""The housekeeper's sleep-schedule step: workers whose schedule is due get
a status request for what the schedule says now (asleep inside the window,
awake outside it), and the schedule's next check is set to its next
boundary.

As in Flamenco's sleep scheduler: ``days_of_week`` holds two-letter day
names ("mo tu we th fr sa su", any case and separators; empty means every
day), an empty start is midnight and an empty end the end of the day. Times
are taken in UTC. Only ``awake`` and ``asleep`` workers are asked to change
(one in error, starting or offline is left to the manager), and the request
is lazy: a worker finishes its task before it goes to sleep.

Due schedules are claimed with ``FOR UPDATE SKIP LOCKED``, and the check
moves ``next_check`` on, so housekeepers in several processes never handle
one schedule twice.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from statestore.farm.lookups import LIVE
from statestore.farm.statuses import WorkerStatus
from statestore.farm.tables import SLEEP_SCHEDULES, WORKERS

__all__ = ["check_sleep_schedules", "next_boundary", "scheduled_status"]

_DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")

_DUE = (
    select(
        SLEEP_SCHEDULES.c.id,
        SLEEP_SCHEDULES.c.days_of_week,
        SLEEP_SCHEDULES.c.start_time,
        SLEEP_SCHEDULES.c.end_time,
        WORKERS.c.id.label("worker_id"),
        WORKERS.c.status,
        WORKERS.c.status_requested,
    )
    .join(WORKERS, WORKERS.c.id == SLEEP_SCHEDULES.c.worker_id)
    .where(
        SLEEP_SCHEDULES.c.is_active,
        or_(SLEEP_SCHEDULES.c.next_check.is_(None), SLEEP_SCHEDULES.c.next_check <= bindparam("now")),
        LIVE,
    )
    .order_by(SLEEP_SCHEDULES.c.id)
    .with_for_update(skip_locked=True, of=SLEEP_SCHEDULES)
)

_SET_NEXT = (
    update(SLEEP_SCHEDULES)
    .where(SLEEP_SCHEDULES.c.id == bindparam("b_id"))
    .values(next_check=bindparam("b_next"), updated_at=bindparam("b_now"))
)

_REQUEST = (
    update(WORKERS)
    .where(WORKERS.c.id == bindparam("b_id"))
    .values(status_requested=bindparam("b_status"), lazy_status_request=True, updated_at=bindparam("b_now"))
)


def _days(days_of_week: str) -> set[int]:
    named = {name[:2] for name in re.findall(r"[a-z]+", days_of_week.lower())}
    days = {index for index, day in enumerate(_DAYS) if day in named}
    return days or set(range(7))


def _time(value: str, default: time) -> time:
    if not value:
        return default
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def scheduled_status(days_of_week: str, start_time: str, end_time: str, now: datetime) -> WorkerStatus:
    """asleep when ``now`` (UTC) is on a scheduled day inside [start, end), else awake."""
    start = _time(start_time, time(0, 0))
    end = _time(end_time, time.max)
    inside = now.weekday() in _days(days_of_week) and start <= now.time() < end
    return WorkerStatus.ASLEEP if inside else WorkerStatus.AWAKE


def next_boundary(start_time: str, end_time: str, now: datetime) -> datetime:
    """The next start or end time after ``now``, on any day (UTC)."""
    times = [_time(value, time(0, 0)) for value in (start_time, end_time)]
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = [
        day + timedelta(days=offset, hours=moment.hour, minutes=moment.minute) for offset in (0, 1) for moment in times
    ]
    return min(candidate for candidate in candidates if candidate > now)


def check_sleep_schedules(connection: Connection, now: datetime) -> int:
    """Handle the schedules due at ``now``; how many were handled."""
    due = connection.execute(_DUE, {"now": now}).all()
    for row in due:
        wanted = scheduled_status(row.days_of_week, row.start_time, row.end_time, now)
        current = WorkerStatus(row.status)
        if current in (WorkerStatus.AWAKE, WorkerStatus.ASLEEP) and wanted not in (current, row.status_requested):
            connection.execute(_REQUEST, {"b_id": row.worker_id, "b_status": wanted.value, "b_now": now})
        next_check = next_boundary(row.start_time, row.end_time, now)
        connection.execute(_SET_NEXT, {"b_id": row.id, "b_next": next_check, "b_now": now})
    return len(due)
