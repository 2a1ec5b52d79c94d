"""The OTLP/HTTP receiver: POST /v1/traces, /v1/logs and /v1/metrics on the real app."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import App
from tests.unit.helpers import as_body, log_record, logs_payload, span, traces_payload

DATA = Path(__file__).parent / "data"
TRACE = "5b8efff798038103d269b633813fc60c"
TRACE2 = "0af7651916cd43dd8448eb211c80319c"
ROOT = "eee19b7ec3c1b174"
CHILD = "eee19b7ec3c1b175"
JSON = {"Content-Type": "application/json"}


def post(app: App, path: str, body: bytes, **headers: str) -> Any:
    return app.client.post(path, content=body, headers={**JSON, **headers})


def seed(app: App) -> None:
    """One span and one log already stored, so 'nothing stored' is not 'empty table'."""
    app.send_spans(span(TRACE2, ROOT, name="seed", end=5), service="other")
    app.send_logs(log_record(TRACE2, ROOT, "seed"), service="other")


def test_traces_example_is_stored(app: App) -> None:
    response = post(app, "/v1/traces", (DATA / "otlp-trace.json").read_bytes())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    (row,) = app.rows("SELECT * FROM spans")
    assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (
        TRACE,
        ROOT,
        "eee19b7ec3c1b173",
    )
    assert (row["name"], row["kind"], row["service_name"]) == ("I'm a server span", 2, "my.service")
    assert (row["start_ns"], row["end_ns"]) == (1544712660000000000, 1544712661000000000)
    assert json.loads(row["attributes"]) == {"my.span.attr": "some value"}


def test_logs_example_is_stored(app: App) -> None:
    response = post(app, "/v1/logs", (DATA / "otlp-logs.json").read_bytes())
    assert (response.status_code, response.json()) == (200, {})
    (row,) = app.rows("SELECT * FROM logs")
    assert (row["trace_id"], row["span_id"], row["body"]) == (TRACE, ROOT, "Example log record")
    assert (row["severity_number"], row["severity_text"]) == (10, "Information")
    assert json.loads(row["attributes"])["map.attribute"] == {"some.map.key": "some value"}


def test_lone_surrogates_are_stored_as_replacement_characters(app: App) -> None:
    """JSON can spell a lone surrogate ("\\ud800"); UTF-8, and so SQLite, cannot hold
    one: it is stored as U+FFFD rather than failing the request."""
    log = log_record(TRACE, ROOT, "bad \ud800 body")
    spans = traces_payload(span(TRACE, ROOT, name="name \udfff", end=5))
    for path, payload in (("/v1/logs", logs_payload(log)), ("/v1/traces", spans)):
        body = json.dumps(payload).encode()
        assert b"\\ud" in body
        assert post(app, path, body).status_code == 200
    assert [r["body"] for r in app.rows("SELECT body FROM logs")] == ["bad \ufffd body"]
    assert [r["name"] for r in app.rows("SELECT name FROM spans")] == ["name \ufffd"]


def test_content_type_parameters_are_accepted(app: App) -> None:
    body = as_body(traces_payload(span(TRACE, ROOT)))
    response = post(app, "/v1/traces", body, **{"Content-Type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200
    assert app.count("spans") == 1


def test_metrics_are_accepted_and_dropped(app: App) -> None:
    response = post(app, "/v1/metrics", b'{"resourceMetrics": []}')
    assert (response.status_code, response.json()) == (200, {})
    response = app.client.post(
        "/v1/metrics", content=b"\x0a\x00", headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert response.content == b""


# -- partial success ------------------------------------------------------------------


def test_partial_success_for_spans(app: App) -> None:
    body = as_body(traces_payload(span(TRACE, ROOT), span("not-hex", CHILD), span(TRACE, "00")))
    response = post(app, "/v1/traces", body)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "spans[1]" in partial["errorMessage"] and "spans[2]" in partial["errorMessage"]
    assert [r["span_id"] for r in app.rows("SELECT span_id FROM spans")] == [ROOT]


def test_partial_success_for_logs(app: App) -> None:
    records = [log_record(TRACE, ROOT, "kept"), log_record(TRACE, "xyz", "rejected")]
    response = post(app, "/v1/logs", as_body(logs_payload(*records)))
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "logRecords[1]" in partial["errorMessage"]
    assert [r["body"] for r in app.rows("SELECT body FROM logs")] == ["kept"]


# -- malformed requests: 400, google.rpc.Status, nothing stored ------------------------


def _good_then_bad_spans() -> bytes:
    payload = traces_payload(span(TRACE, ROOT), span(TRACE, CHILD, parent=ROOT))
    payload["resourceSpans"].append(
        traces_payload({**span(TRACE, "eee19b7ec3c1b176"), "attributes": [{"value": {}}]})[
            "resourceSpans"
        ][0]
    )
    return as_body(payload)


def _good_then_bad_logs() -> bytes:
    payload = logs_payload(log_record(TRACE, ROOT, "one"), log_record(TRACE, ROOT, "two"))
    payload["resourceLogs"][0]["scopeLogs"][0]["logRecords"].append({"body": {"intValue": "abc"}})
    return as_body(payload)


MALFORMED = [
    ("/v1/traces", b"not json"),
    ("/v1/traces", b"[]"),
    ("/v1/traces", b'{"resourceSpans": {}}'),
    ("/v1/traces", b""),
    ("/v1/traces", _good_then_bad_spans()),
    ("/v1/logs", b"{"),
    ("/v1/logs", b'{"resourceLogs": 5}'),
    ("/v1/logs", _good_then_bad_logs()),
]


@pytest.mark.parametrize(("path", "body"), MALFORMED)
def test_malformed_request_is_400_and_stores_nothing(app: App, path: str, body: bytes) -> None:
    seed(app)
    before = (app.count("spans"), app.count("logs"), app.count("builds"))
    response = post(app, path, body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    status = response.json()
    assert status["code"] == 3  # INVALID_ARGUMENT
    assert isinstance(status["message"], str) and status["message"]
    assert (app.count("spans"), app.count("logs"), app.count("builds")) == before


# -- compression and size limits ------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
        ("identity", lambda b: b),
    ],
)
def test_compressed_bodies(app: App, encoding: str, compress: Any) -> None:
    spans = compress(as_body(traces_payload(span(TRACE, ROOT))))
    logs = compress(as_body(logs_payload(log_record(TRACE, ROOT, "zipped"))))
    assert post(app, "/v1/traces", spans, **{"Content-Encoding": encoding}).status_code == 200
    assert post(app, "/v1/logs", logs, **{"Content-Encoding": encoding}).status_code == 200
    assert app.rows("SELECT span_id FROM spans") == [{"span_id": ROOT}]
    assert app.rows("SELECT body FROM logs") == [{"body": "zipped"}]


def test_concatenated_gzip_members_are_all_read(app: App) -> None:
    first = gzip.compress(b'{"resourceSpans": [')
    second = gzip.compress(as_body(traces_payload(span(TRACE, ROOT)))[len('{"resourceSpans": [') :])
    response = post(app, "/v1/traces", first + second, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert app.rows("SELECT span_id FROM spans") == [{"span_id": ROOT}]


def test_corrupt_gzip_is_400(app: App) -> None:
    body = gzip.compress(as_body(traces_payload(span(TRACE, ROOT))))
    for broken in (b"definitely not gzip", body[:-12]):
        response = post(app, "/v1/traces", broken, **{"Content-Encoding": "gzip"})
        assert response.status_code == 400
        assert response.json()["code"] == 3
    assert app.count("spans") == 0


def test_unknown_content_encoding_is_415(app: App) -> None:
    body = as_body(traces_payload(span(TRACE, ROOT)))
    response = post(app, "/v1/traces", body, **{"Content-Encoding": "br"})
    assert response.status_code == 415
    assert app.count("spans") == 0


def _bomb(size: int, wbits: int) -> bytes:
    """`size` bytes of zeros, compressed (a few hundred KB for hundreds of MB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(1 << 20)
    return b"".join(c.compress(chunk) for _ in range(size >> 20)) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "wbits"), [("gzip", 16 + zlib.MAX_WBITS), ("deflate", zlib.MAX_WBITS)]
)
def test_decompression_bomb_is_413(make_app: Any, encoding: str, wbits: int) -> None:
    app = make_app(max_body=1 << 20)
    bomb = _bomb(200 << 20, wbits)
    assert len(bomb) < 1 << 20  # the compressed body itself is within the limit
    response = post(app, "/v1/traces", bomb, **{"Content-Encoding": encoding})
    assert response.status_code == 413
    assert response.json()["code"] == 8  # RESOURCE_EXHAUSTED
    assert app.count("spans") == 0


def test_body_over_the_limit_is_413(make_app: Any) -> None:
    app = make_app(max_body=4096)
    many = traces_payload(*(span(TRACE, f"{i + 1:016x}") for i in range(100)))
    body = as_body(many)
    assert len(body) > 4096
    assert post(app, "/v1/traces", body).status_code == 413
    assert app.count("spans") == 0
    # a small request still goes through
    assert post(app, "/v1/traces", as_body(traces_payload(span(TRACE, ROOT)))).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", "json"])
def test_wrong_content_type_is_415(app: App, content_type: str) -> None:
    body = as_body(traces_payload(span(TRACE, ROOT)))
    for path in ("/v1/traces", "/v1/logs"):
        response = app.client.post(path, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, path
        assert "message" in response.json()
    assert app.count("spans") == 0


def _pb_field(number: int, wire: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    head = varint(number << 3 | wire)
    if wire == 2:
        return head + varint(len(payload)) + payload
    return head + payload


def _protobuf_trace_request() -> bytes:
    """An ExportTraceServiceRequest with one span, encoded by hand."""
    service = _pb_field(1, 2, b"service.name") + _pb_field(
        2, 2, _pb_field(1, 2, b"bass:pipeline:demo")
    )
    resource = _pb_field(1, 2, service)
    one_span = (
        _pb_field(1, 2, bytes.fromhex(TRACE))
        + _pb_field(2, 2, bytes.fromhex(ROOT))
        + _pb_field(5, 2, b"protobuf span")
        + _pb_field(7, 1, struct.pack("<Q", 1_000))
        + _pb_field(8, 1, struct.pack("<Q", 2_000))
    )
    scope_spans = _pb_field(2, 2, one_span)
    resource_spans = _pb_field(1, 2, resource) + _pb_field(2, 2, scope_spans)
    return _pb_field(1, 2, resource_spans)


def test_protobuf_traces_are_accepted(app: App) -> None:
    response = app.client.post(
        "/v1/traces",
        content=_protobuf_trace_request(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert app.rows("SELECT trace_id, span_id, name FROM spans") == [
        {"trace_id": TRACE, "span_id": ROOT, "name": "protobuf span"}
    ]


# -- span upsert ----------------------------------------------------------------------


def test_span_exported_at_start_and_end_is_one_row(app: App) -> None:
    app.send_spans(span(TRACE, ROOT, start=100, end=0))
    (row,) = app.rows("SELECT * FROM spans")
    assert (row["end_ns"], row["bass_status"]) == (0, "running")

    app.send_spans(span(TRACE, ROOT, start=100, end=200, bass_status="failed"))
    (row,) = app.rows("SELECT * FROM spans")
    assert (row["start_ns"], row["end_ns"], row["bass_status"]) == (100, 200, "failed")


def test_resent_batch_makes_no_duplicate(app: App) -> None:
    batch = [span(TRACE, ROOT, end=300), span(TRACE, CHILD, parent=ROOT, end=250)]
    app.send_spans(*batch)
    first = app.rows("SELECT * FROM spans ORDER BY span_id")
    app.send_spans(*batch)
    assert app.rows("SELECT * FROM spans ORDER BY span_id") == first
    assert len(first) == 2


def test_late_start_export_does_not_reopen_an_ended_span(app: App) -> None:
    app.send_spans(span(TRACE, CHILD, parent=ROOT, start=100, end=200, bass_status="ok"))
    app.send_spans(span(TRACE, CHILD, parent=ROOT, start=100, end=0, name="renamed"))
    (row,) = app.rows("SELECT * FROM spans")
    assert (row["end_ns"], row["bass_status"], row["name"]) == (200, "ok", "step")


def test_logs_before_their_span_are_kept(app: App) -> None:
    app.send_logs(log_record(TRACE, CHILD, "early line 1"), log_record(TRACE, CHILD, "line 2"))
    assert app.count("spans") == 0
    app.send_spans(span(TRACE, CHILD, parent=ROOT, end=9))
    rows = app.rows("SELECT trace_id, span_id, body FROM logs ORDER BY id")
    assert rows == [
        {"trace_id": TRACE, "span_id": CHILD, "body": "early line 1"},
        {"trace_id": TRACE, "span_id": CHILD, "body": "line 2"},
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startTimeUnixNano", "18446744073709551615"),  # a valid fixed64, past SQLite's int64
        ("startTimeUnixNano", 99999999999999999999),
        ("startTimeUnixNano", -5),
        ("startTimeUnixNano", 1e30),
        ("endTimeUnixNano", str(2**63)),
        ("kind", 2**40),
    ],
)
def test_numbers_out_of_range_are_400_and_store_nothing(app: App, field: str, value: Any) -> None:
    seed(app)
    body = json.dumps(traces_payload(span(TRACE, ROOT, end=5, **{field: value}))).encode()
    response = post(app, "/v1/traces", body)
    assert response.status_code == 400
    assert field in response.json()["message"] and "range" in response.json()["message"]
    assert len(app.rows("SELECT * FROM spans")) == 1


@pytest.mark.parametrize(
    "record",
    [
        {"timeUnixNano": str(2**64 - 1)},
        {"observedTimeUnixNano": str(2**63)},
        {"severityNumber": 2**33},
    ],
)
def test_log_numbers_out_of_range_are_400(app: App, record: dict[str, Any]) -> None:
    seed(app)
    body = json.dumps(logs_payload({"body": {"stringValue": "x"}, **record})).encode()
    response = post(app, "/v1/logs", body)
    assert response.status_code == 400 and "range" in response.json()["message"]
    assert len(app.rows("SELECT * FROM logs")) == 1


def test_protobuf_times_past_int64_are_400(app: App) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    seed(app)
    traces = ExportTraceServiceRequest()
    s = traces.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = bytes.fromhex(TRACE), bytes.fromhex(ROOT), "far"
    s.start_time_unix_nano, s.end_time_unix_nano = 1, 2**64 - 1
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano = 2**63
    record.body.string_value = "far"
    for path, message in (("/v1/traces", traces), ("/v1/logs", logs)):
        response = app.client.post(
            path,
            content=message.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 400, path
    assert len(app.rows("SELECT * FROM spans")) == 1 and len(app.rows("SELECT * FROM logs")) == 1
