"""The dashboard as an ASGI app: :func:`create_app`.

Starlette routes the pages (:mod:`statestore.web.pages`), ``/api``
(:mod:`statestore.web.api`) and the packaged static files; the store opens
when the app starts and closes when it stops. Errors from the store become
answers a person or a script can act on: NotFound 404, bad input 400, a
refused transition 409, a refused control action 403, an unreachable
database 503 — an HTML page, or ``{"error": …}`` under ``/api``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from statestore.errors import Conflict, InvalidInput, NotFound, StoreError, Unavailable
from statestore.store import open_store
from statestore.web import api, pages
from statestore.web.guard import ControlRefused, SecurityHeaders, TokenGuard
from statestore.web.settings import HERE, Settings

__all__ = ["create_app"]

_log = logging.getLogger("statestore.web")

_STATUS = ((NotFound, 404), (InvalidInput, 400), (Conflict, 409), (Unavailable, 503), (StoreError, 500))


def _status_of(error: Exception) -> int:
    if isinstance(error, ControlRefused):
        return 403
    if isinstance(error, HTTPException):
        return error.status_code
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 500)


async def _error(request: Request, error: Exception) -> Response:
    status = _status_of(error)
    if isinstance(error, HTTPException):
        message = str(error.detail)
    elif isinstance(error, (StoreError, ControlRefused)):
        message = f"{type(error).__name__}: {error}"
    else:
        # Anything else is a bug: its text may hold SQL or a driver's details, so it goes to the log only.
        _log.error("dashboard: %s %s failed", request.method, request.url.path, exc_info=error)
        message = "internal error (the server's log has the details)"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return pages.render(request, "error.html", {"status": status, "message": message}, status_code=status)


def create_app(
    url: str,
    *,
    allow_control: bool = False,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The dashboard of the store at ``url`` (opened when the app starts; its
    schema must be current).

    ``allow_control`` turns the control actions on; ``token``, if given,
    must come with every request; ``allowed_hosts`` are the ``Host`` names
    it answers (None: any), which keeps a page on another site from reaching
    a dashboard on 127.0.0.1 through a name it rebinds there."""
    settings = Settings(url=url, allow_control=allow_control, token=token or None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_store(url) as store:
            app.state.store = store
            yield

    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    if settings.token is not None:
        middleware.append(Middleware(TokenGuard, token=settings.token))
    routes = [*pages.routes, *api.routes, Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Exception: _error, HTTPException: _error, StoreError: _error, ControlRefused: _error},
    )
    app.state.settings = settings
    return app
