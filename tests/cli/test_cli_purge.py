"""``statestore purge``: a dry run counts (``--json`` parsed back), the real
one asks first (refused without a terminal, kept on "no"), ``--yes``
purges, a bad WHEN is a usage error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from statestore import NotFound, Store
from statestore.farm import JobStatus
from tests.cli.conftest import cli
from tests.support.farm_job_fixtures import set_job_updated_at
from tests.support.state_machine_fixtures import C, Q, job_with

OLD = datetime(2020, 1, 1, tzinfo=UTC)


async def _jobs(store: Store) -> tuple[str, str]:
    done, _ = await job_with(store, C, C, job_status=JobStatus.COMPLETED, name="done")
    queued, _ = await job_with(store, Q, name="waiting")
    for job in (done, queued):
        await set_job_updated_at(store, job.uuid, OLD)
    return str(done.uuid), str(queued.uuid)


async def test_dry_run_counts_and_removes_nothing(store: Store, store_url: str) -> None:
    done, _ = await _jobs(store)
    dry = await cli("purge", "--finished-before", "2021-01-01", "--dry-run", "--json", "--url", store_url)
    assert dry.exit_code == 0, dry.stderr
    counted = dry.json()
    assert (counted["dry_run"], counted["jobs"], counted["tasks"]) == (True, 1, 2)
    assert counted["finished_before"] == "2021-01-01T00:00:00+00:00"
    shown = await cli("purge", "--finished-before", "2021-01-01", "--dry-run", "--url", store_url)
    assert "tasks" in shown.stdout
    assert (await store.jobs.fetch(done)).name == "done"


async def test_purge_asks_refuses_without_a_terminal_and_purges_with_yes(store: Store, store_url: str) -> None:
    done, queued = await _jobs(store)
    refused = await cli("purge", "--finished-before", "2021-01-01", "--url", store_url)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert (await store.jobs.fetch(done)).name == "done"
    purged = await cli("purge", "--finished-before", "2021-01-01", "--yes", "--json", "--url", store_url)
    assert purged.exit_code == 0, purged.stderr
    assert (purged.json()["jobs"], purged.json()["tasks"]) == (1, 2)
    with pytest.raises(NotFound):
        await store.jobs.fetch(done)
    assert (await store.jobs.fetch(queued)).name == "waiting"


async def test_no_on_a_terminal_keeps_everything(store: Store, store_url: str, terminal: None) -> None:
    done, _ = await _jobs(store)
    answered = await cli("purge", "--finished-before", "2021-01-01", "--url", store_url, input="n\n")
    assert answered.exit_code == 1
    assert (await store.jobs.fetch(done)).name == "done"


async def test_a_bad_or_future_when_is_an_error(store: Store, store_url: str) -> None:
    for when, expected in (("last week", "--finished-before"), ("2999-01-01", "future")):
        bad = await cli("purge", "--finished-before", when, "--dry-run", "--url", store_url)
        assert bad.exit_code == 2
        assert expected in bad.stderr
    assert (await cli("purge", "--url", store_url)).exit_code == 2  # WHEN is required
