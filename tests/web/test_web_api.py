"""``/api``: the pages' data as JSON in the CLI's shapes, errors as JSON,
the event stream, and what refuses a request: the token, the host name,
and the guards of the control actions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from statestore import Store
from statestore.farm import JobStatus, TaskStatus
from statestore.overview.flows import book_page, book_tree
from statestore.overview.jobs import job_detail, job_row
from statestore.overview.workers import worker_detail, worker_page
from tests.support.dashboard_seed import MARKUP, seed
from tests.web.conftest import Dashboard


async def test_api_serves_the_shapes_the_cli_prints(store: Store, serve: Callable[..., Dashboard]) -> None:
    seeded = await seed(store)
    dashboard = serve()
    async with dashboard.client() as client:
        jobs = (await client.get("/api/jobs")).json()
        assert jobs == [job_row(job) for job in await store.jobs.page()]
        detail = (await client.get(f"/api/jobs/{seeded.render.uuid}")).json()
        assert detail == await job_detail(store, seeded.render.uuid, task_limit=200)
        assert (await client.get("/api/jobs/counts")).json()["active"] == 1
        assert (await client.get("/api/workers")).json() == await worker_page(store)
        worker = (await client.get(f"/api/workers/{seeded.box.uuid}")).json()
        assert worker == await worker_detail(store, seeded.box.uuid)
        assert worker["sleep_schedule"]["days_of_week"] == "mo tu we th fr"
        assert [tag["name"] for tag in worker["tags"]] == ["gpu"]
        assert worker["current_task"]["job"] == str(seeded.render.uuid)
        assert (await client.get("/api/flows")).json() == await book_page(store)
        tree = (await client.get(f"/api/flows/{seeded.book.uuid}")).json()
        assert tree == await book_tree(store, seeded.book.uuid)
        retry = tree["flows"][0]["atoms"][2]
        assert [attempt["result"] for attempt in retry["history"]] == [1, 2]
        assert retry["history"][0]["failures"]["upload"]["message"] == "connection reset"


async def test_api_pages_by_status_and_keyset(store: Store, serve: Callable[..., Dashboard]) -> None:
    seeded = await seed(store)
    dashboard = serve()
    async with dashboard.client() as client:
        first = (await client.get("/api/jobs", params={"limit": 1})).json()
        second = (await client.get("/api/jobs", params={"limit": 1, "after": first[0]["uuid"]})).json()
        assert [first[0]["uuid"], second[0]["uuid"]] == [str(seeded.render.uuid), str(seeded.markup_job.uuid)]
        queued = (await client.get("/api/jobs", params={"status": "queued"})).json()
        assert [row["uuid"] for row in queued] == [str(seeded.markup_job.uuid)]
        idle = (
            await client.get("/api/workers", params={"status": "awake", "limit": 1, "after": str(seeded.box.uuid)})
        ).json()
        assert [row["name"] for row in idle] == ["render-box-02"]


async def test_api_errors_name_what_was_wrong(store: Store, serve: Callable[..., Dashboard]) -> None:
    await seed(store)
    dashboard = serve()
    async with dashboard.client() as client:
        for path, params, status, words in (
            ("/api/jobs/not-a-uuid", {}, 400, "not a uuid"),
            (f"/api/jobs/{uuid4()}", {}, 404, "not found"),
            ("/api/jobs", {"status": "sleeping"}, 400, "sleeping"),
            ("/api/jobs", {"limit": "0"}, 400, "limit"),
            ("/api/jobs", {"limit": "10" * 400}, 400, "limit"),
            ("/api/jobs", {"limit": "\u00b2"}, 400, "limit"),
            ("/api/jobs", {"limit": "9" * 5000}, 400, "limit"),
            ("/api/jobs", {"after": str(uuid4())}, 404, ""),
            (f"/api/workers/{uuid4()}", {}, 404, ""),
            ("/api/flows/no-such-book", {}, 404, "no-such-book"),
            ("/api/events", {"after": "yesterday"}, 400, "cursor"),
            ("/api/events", {"kind": "job.exploded"}, 400, "job.exploded"),
        ):
            answer = await client.get(path, params=params)
            assert answer.status_code == status, (path, params, answer.text)
            assert words in answer.json()["error"]
        # The HTML pages answer the same errors as pages.
        page = await client.get(f"/jobs/{uuid4()}")
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]
        # And the server goes on serving after each of them.
        assert (await client.get("/api/jobs")).status_code == 200


async def _changes(
    client: httpx.AsyncClient,
    path: str,
    received: asyncio.Queue[tuple[float, dict]],
    headers: dict[str, str] | None = None,
) -> None:
    """Put each change event of the stream at ``path`` in ``received``, with its arrival time."""
    async with client.stream("GET", path, headers=headers) as stream:
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "change":
                await received.put((time.monotonic(), json.loads(line.split(":", 1)[1])))


async def test_event_stream_carries_changes_filtered_and_resumable(
    store: Store, serve: Callable[..., Dashboard]
) -> None:
    seeded = await seed(store)
    dashboard = serve()
    received: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
    async with dashboard.client() as client:
        cursor = await store.changes.cursor()
        follower = asyncio.create_task(
            _changes(client, f"/api/events?job={seeded.render.uuid}&after={cursor}", received)
        )
        try:
            await store.state_machine.job_status_change(
                seeded.markup_job.uuid, JobStatus.PAUSE_REQUESTED, reason="other job"
            )
            changed = await store.state_machine.task_status_change(seeded.video, TaskStatus.CANCELED, reason="no video")
            _, change = await asyncio.wait_for(received.get(), 10)
            assert (change["kind"], change["task"], change["new"]) == ("task.status", str(seeded.video), "canceled")
            assert change["job"] == str(seeded.render.uuid)
            assert changed
            assert change["reason"] == "no video"
        finally:
            follower.cancel()
        # Resuming with Last-Event-ID (as a browser reconnects) starts right after that change.
        headers = {"Last-Event-ID": change["cursor"]}
        again = asyncio.create_task(_changes(client, f"/api/events?job={seeded.render.uuid}", received, headers))
        try:
            await store.state_machine.task_status_change(seeded.video, TaskStatus.QUEUED, reason="video after all")
            _, next_change = await asyncio.wait_for(received.get(), 10)
            assert (next_change["task"], next_change["new"]) == (str(seeded.video), "queued")
            assert next_change["cursor"] > change["cursor"]
        finally:
            again.cancel()


async def test_pages_escape_what_users_stored_and_show_no_secret(store: Store, serve: Callable[..., Dashboard]) -> None:
    seeded = await seed(store)
    dashboard = serve()
    async with dashboard.client() as client:
        pages = [
            "/jobs",
            f"/jobs/{seeded.markup_job.uuid}",
            f"/jobs/{seeded.render.uuid}",
            "/workers",
            f"/workers/{seeded.box.uuid}",
            "/flows",
            f"/flows/{seeded.book.uuid}",
        ]
        for path in pages:
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text)
            assert "<script>alert(1)" not in page.text, path
            assert "open sesame" not in page.text, path  # the workers' secret (tests.support.farm_fixtures)
            assert "scrypt" not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await client.get(f"/jobs/{seeded.markup_job.uuid}")).text
        for path in ("/api/workers", f"/api/workers/{seeded.box.uuid}"):
            text = (await client.get(path)).text
            assert "open sesame" not in text
            assert "secret" not in text
    assert MARKUP in (await store.jobs.fetch(seeded.markup_job.uuid)).name


async def test_token_is_required_on_every_request(store: Store, serve: Callable[..., Dashboard]) -> None:
    await seed(store)
    dashboard = serve(token="s3cret-token")
    async with dashboard.client() as client:
        for path in ("/jobs", "/api/jobs", "/api/events", "/static/dashboard.js", "/nowhere"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/jobs", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/jobs", params={"token": "wrong"})).status_code == 401
        assert (await client.get("/api/jobs", headers={"Authorization": "Bearer s3cret-token"})).status_code == 200
        # Shown once in the address, the token becomes a cookie and leaves the address.
        opened = await client.get("/jobs", params={"token": "s3cret-token", "status": "active"})
        assert opened.status_code == 303
        assert opened.headers["location"] == "/jobs?status=active"
        port = dashboard.url.rsplit(":", 1)[1]
        assert opened.headers["set-cookie"].startswith(f"statestore_token_{port}=s3cret-token;")
        assert "HttpOnly" in opened.headers["set-cookie"]
        assert "SameSite=Strict" in opened.headers["set-cookie"]
        assert (await client.get("/jobs")).status_code == 200  # the cookie now
        # Another app's malformed cookie on this host does not hide it.
        cookie = f"other=a b; statestore_token_{port}=s3cret-token"
        async with dashboard.client() as fresh:
            assert (await fresh.get("/api/jobs", headers={"Cookie": cookie})).status_code == 200
            # The address it sends back is always a path of this dashboard.
            raw = httpx.URL(dashboard.url).copy_with(raw_path=b"//elsewhere.example/x%3Fy?token=s3cret-token")
            away = await fresh.get(raw)
            assert away.status_code == 303
            assert away.headers["location"] == "/elsewhere.example/x%3Fy"


async def test_answers_carry_headers_that_keep_other_sites_out(store: Store, serve: Callable[..., Dashboard]) -> None:
    seeded = await seed(store)
    dashboard = serve(allow_control=True)
    async with dashboard.client() as client:
        for path in ("/jobs", f"/jobs/{seeded.render.uuid}", "/api/jobs", "/static/dashboard.js"):
            headers = (await client.get(path)).headers
            assert headers["x-frame-options"] == "DENY"  # no framing: no tricked clicks on control buttons
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"


async def test_host_names_other_than_the_allowed_are_refused(store: Store, serve: Callable[..., Dashboard]) -> None:
    dashboard = serve(allowed_hosts=["127.0.0.1", "localhost"])
    async with dashboard.client() as client:
        assert (await client.get("/api/jobs")).status_code == 200
        assert (await client.get("/api/jobs", headers={"Host": "attacker.example"})).status_code == 400


async def test_control_is_refused_unless_allowed_and_same_origin_with_the_csrf_token(
    store: Store, serve: Callable[..., Dashboard]
) -> None:
    seeded = await seed(store)
    job = seeded.markup_job.uuid
    off = serve()
    async with off.client() as client:
        page = (await client.get(f"/jobs/{job}")).text
        assert "cancel job" not in page
        assert 'name="csrf-token"' not in page
        refused = await client.post(f"/api/jobs/{job}/cancel")
        assert refused.status_code == 403
        assert "--allow-control" in refused.json()["error"]
    on = serve(allow_control=True)
    async with on.client() as client:
        page = (await client.get(f"/jobs/{job}")).text
        token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        for headers in (
            {},
            {"X-CSRF-Token": "guessed"},
            {"X-CSRF-Token": token, "Origin": "http://attacker.example"},
            {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
        ):
            refused = await client.post(f"/api/jobs/{job}/cancel", headers=headers)
            assert refused.status_code == 403, headers
        # A cross-site form (what a page elsewhere can make a browser send) without the token.
        forged = await client.post(f"/api/jobs/{job}/cancel", data={"next": "/jobs"})
        assert forged.status_code == 403
        assert (await store.jobs.fetch(job)).status is JobStatus.QUEUED  # nothing happened
        changes = await client.post(f"/api/jobs/{job}/cancel", headers={"X-CSRF-Token": token, "Origin": on.url})
        assert changes.status_code == 200, changes.text
        assert [(c["task"], c["new_status"]) for c in changes.json()][-1] == (None, "canceled")
        assert (await store.jobs.fetch(job)).status is JobStatus.CANCELED
        history = await store.status_history.of_job(job)
        assert history[-1].who == "dashboard:127.0.0.1"
        assert "dashboard" in history[-1].reason
        # A disallowed transition is the state machine's Conflict: 409, and the server goes on.
        again = await client.post(f"/api/jobs/{job}/pause", headers={"X-CSRF-Token": token})
        assert again.status_code == 409, again.text
        assert "canceled" in again.json()["error"]
        # A form of the page: redirected back to a page of the dashboard, never elsewhere.
        form = {"csrf_token": token, "next": "//attacker.example/", "reason": "frames not needed"}
        answered = await client.post(f"/api/jobs/{seeded.render.uuid}/pause", data=form)
        assert answered.status_code == 303
        assert answered.headers["location"] == "/jobs"
        reasons = [entry.reason for entry in await store.status_history.of_job(seeded.render.uuid)]
        assert "frames not needed" in reasons
        requeued = await client.post(f"/api/tasks/{seeded.frames[2]}/requeue", headers={"X-CSRF-Token": token})
        assert requeued.status_code == 200, requeued.text


def _kill_other_connections(connection: Any) -> None:
    """End every other connection to this database, as a server restart or a
    network fault would (the dashboard's pool and its LISTEN connection too)."""
    connection.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )


async def test_streams_outlive_abandoned_clients_and_dropped_connections(
    store: Store, serve: Callable[..., Dashboard], backend: str
) -> None:
    seeded = await seed(store)
    dashboard = serve()
    received: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
    async with dashboard.client() as client:
        follower = asyncio.create_task(_changes(client, f"/api/events?job={seeded.render.uuid}", received))
        try:
            # Browsers that leave mid-stream: their followers must go, not pile up on the pool.
            for _ in range(25):
                async with client.stream("GET", "/api/events") as abandoned:
                    assert abandoned.status_code == 200
            if backend == "postgresql":
                await store.write(_kill_other_connections)
            await asyncio.sleep(0.3)
            await store.state_machine.task_status_change(seeded.video, TaskStatus.CANCELED, reason="after the faults")
            _, change = await asyncio.wait_for(received.get(), 15)
            assert (change["task"], change["new"]) == (str(seeded.video), "canceled")
            assert (await client.get("/api/jobs")).status_code == 200
        finally:
            follower.cancel()


async def test_concurrent_control_actions_on_one_job_all_land_or_are_refused(
    store: Store, serve: Callable[..., Dashboard]
) -> None:
    seeded = await seed(store)
    job = seeded.render.uuid
    dashboard = serve(allow_control=True)
    async with dashboard.client() as client:
        page = (await client.get(f"/jobs/{job}")).text
        headers = {"X-CSRF-Token": page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]}
        calls = [f"/api/jobs/{job}/{action}" for action in ("pause", "cancel", "requeue") * 3]
        calls += [f"/api/tasks/{task}/requeue" for task in seeded.frames[:4]]
        answers = await asyncio.gather(*(client.post(path, headers=headers) for path in calls))
        # Each call ran whole in the state machine or was refused as a disallowed transition.
        assert {answer.status_code for answer in answers} <= {200, 409}, [a.text for a in answers]
        assert any(answer.status_code == 200 for answer in answers)
        assert (await store.check()).ok
        # The job's status is the last one its history recorded.
        history = [entry for entry in await store.status_history.of_job(job) if entry.task_uuid is None]
        assert (await store.jobs.fetch(job)).status.value == history[-1].new_status
        assert (await client.get(f"/api/jobs/{job}")).json()["status"] == history[-1].new_status


_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


def test_fuzzed_parameters_get_a_named_refusal_never_a_crash(serve: Callable[..., Dashboard]) -> None:
    dashboard = serve()
    with httpx.Client(base_url=dashboard.url, timeout=10) as client:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(
            path=st.sampled_from(["/api/jobs", "/api/workers", "/api/flows", "/jobs", "/workers", "/flows"]),
            params=st.dictionaries(st.sampled_from(["status", "limit", "after"]), _TEXT, max_size=3),
            # One path segment: "." and ".." would be resolved away by the client itself.
            item=_TEXT.filter(lambda text: text not in ("", ".", "..")),
            detail=st.sampled_from(
                ["/api/jobs/{}", "/api/jobs/{}/graph", "/api/workers/{}", "/api/flows/{}", "/jobs/{}", "/flows/{}"]
            ),
        )
        def check(path: str, params: dict[str, str], item: str, detail: str) -> None:
            listed = client.get(path, params=params)
            assert listed.status_code in (200, 400, 404), (path, params, listed.text)
            one = client.get(detail.format(quote(item, safe="")))
            # An encoded "/" decodes into the path: one ending in a slash is redirected without it.
            answers = (200, 400, 404, 405, 307) if "/" in item else (200, 400, 404, 405)
            assert one.status_code in answers, (detail, item, one.text)
            if path.startswith("/api/") and listed.status_code != 200:
                assert listed.json()["error"]

        check()
        assert client.get("/api/jobs").status_code == 200


async def test_listing_pages_link_to_the_next_keeping_the_filter(store: Store, serve: Callable[..., Dashboard]) -> None:
    seeded = await seed(store)
    dashboard = serve()
    async with dashboard.client() as client:
        first = (await client.get("/jobs", params={"limit": "1"})).text
        assert seeded.render.name in first
        link = first.split('class="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        assert link == f"/jobs?limit=1&after={seeded.render.uuid}"
        second = (await client.get(link)).text
        assert "&lt;script&gt;" in second
        assert seeded.render.name not in second
        assert 'class="next"' not in second  # the last page
        filtered = (await client.get("/workers", params={"status": "awake", "limit": "1"})).text
        link = filtered.split('class="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        assert link == f"/workers?status=awake&limit=1&after={seeded.box.uuid}"
        assert "render-box-02" in (await client.get(link)).text
        assert 'value="awake" checked' in filtered
