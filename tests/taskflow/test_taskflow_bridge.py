"""The caller-runs event loop under TaskFlow's backend: the calling thread
runs the loop itself; concurrent callers share it, errors and cancellation
reach the right caller, and stopping leaves no thread behind."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from oslo_utils import uuidutils
from taskflow import exceptions as tf_exceptions
from taskflow.persistence import backends, models

from statestore.compat.taskflow.bridge import SharedLoop

T = TypeVar("T")
WAIT = 30.0
"""Seconds before a test declares a caller stranded (a hang is a failure, not a stuck suite)."""


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """A bug that strands a caller on the test's own thread ends the run
    with every thread's traceback instead of hanging it (pytest cancels
    this once a test has failed: the fixtures' own waits are bounded)."""
    faulthandler.dump_traceback_later(4 * WAIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def shared() -> Iterator[SharedLoop]:
    loop = SharedLoop("test-bridge")
    try:
        yield loop
    finally:
        stopping, outcome = _in_thread(loop.stop)  # a stop left waiting fails the test, not the run
        _joined(stopping)
        assert outcome == {"value": None}


def _in_thread(work: Callable[[], T]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``work()`` on a thread; its outcome lands in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # CancelledError included: the test looks at it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)  # one left stranded must not keep pytest alive
    thread.start()
    return thread, outcome


def _map(work: Callable[[Any], T], items: list[Any], threads: int) -> list[T]:
    """``[work(item) for item in items]`` on ``threads`` threads at once;
    a stranded caller fails the test instead of hanging it."""
    results: dict[int, T] = {}
    pending = iter(list(enumerate(items)))
    taking = threading.Lock()

    def worker() -> None:
        while True:
            with taking:
                item = next(pending, None)
            if item is None:
                return
            results[item[0]] = work(item[1])

    workers = [_in_thread(worker) for _ in range(threads)]
    for thread, outcome in workers:
        _joined(thread)
        assert "error" not in outcome, outcome
    return [results[index] for index in range(len(items))]


def _joined(thread: threading.Thread) -> None:
    thread.join(WAIT)
    assert not thread.is_alive(), "a caller was left waiting"


def _other_threads(before: set[threading.Thread]) -> list[str]:
    """Threads alive now that were not before (given a moment to end)."""
    deadline = time.monotonic() + 5
    while True:
        extra = [thread.name for thread in threading.enumerate() if thread not in before and thread.is_alive()]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.01)


async def _where() -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return threading.current_thread(), asyncio.get_running_loop()


def test_a_lone_caller_runs_the_loop_on_its_own_thread(shared: SharedLoop) -> None:
    before = set(threading.enumerate())
    (thread, loop), (again, same_loop) = shared.call(_where), shared.call(_where)
    assert thread is again is threading.current_thread()  # no hand-off to another thread
    assert loop is same_loop
    assert not loop.is_running()  # nobody runs it between calls
    assert _other_threads(before) == []


def test_many_threads_calling_at_once_share_one_loop(shared: SharedLoop) -> None:
    loops: set[asyncio.AbstractEventLoop] = set()
    drivers: set[threading.Thread] = set()

    async def work(index: int) -> int:
        for _ in range(random.randrange(4)):
            await asyncio.sleep(random.choice((0, 0, 0.001)))
        thread, loop = await _where()
        loops.add(loop)
        drivers.add(thread)
        return index * 2

    results = _map(lambda index: shared.call(work, index), list(range(800)), threads=16)
    assert results == [index * 2 for index in range(800)]
    assert len(loops) == 1
    assert len(drivers) > 1  # the role passed between callers


def test_a_waiting_callers_work_is_run_by_the_driver(shared: SharedLoop) -> None:
    # The first call can only finish once the second has run: the second's
    # thread sleeps while the first's thread, driving, runs both.
    opened = threading.Event()
    holder: dict[str, asyncio.Event] = {}

    async def wait_for_the_other() -> str:
        holder["event"] = asyncio.Event()
        opened.set()
        await holder["event"].wait()
        return "first"

    async def release_the_first() -> str:
        holder["event"].set()
        return "second"

    first, first_outcome = _in_thread(lambda: shared.call(wait_for_the_other))
    assert opened.wait(WAIT)
    assert shared.call(release_the_first) == "second"
    _joined(first)
    assert first_outcome == {"value": "first"}


def test_the_role_passes_to_a_waiting_caller_whose_call_is_unfinished(shared: SharedLoop) -> None:
    # The driver's own call ends first; the other call needs the loop run
    # after that, by its own thread.
    started = threading.Event()
    release = threading.Event()

    async def short() -> threading.Thread:
        started.set()
        await asyncio.to_thread(release.wait, WAIT)  # the loop waits in its selector until the other call joins
        return threading.current_thread()

    async def long() -> threading.Thread:
        await asyncio.sleep(0.3)  # well past the driver's leaving
        return threading.current_thread()

    driver, driver_outcome = _in_thread(lambda: shared.call(short))
    assert started.wait(WAIT)
    waiter, waiter_outcome = _in_thread(lambda: shared.call(long))
    time.sleep(0.05)  # the waiter has joined: its call is queued on the running loop
    release.set()
    _joined(driver)
    _joined(waiter)
    assert driver_outcome["value"] is driver
    assert waiter_outcome["value"] is waiter  # it ran the loop itself once the driver had left


def test_a_call_raising_reaches_its_caller_alone(shared: SharedLoop) -> None:
    class Boom(Exception):
        pass

    class Interrupt(BaseException):
        pass

    async def fail(index: int) -> int:
        await asyncio.sleep(0)
        if index % 3 == 0:
            raise Boom(index)
        if index == 4:
            raise Interrupt
        return index

    def outcome(index: int) -> object:
        try:
            return shared.call(fail, index)
        except (Boom, Interrupt) as error:
            return type(error)

    results = _map(outcome, list(range(60)), threads=8)
    expected = [Boom if index % 3 == 0 else Interrupt if index == 4 else index for index in range(60)]
    assert results == expected
    with pytest.raises(Boom):
        shared.call(fail, 0)
    assert shared.call(fail, 1) == 1  # the loop is still fine


def test_a_sleeping_caller_interrupted_does_not_take_the_role_with_it(shared: SharedLoop) -> None:
    # Ctrl-C reaches the main thread while it sleeps, its call queued behind
    # another thread's: had the driver later handed the role to it, nobody
    # would run the loop and every later call would wait forever.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")

    class Interrupted(Exception):
        pass

    def interrupt(_signum: int, _frame: object) -> None:
        raise Interrupted

    release = threading.Event()
    main = threading.get_ident()

    async def blocks_the_loop() -> str:
        release.wait(WAIT)  # the queued call cannot run meanwhile: its caller sleeps
        return "driver"

    async def outlives_the_driver() -> None:
        await asyncio.sleep(0.3)

    def poke() -> None:
        time.sleep(0.2)
        signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(0.1)
        release.set()

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        driver, outcome = _in_thread(lambda: shared.call(blocks_the_loop))
        time.sleep(0.1)
        poker, _ = _in_thread(poke)
        with pytest.raises(Interrupted):
            shared.call(outlives_the_driver)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    _joined(poker)
    _joined(driver)
    assert outcome == {"value": "driver"}
    where, _ = _in_thread(lambda: shared.call(_where))
    _joined(where)  # the role was given up, so this call could take it


def test_stop_cancels_calls_in_flight_and_a_later_call_opens_a_new_loop() -> None:
    shared = SharedLoop("test-bridge")
    before = set(threading.enumerate())
    first_loop = shared.call(_where)[1]

    async def blocked() -> None:
        await asyncio.Event().wait()

    callers = [_in_thread(lambda: shared.call(blocked)) for _ in range(3)]
    time.sleep(0.1)  # one of them drives, two wait
    gc.collect()  # their tasks await futures nothing else refers to: the calls must keep them
    shared.stop()
    for thread, outcome in callers:
        _joined(thread)
        assert isinstance(outcome.get("error"), asyncio.CancelledError)
    assert first_loop.is_closed()
    shared.stop()  # idempotent
    thread, loop = shared.call(_where)
    assert thread is threading.current_thread()
    assert loop is not first_loop
    shared.stop()
    assert loop.is_closed()
    assert _other_threads(before) == []


def test_a_caller_inside_another_event_loop_is_served(shared: SharedLoop) -> None:
    async def caller() -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
        return shared.call(_where)

    thread, loop = asyncio.run(caller())
    assert thread is not threading.current_thread()  # its own thread runs a loop: a helper ran ours
    assert shared.call(_where)[1] is loop


def test_a_call_from_the_loop_itself_is_refused(shared: SharedLoop) -> None:
    async def reenter() -> object:
        return shared.call(_where)

    with pytest.raises(RuntimeError, match="wait for itself"):
        shared.call(reenter)


@pytest.fixture
def backend_url(tmp_path: Path) -> str:
    return f"statestore+sqlite:///{tmp_path / 'bridge.db'}"


def test_backend_from_many_threads_then_closed_and_reopened(backend_url: str) -> None:
    before = set(threading.enumerate())
    backend = backends.fetch({"connection": backend_url})
    book = models.LogBook("book", uuid=uuidutils.generate_uuid())
    flow = models.FlowDetail("flow", uuid=uuidutils.generate_uuid())
    for index in range(32):
        flow.add(models.TaskDetail(f"task-{index}", uuid=uuidutils.generate_uuid()))
    book.add(flow)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
        conn.save_logbook(book)

    def work(atom: Any) -> list[str]:
        states = []
        for state in ("RUNNING", "SUCCESS"):
            atom.state = state
            with contextlib.closing(backend.get_connection()) as conn:
                states.append(str(conn.update_atom_details(atom).state))
                states.append(str(conn.get_atom_details(atom.uuid).state))
        return states

    results = _map(work, list(flow), threads=16)
    assert results == [["RUNNING", "RUNNING", "SUCCESS", "SUCCESS"]] * 32
    backend.close()
    assert _other_threads(before) == []
    # A closed backend opens its store again on the next call, as TaskFlow's own do.
    with contextlib.closing(backend.get_connection()) as conn:
        assert {atom.state for atom in conn.get_atoms_for_flow(flow.uuid)} == {"SUCCESS"}
        with pytest.raises(tf_exceptions.NotFound):  # a failing call leaves the backend usable
            conn.get_atom_details(uuidutils.generate_uuid())
        assert conn.get_logbook(book.uuid).name == "book"
    backend.close()
    backend.close()  # idempotent
    assert _other_threads(before) == []


def test_backend_closed_while_a_call_waits(backend_url: str) -> None:
    before = set(threading.enumerate())
    backend = backends.fetch({"connection": backend_url})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    entered = threading.Event()

    async def hang(_store: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    hung, outcome = _in_thread(lambda: backend.call(hang))
    assert entered.wait(WAIT)
    backend.close()
    _joined(hung)
    assert isinstance(outcome.get("error"), asyncio.CancelledError)
    assert _other_threads(before) == []
    with contextlib.closing(backend.get_connection()) as conn:  # reopened
        assert list(conn.get_logbooks()) == []
    backend.close()
    assert _other_threads(before) == []
