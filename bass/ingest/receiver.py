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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass.ingest import otlp_json, otlp_proto
from bass.store import telemetry
from bass.store.db import Busy

log = logging.getLogger("bass.ingest")

DEFAULT_MAX_BODY = 32 << 20  # after decompression
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
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


class Rejected(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _failure(e: Rejected, encoding: str) -> Response:
    # google.rpc.Status codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE
    code = {413: 8, 429: 8, 503: 14}.get(e.status, 3)
    if encoding == PROTOBUF:
        body = otlp_proto.status(code, e.message)
    else:
        body = json.dumps({"code": code, "message": e.message}).encode()
    return Response(body, status_code=e.status, media_type=encoding, headers=e.headers)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, decompressed, never more than `max_body` bytes of either."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise Rejected(413, f"body larger than {max_body} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return bytes(raw)
    if encoding not in ("gzip", "deflate"):
        raise Rejected(415, f"unsupported Content-Encoding {encoding!r}")
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
        raise Rejected(400, f"body is not valid {encoding}: {e}") from None


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decompress every member (a gzip body may be several concatenated), bounded."""
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise Rejected(413, f"decompressed body larger than {limit} bytes")
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


async def _ingest(request: Request, kind: str) -> Response:
    state = request.state
    encoding = content_type(request)
    stats: IngestStats = state.ingest_stats
    try:
        decode = DECODERS.get((kind, encoding))
        if decode is None:
            raise Rejected(415, f"unsupported Content-Type {encoding!r}: use {JSON} or {PROTOBUF}")
        body = await read_body(request, state.max_body)
        async with state.decode_slots:  # decoding holds the GIL: a few at a time is enough
            try:
                decoded = await to_thread.run_sync(decode, body)
            except otlp_json.OTLPDecodeError as e:
                raise Rejected(400, str(e)) from None
        rows = decoded.spans if kind == "traces" else decoded.logs
        try:
            await state.db.asubmit(STORE[kind], rows)
        except Busy:
            raise Rejected(503, "the store is behind, retry later", {"Retry-After": "1"}) from None
        except sqlite3.OperationalError as e:
            log.warning("store busy, asking the exporter to retry: %s", e)
            raise Rejected(503, "the store is busy, retry later", {"Retry-After": "1"}) from None
    except Rejected as e:
        stats.requests[f"{kind} {e.status}"] += 1
        return _failure(e, PROTOBUF if encoding == PROTOBUF else JSON)
    stats.requests[f"{kind} 200"] += 1
    stats.records[kind] += len(rows)
    stats.rejected[kind] += decoded.rejected
    for forwarder in state.forwarders.get(kind, ()):
        forwarder.offer(body, encoding, len(rows))
    if kind == "traces":
        for span in decoded.spans:  # a build's root span can start or end a build
            if not span["parent_span_id"] and span["service_name"].startswith("bass:pipeline:"):
                await state.orchestrator.root_span_seen(span)
    return _answer(kind, encoding, decoded)


async def traces(request: Request) -> Response:
    return await _ingest(request, "traces")


async def logs(request: Request) -> Response:
    return await _ingest(request, "logs")


async def metrics(request: Request) -> Response:
    """SDKs export metrics by default; accept and drop them rather than fail the SDK."""
    async for _ in request.stream():
        pass
    if content_type(request) == PROTOBUF:
        return Response(b"", media_type=PROTOBUF)  # an empty ExportMetricsServiceResponse
    return Response(b"{}", media_type=JSON)


def decode_slots() -> asyncio.Semaphore:
    return asyncio.Semaphore(4)


routes = [
    Route("/v1/traces", traces, methods=["POST"]),
    Route("/v1/logs", logs, methods=["POST"]),
    Route("/v1/metrics", metrics, methods=["POST"]),
]
