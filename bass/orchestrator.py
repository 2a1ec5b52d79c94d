"""The orchestrator: the one facade over the build queue.

Webhook, dashboard button, `bass run` and the poller all call `enqueue`; workers call
`claim`, `heartbeat` and `report`; the OTLP receiver tells `root_span_seen` (create_app
subscribes it). When a build ends, the `on_finishing` hooks run in the same transaction
(the build's unfinished spans end with it), then every callback in `on_finished` hears
of it (notifications). HTTP and the CLI are thin adapters over these verbs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bass import logfmt, states
from bass.config import PIPELINE_NAME, Config
from bass.store import builds, telemetry
from bass.store.builds import Source
from bass.store.db import Database

log = logging.getLogger("bass.orchestrator")

BUILDER_SCOPE = telemetry.BUILDER_SCOPE  # the builder's instrumentation scope: its marker
OnFinished = Callable[[dict[str, Any]], Awaitable[None]]


class UnknownPipeline(LookupError):
    pass


class NotBuilt(Exception):
    """The pipeline does not build this (its tag-pattern, its branches): the reason."""


class Duplicate(Exception):
    """A forge delivered this (its delivery id) before: it queued its build then."""


DELIVERIES_KEPT = 7 * 86400.0  # how long a delivery id is remembered (forges retry sooner)


class UnknownBuild(LookupError):
    """No build has this id."""


class NotRunning(Exception):
    """The build is queued or has ended: no worker holds it."""


class NotHolder(PermissionError):
    """The caller is not the worker that holds the build (another key, no or a wrong
    job token)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Orchestrator:
    def __init__(
        self,
        db: Database,
        config: Config,
        *,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        traces_endpoint: str | None = None,
        logs_endpoint: str | None = None,
    ):
        self.db = db
        self.config = config
        self.lease_seconds = lease_seconds
        self.clock = clock
        # Where builds send telemetry; None: this server's own receiver.
        self.traces_endpoint = traces_endpoint
        self.logs_endpoint = logs_endpoint
        self.on_finished: list[OnFinished] = []
        # called inside the transaction that ends a build: all of it happens, or none
        self.on_finishing: list[Callable[[sqlite3.Connection, dict[str, Any]], None]] = []
        self.closing = False
        self.waiting = 0  # workers in a long-poll right now
        self._queue_changed = asyncio.Event()

    # -- triggers ---------------------------------------------------------------------

    async def enqueue(
        self,
        pipeline: str,
        *,
        trigger: str,
        changed_refs: list[str] | None = None,
        tags: list[str] | None = None,
        source: Source | None = None,
        rerun_of: int | None = None,
        delivery: str | None = None,
    ) -> dict[str, Any]:
        """Queue a build of what `source` says (default: the pipeline's ref head).
        Raises UnknownPipeline, NotBuilt when the pipeline does not build it, Duplicate
        when the forge `delivery` (its id) was queued before: recorded in the same
        transaction as the build, so a delivery whose build failed to queue can come
        again."""
        config = self.config.pipelines.get(pipeline)
        if config is None:
            raise UnknownPipeline(pipeline)
        source = source or Source()
        if rerun_of is None:
            reason = not_built(config, source, tags or [])
            if reason:
                log.info("%s: not built: %s", pipeline, reason)
                raise NotBuilt(reason)
        # what the build keeps of its pipeline goes to its worker and into the database:
        # not the secret deliveries are checked with
        config = {k: v for k, v in config.items() if k != "webhook-secret"}
        now = self.clock()

        def queue(conn: sqlite3.Connection) -> dict[str, Any] | None:
            if delivery and builds.seen_delivery(conn, delivery, now=now, keep=DELIVERIES_KEPT):
                return None
            return builds.enqueue(
                conn,
                pipeline=pipeline,
                config=config,
                trigger=trigger,
                changed_refs=changed_refs,
                tags=tags,
                trace_id=secrets.token_hex(16),
                root_span_id=secrets.token_hex(8),
                now=now,
                source=source,
                rerun_of=rerun_of,
            )

        build = await self.db.awrite(queue)
        if build is None:
            raise Duplicate(delivery)
        with logfmt.about(build):
            log.info("%s #%d queued (%s)", pipeline, build["number"], trigger)
        # a rerun repeats an older commit: it never cancels the branch's newer builds
        if config.get("cancel-superseded") and source.branch and rerun_of is None:
            await self._supersede(build)
        self._wake_workers()
        return build

    async def _supersede(self, build: dict[str, Any]) -> None:
        """The older queued and running builds of the new build's branch end (queued
        ones now, running ones at their worker's next heartbeat)."""
        older = await self.db.aread(
            builds.superseded, build["pipeline"], build["branch"], build["number"]
        )
        for old in older:
            await self.cancel(old["id"], f"cancelled: superseded by #{build['number']}")

    async def rerun(self, build: dict[str, Any], trigger: str = "rerun") -> dict[str, Any]:
        """Build again what `build` built: the same commit (the one its checkout ran on
        when it asked only for a ref), the same changeset."""
        source = Source.of(build)
        if source.commit is None:
            source.commit = await self.db.aread(telemetry.checked_out_commit, build["trace_id"])
        return await self.enqueue(
            build["pipeline"],
            trigger=trigger,
            changed_refs=build["changed_refs"],
            tags=build["tags"],
            source=source,
            rerun_of=build["id"],
        )

    async def set_paused(self, pipeline: str, paused: bool) -> None:
        """Pause a pipeline (its builds are queued, not started) or resume it."""
        if pipeline not in self.config.pipelines:
            raise UnknownPipeline(pipeline)
        await self.db.awrite(builds.set_paused, pipeline, paused)
        log.info("%s %s", pipeline, "paused" if paused else "resumed")
        self._wake_workers()

    # -- workers ----------------------------------------------------------------------

    async def claim(
        self,
        *,
        worker: str,
        tags: list[str],
        wait: float = 0.0,
        heartbeats: bool = False,
        gone: Callable[[], Awaitable[bool]] | None = None,
        worker_key: str | None = None,
    ) -> dict[str, Any] | None:
        """The oldest queued build this worker may run, waiting up to `wait` s for one.
        The build comes with its `job-token`: only the holder of `worker_key` with that
        token may heartbeat it, end it, and send its telemetry.

        While waiting, `gone()` is asked every second: a worker that hung up (it was
        stopped) must not be handed a build it will never run. `close()` ends every wait.
        """
        deadline = self.clock() + wait
        while True:
            changed = self._queue_changed
            token = secrets.token_urlsafe(32)
            build = await self.db.awrite(
                builds.claim,
                worker=worker,
                tags=tags,
                now=self.clock(),
                lease_seconds=self.lease_seconds if heartbeats else None,
                worker_key=worker_key,
                job_token=token_hash(token),
                limits={
                    name: p["concurrency"]
                    for name, p in self.config.pipelines.items()
                    if p.get("concurrency")
                },
            )
            if build is not None:
                with logfmt.about(build):
                    log.info("%s #%d claimed by %s", build["pipeline"], build["number"], worker)
                build["job-token"] = token  # handed out once, never stored
                return build
            if not await self._wait_for_queue(changed, deadline, gone):
                return None

    async def _wait_for_queue(
        self,
        changed: asyncio.Event,
        deadline: float,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> bool:
        """Wait until something is queued (True), or the deadline passes, the server
        closes or the worker hangs up (False)."""
        self.waiting += 1
        try:
            while not changed.is_set():
                remaining = deadline - self.clock()
                if remaining <= 0 or self.closing:
                    return False
                try:
                    await asyncio.wait_for(changed.wait(), timeout=min(remaining, 1.0))
                except TimeoutError:
                    pass
                if gone is not None and await gone():
                    return False
            # woken by a queued build: a worker that hung up meanwhile must not get it
            return not (gone is not None and await gone())
        finally:
            self.waiting -= 1

    def close(self) -> None:
        """Shutting down: answer every waiting worker now (with nothing)."""
        self.closing = True

    async def check_holder(
        self, build_id: int, worker_key: str, token: str | None
    ) -> dict[str, Any]:
        """The build; raise UnknownBuild, NotRunning or NotHolder unless the caller, holding
        the key named `worker_key` and the job token `token`, is the worker running it."""
        build = await self.db.aread(builds.get, build_id)
        if build is None:
            raise UnknownBuild(build_id)
        if build["state"] != states.RUNNING:
            raise NotRunning(build["state"])
        if build["worker_key"] is not None and build["worker_key"] != worker_key:
            raise NotHolder("the build is held by another worker key")
        if build["job_token"] is not None and not (
            token and hmac.compare_digest(build["job_token"], token_hash(token))
        ):
            raise NotHolder("a wrong or missing job token")
        return build

    async def heartbeat(
        self, build_id: int, worker_key: str, token: str | None
    ) -> dict[str, Any] | None:
        """Extend a running build's lease, for its holder only (see check_holder); None
        when it stopped running meanwhile."""
        await self.check_holder(build_id, worker_key, token)
        return await self.db.awrite(
            builds.heartbeat, build_id, now=self.clock(), lease_seconds=self.lease_seconds
        )

    async def report(
        self, build_id: int, status: str, message: str | None, worker_key: str, token: str | None
    ) -> dict[str, Any] | None:
        """A worker's result for the build it holds (see check_holder); None if the build
        ended meanwhile. A build cancelled for a reason (superseded) keeps that reason."""
        held = await self.check_holder(build_id, worker_key, token)
        if status == states.CANCELLED and held["cancel_requested"] and held["message"]:
            message = None
        return await self._finish(build_id, status, message)

    async def cancel(
        self, build_id: int, reason: str = "cancelled from the dashboard"
    ) -> dict[str, Any] | None:
        """Cancel a build: a queued one ends now, a running one at its worker's next
        heartbeat (a worker that does not heartbeat cannot be told, so it ends now)."""
        build = await self.db.awrite(builds.request_cancel, build_id, reason)
        if build is None:
            return None
        if build["state"] == states.QUEUED or build["lease_expires"] is None:
            return await self._finish(build_id, states.CANCELLED, reason)
        return build

    async def reap(self) -> list[dict[str, Any]]:
        """End the running builds whose worker stopped heartbeating (worker lost)."""
        lost = await self.db.aread(builds.expired, now=self.clock())
        ended = []
        for build in lost:
            message = f"worker {build['worker']} lost: no heartbeat for {self.lease_seconds:g} s"
            done = await self._finish(build["id"], states.ERROR, message)
            if done is not None:
                with logfmt.about(build):
                    log.warning("%s #%d: %s", build["pipeline"], build["number"], message)
                ended.append(done)
        return ended

    async def abandon(self, worker: str, message: str) -> None:
        """End the builds a worker that is going away can no longer report."""
        for build in await self.db.aread(builds.running_on, worker):
            await self._finish(build["id"], states.CANCELLED, message)

    # -- telemetry --------------------------------------------------------------------

    async def root_span_seen(self, span: dict[str, Any]) -> None:
        """A span without parent arrived. It may be a build run outside the queue
        (`python3 job.py` against this server), or the end of a build whose worker
        only speaks the prototype's protocol (no heartbeat, no result report)."""
        build = await self.db.aread(builds.by_trace, span["trace_id"])
        if build is None:
            if span.get("scope", "").split(" ")[0] != BUILDER_SCOPE:
                return  # an SDK span naming a bass service (a tool inside a step): no build
            pipeline = span.get("service_name", "").removeprefix("bass:pipeline:")
            if pipeline == span.get("service_name") or not PIPELINE_NAME.fullmatch(pipeline):
                return  # not a bass build, or a name the dashboard could not show
            build = await self.db.awrite(
                builds.register_local,
                pipeline=pipeline,
                trace_id=span["trace_id"],
                root_span_id=span["span_id"],
                started_at=span["start_ns"] / 1e9 or self.clock(),
            )
            if build is None:
                return
        legacy = build["state"] == states.RUNNING and build["lease_expires"] is None
        if span["end_ns"] and (build["trigger"] == "local" or legacy):
            if span["span_id"] == build["root_span_id"]:
                await self._finish(build["id"], span["bass_status"], span["status_message"] or None)

    # -- internals --------------------------------------------------------------------

    async def _finish(
        self, build_id: int, status: str, message: str | None
    ) -> dict[str, Any] | None:
        if status not in states.STATUSES:
            status = states.ERROR
        now = self.clock()

        def finish(conn: sqlite3.Connection) -> dict[str, Any] | None:
            build = builds.finish(conn, build_id, status=status, now=now, message=message)
            if build is not None:
                for hook in self.on_finishing:
                    hook(conn, build)
            return build

        build = await self.db.awrite(finish)
        if build is None:
            return None
        self._wake_workers()  # a pipeline with a concurrency limit may have a free slot
        with logfmt.about(build):  # the subscribers' lines (notifications) are about it too
            log.info("%s #%d %s", build["pipeline"], build["number"], status)
            for callback in self.on_finished:
                try:
                    await callback(build)
                except Exception:  # one subscriber failing must not keep the others from hearing
                    log.exception("after %s #%d finished", build["pipeline"], build["number"])
        return build

    def _wake_workers(self) -> None:
        changed, self._queue_changed = self._queue_changed, asyncio.Event()
        changed.set()

    def job_json(
        self, build: dict[str, Any], base_url: str, people_url: str | None = None
    ) -> dict[str, Any]:
        """The build as a worker receives it from /dequeue: the job JSON of the worker
        API (docs/contracts.md), the prototype's fields first. URLs for the worker are
        on `base_url` (where it reached us), the build's page on `people_url`."""
        base = base_url.rstrip("/")
        people = (people_url or base).rstrip("/")
        return {
            "name": build["pipeline"],
            "schedule-time": datetime.fromtimestamp(build["queued_at"], UTC).isoformat(),
            "env": dict(self.config.env),
            "pipeline": build["config"],
            "changed-refs": build["changed_refs"],
            "otel": {
                "traces-endpoint": self.traces_endpoint or f"{base}/v1/traces",
                "logs-endpoint": self.logs_endpoint or f"{base}/v1/logs",
                "service-name": f"bass:pipeline:{build['pipeline']}",
                "trace-id": build["trace_id"],
                "root-span-id": build["root_span_id"],
            },
            "id": build["id"],
            "number": build["number"],
            "tags": build["tags"],
            "job-token": build.get("job-token"),
            # what to build (docs/contracts.md, "Job JSON"): null means the pipeline's ref
            "commit": build.get("commit_sha"),
            "ref": build.get("ref"),
            "branch": build.get("branch"),
            "tag": build.get("tag"),
            "before": build.get("before_sha"),
            "changed-files": build.get("changed_files"),
            "lease-seconds": self.lease_seconds if build["lease_expires"] else None,
            "heartbeat-url": f"{base}/jobs/{build['id']}/heartbeat",
            "result-url": f"{base}/jobs/{build['id']}/result",
            "build-url": f"{people}/pipelines/{build['pipeline']}/{build['number']}",
        }


def not_built(pipeline: dict[str, Any], source: Source, tags: list[str]) -> str | None:
    """Why a pipeline does not build this, or None when it does. A pushed branch must
    match the pipeline's `branches` (a regex; default: its `ref` only); a pushed tag, or
    the tags a prototype webhook names, its `tag-pattern`."""
    pattern = pipeline.get("tag-pattern")
    if source.tag is not None:
        if not pattern:
            return f"tag {source.tag}: the pipeline has no tag-pattern"
        if not re.search(pattern, source.tag):
            return f"tag {source.tag} does not match the tag-pattern"
        return None
    if pattern and not any(re.search(pattern, tag) for tag in tags):
        return "suppressed by the tag-pattern"
    if source.branch is not None:
        branches = pipeline.get("branches")
        if branches is not None:
            if not re.fullmatch(branches, source.branch):
                return f"branch {source.branch} does not match branches {branches!r}"
        elif pipeline.get("ref") and source.branch != pipeline["ref"]:
            return f"branch {source.branch} is not the pipeline's ref {pipeline['ref']}"
    return None
