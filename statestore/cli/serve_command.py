"""``statestore serve``: the live web dashboard (:mod:`statestore.web`),
which needs the ``web`` extra (``pip install 'statestore[web]'``).

It binds 127.0.0.1 unless told otherwise, and then answers only to the
loopback names (a page elsewhere cannot reach it through a rebound DNS
name). Control actions are off unless ``--allow-control``; ``--token``
(or ``$STATESTORE_DASHBOARD_TOKEN``) makes every request show the token."""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Annotated

import typer

from statestore.cli.output import console, errors
from statestore.cli.root import UrlOption, app, fail, on_store, store_url

__all__ = ["serve"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WEB_MODULES = ("starlette", "uvicorn", "jinja2", "sse_starlette")
TOKEN_ENV = "STATESTORE_DASHBOARD_TOKEN"


def _check_installed() -> None:
    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"the dashboard needs the web extra ({', '.join(missing)} missing): pip install 'statestore[web]'")


@app.command()
def serve(
    url: UrlOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")] = 8340,
    allow_control: Annotated[
        bool, typer.Option("--allow-control", help="Show and accept the control actions (cancel, pause, requeue).")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar=TOKEN_ENV, show_envvar=True, help="Require this token on every request."),
    ] = None,
) -> None:
    """Serve the live web dashboard: jobs with their task graphs, workers and
    flows, updated in place from the change feed; the same data as JSON
    under /api. Ctrl-C stops it."""
    _check_installed()
    import uvicorn

    from statestore.web import create_app

    where = store_url(url)
    on_store(where, lambda store: store.changes.cursor())  # the database exists and its schema is current
    loopback = host in LOOPBACK
    allowed = [*LOOPBACK, "[::1]"] if loopback else None
    if not loopback and not token:
        errors.print(
            f"[yellow]warning:[/yellow] listening on {host} without --token: anyone who reaches it sees the store"
        )
    application = create_app(where, allow_control=allow_control, token=token, allowed_hosts=allowed)
    config = uvicorn.Config(
        application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2, lifespan="on"
    )
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    control = "control actions on" if allow_control else "control actions off"
    console.print(f"statestore dashboard on http://{shown}:{port}/ ({control}); Ctrl-C stops it", highlight=False)
    # uvicorn shuts down on Ctrl-C, then raises it again for the caller: here, the asked-for end.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        fail(f"the dashboard could not start on {host}:{port} (see above)")
