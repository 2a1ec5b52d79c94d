"""The OTLP/HTTP receiver: POST /v1/traces and /v1/logs (and /v1/metrics, dropped).

Per the OTLP specification: `application/json` or `application/x-protobuf` bodies,
optionally gzip or deflate; the answer in the request's encoding; partial success for
records with bad ids; 400 with a google.rpc.Status for a malformed payload; 413 past the
size cap (after decompression); 415 for other content types; 503 with Retry-After when
the store is behind. Each request is decoded completely before anything is written,
then written all or nothing: a malformed request stores nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass.ingest import otlp_json, otlp_proto
from bass.ingest.forward import Forwarder
from bass.store import telemetry
from bass.store.db import Busy, Database

log = logging.getLogger("bass.ingest")

JSON = "application/json"
PROTOBUF = otlp_proto.PROTOBUF
DECODERS = {
    ("traces", JSON): otlp_json.decode_traces,
    ("traces", PROTOBUF): otlp_proto.decode_traces,
    ("logs", JSON): otlp_json.decode_logs,
    ("logs", PROTOBUF): otlp_proto.decode_logs,
}
STORE: dict[str, Callable[..., Any]] = {
    "traces": telemetry.insert_spans,
    "logs": telemetry.insert_logs,
}


@dataclass
class IngestStats:
    """What the receiver took and refused since start (shown on /api/status)."""

    requests: Counter = field(default_factory=Counter)  # by "traces 200", "logs 400", …
    records: Counter = field(default_factory=Counter)  # spans, log records stored
    rejected: Counter = field(default_factory=Counter)  # records refused for bad ids

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
    ) -> None:
        self.db = db
        self.max_body = max_body
        self.max_inflight = max_inflight  # TODO(issue 9): enforce across requests
        self.forwarders = forwarders
        self.stats = IngestStats()
        self.decode_slots = asyncio.Semaphore(4)  # decoding holds the GIL: a few at a time
        self.root_span_listeners: list[RootSpanListener] = []

    def on_root_span(self, listener: RootSpanListener) -> None:
        """Call `listener(span)` for every root span of a bass build that is stored."""
        self.root_span_listeners.append(listener)

    async def build_finished(self, build: dict[str, Any]) -> None:
        """A build ended: its spans that never reported an end (worker lost, build
        killed) end with it, with its status, instead of staying "running" forever."""
        end_ns = int((build["finished_at"] or 0) * 1e9)
        await self.db.awrite(
            telemetry.close_open_spans, build["trace_id"], end_ns=end_ns, status=build["state"]
        )

    def status(self) -> dict[str, Any]:
        """Counters for /api/status: requests, records, forwarding."""
        return {
            "ingest": self.stats.as_dict(),
            "forwarding": [f.status() for kind in self.forwarders.values() for f in kind],
        }

    async def ingest(self, request: Request, kind: str) -> Response:
        encoding = content_type(request)
        try:
            decode = DECODERS.get((kind, encoding))
            if decode is None:
                raise HTTPException(
                    415, f"unsupported Content-Type {encoding!r}: use {JSON} or {PROTOBUF}"
                )
            body = await read_body(request, self.max_body)
            async with self.decode_slots:
                try:
                    decoded = await to_thread.run_sync(decode, body)
                except otlp_json.OTLPDecodeError as e:
                    raise HTTPException(400, str(e)) from None
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
        except HTTPException as e:  # answered by bass.errors, in the request's encoding
            self.stats.requests[f"{kind} {e.status_code}"] += 1
            raise
        self.stats.requests[f"{kind} 200"] += 1
        self.stats.records[kind] += len(rows)
        self.stats.rejected[kind] += decoded.rejected
        for forwarder in self.forwarders.get(kind, ()):
            forwarder.offer(body, encoding, len(rows))
        if kind == "traces":
            for span in decoded.spans:  # a build's root span can start or end a build
                if not span["parent_span_id"] and span["service_name"].startswith("bass:pipeline:"):
                    for listener in self.root_span_listeners:
                        await listener(span)
        return _answer(kind, encoding, decoded)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, decompressed, never more than `max_body` bytes of either."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise HTTPException(413, f"body larger than {max_body} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return bytes(raw)
    if encoding not in ("gzip", "deflate"):
        raise HTTPException(415, f"unsupported Content-Encoding {encoding!r}")
    # gzip, or deflate with a zlib header; a raw deflate stream is accepted too.
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    try:
        try:
            return _inflate(bytes(raw), wbits, max_body)
        except zlib.error:
            if encoding != "deflate":
                raise
            return _inflate(bytes(raw), -zlib.MAX_WBITS, max_body)
    except zlib.error as e:
        raise HTTPException(400, f"body is not valid {encoding}: {e}") from None


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decompress every member (a gzip body may be several concatenated), bounded."""
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise HTTPException(413, f"decompressed body larger than {limit} bytes")
        if not inflater.eof:
            raise zlib.error("truncated stream")
        data = inflater.unused_data
        if not data:
            return bytes(out)


def _answer(kind: str, encoding: str, decoded: otlp_json.Decoded) -> Response:
    if encoding == PROTOBUF:
        answer = otlp_proto.traces_response if kind == "traces" else otlp_proto.logs_response
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
