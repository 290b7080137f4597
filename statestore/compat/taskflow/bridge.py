"""A private event loop that the calling threads run themselves, one at a time.

TaskFlow's persistence API is synchronous and engines call it from worker
threads (the parallel engine from several at once). The store lives on one
event loop, so the store's own serialisation (SQLite's writer lock, group
commit) applies to all threads alike, and concurrent callers' writes can
share one commit.

Nobody runs that loop but the callers (*caller-runs*). A call that finds no
other thread running the loop becomes its *driver*: it creates its task on
the loop and runs the loop on its own thread until that task is done. No
other thread is woken, which is the point: a TaskFlow engine makes 4N+6
calls for N tasks, and when the loop had a thread of its own every call paid
two cross-thread wake-ups, waking the loop's thread and waking the caller
back (~140 µs and ~70 µs on a busy 2-vCPU VM). On SQLite the store runs a
write inline on the loop's thread (``core.sqlite_runner``), so a serial
engine's call now runs start to end on the engine's thread. Measured on a
2-vCPU VM, same run: a bare round trip 36–52 µs → 6–8 µs; a TaskFlow atom
update 230–270 µs → 150–170 µs.

A call arriving while another thread drives hands its coroutine to the
running loop (``call_soon_threadsafe``, which wakes the loop's selector) and
sleeps on a lock of its own; the driver runs it with its own call, so
concurrent callers still share the loop. A driver whose call is done passes
the role to the longest-waiting thread whose call is unfinished (releasing
its lock), or gives the role up if none waits: no thread drives for others
for longer than its own call takes, and no waiting call is left without a
driver.

Between calls the loop does not run: the store's timers and background work
(the look at the WAL's size after commits, a pool's idle timeout) wait for
the next call; :meth:`SharedLoop.stop` cancels whatever is left, after the
backend has closed the store.

A thread that already runs an event loop of its own cannot run a second
one: its call is run by a short-lived helper thread while it blocks, as any
synchronous call would block its loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

__all__ = ["SharedLoop"]


class _Call(Generic[T]):
    """One call's outcome and, while its thread sleeps, what wakes it."""

    __slots__ = ("error", "finished", "task", "value", "waiting", "wake")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        """Held while the caller waits: the loop keeps only weak references to
        its tasks, and a task awaiting a future only it refers to would be
        collected mid-call (its caller left waiting forever)."""
        self.finished = False
        self.error: BaseException | None = None
        self.value: T | None = None
        self.waiting = False
        """Its thread sleeps on ``wake`` (the mutex guards this)."""
        self.wake: threading.Lock | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.value)  # set, since no error was


class _Loop:
    """One event loop and who runs it; the mutex of its SharedLoop guards both fields."""

    __slots__ = ("driven", "loop", "shut", "waiting")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.driven = False
        """A thread runs the loop, or has been handed the role and is about to."""
        self.shut = False
        """Stopped: whoever gives up the role last closes the loop."""
        self.waiting: deque[_Call[Any]] = deque()
        """Unfinished calls whose threads sleep, longest-waiting first."""


class SharedLoop:
    """One event loop run by whichever calling thread needs it, created on
    first use.

    :meth:`call` may be used from any thread, except from a coroutine on
    this loop itself (it would wait for itself). :meth:`stop` cancels what
    is unfinished and closes the loop; a later :meth:`call` makes a new
    one, as a TaskFlow backend may be used again after ``close()``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._mutex = threading.Lock()
        self._current: _Loop | None = None

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await function(*args)`` on the loop; return its result or
        raise its exception in the calling thread."""
        running = asyncio._get_running_loop()
        if running is not None:
            return self._call_elsewhere(running, lambda: self.call(function, *args))
        call: _Call[T] = _Call()
        with self._mutex:
            shared = self._current
            if shared is None:
                shared = self._current = _Loop()
            drive = self._join(shared, call, function, args)
        return self._wait(shared, call, function, args, drive)

    def stop(self) -> None:
        """Cancel unfinished calls (their callers get CancelledError), run
        the loop's remaining work out and close it; idempotent."""
        running = asyncio._get_running_loop()
        if running is not None:
            self._call_elsewhere(running, self.stop)
            return
        call: _Call[None] = _Call()
        with self._mutex:  # with the joining: no call can join the loop after this one
            shared, self._current = self._current, None
            if shared is None:
                return
            drive = self._join(shared, call, self._shut_down, (shared,))
        self._wait(shared, call, self._shut_down, (shared,), drive)

    def _call_elsewhere(self, running: asyncio.AbstractEventLoop, work: Callable[[], T]) -> T:
        """For a thread that runs an event loop already (it cannot run a
        second one): ``work()`` on a new thread, waited for."""
        current = self._current
        if current is not None and running is current.loop:
            raise RuntimeError("SharedLoop called from a coroutine on its own loop would wait for itself")
        outcome: _Call[T] = _Call()

        def run() -> None:
            try:
                outcome.value = work()
            except BaseException as error:
                outcome.error = error

        thread = threading.Thread(target=run, name=f"{self._name}-helper", daemon=True)
        thread.start()
        thread.join()
        return outcome.outcome()

    def _join(
        self, shared: _Loop, call: _Call[T], function: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> bool:
        """Take the driver role (True), or queue ``call`` on the loop for
        whoever drives it; the caller holds the mutex, so the driver cannot
        give up the role unaware of this call."""
        if not shared.driven:
            shared.driven = True
            return True
        call.wake = threading.Lock()
        call.wake.acquire()  # released when the call is done, or the role handed over
        call.waiting = True
        shared.waiting.append(call)
        shared.loop.call_soon_threadsafe(self._start, shared, call, function, args)
        return False

    def _wait(
        self, shared: _Loop, call: _Call[T], function: Callable[..., Awaitable[T]], args: tuple[Any, ...], drive: bool
    ) -> T:
        if drive:
            call.task = shared.loop.create_task(self._run(shared, call, function, args))
            self._drive(shared, call)
        else:
            assert call.wake is not None
            try:
                call.wake.acquire()
            except BaseException:  # KeyboardInterrupt while asleep: leave, but never with the role
                self._abandon(shared, call)
                raise
            if not call.finished:  # handed the role: the call's task waits on the loop
                self._drive(shared, call)
        return call.outcome()

    def _abandon(self, shared: _Loop, call: _Call[Any]) -> None:
        """A sleeping caller leaves early: it must not be handed the role
        later (nobody would drive), nor keep one it has just been handed.
        Its task runs on; its end stops the loop once in vain, which the
        driver's loop shrugs off."""
        with self._mutex:
            if call.waiting:
                shared.waiting.remove(call)
                call.waiting = False
                return
            handed = not call.finished
        if handed:
            self._hand_over(shared)

    def _start(
        self, shared: _Loop, call: _Call[T], function: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> None:
        call.task = shared.loop.create_task(self._run(shared, call, function, args))

    async def _run(
        self, shared: _Loop, call: _Call[T], function: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> None:
        try:
            call.value = await function(*args)
        except BaseException as error:  # CancelledError too: the caller must not wait forever
            call.error = error
            if isinstance(error, GeneratorExit):  # the coroutine is being closed: it must not go on
                raise
        finally:
            with self._mutex:
                if call.waiting:
                    shared.waiting.remove(call)
                    call.waiting = False
                    call.finished = True
                    assert call.wake is not None
                    call.wake.release()
                else:  # the driver's own call (only the driver runs the loop): it may return now
                    call.finished = True
                    shared.loop.stop()

    def _drive(self, shared: _Loop, call: _Call[Any]) -> None:
        """Run the loop on this thread until ``call`` is done, then hand the
        role to the longest-waiting thread or give it up."""
        try:
            while not call.finished:  # a stop meant for a driver that left early ends a turn too soon
                shared.loop.run_forever()
        finally:
            self._hand_over(shared)

    def _hand_over(self, shared: _Loop) -> None:
        with self._mutex:
            if shared.waiting:
                successor = shared.waiting.popleft()
                successor.waiting = False
                assert successor.wake is not None
                successor.wake.release()
                return
            shared.driven = False
            close = shared.shut
        if close:  # none can join a stopped loop, so none will run it again
            shared.loop.close()

    async def _shut_down(self, shared: _Loop) -> None:
        """Cancel every other task and await them; end async generators and
        the default executor's threads."""
        me = asyncio.current_task()
        while pending := [task for task in asyncio.all_tasks() if task is not me]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()
        # A task cancelled before its first step never ran its ``finally``:
        # its caller still sleeps.
        with self._mutex:
            shared.shut = True
            while shared.waiting:
                call = shared.waiting.popleft()
                call.waiting = False
                call.finished = True
                call.error = asyncio.CancelledError()
                assert call.wake is not None
                call.wake.release()
