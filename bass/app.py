"""The ASGI app of `bass serve`, built by a factory: orchestrator + OTLP receiver +
dashboard. Every edge between the parts is wired here, where it can be read:

- the receiver tells the orchestrator of builds' root spans (`on_root_span`);
- a build's end closes its spans that never ended, in the same transaction
  (`orchestrator.on_finishing`), and is heard by the mailer (`on_finished`);
- the status page asks the receiver for its counters (`ingest_status`);
- /metrics counts builds ended (`on_finished`) and retention passes (`on_pass`), and
  reads the receiver's, orchestrator's and forwarders' counters (bass.metrics);
- every HTTPException is answered by bass.errors, in the form its caller reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bass import auth, errors, metrics, pruning, webhook, worker_api
from bass.config import Config, Settings, named_keys
from bass.guard import Guard
from bass.ingest import receiver
from bass.ingest.forward import Forwarding
from bass.ingest.gate import TelemetryGate
from bass.metrics import Metrics
from bass.notify import Mailer
from bass.orchestrator import Orchestrator
from bass.poller import poll_forever
from bass.reload import ConfigWatcher
from bass.store import telemetry
from bass.store.db import Database
from bass.ui import (
    PACKAGE_DIR,
    Templates,
    actions,
    builds,
    home,
    login,
    logview,
    pipelines,
    query_api,
    search,
    status,
    traces,
    trends,
)

log = logging.getLogger("bass.serve")


def create_app(settings: Settings) -> Starlette:
    public = urlsplit(settings.public_url) if settings.public_url else None
    people = auth.People(
        users=auth.Users(settings.users_file),
        key=auth.secret_key(settings.secret_file),
        secure_cookies=public is not None and public.scheme == "https",
        open_without_users=settings.loopback_only() or settings.insecure,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        db = Database(settings.db)
        forwarding = Forwarding(db, settings.forward, max_queue_bytes=settings.forward_queue_bytes)
        forwarders = forwarding.by_kind
        for destination in settings.forward:
            log.info("forwarding %s to %s", destination.kind, destination.url)
        orchestrator = Orchestrator(
            db,
            settings.config,
            lease_seconds=settings.lease_seconds,
            traces_endpoint=settings.traces_endpoint,
            logs_endpoint=settings.logs_endpoint,
        )
        gate = TelemetryGate(
            db,
            open=settings.loopback_only() or settings.insecure,
            ingest_tokens=named_keys(settings.config.ingest_tokens),
            users=people.users,
        )
        ingest = receiver.Receiver(
            db,
            max_body=settings.max_body,
            max_inflight=settings.max_inflight,
            forwarders=forwarders,
            gate=gate,
        )
        ingest.on_root_span(orchestrator.root_span_seen)
        orchestrator.on_finishing.append(end_open_spans)
        counts = Metrics(db, orchestrator, ingest)  # /metrics: what happens, counted
        orchestrator.on_finished.append(counts.build_finished)
        mailer = _mailer(settings)
        if mailer is not None:
            orchestrator.on_finished.append(mailer.on_finished)
        elif any(p.get("notifications") for p in settings.config.pipelines.values()):
            log.warning("pipelines ask for e-mail notifications, but no --smtp-host is set")
        worker_keys = named_keys(settings.config.worker_keys)
        own_keys: list[tuple[str, str]] = []  # the local worker's: no file names it
        stop = threading.Event()
        worker_thread = None
        local_name = f"local:{os.getpid()}"
        if settings.local_worker:
            local_key = secrets.token_urlsafe(24)
            own_keys.append(("local", local_key))
            worker_keys.extend(own_keys)
            worker_thread = _start_local_worker(settings, local_key, local_name, stop)

        def apply_config(config: Config) -> None:
            # The files changed (or SIGHUP): what is queued from now on uses them; a
            # build already queued keeps the pipeline config it stored.
            orchestrator.config = config
            worker_keys[:] = named_keys(config.worker_keys) + own_keys  # in place: shared
            gate.ingest_tokens = named_keys(config.ingest_tokens)

        watcher = ConfigWatcher(settings, apply_config)
        watch_stop = asyncio.Event()
        watch_task = asyncio.create_task(watcher.watch(watch_stop))
        app.state.reload_config = watcher.reload_soon  # SIGHUP, from bass.server
        tasks = [
            asyncio.create_task(_reap_forever(orchestrator, settings.reap_interval)),
            # always: a pipeline given "poll" by an edit is polled without a restart
            asyncio.create_task(poll_forever(orchestrator)),
        ]
        policy = pruning.Policy.from_settings(settings)
        if policy.active:
            tasks.append(
                asyncio.create_task(
                    pruning.prune_forever(
                        db, policy, settings.prune_interval, on_pass=counts.retention_pass
                    )
                )
            )

        def begin_shutdown(local_worker_grace: float = 60.0) -> None:
            # Called (in a thread of its own) when a signal asks the server to stop,
            # before it stops listening: the local worker cancels its build and reports
            # it over HTTP while the server still answers; then long-polls end.
            stop.set()
            if worker_thread is not None:
                worker_thread.join(local_worker_grace)
            orchestrator.close()

        app.state.begin_shutdown = begin_shutdown
        try:
            yield {
                "db": db,
                "orchestrator": orchestrator,
                "receiver": ingest,
                "ingest_status": ingest.status,
                "metrics": counts,
                "worker_keys": worker_keys,
                "templates": Templates(),
                "people": people,
                "webhook_slots": asyncio.Semaphore(4),  # webhook bodies read at once
                "config_status": watcher.status,
            }
        finally:
            watch_stop.set()
            for task in tasks:
                task.cancel()
            stop.set()
            if worker_thread is not None:
                await asyncio.to_thread(worker_thread.join, 30)
                await orchestrator.abandon(local_name, "cancelled: bass serve stopped")
            await asyncio.to_thread(forwarding.close)
            await watch_task
            db.close()

    routes = [
        *webhook.routes,
        *worker_api.routes,
        *receiver.routes,
        *home.routes,
        *pipelines.routes,
        *trends.routes,
        *actions.routes,
        *builds.routes,
        *logview.routes,
        *traces.routes,
        *query_api.routes,
        *search.routes,
        *status.routes,
        *metrics.routes,
        *login.routes,
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/favicon.ico", _favicon, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static"),
    ]
    guard = Middleware(
        Guard,
        allowed_hosts=allowed_hosts(settings),
        people=people,
        public_url=public,
        local_only=settings.loopback_only(),
    )
    return Starlette(
        routes=routes,
        middleware=[guard],
        lifespan=lifespan,
        exception_handlers=errors.EXCEPTION_HANDLERS,
    )


def allowed_hosts(settings: Settings) -> set[str]:
    """The names a request's Host may give (any IP address may be given too): what this
    server is called, never a name someone else's DNS points here."""
    names = {"localhost", socket.gethostname(), socket.getfqdn(), *settings.allowed_hosts}
    if settings.public_url:
        names.add(urlsplit(settings.public_url).hostname or "")
    if settings.host not in ("", "0.0.0.0", "::"):
        names.add(settings.host)
    return {n.lower().strip("[]") for n in names if n}


def end_open_spans(conn: sqlite3.Connection, build: dict[str, Any]) -> None:
    """A build ended: its spans that never reported an end (worker lost, build killed)
    end with it, with its status, instead of staying "running" for ever."""
    end_ns = int((build["finished_at"] or 0) * 1e9)
    telemetry.close_open_spans(conn, build["trace_id"], end_ns=end_ns, status=build["state"])


def _mailer(settings: Settings) -> Mailer | None:
    if not settings.smtp_host:
        return None
    return Mailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
        user=settings.smtp_user,
        password=settings.smtp_password,
        public_url=settings.public_url or settings.local_url(),
    )


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def _favicon(request: Request) -> Response:
    """What a browser asks for before it has read a page's icon link."""
    return FileResponse(PACKAGE_DIR / "static" / "favicon.svg", media_type="image/svg+xml")


async def _reap_forever(orchestrator: Orchestrator, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await orchestrator.reap()
        except Exception:  # a failed pass is logged; the next one tries again
            log.exception("reaping lost builds failed")


def _start_local_worker(
    settings: Settings, key: str, name: str, stop: threading.Event
) -> threading.Thread:
    from bass.worker import Worker, WorkspaceBusy

    worker = Worker(
        dequeue_endpoint=settings.local_url() + "/dequeue",
        api_key=key,
        tags=settings.local_worker_tags,
        workspace_root=settings.workspace_root,
        name=name,
        stop=stop,
    )

    def run() -> None:
        try:
            worker.run_forever()
        except WorkspaceBusy as e:
            log.error("the local worker did not start: %s", e)

    thread = threading.Thread(target=run, name="bass-local-worker", daemon=True)
    thread.start()
    return thread
