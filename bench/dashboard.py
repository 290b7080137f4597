"""Dashboard benchmark: the job page of a 10,000-task job, and how soon a
change reaches an open event stream.

1. **Job page.** A job of ``--tasks`` (10,000) tasks — render chunks and a
   video task that depends on all of them, as Flamenco authors a render —
   is stored; ``statestore serve`` runs as its own process. Each round
   times ``GET /jobs/{job}`` (the whole HTML: the job's detail with 200
   listed tasks, the graph's summary of every task) and, interleaved, the
   same job and all its tasks loaded through the library API in this
   process (``store.jobs.fetch`` + ``store.tasks.of_job``). Figure: the
   page's median time over the library's. Goal ≤ 3×.
2. **Change to stream.** An HTTP client holds ``/api/events?job=…`` open
   while this process commits task status changes: ``--changes`` of them
   one every 20–60 ms (a busy farm), then ``--idle-changes`` one every
   1–1.5 s (a quiet one: on a server backend the feed's re-reads back off
   to half a second meanwhile). For each, the time from the commit's
   return to the event's arrival over HTTP: p50 and p99. Beside it, in the
   same run, a follower of ``store.changes`` on a second store in this
   process (no HTTP): what the feed alone costs.

Usage: python bench/dashboard.py [--postgres URL] [--tasks N] [--rounds N] [--changes N] [--idle-changes N]
                                 [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import httpx
from harness import Figure, percentiles, report, throwaway_postgres

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _big_job(store: Store, tasks: int) -> tuple[UUID, list[UUID]]:
    chunks = [
        AuthoredTask(f"render-{i}", "blender", commands=[Command("render", {"frames": f"{i}"}, total_step_count=10)])
        for i in range(tasks - 1)
    ]
    video = AuthoredTask("video", "ffmpeg", dependencies=[chunk.uuid for chunk in chunks])
    job = await store.jobs.store_authored(AuthoredJob("big", "bench", status=JobStatus.QUEUED, tasks=[*chunks, video]))
    return job.uuid, [chunk.uuid for chunk in chunks]


@contextlib.asynccontextmanager
async def _served(url: str) -> AsyncIterator[str]:
    """``statestore serve`` on ``url`` as its own process; yields its address."""
    port = _free_port()
    script = Path(sys.executable).parent / "statestore"
    process = await asyncio.create_subprocess_exec(
        str(script), "serve", "--url", url, "--port", str(port), stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(200):
                with contextlib.suppress(httpx.ConnectError):
                    if (await client.get("/api/jobs/counts")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield base
    finally:
        process.terminate()
        await process.wait()


async def job_page(name: str, url: str, tasks: int, rounds: int) -> Figure:
    async with open_store(url) as store:
        job, _ = await _big_job(store, tasks)
        async with _served(url) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
            page_times: list[float] = []
            api_times: list[float] = []
            for _ in range(rounds):
                started = time.perf_counter()
                answer = await client.get(f"/jobs/{job}")
                page_times.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
                assert 'class="group"' in answer.text  # the summarised graph
                started = time.perf_counter()
                await store.jobs.fetch(job)
                loaded = await store.tasks.of_job(job)
                api_times.append(time.perf_counter() - started)
                assert len(loaded) == tasks
    return Figure(
        f"{name}: job page of {tasks:,} tasks vs library load (ms)",
        statistics.median(page_times) * 1000,
        statistics.median(api_times) * 1000,
        "ms",
        3.0,
        higher_is_better=False,
    )


async def _stream_arrivals(base: str, job: UUID, arrivals: dict[str, float], ready: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(base_url=base, timeout=None) as client,
        client.stream("GET", f"/api/events?job={job}") as stream,
    ):
        ready.set()
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                change = json.loads(line[5:])
                arrivals.setdefault(change["cursor"], time.perf_counter())


async def _feed_arrivals(url: str, job: UUID, arrivals: dict[str, float], ready: asyncio.Event) -> None:
    async with open_store(url) as other:
        after = await other.changes.cursor()
        ready.set()
        async with contextlib.aclosing(other.changes(after, job=job, follow=True)) as changes:
            async for change in changes:
                arrivals.setdefault(change.cursor, time.perf_counter())


async def change_latency(name: str, url: str, changes: int, idle_changes: int) -> None:
    async with open_store(url) as store:
        job, frames = await _big_job(store, 50)
        async with _served(url) as base:
            over_http: dict[str, float] = {}
            direct: dict[str, float] = {}
            ready = [asyncio.Event(), asyncio.Event()]
            listeners = [
                asyncio.create_task(_stream_arrivals(base, job, over_http, ready[0])),
                asyncio.create_task(_feed_arrivals(url, job, direct, ready[1])),
            ]
            await asyncio.gather(*(event.wait() for event in ready))
            await asyncio.sleep(0.5)
            rng = random.Random(7)
            task = frames[0]
            phases: dict[str, dict[str, float]] = {"busy": {}, "idle": {}}
            for phase, count, gaps in (("busy", changes, (0.02, 0.06)), ("idle", idle_changes, (1.0, 1.5))):
                for n in range(count):
                    status = TaskStatus.CANCELED if n % 2 == 0 else TaskStatus.QUEUED
                    await store.state_machine.task_status_change(task, status, reason="bench")
                    at = time.perf_counter()
                    # The change's cursor: the newest of the feed, read after the commit returned.
                    phases[phase][await store.changes.cursor()] = at
                    await asyncio.sleep(rng.uniform(*gaps))
                task = frames[1]  # the idle phase starts from a queued task again
            await asyncio.sleep(2)
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
    for phase, committed in phases.items():
        for label, arrivals in (("over HTTP (SSE)", over_http), ("feed follower, no HTTP", direct)):
            delays = [max(0.0, arrivals[c] - at) * 1000 for c, at in committed.items() if c in arrivals]
            if not delays:
                continue
            p50, p99 = percentiles(delays)
            missing = len(committed) - len(delays)
            print(
                f"{name}, {phase} ({len(delays)} changes, {missing} missed): commit → {label}: "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="PostgreSQL admin URL (a throwaway database is made beside it)")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--idle-changes", type=int, default=20)
    parser.add_argument("--skip-sqlite", action="store_true")
    options = parser.parse_args()
    figures: list[Figure] = []
    if not options.skip_sqlite:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/dashboard.db"
            async with open_store(url, create=True) as store:
                await store.upgrade()
            figures.append(await job_page("SQLite file", url, options.tasks, options.rounds))
            await change_latency("SQLite file", url, options.changes, options.idle_changes)
    if options.postgres:
        async with throwaway_postgres(options.postgres) as url:
            async with open_store(url, create=True) as store:
                await store.upgrade()
            figures.append(await job_page("PostgreSQL", url, options.tasks, options.rounds))
            await change_latency("PostgreSQL", url, options.changes, options.idle_changes)
    report(figures, "ratio = the page's time over loading the job and its tasks through the library; goal ≤ 3x")


if __name__ == "__main__":
    asyncio.run(main())
