"""``statestore serve``: the dashboard as the command starts it — on
127.0.0.1, answering only to loopback names, stopped by Ctrl-C — and its
refusals before it listens."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from statestore import Store
from statestore.cli import serve_command
from tests.cli.conftest import cli
from tests.support.dashboard_seed import seed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_serve_starts_on_loopback_serves_and_stops_on_ctrl_c(store: Store, store_url: str) -> None:
    seeded = await seed(store)
    script = Path(sys.executable).parent / "statestore"
    server = await asyncio.create_subprocess_exec(
        str(script),
        *("serve", "--url", store_url, "--port", "0", "--token", "t0k"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        first = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        port = int(first.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])  # the port --port 0 got
        assert port > 0
        assert "control actions off" in first
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer t0k"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):  # the line is printed just before uvicorn listens
                try:
                    answer = await client.get("/api/jobs", headers=headers)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert answer.status_code == 200
            assert {row["uuid"] for row in answer.json()} == {str(seeded.render.uuid), str(seeded.markup_job.uuid)}
            assert (await client.get("/api/jobs")).status_code == 401
            rebound = await client.get("/api/jobs", headers={**headers, "Host": "dashboard.attacker.example"})
            assert rebound.status_code == 400
            refused = await client.post(f"/api/jobs/{seeded.render.uuid}/cancel", headers=headers)
            assert refused.status_code == 403
        server.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(server.wait(), 20) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_serve_refuses_before_listening(tmp_path: Path, store_url: str) -> None:
    missing = tmp_path / "typo.db"
    ran = await cli("serve", "--url", f"sqlite:///{missing}", "--port", str(_free_port()))
    assert ran.exit_code == 2
    assert str(missing) in ran.stderr
    assert not missing.exists()
    bad_token = await cli("serve", "--url", store_url, "--token", "two words")
    assert bad_token.exit_code == 2
    assert "--token" in bad_token.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = await cli("serve", "--url", store_url, "--port", str(port))
    assert in_use.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in in_use.stderr


async def test_serve_without_the_web_extra_says_what_to_install(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve_command, "WEB_MODULES", (*serve_command.WEB_MODULES, "statestore_no_such_module"))
    ran = await cli("serve", "--url", store_url)
    assert ran.exit_code == 2
    assert "pip install 'statestore[web]'" in ran.stderr
    assert "statestore_no_such_module" in ran.stderr
