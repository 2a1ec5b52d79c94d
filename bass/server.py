"""Running the app: `run_server` serves until a signal (the runtime of `bass serve` and
`bass demo`); `render_once` renders one page in-process, with no socket (`--get`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
import urllib.parse
from collections.abc import MutableMapping
from typing import Any

import uvicorn

from bass.app import create_app
from bass.auth import Users
from bass.config import Settings

log = logging.getLogger("bass")


def run_server(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM, then shut down cleanly and return 0.

    The server runs in a thread so that the signal handlers are bass's own: the first
    signal lets the local worker cancel its build and report it (its spans, logs and
    result go over HTTP, so the server keeps listening until it has), then ends the
    workers' long-polls and stops; a second signal forces the exit.
    """
    app = create_app(settings)
    server = _Server(
        settings,
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=None,  # its lines go through bass's handler (bass.logfmt)
            lifespan="on",
            timeout_graceful_shutdown=2,  # uploads still open then are cut
            # X-Forwarded-For/-Proto are believed only from the proxies named
            proxy_headers=settings.forwarded_allow_ips is not None,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        ),
    )

    stopping = threading.Event()

    def stop() -> None:
        begin_shutdown = getattr(app.state, "begin_shutdown", None)
        if begin_shutdown is not None:
            begin_shutdown()
        server.should_exit = True

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            server.should_exit = server.force_exit = True
            return
        stopping.set()
        log.info("signal %d: shutting down", signum)
        threading.Thread(target=stop, name="bass-shutdown", daemon=True).start()

    def on_hangup(signum: int, _frame: object) -> None:
        # This (main) thread is not the loop's: reload_config is thread-safe, it only
        # schedules the reload on the server's loop (call_soon_threadsafe).
        reload_config = getattr(app.state, "reload_config", None)
        if reload_config is not None:
            log.info("signal %d: reading the configuration files again", signum)
            reload_config()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    thread = threading.Thread(target=server.run, name="bass-serve")
    announced = False
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if server.started and not announced:
                log.info("listening; dashboard: %s/", settings.local_url())
                announced = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn's server, and beside it on the same event loop the OTLP/gRPC receiver
    (bass.ingest.grpc): listening before the HTTP port is (so once /healthz answers,
    both do), stopped before the app's lifespan ends and closes the store."""

    def __init__(self, settings: Settings, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settings = settings
        self.grpc: Any = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        settings = self.settings
        if settings.grpc_port:
            from bass.ingest import grpc as otlp_grpc  # ~11 MB: only when it listens

            self.grpc = await otlp_grpc.start(
                self._receiver,
                settings.host,
                settings.grpc_port,
                settings.max_body,
                local_only=settings.loopback_only(),
            )
        try:
            await super().startup(sockets)  # the app's lifespan, then the HTTP port
        except BaseException:  # uvicorn exits (SystemExit) when either fails
            await self._stop_grpc()
            raise

    def _receiver(self) -> Any:
        """The Receiver the app's lifespan made (None before): it is in the state
        uvicorn hands every request, where the HTTP routes find it."""
        return self.lifespan.state.get("receiver")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._stop_grpc()
        await super().shutdown(sockets)

    async def _stop_grpc(self) -> None:
        if self.grpc is not None:
            from bass.ingest import grpc as otlp_grpc

            await self.grpc.stop(otlp_grpc.GRACE_SECONDS)
            self.grpc = None


def refuse_an_open_network(settings: Settings) -> None:
    """Bound to a network address, bass must know its people and its workers: raise
    ValueError saying what to add, unless --insecure."""
    if settings.loopback_only() or settings.insecure:
        return
    missing = []
    if not Users(settings.users_file).any():
        missing.append(f"a users file ({settings.users_file}: bass user add NAME)")
    if not settings.config.worker_keys:
        missing.append(f"worker keys ({settings.worker_keys_file}: one key per line)")
    if missing:
        raise ValueError(
            f"--host {settings.host} lets other machines in, but there is no "
            + " and no ".join(missing)
            + ": add them, or bind to 127.0.0.1, or pass --insecure to serve it open"
        )


def render_once(settings: Settings, path: str) -> int:
    """Render one page in-process (no socket), print it, return 0 if it answered below
    400: a smoke test of the config and templates."""
    app = create_app(settings)
    target = urllib.parse.urlsplit(path)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": target.path or "/", "raw_path": (target.path or "/").encode(),
        "query_string": target.query.encode(), "root_path": "",
        "headers": [(b"host", b"localhost")], "client": ("127.0.0.1", 0),
        "server": ("localhost", 80),
    }  # fmt: skip
    status, chunks = 0, []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    async def get() -> None:
        async with app.router.lifespan_context(app) as state:
            await app({**scope, "state": dict(state or {})}, receive, send)

    asyncio.run(get())
    sys.stdout.write(b"".join(chunks).decode("utf-8", "replace"))
    return 0 if status < 400 else 1
