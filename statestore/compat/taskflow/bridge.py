"""A private event loop on its own thread, callable from any thread.

TaskFlow's persistence API is synchronous and engines call it from worker
threads (the parallel engine from several at once). The store lives on one
event loop; every call hands a coroutine to that loop and waits for its
result, so the store's own serialisation (SQLite's writer lock, group
commit) applies to all threads alike.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

__all__ = ["LoopThread"]


class LoopThread:
    """One daemon thread running one event loop, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function()`` on the loop and return its result (or raise)."""
        loop = self._started()
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.call from its own loop would deadlock")

        async def run() -> T:
            return await function()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), loop)
        return future.result()

    def stop(self) -> None:
        """Stop the loop and join its thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
