"""The ASGI app of `bass serve`, built by a factory: orchestrator + OTLP receiver + dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bass import api, retention
from bass.config import Config
from bass.ingest import otlp_proto, receiver
from bass.ingest.forward import Destination, Forwarder
from bass.notify import Mailer
from bass.orchestrator import Orchestrator
from bass.poller import poll_forever
from bass.store.db import Database
from bass.ui import PACKAGE_DIR, builds, home, json_api, pipelines, search, templates

log = logging.getLogger("bass.serve")


@dataclass
class Settings:
    db: str = "bass.db"
    host: str = "127.0.0.1"
    port: int = 8080
    config: Config = field(default_factory=Config)
    local_worker: bool = False
    local_worker_tags: list[str] = field(default_factory=list)
    workspace_root: str = ".bass-workspace"
    traces_endpoint: str | None = None
    logs_endpoint: str | None = None
    lease_seconds: float = 60.0
    reap_interval: float = 5.0
    max_body: int = receiver.DEFAULT_MAX_BODY
    forward: list[Destination] = field(default_factory=list)
    retention_days: float | None = None
    keep_builds: int | None = None
    prune_interval: float = 600.0
    mailer: Mailer | None = None


def local_url(settings: Settings) -> str:
    """How a process on this machine reaches the server."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        db = Database(settings.db)
        warning = otlp_proto.check_backend()
        if warning:
            log.warning(warning)
        forwarders: dict[str, list[Forwarder]] = {"traces": [], "logs": []}
        for destination in settings.forward:
            forwarders[destination.kind].append(Forwarder(destination))
            log.info("forwarding %s to %s", destination.kind, destination.url)
        orchestrator = Orchestrator(
            db,
            settings.config,
            lease_seconds=settings.lease_seconds,
            traces_endpoint=settings.traces_endpoint,
            logs_endpoint=settings.logs_endpoint,
        )
        if settings.mailer is not None:
            orchestrator.on_finished.append(settings.mailer.on_finished)
        elif any(p.get("notifications") for p in settings.config.pipelines.values()):
            log.warning("pipelines ask for e-mail notifications, but no --smtp-host is set")
        worker_keys = list(settings.config.worker_keys)
        stop = threading.Event()
        worker_thread = None
        local_name = f"local:{os.getpid()}"
        if settings.local_worker:
            local_key = secrets.token_urlsafe(24)
            worker_keys.append(local_key)
            worker_thread = _start_local_worker(settings, local_key, local_name, stop)
        reaper = asyncio.create_task(_reap_forever(orchestrator, settings.reap_interval))
        policy = retention.Policy(
            days=settings.retention_days,
            keep_builds=settings.keep_builds,
            per_pipeline={
                name: p["keep-builds"]
                for name, p in settings.config.pipelines.items()
                if p.get("keep-builds")
            },
        )
        poller = None
        if any(p.get("poll") for p in settings.config.pipelines.values()):
            poller = asyncio.create_task(poll_forever(orchestrator))
        pruner = None
        if policy.active:
            pruner = asyncio.create_task(
                retention.prune_forever(db, policy, settings.prune_interval)
            )

        def begin_shutdown() -> None:
            # Called from a signal handler, before connections drain: long-polls end
            # now, and the local worker starts cancelling its build.
            orchestrator.close()
            stop.set()

        app.state.begin_shutdown = begin_shutdown
        try:
            yield {
                "db": db,
                "orchestrator": orchestrator,
                "worker_keys": worker_keys,
                "templates": templates(),
                "max_body": settings.max_body,
                "forwarders": forwarders,
                "ingest_stats": receiver.IngestStats(),
                "decode_slots": receiver.decode_slots(),
            }
        finally:
            reaper.cancel()
            for task in (pruner, poller):
                if task is not None:
                    task.cancel()
            stop.set()
            if worker_thread is not None:
                await asyncio.to_thread(worker_thread.join, 30)
                await orchestrator.abandon(local_name, "cancelled: bass serve stopped")
            for forwarder in forwarders["traces"] + forwarders["logs"]:
                await asyncio.to_thread(forwarder.close)
            db.close()

    routes = [
        *api.routes,
        *receiver.routes,
        *home.routes,
        *pipelines.routes,
        *builds.routes,
        *json_api.routes,
        *search.routes,
        Route("/healthz", _healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def _reap_forever(orchestrator: Orchestrator, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await orchestrator.reap()
        except Exception:
            log.exception("reaping lost jobs failed")


def _start_local_worker(
    settings: Settings, key: str, name: str, stop: threading.Event
) -> threading.Thread:
    from bass.worker import Worker, WorkspaceBusy

    worker = Worker(
        dequeue_endpoint=local_url(settings) + "/dequeue",
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
