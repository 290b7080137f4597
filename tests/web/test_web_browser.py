"""The dashboard in a real browser (headless Chromium): what a person sees
on each page, the page following the store live without a reload, markup
in stored names shown as text, and the control buttons. Each page's
screenshot is saved under ``test-artifacts/dashboard`` (the run prints
where)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import Browser, Page, Route, expect

from statestore import Store
from statestore.farm import AuthoredJob, AuthoredTask, JobStatus, TaskStatus
from statestore.overview.graph import DRAWN_TASKS
from tests.support.dashboard_seed import FRAMES, MARKUP, seed
from tests.web.conftest import SCREENSHOTS, Dashboard

LIVE = 1000
"""Milliseconds within which an open page shows a change committed to the store."""


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: dialogs.append(dialog.message))
    yield opened
    await context.close()
    assert dialogs == [], "a stored string ran as a script"


async def _open(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-live", "on")


async def _shot(page: Page, name: str, backend: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}-{backend}.png", full_page=True)


async def test_each_page_shows_what_the_store_holds(
    store: Store, serve: Callable[..., Dashboard], page: Page, backend: str
) -> None:
    seeded = await seed(store)
    dashboard = serve()

    await _open(page, f"{dashboard.url}/jobs")
    rows = page.locator("table.jobs tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0).locator(".name")).to_have_text(seeded.render.name)
    await expect(rows.nth(0).locator(".status")).to_have_text("active")
    await expect(rows.nth(1).locator(".name")).to_have_text(MARKUP)  # as text, not markup
    await expect(page.locator(".counts")).to_contain_text("1 active")
    await _shot(page, "jobs", backend)
    await page.locator(".filter input[value=queued]").check()
    await page.locator(".filter button").click()
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0).locator(".name")).to_have_text(MARKUP)

    await _open(page, f"{dashboard.url}/jobs/{seeded.render.uuid}")
    await expect(page.locator("h1 .name")).to_have_text(seeded.render.name)
    await expect(page.locator("svg .node")).to_have_count(FRAMES + 1)
    await expect(page.locator("svg .edges path")).to_have_count(FRAMES)
    await expect(page.locator(f'svg .node[data-task="{seeded.video}"]')).to_have_attribute("data-status", "queued")
    await expect(page.locator("svg .node[data-status=completed]")).to_have_count(2)
    await expect(page.locator("table.tasks tbody tr")).to_have_count(FRAMES + 1)
    await expect(page.locator("table.tasks")).to_contain_text("render-box-01")
    await expect(page.locator("dl.about")).to_contain_text("24/81 steps")
    await expect(page.locator("table.history")).to_contain_text("blender crashed")
    await expect(page.locator(".controls")).to_have_count(0)  # control is off
    await _shot(page, "job", backend)

    await _open(page, f"{dashboard.url}/jobs/{seeded.markup_job.uuid}")
    await expect(page.locator("h1 .name")).to_have_text(MARKUP)
    await expect(page.locator("svg .node title")).to_contain_text(MARKUP)

    await _open(page, f"{dashboard.url}/workers")
    workers = page.locator("table.workers tbody tr")
    await expect(workers).to_have_count(2)
    box = workers.nth(0)
    await expect(box.locator(".name")).to_have_text("render-box-01")
    await expect(box).to_contain_text("gpu")
    await expect(box).to_contain_text("mo tu we th fr 09:00–18:00")
    await expect(box).to_contain_text(f"{seeded.render.name} / render-31-40")
    await expect(workers.nth(1).locator(".status")).to_have_text("awake")
    await _shot(page, "workers", backend)

    await _open(page, f"{dashboard.url}/flows")
    await expect(page.locator("table.books tbody tr .name")).to_have_text("nightly-2026-12-03")
    await page.locator("table.books tbody tr .name").click()
    await expect(page.locator("body")).to_have_attribute("data-live", "on")
    atoms = page.locator("table.atoms tbody tr[data-atom]")
    await expect(atoms).to_have_count(3)
    await expect(atoms.nth(0)).to_contain_text('"files": 12')
    await expect(atoms.nth(1).locator(".status")).to_have_text("FAILURE")
    await expect(atoms.nth(1)).to_contain_text("RuntimeError: codec not found")
    await expect(page.locator(".attempts li")).to_have_count(2)
    await expect(page.locator(".attempts li").nth(0)).to_contain_text("connection reset")
    await _shot(page, "flow", backend)


async def test_an_open_page_shows_a_change_within_a_second_without_reloading(
    store: Store, serve: Callable[..., Dashboard], page: Page, backend: str
) -> None:
    seeded = await seed(store)
    dashboard = serve()
    await _open(page, f"{dashboard.url}/jobs/{seeded.render.uuid}")
    await page.evaluate("window.keptAcrossUpdates = true")
    node = page.locator(f'svg .node[data-task="{seeded.frames[7]}"]')
    row = page.locator(f'table.tasks tr[data-task="{seeded.frames[7]}"] .status')
    await expect(node).to_have_attribute("data-status", "queued")

    await store.state_machine.task_status_change(seeded.frames[7], TaskStatus.CANCELED, reason="not needed")
    committed = time.monotonic()
    await expect(node).to_have_attribute("data-status", "canceled", timeout=LIVE)
    await expect(row).to_have_text("canceled", timeout=LIVE)
    assert time.monotonic() - committed < LIVE / 1000
    # What follows from it — the counts — comes with the page's content fetched again in place.
    await expect(page.locator("dl.about")).to_contain_text("1 canceled", timeout=LIVE)
    assert await page.evaluate("window.keptAcrossUpdates") is True  # never reloaded

    # The jobs page: a new job appears, a job's status follows.
    await _open(page, f"{dashboard.url}/jobs")
    await page.evaluate("window.keptAcrossUpdates = true")
    await store.jobs.store_authored(
        AuthoredJob("late-job", "t", status=JobStatus.QUEUED, tasks=[AuthoredTask("x", "blender")])
    )
    await expect(page.locator("table.jobs tbody tr .name", has_text="late-job")).to_have_count(1, timeout=LIVE)
    await store.state_machine.job_status_change(seeded.markup_job.uuid, JobStatus.CANCEL_REQUESTED, reason="no")
    status = page.locator(f'table.jobs tr[data-job="{seeded.markup_job.uuid}"] .status')
    await expect(status).to_have_text("canceled", timeout=LIVE)
    assert await page.evaluate("window.keptAcrossUpdates") is True

    # The workers page: a worker's status.
    await _open(page, f"{dashboard.url}/workers")
    await store.workers.save_status(seeded.idle.uuid, "offline")
    await expect(page.locator(f'tr[data-worker="{seeded.idle.uuid}"] .status')).to_have_text("offline", timeout=LIVE)


async def test_control_buttons_steer_through_the_state_machine(
    store: Store, serve: Callable[..., Dashboard], page: Page, backend: str
) -> None:
    seeded = await seed(store)
    dashboard = serve(allow_control=True)
    await _open(page, f"{dashboard.url}/jobs/{seeded.render.uuid}")
    await page.locator("button[data-action=pause]").click()
    await expect(page.locator("#notice")).to_contain_text("status changes")
    # An active task keeps running: the job waits in pause-requested, and the page shows it live.
    await expect(page.locator("h1 .status")).to_have_text("pause-requested", timeout=LIVE)
    history = await store.status_history.of_job(seeded.render.uuid)
    assert history[-1].who == "dashboard:127.0.0.1"
    await expect(page.locator(f'svg .node[data-task="{seeded.frames[4]}"]')).to_have_attribute(
        "data-status", "paused", timeout=LIVE
    )
    await _shot(page, "job-control", backend)

    # The same button sending a wrong CSRF token is refused. The request itself is rewritten: a
    # tampered form could be swapped for a fresh one by the page's next live update.
    async def forge(route: Route) -> None:
        await route.continue_(headers={**route.request.headers, "x-csrf-token": "forged"})

    await page.route("**/api/jobs/*/cancel", forge)
    await page.locator("button[data-action=cancel]").click()
    await expect(page.locator("#notice")).to_contain_text("CSRF")
    assert (await store.jobs.fetch(seeded.render.uuid)).status is JobStatus.PAUSE_REQUESTED


async def test_a_large_job_shows_a_summarised_graph(
    store: Store, serve: Callable[..., Dashboard], page: Page, backend: str
) -> None:
    chain = [AuthoredTask("setup", "misc")]
    frames = [AuthoredTask(f"frame-{n}", "blender", dependencies=[chain[0].uuid]) for n in range(DRAWN_TASKS)]
    video = AuthoredTask("video", "ffmpeg", dependencies=[frame.uuid for frame in frames])
    job = await store.jobs.store_authored(
        AuthoredJob("big", "t", status=JobStatus.QUEUED, tasks=[*chain, *frames, video])
    )
    dashboard = serve()
    await _open(page, f"{dashboard.url}/jobs/{job.uuid}")
    await expect(page.locator("svg .node")).to_have_count(0)
    groups = page.locator("svg .group")
    await expect(groups).to_have_count(3)
    await expect(groups.nth(1)).to_contain_text(f"layer 1 · {DRAWN_TASKS} tasks")
    await expect(page.locator("table.tasks tbody tr")).to_have_count(200)
    await expect(page.locator("p.more")).to_contain_text(f"{DRAWN_TASKS + 2 - 200} more tasks")
    await _shot(page, "job-summarised", backend)


async def test_control_refused_when_off_and_from_another_site(
    store: Store, serve: Callable[..., Dashboard], page: Page, backend: str
) -> None:
    seeded = await seed(store)
    off = serve()
    await _open(page, f"{off.url}/jobs/{seeded.markup_job.uuid}")
    await expect(page.locator("button[data-action]")).to_have_count(0)
    status = await page.evaluate(
        f"fetch('/api/jobs/{seeded.markup_job.uuid}/cancel', {{method: 'POST'}}).then(r => r.status)"
    )
    assert status == 403
    on = serve(allow_control=True)
    await _open(page, f"{on.url}/jobs/{seeded.markup_job.uuid}")
    token = await page.locator("meta[name=csrf-token]").get_attribute("content")
    # A page of another site posts a form to the dashboard, even with the right token (say it leaked).
    form = (
        f'<form id="forged" method="post" action="{on.url}/api/jobs/{seeded.markup_job.uuid}/cancel">'
        f'<input name="csrf_token" value="{token}"><input name="next" value="/jobs"></form>'
    )
    await page.goto("about:blank")
    await page.set_content(form)
    async with page.expect_navigation():
        await page.evaluate("document.getElementById('forged').submit()")
    assert "refused" in await page.content()
    assert (await store.jobs.fetch(seeded.markup_job.uuid)).status is JobStatus.QUEUED


async def test_a_token_shown_once_in_the_address_becomes_a_cookie(
    store: Store, serve: Callable[..., Dashboard], page: Page, backend: str
) -> None:
    seeded = await seed(store)
    dashboard = serve(token="browser-t0ken")
    await page.goto(f"{dashboard.url}/jobs?token=browser-t0ken")
    await expect(page.locator("body")).to_have_attribute("data-live", "on")  # the event stream got in too
    assert page.url == f"{dashboard.url}/jobs"
    await store.state_machine.job_status_change(seeded.markup_job.uuid, JobStatus.CANCEL_REQUESTED, reason="no")
    status = page.locator(f'table.jobs tr[data-job="{seeded.markup_job.uuid}"] .status')
    await expect(status).to_have_text("canceled", timeout=LIVE)
    other = await page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        stranger = await other.new_page()
        answer = await stranger.goto(f"{dashboard.url}/jobs")
        assert answer is not None
        assert answer.status == 401
    finally:
        await other.close()
