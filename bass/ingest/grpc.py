"""The OTLP/gRPC receiver: TraceService/Export and LogsService/Export (MetricsService/
Export is accepted and dropped, as on HTTP), served by grpcio's asyncio server on the
event loop of `bass serve`, next to uvicorn (bass.server), on --grpc-port (4317, OTLP/
gRPC's port) of --host.

An SDK left at its defaults exports OTLP/gRPC to port 4317: this is what it talks to.
A request is taken exactly as one over HTTP (bass.ingest.receiver `Receiver.take`): the
same decoding (bass.ingest.otlp_proto), limits (a message of at most --max-body-mb,
after decompression; the bytes it holds charged to the same in-flight budget), gate
(the token comes as metadata `authorization: Bearer TOKEN`, which is what
OTEL_EXPORTER_OTLP_HEADERS sends), store, forwarding and root-span listeners. Answers,
per the OTLP specification's OTLP/gRPC section:

- stored: the Export*ServiceResponse, with `partial_success` when records were left
  out (bad ids, or traces the sender may not write);
- malformed: INVALID_ARGUMENT (not retryable), nothing stored;
- larger than --max-body-mb (gRPC's own check), or a message whose decoding alone would
  need more than the whole budget: RESOURCE_EXHAUSTED without RetryInfo (not retryable);
- the store is behind, or the requests in flight hold the budget: UNAVAILABLE with a
  RetryInfo of one second (retryable, after that delay);
- nothing may be stored for want of a token: UNAUTHENTICATED.

The message classes' generated service stubs (`trace_service_pb2_grpc`) would parse
each request on the event loop before bass sees it; the methods are registered here
by their full names instead, with raw bytes in and out, so that decoding runs in a
worker thread after its cost is charged (as on HTTP), and the body can be forwarded as
it came. gRPC takes a message in whole before handing it over, so it is charged once
received (HTTP charges a body as it streams in); to keep that from adding up, each
method is client-streaming on the server's side (the wire format of a unary call is the
same), and a call that comes while the budget is full is refused before its message is
read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.exceptions import HTTPException

from bass.guard import FORWARDED_HEADERS
from bass.ingest import otlp_proto, wire
from bass.ingest.otlp_json import Decoded
from bass.ingest.receiver import Receiver, bearer_token

log = logging.getLogger("bass.ingest")

TRACES = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
LOGS = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name
METRICS = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name

# OTLP/HTTP's status for a refusal → the OTLP/gRPC code for it
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
ANSWERS: dict[str, Callable[[Decoded], bytes]] = {
    "traces": otlp_proto.traces_response,
    "logs": otlp_proto.logs_response,
}
DECODERS: dict[str, Callable[[bytes], Decoded]] = {
    "traces": otlp_proto.decode_traces,
    "logs": otlp_proto.decode_logs,
}
GRACE_SECONDS = 2.0  # requests still running when bass stops get this long to end


def address(host: str, port: int) -> str:
    """host:port as gRPC binds it (an IPv6 address in brackets)."""
    host = host.strip("[]") or "0.0.0.0"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start(
    receiver: Callable[[], Receiver | None],
    host: str,
    port: int,
    max_body: int,
    local_only: bool = False,
) -> grpc.aio.Server | None:
    """Serve OTLP/gRPC on host:port, on the running event loop, for the Receiver that
    `receiver()` returns (None until the app has made it: such requests are answered
    UNAVAILABLE); None (with a warning: HTTP still serves) when the port cannot be had."""
    where = address(host, port)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_body),
            # Never share the port with another process (gRPC's default on Linux): a
            # second bass serve, or a Collector, would silently get half the requests.
            ("grpc.so_reuseport", 0),
        ]
    )
    service = GrpcReceiver(receiver, local_only)
    for name, kind in ((TRACES, "traces"), (LOGS, "logs"), (METRICS, "metrics")):
        handler = grpc.stream_unary_rpc_method_handler(service.method(kind))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"Export": handler}),)
        )
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as e:  # grpcio raises where older versions returned 0
        log.debug("binding %s: %s", where, e)
        bound = 0
    if not bound:
        log.warning(
            "OTLP/gRPC is not served: cannot listen on %s (is the port in use?); "
            "OTLP/HTTP still is. Pick another with --grpc-port, or 0 for none",
            where,
        )
        await server.stop(None)
        return None
    await server.start()
    log.info("OTLP/gRPC receiver on %s", address(host, bound))
    return server


class GrpcReceiver:
    """The Export methods of the three OTLP services, for one Receiver."""

    def __init__(self, receiver: Callable[[], Receiver | None], local_only: bool = False) -> None:
        self.receiver = receiver
        # serving this machine alone: what a proxy forwarded is refused, as over HTTP
        # (bass.guard; a proxy's gRPC carries its forwarding headers as metadata)
        self.local_only = local_only

    def method(self, kind: str) -> Callable[..., Any]:
        async def export(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
            return await self.export(kind, context)

        return export

    async def export(self, kind: str, context: grpc.aio.ServicerContext) -> bytes:
        arrived = time.perf_counter()
        metadata = context.invocation_metadata() or ()
        if self.local_only and any(k.lower() in FORWARDED_HEADERS for k, _ in metadata):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "forwarded by a proxy to a bass serving this machine alone: behind a proxy, "
                "run bass serve with --forwarded-allow-ips, a users file and worker keys",
            )
        receiver = self.receiver()
        if receiver is None:  # the app is starting
            await _refuse(context, 503, "bass is starting, retry later", retry_after=1)
        budget = receiver.budget
        if kind != "metrics" and budget.used >= budget.limit:  # no room: not even read
            receiver.stats.answered(kind, "grpc", 503)
            await _refuse(context, 503, _full(budget.used, budget.limit), retry_after=1)
        body = await context.read()
        if body is grpc.aio.EOF:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        if kind == "metrics":  # SDKs export metrics by default: taken, and dropped
            return b""  # an empty ExportMetricsServiceResponse
        token = None
        for key, value in metadata:
            if key.lower() == "authorization" and isinstance(value, str):
                token = bearer_token(value)
                break
        # Shielded: a client that cancels (or whose deadline passes) does not cut a
        # request short once read; it is taken whole or refused, as over HTTP, and what
        # it holds of the budget is given back when it is done.
        taking = asyncio.ensure_future(_take(receiver, kind, body, token, arrived))
        del body
        answer = await asyncio.shield(taking)
        if isinstance(answer, HTTPException):
            retry = answer.headers.get("Retry-After") if answer.headers else None
            await _refuse(context, answer.status_code, answer.detail, retry_after=retry)
        assert isinstance(answer, bytes)
        return answer


async def _take(
    receiver: Receiver, kind: str, body: bytes, token: str | None, arrived: float
) -> bytes | HTTPException:
    """The answer to a request as Receiver.take has it taken, or its refusal."""
    try:
        with receiver.budget.hold() as hold:  # what it holds is given back on the way out
            hold.charge(len(body))
            decoded = await receiver.take(kind, body, otlp_proto.PROTOBUF, DECODERS[kind],
                                          hold, token, via="grpc", arrived=arrived)  # fmt: skip
            del body
            return ANSWERS[kind](decoded)
    except HTTPException as e:
        receiver.stats.answered(kind, "grpc", e.status_code)
        e.__cause__ = e.__context__ = None  # no frames that hold the body
        return e.with_traceback(None)


async def _refuse(
    context: grpc.aio.ServicerContext,
    status: int,
    message: str,
    *,
    retry_after: str | int | None = None,
) -> NoReturn:
    """End the call with the gRPC code for OTLP/HTTP's `status`; a retryable refusal
    carries RetryInfo (`retry_after` seconds), both as google.rpc.Status details
    (grpc-status-details-bin, which most SDKs read) and as google.rpc.retryinfo-bin
    (which OpenTelemetry's Python exporter reads)."""
    code = CODES.get(status, grpc.StatusCode.INTERNAL)
    metadata: tuple[tuple[str, bytes], ...] = ()
    if retry_after is not None and code is grpc.StatusCode.UNAVAILABLE:
        seconds = int(retry_after) if str(retry_after).isdigit() else 1
        info = retry_info(seconds)
        metadata = (
            ("grpc-status-details-bin", status_with_details(code.value[0], message, info)),
            ("google.rpc.retryinfo-bin", info),
        )
    await context.abort(code, message, metadata)
    raise AssertionError("ServicerContext.abort returned")  # it raises, always


def retry_info(seconds: int) -> bytes:
    """A google.rpc.RetryInfo (retry_delay = 1), encoded by hand like otlp_proto.status."""
    delay = duration_pb2.Duration(seconds=seconds).SerializeToString()
    return b"\x0a" + wire.varint(len(delay)) + delay


def status_with_details(code: int, message: str, retry: bytes) -> bytes:
    """A google.rpc.Status (code = 1, message = 2) with one detail (= 3): RetryInfo."""
    detail = any_pb2.Any(type_url=RETRY_INFO_TYPE, value=retry).SerializeToString()
    return wire.status(code, message) + b"\x1a" + wire.varint(len(detail)) + detail


def _full(used: int, limit: int) -> str:
    return f"the server holds {used} bytes of OTLP requests, {limit} at most: retry later"
