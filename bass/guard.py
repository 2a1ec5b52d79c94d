"""The gate every request passes before a route sees it (SECURITY.md is the model):

- the Host header must name this server (its bind address, localhost, the
  `--public-url` host, an `--allowed-host`, or an IP address): a page on a rebound DNS
  name cannot read or drive bass;
- a request that changes something (any method but GET/HEAD/OPTIONS) sent by a browser
  from another site is refused (`Sec-Fetch-Site`, `Origin`): forges, workers and SDKs
  send neither;
- when people must log in (a users file exists), the dashboard and the JSON API need a
  session cookie or an API token (`Authorization: Bearer`); the login page, static
  files and the machine routes (webhook, worker API, OTLP, healthz) do not;
- every answer carries the headers that keep pages from being framed or sniffed.

A refusal is answered by bass.errors, like any other error.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bass import auth, errors
from bass.auth import CSRF_COOKIE, SESSION_COOKIE

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# What needs no person: machines authenticate on their own (worker keys, job tokens,
# webhook secrets, ingest tokens), and the login page must be reachable to log in.
MACHINE_PREFIXES = ("/webhook", "/dequeue", "/jobs/", "/v1/", "/healthz", "/static/")
OPEN_PATHS = ("/login", "/favicon.ico")
# Read by scripts and scrapers with a person's API token: refused with 401, not sent to
# the login page (a scraper follows no redirect to a form).
MACHINE_READ = ("/pipelines", "/metrics")
# what a reverse proxy adds to the requests it forwards (nginx, Caddy, Apache, HAProxy)
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def host_of(netloc: str) -> str:
    """`name:port` or `[v6]:port` → the host, lowercased, brackets kept off."""
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")].lower() if "]" in netloc else ""
    return netloc.rsplit(":", 1)[0].lower() if netloc.count(":") == 1 else netloc.lower()


class Guard:
    """ASGI middleware; `users` None means nobody has to log in."""

    def __init__(
        self,
        app: Any,
        *,
        allowed_hosts: set[str],
        people: auth.People,
        public_url: SplitResult | None = None,
        local_only: bool = False,
    ) -> None:
        self.app = app
        # serving this machine alone (loopback, no --forwarded-allow-ips): a request a
        # proxy forwarded comes from elsewhere, yet would look like this machine's
        self.local_only = local_only
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.people = people
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.check(request)
        if self.public_url is not None:
            public = self.public_url
            scope["bass.public_base"] = f"{public.scheme}://{public.netloc}"
            if refusal is None and not request.url.path.startswith(MACHINE_PREFIXES):
                # the pages' links and redirects lead where people reach bass; machines
                # get URLs on the (allowed) host they used themselves
                scope["scheme"] = public.scheme
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
                    (b"host", public.netloc.encode())
                ]
        if isinstance(refusal, HTTPException):
            response = await errors.answer(request, refusal)
            await _with_headers(response)(scope, receive, send)
            return
        if refusal is not None:
            await _with_headers(refusal)(scope, receive, send)
            return

        extra = list(SECURITY_HEADERS)
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if len(csrf) != 43:  # none yet (or not one of ours): the browser gets one
            csrf = secrets.token_urlsafe(32)
            cookie = self.people.cookie(CSRF_COOKIE, csrf, "Strict")
            extra.append((b"set-cookie", cookie.encode()))
        scope["bass.csrf"] = csrf

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def check(self, request: Request) -> HTTPException | Response | None:
        """None to let the request through, else what to answer instead."""
        host = host_of(request.headers.get("host", ""))
        if not (host in self.allowed_hosts or is_ip(host)):
            return HTTPException(400, f"unknown host {host!r}: see --allowed-host")
        if request.method not in SAFE_METHODS and not same_origin(request, self.public_url):
            return HTTPException(403, "cross-site request refused")
        if self.local_only and any(h in request.headers for h in FORWARDED_HEADERS):
            return HTTPException(
                403,
                "forwarded by a proxy to a bass serving this machine alone: behind a proxy, "
                "run bass serve with --forwarded-allow-ips, a users file and worker keys",
            )
        path = request.url.path
        if not self.people.login_required:
            return None
        if path.startswith(MACHINE_PREFIXES) or path in OPEN_PATHS:
            return None
        user = self.person(request)
        if user is not None:
            request.scope["bass.user"] = user
            return None
        if path.startswith("/api/") or path in MACHINE_READ or request.method != "GET":
            return HTTPException(401, "log in, or send an API token: Authorization: Bearer …")
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    def person(self, request: Request) -> str | None:
        """The user a request comes from: an API token, or a session cookie."""
        users = self.people.users
        assert users is not None
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            return users.token_user(authorization[7:].strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        return auth.session_user(self.people.key, users, cookie) if cookie else None


def same_origin(request: Request, public_url: SplitResult | None = None) -> bool:
    """Whether a request that changes something may come from where it comes from: not a
    browser page of another site (forges, workers and scripts send no Origin)."""
    headers = request.headers
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # "http://[::1" and the like
        return False
    ours = {headers.get("host", "")} | ({public_url.netloc} if public_url else set())
    return bool(netloc) and netloc in ours


def _with_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response
