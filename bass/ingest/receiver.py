"""The OTLP/HTTP receiver: POST /v1/traces and /v1/logs (and /v1/metrics, dropped).

Per the OTLP specification: `application/json` or `application/x-protobuf` bodies,
optionally gzip or deflate; the answer in the request's encoding; partial success for
records with bad ids; 400 with a google.rpc.Status for a malformed payload; 413 past the
size cap (after decompression) or for a body whose decoding alone would take more than
the in-flight budget; 415 for other content types; 503 with Retry-After when the store
is behind or the requests in flight hold the whole budget (bass.ingest.bodies). Each
request is decoded completely, off the event loop, before anything is written, then
written all or nothing: a malformed request stores nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from bass.ingest import otlp_json, wire
from bass.ingest.bodies import Budget, Hold, decoded_size, give_large_buffers_back, read_body
from bass.ingest.forward import Forwarder
from bass.ingest.gate import TelemetryGate
from bass.metrics import INGEST_BUCKETS, Histogram
from bass.store import telemetry
from bass.store.db import Busy, Database
from bass.store.logs import insert_logs

log = logging.getLogger("bass.ingest")

JSON = "application/json"
PROTOBUF = wire.PROTOBUF


def _protobuf() -> Any:
    """The protobuf decoders, loaded at the first OTLP/protobuf request (`wire` says
    why)."""
    from bass.ingest import otlp_proto

    return otlp_proto


def _protobuf_traces(body: bytes) -> otlp_json.Decoded:
    return _protobuf().decode_traces(body)


def _protobuf_logs(body: bytes) -> otlp_json.Decoded:
    return _protobuf().decode_logs(body)


DECODERS = {
    ("traces", JSON): otlp_json.decode_traces,
    ("traces", PROTOBUF): _protobuf_traces,
    ("logs", JSON): otlp_json.decode_logs,
    ("logs", PROTOBUF): _protobuf_logs,
}
STORE: dict[str, Callable[..., Any]] = {
    "traces": telemetry.insert_spans,
    "logs": insert_logs,
}
# how /metrics names an encoding (OTLP/gRPC's is "grpc"), and a request's answer
ENCODINGS = {JSON: "json", PROTOBUF: "protobuf"}
RESULTS = {
    200: "accepted",
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    413: "too_large",
    415: "unsupported",
    499: "disconnected",  # gone before its body was read: never answered
    503: "overloaded",
}


@dataclass
class IngestStats:
    """What the receiver took and refused since start (shown on /api/status)."""

    requests: Counter = field(default_factory=Counter)  # by "traces 200", "logs 400", …
    records: Counter = field(default_factory=Counter)  # spans, log records stored
    rejected: Counter = field(default_factory=Counter)  # records refused for bad ids
    # the same by encoding ("json", "protobuf", "grpc"), for /metrics (bass.metrics)
    by_answer: Counter = field(default_factory=Counter)  # (kind, encoding, result) → requests
    stored_by: Counter = field(default_factory=Counter)  # (kind, encoding) → records
    rejected_by: Counter = field(default_factory=Counter)  # (kind, encoding) → records
    seconds_by: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # → stored

    def answered(self, kind: str, encoding: str, status: int) -> None:
        """A request of `kind` in `encoding` was answered `status` (200: taken)."""
        self.requests[f"{kind} {status}"] += 1
        self.by_answer[kind, encoding, RESULTS.get(status, "other")] += 1

    def took(self, kind: str, encoding: str, stored: int, rejected: int, since: float) -> None:
        """A request was taken: `stored` records stored, `rejected` left out, `since`
        its arrival (time.perf_counter())."""
        self.answered(kind, encoding, 200)
        self.records[kind] += stored
        self.rejected[kind] += rejected
        self.stored_by[kind, encoding] += stored
        self.rejected_by[kind, encoding] += rejected
        seconds = self.seconds_by.get((kind, encoding))
        if seconds is None:
            seconds = self.seconds_by[kind, encoding] = Histogram(INGEST_BUCKETS)
        seconds.observe(time.perf_counter() - since)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "stored": dict(self.records),
            "rejected": dict(self.rejected),
        }


RootSpanListener = Callable[[dict[str, Any]], Awaitable[None]]


class Receiver:
    """The receiver of one `bass serve`: the store it writes to, the destinations it
    forwards to, its counters, and who hears of builds' root spans (`on_root_span`,
    wired by create_app: the orchestrator, which starts and ends builds by them)."""

    def __init__(
        self,
        db: Database,
        *,
        max_body: int,
        max_inflight: int = 256 << 20,
        forwarders: dict[str, list[Forwarder]],
        gate: TelemetryGate | None = None,
    ) -> None:
        self.db = db
        self.gate = gate  # which traces a request may write (None: all)
        self.max_body = max_body
        self.budget = Budget(max_inflight)  # bytes all requests in flight may hold
        give_large_buffers_back()  # so that what the budget frees leaves the process
        self.forwarders = forwarders
        self.stats = IngestStats()
        self.decode_slots = asyncio.Semaphore(4)  # decoding holds the GIL: a few at a time
        self.root_span_listeners: list[RootSpanListener] = []

    def on_root_span(self, listener: RootSpanListener) -> None:
        """Call `listener(span)` for every root span of a bass build that is stored."""
        self.root_span_listeners.append(listener)

    def status(self) -> dict[str, Any]:
        """Counters for /api/status: requests, records, forwarding."""
        return {
            "ingest": self.stats.as_dict(),
            "forwarding": [f.status() for kind in self.forwarders.values() for f in kind],
        }

    async def ingest(self, request: Request, kind: str) -> Response:
        """Receive one OTLP request of `kind` ("traces" or "logs"): decode, store,
        forward, tell of root spans, answer."""
        arrived = time.perf_counter()
        encoding = content_type(request)
        label = ENCODINGS.get(encoding, "other")
        try:
            decode = DECODERS.get((kind, encoding))
            if decode is None:
                raise HTTPException(
                    415, f"unsupported Content-Type {encoding!r}: use {JSON} or {PROTOBUF}"
                )
            with self.budget.hold() as hold:  # everything held is given back on the way out
                try:
                    return await self._ingest(request, kind, encoding, decode, hold, arrived)
                except (HTTPException, ClientDisconnect) as e:
                    raise _bare(e) from None
        except HTTPException as e:  # answered by bass.errors, in the request's encoding
            self.stats.answered(kind, label, e.status_code)
            raise
        except ClientDisconnect:
            self.stats.by_answer[kind, label, RESULTS[499]] += 1  # not on /api/status
            # Gone before its body was read: nobody to answer, and nothing for the error
            # log either (a client could fill it). 499, nginx's word for it, is never sent.
            log.debug("%s: the client hung up before its body was read", kind)
            return Response(status_code=499)

    async def _ingest(
        self,
        request: Request,
        kind: str,
        encoding: str,
        decode: Callable,
        hold: Hold,
        arrived: float,
    ) -> Response:
        body = await read_body(request, self.max_body, hold)
        token = bearer_token(request.headers.get("authorization", ""))
        decoded = await self.take(kind, body, encoding, decode, hold, token, arrived=arrived)
        return _answer(kind, encoding, decoded)

    async def take(
        self,
        kind: str,
        body: bytes,
        encoding: str,
        decode: Callable[[bytes], otlp_json.Decoded],
        hold: Hold,
        bearer: str | None,
        *,
        via: str | None = None,
        arrived: float | None = None,
    ) -> otlp_json.Decoded:
        """Take one received OTLP request of `kind`, whatever carried it (OTLP/HTTP
        here, OTLP/gRPC in bass.ingest.grpc): decode it off the event loop, leave out
        what the gate refuses, store the rest all or nothing, forward, tell of root
        spans; returns what was decoded (its counts make the answer). Refusals are
        HTTPExceptions with the status OTLP/HTTP answers (400, 401, 413, 503). Counted
        as `via` (default: its encoding's name), since `arrived` (time.perf_counter())."""
        arrived = time.perf_counter() if arrived is None else arrived
        async with self.decode_slots:
            decoded = await to_thread.run_sync(self._decode, decode, body, encoding, hold)
        rows = decoded.spans if kind == "traces" else decoded.logs
        refused = await self._refuse(bearer, kind, rows, decoded)
        if refused:
            rows = decoded.spans if kind == "traces" else decoded.logs
        try:
            await self.db.asubmit(STORE[kind], rows)
        except Busy:
            raise HTTPException(
                503, "the store is behind, retry later", {"Retry-After": "1"}
            ) from None
        except sqlite3.OperationalError as e:
            log.warning("store busy, asking the exporter to retry: %s", e)
            raise HTTPException(
                503, "the store is busy, retry later", {"Retry-After": "1"}
            ) from None
        label = via or ENCODINGS.get(encoding, "other")
        self.stats.took(kind, label, len(rows), decoded.rejected, arrived)
        # the body goes on as it was received: only when all of it was taken
        for forwarder in () if refused else self.forwarders.get(kind, ()):
            forwarder.offer(body, encoding, len(rows))
        if kind == "traces":
            for span in decoded.spans:  # a build's root span can start or end a build
                if not span["parent_span_id"] and span["service_name"].startswith("bass:pipeline:"):
                    for listener in self.root_span_listeners:
                        await listener(span)
        return decoded

    async def _refuse(
        self, bearer: str | None, kind: str, rows: list, decoded: otlp_json.Decoded
    ) -> int:
        """Leave out the records of traces this request may not write (bass.ingest.gate),
        counted as rejected; 401 when none may be written for want of a token. Returns
        how many were left out."""
        if self.gate is None or not rows:
            return 0
        trace_of = (lambda r: r["trace_id"]) if kind == "traces" else (lambda r: r[0])
        verdicts = await self.gate.judge((trace_of(r) for r in rows), bearer)
        if not verdicts.refused:
            return 0
        kept = [r for r in rows if verdicts.allows(trace_of(r))]
        if not kept and verdicts.want_token:
            reason = next(iter(verdicts.refused.values()))
            raise HTTPException(401, f"not taken: {reason} (Authorization: Bearer TOKEN)")
        if kind == "traces":
            decoded.spans = kept
        else:
            decoded.logs = kept
        decoded.rejected += len(rows) - len(kept)
        decoded.errors += sorted(set(verdicts.refused.values()))
        return len(rows) - len(kept)

    def _decode(
        self, decode: Callable[[bytes], otlp_json.Decoded], body: bytes, encoding: str, hold: Hold
    ) -> otlp_json.Decoded:
        """Decode in a worker thread, first charging what decoding will hold: the
        parsed form and the rows can be many times the body (bass.ingest.bodies)."""
        need = decoded_size(body, encoding == PROTOBUF)
        if len(body) + need > self.budget.limit:  # could never fit: retrying cannot help
            raise HTTPException(
                413,
                f"decoding this body would hold ~{(len(body) + need) / 2**20:.1f} MiB, more "
                f"than the {self.budget.limit / 2**20:.1f} MiB all OTLP requests may hold at once "
                "(--max-inflight-mb): send smaller batches",
            )
        hold.charge(need)
        try:
            return decode(body)
        except otlp_json.OTLPDecodeError as e:
            raise HTTPException(400, str(e)) from None


def _bare(error: Exception) -> Exception:
    """`error` without its traceback and chained exceptions: their frames refer to the
    body, the decompressed bytes, the parsed payload; dropped here, those go before the
    budget is given back, not after the error answer has been sent."""
    error.__cause__ = error.__context__ = None
    return error.with_traceback(None)


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header (or gRPC metadata), else None."""
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else None


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _answer(kind: str, encoding: str, decoded: otlp_json.Decoded) -> Response:
    if encoding == PROTOBUF:
        proto = _protobuf()
        answer = proto.traces_response if kind == "traces" else proto.logs_response
        return Response(answer(decoded), media_type=PROTOBUF)
    if not decoded.rejected:
        return Response(b"{}", media_type=JSON)
    field_name = "rejectedSpans" if kind == "traces" else "rejectedLogRecords"
    partial = {field_name: str(decoded.rejected), "errorMessage": "; ".join(decoded.errors)}
    return Response(json.dumps({"partialSuccess": partial}).encode(), media_type=JSON)


async def traces(request: Request) -> Response:
    return await request.state.receiver.ingest(request, "traces")


async def logs(request: Request) -> Response:
    return await request.state.receiver.ingest(request, "logs")


async def metrics(request: Request) -> Response:
    """SDKs export metrics by default; accept and drop them rather than fail the SDK."""
    async for _ in request.stream():
        pass
    if content_type(request) == PROTOBUF:
        return Response(b"", media_type=PROTOBUF)  # an empty ExportMetricsServiceResponse
    return Response(b"{}", media_type=JSON)


routes = [
    Route("/v1/traces", traces, methods=["POST"]),
    Route("/v1/logs", logs, methods=["POST"]),
    Route("/v1/metrics", metrics, methods=["POST"]),
]
