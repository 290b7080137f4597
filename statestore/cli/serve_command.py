"""``statestore serve``: the live web dashboard (:mod:`statestore.web`),
which needs the ``web`` extra (``pip install 'statestore[web]'``).

It binds 127.0.0.1 unless told otherwise. It answers only to the loopback
names, the address it listens on and the names ``--allowed-host`` adds, so
a page elsewhere cannot reach it through a DNS name rebound to it. Control
actions are off unless ``--allow-control``; ``--token`` (or
``$STATESTORE_DASHBOARD_TOKEN``) makes every request show the token."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
from typing import Annotated

import typer

from statestore.cli.output import console, errors
from statestore.cli.root import UrlOption, app, fail, on_store, store_url

__all__ = ["serve"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
WEB_MODULES = ("starlette", "uvicorn", "jinja2", "sse_starlette")
TOKEN_ENV = "STATESTORE_DASHBOARD_TOKEN"


def _check_installed() -> None:
    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"the dashboard needs the web extra ({', '.join(missing)} missing): pip install 'statestore[web]'")


def _listening(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, made here so that a port in use
    is one red line, and ``--port 0`` shows the port it got."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    return listener


def _host_names(host: str, extra: list[str]) -> list[str]:
    """The ``Host`` names the dashboard answers to: the loopback names, the
    address it listens on (unless every address), and ``--allowed-host``."""
    names = [*LOOPBACK, "[::1]", *extra]
    if host not in LOOPBACK and host not in WILDCARDS:
        names.append(f"[{host}]" if ":" in host else host)
    return names


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
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="NAME",
            help="Also answer to this host name (repeatable): the name people reach a non-loopback --host by.",
        ),
    ] = None,
) -> None:
    """Serve the live web dashboard: jobs with their task graphs, workers and
    flows, updated in place from the change feed; the same data as JSON
    under /api. Ctrl-C stops it."""
    _check_installed()
    import uvicorn

    from statestore.web import create_app
    from statestore.web.guard import check_token

    if token is not None:
        try:
            check_token(token)
        except ValueError as error:
            fail(f"--token: {error}")
    where = store_url(url)
    on_store(where, lambda store: store.changes.cursor())  # the database exists and its schema is current
    if host not in LOOPBACK and not token:
        errors.print(
            f"[yellow]warning:[/yellow] listening on {host} without --token: anyone who reaches it sees the store"
        )
    names = _host_names(host, allowed_hosts or [])
    application = create_app(where, allow_control=allow_control, token=token, allowed_hosts=names)
    config = uvicorn.Config(application, log_level="warning", timeout_graceful_shutdown=2, lifespan="on")
    server = uvicorn.Server(config)
    listener = _listening(host, port)
    shown = f"[{host}]" if ":" in host else host
    control = "control actions on" if allow_control else "control actions off"
    console.print(
        f"statestore dashboard on http://{shown}:{listener.getsockname()[1]}/ ({control}); Ctrl-C stops it",
        highlight=False,
    )
    try:
        # uvicorn shuts down on Ctrl-C, then raises it again for the caller: here, the asked-for end.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[listener])
    except SystemExit:  # uvicorn's way to say its start failed (it logged why)
        fail(f"the dashboard could not start on {host}:{port} (see above)")
    finally:
        listener.close()
