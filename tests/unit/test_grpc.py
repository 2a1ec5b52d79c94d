"""The OTLP/gRPC receiver (bass.ingest.grpc) of a real `bass serve`, called by a real
grpc.aio client through opentelemetry-proto's generated stubs (and, for tokens, by the
OpenTelemetry SDK's gRPC exporter): what it stores is what OTLP/HTTP stores, refusals
come as the OTLP specification's gRPC codes, and a build's root span does over gRPC
what it does over HTTP."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import urllib.request
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from bass.auth import Users
from bass.store import logs
from tests.conftest import Server, free_port, http
from tests.e2e.waiting import wait_until
from tests.unit.fake_destination import FakeDestination

TRACES_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TRACE_A = bytes.fromhex("5b8efff798038103d269b633813fc60c")
TRACE_B = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
LINKED_TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
ROOT, CHILD, GRANDCHILD = bytes.fromhex("eee19b7ec3c1b174"), b"\x01" * 8, b"\x02" * 8
T0 = 1_700_000_000_000_000_000


@dataclass
class Answer:
    code: grpc.StatusCode
    details: str
    response: Any  # the response message, when OK
    trailers: dict[str, Any]


def export(
    target: str,
    request: Any,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    compression: grpc.Compression | None = None,
) -> Answer:
    """One Export call over a new grpc.aio channel: `request` is a message of one of the
    three services (sent through its generated stub), or bytes (sent as they are)."""

    async def call() -> Answer:
        async with grpc.aio.insecure_channel(target) as channel:
            if isinstance(request, bytes):
                method = channel.unary_unary(TRACES_EXPORT)
            elif isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                method = trace_service_pb2_grpc.TraceServiceStub(channel).Export
            elif isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
                method = logs_service_pb2_grpc.LogsServiceStub(channel).Export
            else:
                method = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export
            rpc = method(request, metadata=metadata, compression=compression, timeout=30)
            try:
                response = await rpc
            except grpc.aio.AioRpcError as e:
                return Answer(e.code(), e.details() or "", None, dict(e.trailing_metadata() or ()))
            trailers = dict(await rpc.trailing_metadata() or ())
            return Answer(grpc.StatusCode.OK, "", response, trailers)

    return asyncio.run(call())


def serve_grpc(serve: Any, *extra: str, pipelines: dict | None = None, **kwargs: Any) -> Server:
    """A bass serve with its OTLP/gRPC receiver on a free port (`server.grpc`)."""
    port = free_port()
    server = serve(pipelines or {}, extra=["--grpc-port", str(port), *extra], **kwargs)
    server.grpc = f"127.0.0.1:{port}"
    return server


def kv(key: str, value: Any) -> common_pb2.KeyValue:
    item = common_pb2.KeyValue(key=key)
    set_value(item.value, value)
    return item


def set_value(target: common_pb2.AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        for item in value:
            set_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.values.extend(kv(k, v) for k, v in value.items())
    else:
        target.string_value = value


ATTRIBUTES = {
    "str": "héllo ✓", "int": -7, "big": 2**62, "bool": True, "float": 0.25,
    "bytes": b"\x00\xff", "list": ["a", 1, 2.5, False], "map": {"k": "v", "n": [1]},
}  # fmt: skip


def spans_request(
    trace_id: bytes, *, service: str = "grpc-parity", scope: str = "tests"
) -> trace_service_pb2.ExportTraceServiceRequest:
    """Spans of one trace with every kind of field, and one with a bad id."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [kv("service.name", service), kv("host.name", "builder-7"), kv("res.map", {"a": 1})]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = scope, "1.2.3"
    root = scope_spans.spans.add(trace_id=trace_id, span_id=ROOT, name="root", kind=2,
                                 start_time_unix_nano=T0, end_time_unix_nano=T0 + 9000)  # fmt: skip
    root.attributes.extend(kv(k, v) for k, v in ATTRIBUTES.items())
    child = scope_spans.spans.add(trace_id=trace_id, span_id=CHILD, parent_span_id=ROOT,
                                  name="child", kind=3, start_time_unix_nano=T0 + 10,
                                  end_time_unix_nano=T0 + 500)  # fmt: skip
    child.status.code, child.status.message = trace_pb2.Status.STATUS_CODE_ERROR, "it broke"
    event = child.events.add(time_unix_nano=T0 + 20, name="exception")
    event.attributes.extend([kv("exception.message", "boom"), kv("n", 3)])
    link = child.links.add(trace_id=LINKED_TRACE, span_id=b"\x03" * 8)
    link.attributes.append(kv("link.kind", "follows"))
    scope_spans.spans.add(trace_id=trace_id, span_id=GRANDCHILD, parent_span_id=CHILD,
                          name="running", start_time_unix_nano=T0 + 30)  # fmt: skip
    scope_spans.spans.add(trace_id=b"\x00" * 16, span_id=b"\x04" * 8, name="bad ids")
    return request


def logs_request(trace_id: bytes) -> logs_service_pb2.ExportLogsServiceRequest:
    """Log records of one trace (string, structured and empty bodies), one with a bad id."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", "grpc-parity"))
    records = resource_logs.scope_logs.add().log_records
    first = records.add(time_unix_nano=T0 + 1, severity_number=9, severity_text="INFO",
                        trace_id=trace_id, span_id=CHILD)  # fmt: skip
    first.body.string_value = "hello from a step ✓"
    first.attributes.append(kv("log.iostream", "stdout"))
    second = records.add(observed_time_unix_nano=T0 + 2, severity_number=17,
                         trace_id=trace_id, span_id=CHILD)  # fmt: skip
    set_value(second.body, {"event": "done", "ok": False})
    records.add(time_unix_nano=T0 + 3, trace_id=trace_id, span_id=ROOT)
    records.add(time_unix_nano=T0 + 4, trace_id=trace_id, span_id=b"\x05" * 7)  # bad span id
    return request


def post_protobuf(server: Server, path: str, message: Any, response_type: Any) -> Any:
    request = urllib.request.Request(
        server.url + path, data=message.SerializeToString(), method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return response_type.FromString(response.read())


def rows_of(server: Server, table: str, trace_id: bytes, leave_out: tuple[str, ...]) -> list:
    """The rows of `table` for a trace, without the columns `leave_out`, in stored order."""
    conn = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    logs.attach_view(conn)  # log records as rows of `logs`
    try:
        order = "span_id" if table == "spans" else "id"
        found = conn.execute(
            f"SELECT * FROM {table} WHERE trace_id = ? ORDER BY {order}", (trace_id.hex(),)
        ).fetchall()
    finally:
        conn.close()
    return [{k: row[k] for k in row.keys() if k not in leave_out} for row in found]


def count(server: Server, table: str) -> int:
    return server.query(f"SELECT COUNT(*) FROM {table}")[0][0]


# -- what is stored ----------------------------------------------------------------------


def test_grpc_and_http_store_the_same_rows(serve: Any) -> None:
    server = serve_grpc(serve)
    over_grpc = export(server.grpc, spans_request(TRACE_A))
    over_http = post_protobuf(server, "/v1/traces", spans_request(TRACE_B),
                              trace_service_pb2.ExportTraceServiceResponse)  # fmt: skip
    assert over_grpc.code == grpc.StatusCode.OK, over_grpc
    # the span with bad ids is left out, and said so, alike
    assert over_grpc.response == over_http
    assert over_http.partial_success.rejected_spans == 1
    assert "invalid traceId" in over_http.partial_success.error_message

    logs_grpc = export(server.grpc, logs_request(TRACE_A), compression=grpc.Compression.Gzip)
    logs_http = post_protobuf(server, "/v1/logs", logs_request(TRACE_B),
                              logs_service_pb2.ExportLogsServiceResponse)  # fmt: skip
    assert logs_grpc.code == grpc.StatusCode.OK, logs_grpc
    assert logs_grpc.response == logs_http
    assert logs_http.partial_success.rejected_log_records == 1

    spans_a = rows_of(server, "spans", TRACE_A, ("trace_id",))
    assert len(spans_a) == 3
    assert spans_a == rows_of(server, "spans", TRACE_B, ("trace_id",))
    logs_a = rows_of(server, "logs", TRACE_A, ("trace_id", "id"))
    assert len(logs_a) == 3
    assert logs_a == rows_of(server, "logs", TRACE_B, ("trace_id", "id"))
    # and they read back through the API, every field
    status, tree = http("GET", f"{server.url}/api/traces/{TRACE_A.hex()}")
    assert status == 200, tree
    (root,) = tree["spans"]
    assert root["name"] == "root" and root["attributes"]["bytes"] == "AP8="
    assert root["attributes"]["map"] == {"k": "v", "n": [1]}
    (child,) = root["children"]
    assert child["status_message"] == "it broke" and child["events"][0]["name"] == "exception"
    assert child["links"][0]["trace_id"] == LINKED_TRACE.hex()


def test_metrics_are_taken_and_dropped(serve: Any) -> None:
    server = serve_grpc(serve)
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    request.resource_metrics.add().scope_metrics.add().metrics.add(name="requests")
    answer = export(server.grpc, request)
    assert answer.code == grpc.StatusCode.OK, answer
    assert answer.response == metrics_service_pb2.ExportMetricsServiceResponse()


def test_what_grpc_stores_is_forwarded_as_it_came(serve: Any) -> None:
    destination = FakeDestination()
    try:
        target = f"http://127.0.0.1:{destination.port}/v1/traces"
        server = serve_grpc(serve, "--forward-traces", target)
        request = spans_request(TRACE_A)
        assert export(server.grpc, request).code == grpc.StatusCode.OK
        received = wait_until(lambda: destination.received, "the spans to be forwarded",
                              context=server.output)  # fmt: skip
        assert received[0].path == "/v1/traces"
        assert received[0].body == request.SerializeToString()
    finally:
        destination.close()


# -- refusals, as OTLP/gRPC codes --------------------------------------------------------


def test_a_malformed_request_is_invalid_argument_and_stores_nothing(serve: Any) -> None:
    server = serve_grpc(serve)
    whole = spans_request(TRACE_A).SerializeToString()
    for body in (whole[:-3], b"\x0a\xff\xff\xff\xff\x0f", whole + b"\x0f"):
        answer = export(server.grpc, body)
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
        assert "not a valid ExportTraceServiceRequest" in answer.details
        assert "google.rpc.retryinfo-bin" not in answer.trailers  # not to be retried
    assert count(server, "spans") == 0
    # a bad timestamp is malformed too: nothing of the request is stored
    request = spans_request(TRACE_A)
    request.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano = 2**64 - 1
    answer = export(server.grpc, request)
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
    assert count(server, "spans") == 0


def test_too_large_is_resource_exhausted_and_not_retryable(serve: Any) -> None:
    server = serve_grpc(serve, "--max-body-mb", "1", "--max-inflight-mb", "4")
    large = spans_request(TRACE_A)
    large.resource_spans[0].scope_spans[0].spans[0].name = "x" * (1 << 20)
    # past --max-body-mb as sent, and after decompression (a gzip of 1 MiB of x's is small)
    for compression in (None, grpc.Compression.Gzip):
        answer = export(server.grpc, large, compression=compression)
        assert answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED, answer
        assert "larger than max" in answer.details
        assert "google.rpc.retryinfo-bin" not in answer.trailers
    # within it, but decoding it would need more than the whole in-flight budget
    many = trace_service_pb2.ExportTraceServiceRequest()
    spans = many.resource_spans.add().scope_spans.add().spans
    for n in range(20_000):
        spans.add(trace_id=TRACE_A, span_id=(n + 1).to_bytes(8, "big"), name="s")
    assert many.ByteSize() < 1 << 20
    answer = export(server.grpc, many)
    assert answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED, answer
    assert "--max-inflight-mb" in answer.details
    assert "google.rpc.retryinfo-bin" not in answer.trailers
    assert count(server, "spans") == 0
    requests = http("GET", f"{server.url}/api/status")[1]["ingest"]["requests"]
    assert requests.get("traces 413") == 1  # gRPC's own refusals never reach bass


def test_overload_is_unavailable_with_retry_info_then_taken(serve: Any) -> None:
    limit = 1 << 20
    server = serve_grpc(serve, "--max-body-mb", "2", "--max-inflight-mb", "1")
    small = spans_request(TRACE_A)
    # An OTLP/HTTP upload that stops short holds what it sent of the budget: all but a
    # few bytes of it, so that the next request cannot be taken.
    port = int(server.url.rsplit(":", 1)[1])
    upload = socket.create_connection(("127.0.0.1", port))
    try:
        upload.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-protobuf\r\n"
            + f"Content-Length: {limit + 1000}\r\n\r\n".encode()
            + b"\x00" * (limit - 100)
        )
        answer = wait_until(
            lambda: (a := export(server.grpc, small)).code == grpc.StatusCode.UNAVAILABLE and a,
            "the held budget to refuse a gRPC export", context=server.output,
        )  # fmt: skip
    finally:
        upload.close()
    assert "retry later" in answer.details
    # RetryInfo, as google.rpc.Status details and as the Python exporter reads it
    details = status_pb2.Status.FromString(answer.trailers["grpc-status-details-bin"])
    assert details.code == grpc.StatusCode.UNAVAILABLE.value[0]
    info = error_details_pb2.RetryInfo()
    assert details.details[0].Unpack(info)
    assert info.retry_delay.seconds == 1
    bare = answer.trailers["google.rpc.retryinfo-bin"]
    assert error_details_pb2.RetryInfo.FromString(bare) == info
    # the upload gone, its share of the budget is back: the retry is taken
    wait_until(lambda: export(server.grpc, small).code == grpc.StatusCode.OK,
               "the budget to be given back", context=server.output)  # fmt: skip
    assert len(rows_of(server, "spans", TRACE_A, ())) == 3


# -- who may write -----------------------------------------------------------------------


def test_a_network_server_refuses_telemetry_without_a_token(
    serve: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    home = tmp_path / "serve0"  # the serve fixture's first home
    home.mkdir()
    users = Users(home / "users.json")
    users.add("ann", "a long password")
    server = serve_grpc(serve, "--host", "0.0.0.0")
    other = spans_request(TRACE_A, service="checkout")
    for metadata in ((), (("authorization", "Bearer not-a-token"),)):
        answer = export(server.grpc, other, metadata=metadata)
        assert answer.code == grpc.StatusCode.UNAUTHENTICATED, answer
        assert "not taken" in answer.details
    assert count(server, "spans") == 0
    # a person's API token, as OTEL_EXPORTER_OTLP_HEADERS gives it to the SDK's exporter
    token = users.new_token("ann")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{token}")
    exporter = OTLPSpanExporter(endpoint=f"http://{server.grpc}", insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("tests").start_as_current_span("with a token") as sdk_span:
        trace_id = sdk_span.get_span_context().trace_id
    provider.shutdown()
    names = server.query("SELECT name FROM spans WHERE trace_id = ?", f"{trace_id:032x}")
    assert names == [("with a token",)], server.output()


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded", "x-real-ip"])
def test_a_proxied_call_to_a_bass_serving_this_machine_alone_is_refused(
    serve: Any, header: str
) -> None:
    """As over HTTP (bass.guard): bound to loopback with no proxy declared, a call a proxy
    forwarded (nginx's grpc_pass sets X-Forwarded-For) must not pass as this machine's."""
    server = serve_grpc(serve)
    answer = export(server.grpc, spans_request(TRACE_A), metadata=((header, "203.0.113.7"),))
    assert answer.code == grpc.StatusCode.PERMISSION_DENIED, answer
    assert "--forwarded-allow-ips" in answer.details
    assert count(server, "spans") == 0
    assert export(server.grpc, spans_request(TRACE_A)).code == grpc.StatusCode.OK  # its own


# -- builds ------------------------------------------------------------------------------


def test_a_builds_root_span_over_grpc_starts_and_ends_it_as_over_http(serve: Any) -> None:
    """A build run by hand (`python3 job.py` against the server) has no build until its
    root span arrives: the builder's root span registers it, its end ends it."""
    pipelines = {"demo": {"repository": "https://example.com/demo.git", "exec": ["./job.py"]}}
    server = serve_grpc(serve, pipelines=pipelines)

    def root(trace_id: bytes, end: int) -> trace_service_pb2.ExportTraceServiceRequest:
        request = trace_service_pb2.ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(kv("service.name", "bass:pipeline:demo"))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "bass_builder"
        span = scope_spans.spans.add(trace_id=trace_id, span_id=ROOT, name="demo",
                                     start_time_unix_nano=T0, end_time_unix_nano=end)  # fmt: skip
        if end:
            span.attributes.append(kv("bass.status", "failed"))
            span.status.code, span.status.message = trace_pb2.Status.STATUS_CODE_ERROR, "red"
        return request

    def over_http(request: Any) -> None:
        post_protobuf(server, "/v1/traces", request, trace_service_pb2.ExportTraceServiceResponse)

    def over_grpc(request: Any) -> None:
        assert export(server.grpc, request).code == grpc.StatusCode.OK

    seen = []
    for number, (send, trace_id) in enumerate(((over_grpc, TRACE_A), (over_http, TRACE_B)), 1):
        send(root(trace_id, 0))
        started = server.build("demo", number)
        assert started["build"]["state"] == "running", started
        assert started["build"]["trace_id"] == trace_id.hex()
        send(root(trace_id, T0 + 5_000_000_000))
        ended = server.build("demo", number)
        assert ended["build"]["state"] == "failed", ended
        assert [s["name"] for s in ended["spans"]] == ["demo"]
        seen.append({k: v for k, v in ended["build"].items() if k not in ("id", "number",
                     "trace_id", "queued_at", "finished_at")})  # fmt: skip
    assert seen[0] == seen[1]
    assert seen[0]["trigger"] == "local" and seen[0]["root_span_id"] == ROOT.hex()


# -- the port ----------------------------------------------------------------------------


def test_a_taken_port_is_not_shared_and_zero_serves_none(serve: Any) -> None:
    first = serve_grpc(serve)
    grpc_port = first.grpc.rsplit(":", 1)[1]
    second = serve({}, extra=["--grpc-port", grpc_port])  # HTTP still serves
    assert "OTLP/gRPC is not served: cannot listen on 127.0.0.1:" in second.output()
    for _ in range(8):  # every connection lands on the first server, none on the second
        assert export(first.grpc, spans_request(TRACE_A)).code == grpc.StatusCode.OK
    assert count(first, "spans") == 3 and count(second, "spans") == 0
    none = serve({}, extra=["--grpc-port", "0"])
    assert "OTLP/gRPC" not in none.output()
    assert http("GET", f"{none.url}/healthz")[0] == 200
