"""What the dashboard lets through: the access token, and the checks a
control action must pass (control switched on, a same-origin request, the
CSRF token).

The token is an ASGI middleware of its own rather than Starlette's
``BaseHTTPMiddleware``, which buffers streamed responses and would hold the
server-sent events back. A browser shows the token once, as ``?token=…``;
the middleware answers with a cookie (HttpOnly, SameSite=Strict) and a
redirect to the same address without it, so the token leaves the address
bar and the browser's history, and EventSource — which cannot send headers
— carries the cookie. Scripts send ``Authorization: Bearer …``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request, cookie_parser

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "ControlRefused",
    "SecurityHeaders",
    "TokenGuard",
    "check_control",
    "check_token",
]

COOKIE: Final = "statestore_token"
"""The cookie's name, followed by the dashboard's port: cookies are shared by
every port of a host, and two dashboards must not overwrite each other's."""
TOKEN_PATTERN: Final = re.compile(r"[A-Za-z0-9._~+/=-]+")
"""What a token may hold: characters a cookie and an address carry as they are."""
CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf_token"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def check_token(token: str) -> str:
    """``token`` if it can travel in a header, an address and a cookie
    unchanged; ValueError naming the allowed characters otherwise."""
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValueError("a dashboard token holds only letters, digits and . _ ~ + / = -")
    return token


def _same(given: str | None, expected: str) -> bool:
    """Whether ``given`` is the secret, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenGuard:
    """Refuses every HTTP request that does not carry ``token`` (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = check_token(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        server = scope.get("server")
        cookie_name = f"{COOKIE}_{server[1]}" if server else COOKIE
        if given is not None:
            if not _same(given, self._token):
                await _refuse(send, "wrong token")
                return
            # Trade the token in the address for a cookie, and show the address without it: the
            # path as the browser sent it (still percent-encoded), from one slash, so it stays a
            # path of this dashboard and never reads as another host (//elsewhere).
            rest = urlencode([(key, value) for key, value in query if key != "token"])
            raw = scope.get("raw_path") or scope["path"].encode()
            location = b"/" + raw.lstrip(b"/") + (f"?{rest}".encode() if rest else b"")
            cookie = f"{cookie_name}={self._token}; Path=/; HttpOnly; SameSite=Strict"
            await _respond(send, 303, b"", [(b"location", location), (b"set-cookie", cookie.encode())])
            return
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer ") and _same(bearer[7:].strip(), self._token):
            await self._app(scope, receive, send)
            return
        # Starlette's parser, as browsers parse: one malformed cookie of another app on this
        # host (cookies ignore ports) must not hide this one, as it would from http.cookies.
        cookies = cookie_parser(headers.get("cookie", ""))
        if _same(cookies.get(cookie_name), self._token):
            await self._app(scope, receive, send)
            return
        await _refuse(
            send, "this dashboard needs its token: open it once as …?token=TOKEN, or send Authorization: Bearer"
        )


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, why: str) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"www-authenticate", b"Bearer")]
    await _respond(send, 401, why.encode() + b"\n", headers)


class SecurityHeaders:
    """Adds to every answer what keeps other sites from using it: no framing
    (a page elsewhere could frame the job page and trick a click on a
    control button, which would pass every same-origin check), scripts and
    styles from this dashboard only, no guessing of content types and no
    referrer sent on."""

    HEADERS: Final = (
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers)


class ControlRefused(Exception):
    """A control action that may not run (answered 403 with this message)."""


def _origin_host(value: str) -> str | None:
    parts = urlsplit(value)
    return parts.netloc or None


def check_control(request: Request, *, allowed: bool, csrf_token: str, form: dict[str, str]) -> None:
    """Raise ControlRefused unless control actions are on and ``request`` is
    a same-origin request carrying the CSRF token (as the ``X-CSRF-Token``
    header or the form's ``csrf_token`` field).

    A cross-site page can make a browser post a form here, cookies (and so
    the access token) included; it cannot read the CSRF token, which only
    the dashboard's own pages hold. Browsers also say where a request comes
    from (``Origin``, ``Sec-Fetch-Site``): a foreign one is refused even
    with a token."""
    if not allowed:
        raise ControlRefused("control actions are off: start the dashboard with --allow-control to use them")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ControlRefused(f"refused a cross-site request (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin is not None and _origin_host(origin) != request.headers.get("host"):
        raise ControlRefused("refused a request from another origin")
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not _same(given, csrf_token):
        raise ControlRefused("missing or wrong CSRF token: use the dashboard's own page to steer")
