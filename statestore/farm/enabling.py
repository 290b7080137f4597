"""Farm writes that can make work claimable, and the wake-ups they send.

Such a write (a job stored or queued, a task requeued, a dependency
completed, a blocklist cleared, a worker woken, …) tells claim waiters
twice (see :mod:`statestore.core.wakeups`): in its transaction,
:func:`enable_work` announces it to other processes (PostgreSQL's NOTIFY,
delivered at commit and dropped on rollback); after the commit, the
repository calls ``runner.wakeups.work()`` for this process's waiters.

Where only the unit knows whether it enabled anything (it depends on what
it read), the repository runs it with :func:`write_enabling`, which hands it
a :class:`WorkSignal` and reads it after the commit. Where the call's input
or result tells, the repository decides from those and the unit announces
by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection

from statestore.core.runner import Runner
from statestore.core.wakeups import announce_work

__all__ = ["WorkSignal", "enable_work", "notify_splits", "write_enabling"]

T = TypeVar("T")


class WorkSignal:
    """Whether a unit's transaction announced work: set by :func:`enable_work`,
    read by :func:`write_enabling` once the transaction has committed."""

    __slots__ = ("announced",)

    def __init__(self) -> None:
        self.announced = False


def enable_work(connection: Connection, signal: WorkSignal | None) -> None:
    """This transaction can make work claimable: announce it (once per
    signal: a NOTIFY repeated in one transaction is delivered once anyway,
    but costs a round trip)."""
    if signal is not None and signal.announced:
        return
    announce_work(connection)
    if signal is not None:
        signal.announced = True


async def write_enabling(
    runner: Runner, unit: Callable[..., T], *, offload: bool = False, single_statement: bool = False
) -> T:
    """``runner.write`` of ``unit(connection, work=signal)``; after the
    commit, wake this process's claim waiters if the unit announced work."""
    signal = WorkSignal()

    def attempt(connection: Connection) -> T:
        # A retried attempt starts over: a rolled-back attempt's announcement went with it.
        signal.announced = False
        result: T = unit(connection, work=signal)
        return result

    result = await runner.write(attempt, offload=offload, single_statement=single_statement)
    if signal.announced:
        runner.wakeups.work()
    return result


def notify_splits(runner: Runner) -> bool:
    """Whether announcing adds a statement (PostgreSQL's NOTIFY): a unit
    that may announce is then not a single statement."""
    return runner.facts.wakeups == "notify"
