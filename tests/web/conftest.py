"""Fixtures of the dashboard's tests: a real server (uvicorn, in a thread,
on a free port of 127.0.0.1) on the test's database — a SQLite file,
PostgreSQL or MariaDB — and a real browser (Debian's Chromium driven by Playwright).

The test seeds and changes its database through ``store``, a store of its
own: the server sees those changes as it would another process's."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

from statestore.web import create_app

WEB_BACKENDS = ("sqlite-file", "postgresql", "mysql")
ARTIFACTS = Path(os.environ.get("STATESTORE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "dashboard"
"""Where the browser tests save a screenshot of each page (printed at the end of the run)."""


def chromium() -> str:
    """Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it),
    or ``$STATESTORE_TEST_CHROMIUM``. Missing, the browser tests fail: a skip
    would hide that the dashboard went untested."""
    found = os.environ.get("STATESTORE_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("the dashboard's browser tests need Chromium: apt-get install chromium")
    return found


@pytest.fixture(params=WEB_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The dashboard is tested on a SQLite file, PostgreSQL and MariaDB (an
    in-memory SQLite store cannot be shared with the server's)."""
    return str(request.param)


@dataclass
class Dashboard:
    """A running dashboard."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, **options)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_dashboard(store_url: str, **options: Any) -> Dashboard:
    """``create_app(store_url, **options)`` served on a free port of 127.0.0.1."""
    config = uvicorn.Config(
        create_app(store_url, **options),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Dashboard(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture
def serve(store_url: str) -> Iterator[Callable[..., Dashboard]]:
    """Start dashboards on the test's database (``serve(allow_control=True)``);
    each stops when the test ends."""
    running: list[Dashboard] = []

    def started(**options: Any) -> Dashboard:
        dashboard = start_dashboard(store_url, **options)
        running.append(dashboard)
        return dashboard

    yield started
    for dashboard in running:
        dashboard.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        await launched.close()
