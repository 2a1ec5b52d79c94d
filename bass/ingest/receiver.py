"""The OTLP/HTTP receiver: POST /v1/traces and /v1/logs (and /v1/metrics, dropped).

Each request is decoded completely before anything is written, then written in one
transaction: a malformed request stores nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass.ingest import otlp_json
from bass.store import telemetry

log = logging.getLogger("bass.ingest")

DEFAULT_MAX_BODY = 64 << 20  # after decompression


class Rejected(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _status_body(message: str, code: int = 3) -> bytes:
    # google.rpc.Status; code 3 = INVALID_ARGUMENT, 8 = RESOURCE_EXHAUSTED, 14 = UNAVAILABLE
    return json.dumps({"code": code, "message": message}).encode()


def _failure(e: Rejected) -> Response:
    code = {400: 3, 413: 8, 429: 8, 503: 14}.get(e.status, 3)
    return Response(
        _status_body(e.message, code),
        status_code=e.status,
        media_type="application/json",
        headers=e.headers,
    )


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, decompressed, never more than `max_body` bytes of either."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Rejected(415, f"unsupported Content-Type {content_type!r}: use application/json")
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


def _partial(rejected_field: str, decoded: otlp_json.Decoded) -> bytes:
    if not decoded.rejected:
        return b"{}"
    return json.dumps(
        {
            "partialSuccess": {
                rejected_field: str(decoded.rejected),
                "errorMessage": "; ".join(decoded.errors),
            }
        }
    ).encode()


async def _ingest(request: Request, kind: str) -> Response:
    db = request.state.db
    try:
        body = await read_body(request, request.state.max_body)

        def decode_and_store() -> otlp_json.Decoded:
            if kind == "traces":
                decoded = otlp_json.decode_traces(body)
                db.write(telemetry.insert_spans, decoded.spans)
            else:
                decoded = otlp_json.decode_logs(body)
                db.write(telemetry.insert_logs, decoded.logs)
            return decoded

        try:
            decoded = await to_thread.run_sync(decode_and_store)
        except otlp_json.OTLPDecodeError as e:
            raise Rejected(400, str(e)) from None
        except sqlite3.OperationalError as e:
            log.warning("store busy, asking the exporter to retry: %s", e)
            raise Rejected(503, "the store is busy, retry later", {"Retry-After": "1"}) from None
    except Rejected as e:
        return _failure(e)
    if kind == "traces":
        for span in decoded.spans:
            if not span["parent_span_id"]:
                await request.state.orchestrator.root_span_seen(span)
    field = "rejectedSpans" if kind == "traces" else "rejectedLogRecords"
    return Response(_partial(field, decoded), media_type="application/json")


async def traces(request: Request) -> Response:
    return await _ingest(request, "traces")


async def logs(request: Request) -> Response:
    return await _ingest(request, "logs")


async def metrics(request: Request) -> Response:
    """SDKs export metrics by default; accept and drop them rather than fail the SDK."""
    async for _ in request.stream():
        pass
    if "protobuf" in request.headers.get("content-type", ""):
        return Response(b"", media_type="application/x-protobuf")  # an empty response message
    return Response(b"{}", media_type="application/json")


routes = [
    Route("/v1/traces", traces, methods=["POST"]),
    Route("/v1/logs", logs, methods=["POST"]),
    Route("/v1/metrics", metrics, methods=["POST"]),
]
