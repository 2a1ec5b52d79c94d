"""OTLP/protobuf: the same rows as OTLP/JSON, answers and errors in protobuf."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bass.ingest import otlp_json, otlp_proto
from bass.ingest.forward import json_to_protobuf
from tests.unit.conftest import App
from tests.unit.helpers import as_body, log_record, logs_payload, span, traces_payload

DATA = Path(__file__).parent / "data"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
TRACE, ROOT = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


def _status(body: bytes) -> tuple[int, str]:
    """Read the google.rpc.Status fields 1 (code) and 2 (message) by hand."""
    assert body[0] == 0x08
    code = body[1]
    assert body[2] == 0x12
    length, start = body[3], 4
    if length & 0x80:
        length, start = (length & 0x7F) | (body[4] << 7), 5
    return code, body[start : start + length].decode()


@pytest.mark.parametrize("name", ["otlp-trace.json", "otlp-logs.json"])
def test_protobuf_decodes_to_the_same_rows_as_json(name: str) -> None:
    body = (DATA / name).read_bytes()
    kind = "traces" if "trace" in name else "logs"
    as_protobuf = json_to_protobuf(kind, body)
    if kind == "traces":
        assert otlp_proto.decode_traces(as_protobuf) == otlp_json.decode_traces(body)
    else:
        assert otlp_proto.decode_logs(as_protobuf) == otlp_json.decode_logs(body)


def test_the_builders_own_payloads_convert_and_decode_alike() -> None:
    spans = as_body(traces_payload(span(TRACE, ROOT, start=5, end=9, bass_status="timeout")))
    logs = as_body(logs_payload(log_record(TRACE, ROOT, "a line"), log_record(TRACE, "", "x")))
    assert otlp_proto.decode_traces(json_to_protobuf("traces", spans)) == otlp_json.decode_traces(
        spans
    )
    assert otlp_proto.decode_logs(json_to_protobuf("logs", logs)) == otlp_json.decode_logs(logs)


def test_protobuf_logs_are_stored_and_answered_in_protobuf(app: App) -> None:
    body = json_to_protobuf("logs", (DATA / "otlp-logs.json").read_bytes())
    response = app.client.post("/v1/logs", content=gzip.compress(body),
                               headers={**PROTOBUF, "Content-Encoding": "gzip"})  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()
    expected = otlp_json.decode_logs((DATA / "otlp-logs.json").read_bytes()).logs
    assert app.count("logs") == len(expected)


def test_partial_success_in_protobuf(app: App) -> None:
    payload = as_body(traces_payload(span(TRACE, ROOT), span(TRACE, "ab" * 8)))
    request = ExportTraceServiceRequest.FromString(json_to_protobuf("traces", payload))
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"  # 2 bytes: invalid
    response = app.client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "spans[1]" in answer.partial_success.error_message
    assert app.rows("SELECT span_id FROM spans") == [{"span_id": ROOT}]


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x0a"])
def test_malformed_protobuf_is_400_with_a_protobuf_status(app: App, garbage: bytes) -> None:
    for path in ("/v1/traces", "/v1/logs"):
        response = app.client.post(path, content=garbage, headers=PROTOBUF)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/x-protobuf"
        code, message = _status(response.content)
        assert code == 3 and "not a valid Export" in message
    assert app.count("spans") == 0 and app.count("logs") == 0


def test_oversized_protobuf_is_413_in_protobuf(make_app: Any) -> None:
    app = make_app(max_body=1000)
    response = app.client.post("/v1/traces", content=b"\x0a" * 2000, headers=PROTOBUF)
    assert response.status_code == 413
    assert _status(response.content)[0] == 8  # RESOURCE_EXHAUSTED


def test_metrics_in_protobuf_are_accepted_and_dropped(app: App) -> None:
    response = app.client.post("/v1/metrics", content=b"\x0a\x00", headers=PROTOBUF)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"] == "application/x-protobuf"


def test_get_is_405(app: App) -> None:
    assert app.client.get("/v1/traces").status_code == 405
