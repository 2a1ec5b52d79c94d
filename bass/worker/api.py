"""Talking to the orchestrator over HTTP (docs/contracts.md, "Worker API"): a POST,
the heartbeat that extends a job's lease, the result report."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bass_builder import Backoff, Endpoint

log = logging.getLogger("bass.worker")

Post = Callable[[str, dict[str, Any], float], tuple[int, bytes]]


def post(
    url: str,
    body: dict[str, Any],
    api_key: str | None,
    timeout: float,
    job_token: str | None = None,
) -> tuple[int, bytes]:
    """(HTTP status, body) of a JSON POST; an HTTP error status is an answer too. A
    heartbeat or result of a build carries its job token. OSError when no answer came.

    On the builder's own HTTP client, not urllib: urllib.request with http.client, the
    email package and ssl is ~7 MB of an idle worker's memory (ssl is imported only for
    an https URL)."""
    headers = {}
    if api_key:
        headers["X-API-KEY"] = api_key
    if job_token:
        headers["Authorization"] = f"Bearer {job_token}"
    endpoint = Endpoint(url, headers)
    try:
        status, _, answer = endpoint.post([json.dumps(body).encode()], timeout)
    finally:
        endpoint.close()
    if status is None:
        assert isinstance(answer, BaseException)
        raise answer
    assert isinstance(answer, bytes)
    return status, answer


def report(
    post: Post, job: dict[str, Any], status: str, message: str | None, *, retry: bool
) -> None:
    url = job.get("result-url")
    if not url:
        return  # a prototype orchestrator learns the result from the root span
    body = {"status": status, "message": message}
    attempts = 30 if retry else 1  # ride out a restart of bass serve
    backoff = Backoff(0.2, 2.0)
    for _ in range(attempts):
        try:
            code, payload = post(url, body, 15)
        except OSError as e:
            log.warning("reporting the result failed (%s), retrying", e)
            time.sleep(backoff.delay())
            continue
        if code not in (200, 409):
            log.warning("result report answered %d: %s", code, payload[:200])
        return
    log.error("%s #%s: result could not be reported", job["name"], job.get("number"))


class Heartbeat(threading.Thread):
    """Extends the job's lease; sets `cancel` when the orchestrator asks to cancel or
    says the job is no longer running (it was declared lost)."""

    def __init__(self, post: Post, job: dict[str, Any]):
        super().__init__(name="bass-heartbeat", daemon=True)
        self.post = post
        lease = job.get("lease-seconds")
        self.url = job.get("heartbeat-url") if lease else None  # no lease, no heartbeat
        self.interval = max(1.0, (lease or 0) / 4)
        self.cancel = threading.Event()
        self.why: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        if not self.url:
            return
        while not self._done.wait(self.interval):
            try:
                code, payload = self.post(self.url, {}, 10)
            except OSError as e:
                log.warning("heartbeat failed: %s", e)
                continue
            if code == 200 and json.loads(payload).get("cancel"):
                self.why = "cancelled: requested from the dashboard"
                self.cancel.set()
            elif code == 409:
                self.why = "cancelled: the orchestrator no longer runs this job"
                self.cancel.set()

    def stop(self) -> None:
        self._done.set()


def otlp_headers(existing: str, job_token: str | None) -> str:
    """OTEL_EXPORTER_OTLP_HEADERS for a build: what the environment had, with the
    build's job token as its Authorization (the server takes a build's telemetry only
    with it), in the variable's `k=v,k2=v2` form with URL-encoded values."""
    kept = [
        h
        for h in existing.split(",")
        if h.strip() and not h.strip().lower().startswith("authorization=")
    ]
    if job_token:
        kept.append(f"Authorization=Bearer%20{job_token}")
    return ",".join(kept)
