"""Which telemetry the receiver may store (SECURITY.md, "Telemetry senders").

- A build's trace is written by its build: while the build runs, and for GRACE seconds
  after it ends (the last spans and lines can trail the result report), never later;
  on a server that others can reach, only with the build's job token
  (`Authorization: Bearer TOKEN`, which the worker hands the build entry through
  OTEL_EXPORTER_OTLP_HEADERS).
- Any other trace (another service, or a build run by hand that has no build yet) is
  taken freely on a server only this machine can reach; otherwise it needs an ingest
  token (`--ingest-tokens-file`) or a person's API token.

Records a request may not store are left out and reported as rejected (OTLP partial
success), so an exporter does not send them again; when nothing of a request may be
stored for want of a token, the answer is 401.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bass.auth import Users, same_secret
from bass.store import builds
from bass.store.db import Database

GRACE_SECONDS = 120.0


@dataclass
class Verdicts:
    """Per trace id: None when its records may be stored, else why not."""

    refused: dict[str, str] = field(default_factory=dict)
    want_token: bool = False  # something was refused for a missing or wrong token

    def allows(self, trace_id: str) -> bool:
        return trace_id not in self.refused


@dataclass
class TelemetryGate:
    db: Database
    open: bool  # only this machine can reach the server (or --insecure)
    ingest_tokens: list[tuple[str, str]] = field(default_factory=list)  # (name, token)
    users: Users | None = None
    clock: Callable[[], float] = time.time

    async def judge(self, trace_ids: Iterable[str], bearer: str | None) -> Verdicts:
        ids = sorted(set(trace_ids))
        known = {b["trace_id"]: b for b in await self.db.aread(builds.by_traces, ids)}
        verdicts = Verdicts()
        other_ok: bool | None = None
        for trace_id in ids:
            build = known.get(trace_id)
            if build is None:
                if other_ok is None:
                    other_ok = self.open or self._ingest_token(bearer)
                if not other_ok:
                    verdicts.refused[trace_id] = "an ingest token is needed"
                    verdicts.want_token = True
                continue
            why = self._build_refuses(build, bearer)
            if why:
                verdicts.refused[trace_id] = why
                verdicts.want_token |= "token" in why
        return verdicts

    def _build_refuses(self, build: dict, bearer: str | None) -> str | None:
        if build["state"] == "queued":
            return f"build {build['pipeline']} #{build['number']} has not started"
        finished = build["finished_at"]
        if finished is not None and self.clock() > finished + GRACE_SECONDS:
            return f"build {build['pipeline']} #{build['number']} has ended"
        if self.open or build["job_token"] is None:
            return None
        given = hashlib.sha256((bearer or "").encode()).hexdigest()
        if bearer and hmac.compare_digest(given, build["job_token"]):
            return None
        return f"build {build['pipeline']} #{build['number']} needs its job token"

    def _ingest_token(self, bearer: str | None) -> bool:
        if not bearer:
            return False
        found = False
        for _, token in self.ingest_tokens:
            found |= same_secret(bearer, token)
        return found or (self.users is not None and self.users.token_user(bearer) is not None)
