"""The OpenTelemetry Python SDK's OTLP/HTTP protobuf exporters, run in this process,
pointed at a real `bass serve`: every span and log record field they send must come
back from the JSON API exactly (ids, ns timestamps, typed attributes, events, links,
status, kinds, resource, scope, log bodies and severities), plain and compressed."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, format_span_id, format_trace_id

from tests.exporters.readback import assert_same, trace_logs, trace_spans

SERVICE = "bass-exporter-test-python"
SCOPE = ("bass.tests.exporters.python", "1.2.3")

# Every attribute value the SDK accepts; the stored form is the same value with bytes as
# base64 text and sequences as lists (see `stored`).
ATTRIBUTES: dict[str, Any] = {
    "str": 'héllo ✓ "quoted"\nsecond line',
    "str.empty": "",
    "bool.true": True,
    "bool.false": False,
    "int": 42,
    "int.zero": 0,
    "int.negative": -7,
    "int.2**62": 2**62,
    "int.max": 2**63 - 1,
    "int.min": -(2**63),
    "float": 3.25,
    "float.tenth": 0.1,
    "float.whole": 2.0,
    "float.tiny": -1e-300,
    "float.huge": 1.5e300,
    "strs": ("a", "b", ""),
    "bools": (True, False, True),
    "ints": (1, -2, 2**62),
    "floats": (0.5, -2.25, 1e100),
    "bytes": b"\x00\xffbinary",
    "map": {"k": "v", "n": 1, "inner": {"deep": True, "list": ("x", 2)}},
    "mixed": ("a", 1, 2.5, False),
}
RESOURCE_ATTRIBUTES: dict[str, Any] = {
    "service.name": SERVICE,
    "service.version": "0.9.0",
    "deployment.environment.name": "test",
    "res.int": 2**62 + 1,
    "res.bool": True,
    "res.float": 0.25,
    "res.strs": ("x", "y"),
}


def stored(value: Any) -> Any:
    """What bass stores (and the JSON API returns) for an SDK attribute value."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: stored(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [stored(v) for v in value]
    return value


class RecordingSpanExporter(SpanExporter):
    """The real exporter, keeping each result and every span it sent successfully:
    these ReadableSpans are the truth the stored spans are compared with."""

    def __init__(self, inner: OTLPSpanExporter):
        self.inner = inner
        self.results: list[SpanExportResult] = []
        self.sent: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        if result is SpanExportResult.SUCCESS:
            self.sent.extend(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RecordingLogExporter(LogRecordExporter):
    def __init__(self, inner: OTLPLogExporter):
        self.inner = inner
        self.results: list[LogRecordExportResult] = []
        self.sent: list[ReadableLogRecord] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        self.results.append(result)
        if result is LogRecordExportResult.SUCCESS:
            self.sent.extend(batch)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class Pipeline:
    """A TracerProvider and a LoggerProvider with batch processors and the OTLP/HTTP
    protobuf exporters pointed at `url`, sharing one Resource."""

    def __init__(self, url: str, compression: Compression = Compression.NoCompression):
        resource = Resource.create(RESOURCE_ATTRIBUTES)
        self.spans_out = RecordingSpanExporter(
            OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression, timeout=10)
        )
        self.logs_out = RecordingLogExporter(
            OTLPLogExporter(endpoint=f"{url}/v1/logs", compression=compression, timeout=10)
        )
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.spans_out))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(self.logs_out))
        self.tracer = self.tracer_provider.get_tracer(*SCOPE)
        self.logger = self.logger_provider.get_logger(*SCOPE)

    def finish(self) -> None:
        """Flush and shut down both providers; every export must have succeeded."""
        assert self.tracer_provider.force_flush(10_000)
        assert self.logger_provider.force_flush(10_000)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        for out in (self.spans_out, self.logs_out):
            assert all(r.name == "SUCCESS" for r in out.results), out.results


def run_sdk(url: str, compression: Compression) -> Pipeline:
    """Traces and logs through the SDK into bass; returns the pipeline, which knows what
    was sent."""
    pipeline = Pipeline(url, compression)
    tracer, logger = pipeline.tracer, pipeline.logger

    # A span of another trace for the client span to link to.
    target = tracer.start_span("queued job", context=Context(), kind=SpanKind.PRODUCER)
    target.end()
    # Explicit start: 60 s ago with nanoseconds no double can carry (> 2**53).
    started = (time.time_ns() // 10**9 - 60) * 10**9 + 123_456_789
    with tracer.start_as_current_span(
        "GET /orders", kind=SpanKind.SERVER, attributes=ATTRIBUTES, start_time=started
    ) as server:
        server.add_event(
            "request received",
            {"http.method": "GET", "body.bytes": 512, "ratio": 0.75, "retry": False,
             "headers": ("accept", "x-trace")},
            timestamp=started + 1_000_001,
        )  # fmt: skip
        logger.emit(
            timestamp=started + 2_000_003,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body="request received: GET /orders",
            attributes=ATTRIBUTES,
        )
        with tracer.start_as_current_span(
            "SELECT orders",
            kind=SpanKind.CLIENT,
            links=[Link(target.get_span_context(), {"link.reason": "follows", "link.n": 2})],
        ) as client:
            client.set_attribute("db.system", "sqlite")
            client.add_event("retry", {"attempt": 2})
            client.add_event("no attributes")
            logger.emit(
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body={"error": "database is locked", "code": 5, "retryable": True,
                      "tables": ["orders", "items"], "detail": {"wait.s": 1.5}},
                attributes={"db.system": "sqlite", "attempt": 2},
            )  # fmt: skip
            with tracer.start_as_current_span("decode rows", kind=SpanKind.INTERNAL):
                logger.emit(
                    severity_number=SeverityNumber.WARN2,
                    severity_text="warning",
                    body=["partial", 3, 0.5, False, None],
                )
                logger.emit(severity_number=SeverityNumber.DEBUG, body=404)
                logger.emit(severity_number=SeverityNumber.TRACE4, body=True)
            client.set_status(Status(StatusCode.ERROR, "database is locked"))
        server.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span("publish", kind=SpanKind.CONSUMER) as consumer:
            consumer.set_attribute("empty.strs", ())
    pipeline.finish()
    assert pipeline.spans_out.results and pipeline.logs_out.results
    return pipeline


COMPRESSIONS = [
    pytest.param(Compression.NoCompression, id="plain"),
    pytest.param(Compression.Gzip, id="gzip"),
    pytest.param(Compression.Deflate, id="deflate"),
]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_python_sdk_protobuf_round_trip(serve, compression: Compression) -> None:
    server = serve({})
    pipeline = run_sdk(server.url, compression)
    spans_out, logs_out = pipeline.spans_out, pipeline.logs_out
    sent = {s.name: s for s in spans_out.sent}
    assert sorted(sent) == ["GET /orders", "SELECT orders", "decode rows", "publish", "queued job"]
    resource = dict(sent["GET /orders"].resource.attributes)
    assert {k: resource[k] for k in RESOURCE_ATTRIBUTES} == RESOURCE_ATTRIBUTES
    assert resource["telemetry.sdk.language"] == "python"  # Resource.create adds these

    trace_id = format_trace_id(sent["GET /orders"].context.trace_id)
    target_trace = format_trace_id(sent["queued job"].context.trace_id)
    assert target_trace != trace_id
    stored_spans = trace_spans(server, trace_id, 4)
    stored_spans.update(trace_spans(server, target_trace, 1))

    # Every span: each field against the SDK's ReadableSpan.
    for name, span in sent.items():
        span_id = format_span_id(span.context.span_id)
        got = stored_spans[span_id]
        parent = format_span_id(span.parent.span_id) if span.parent else ""
        assert got["trace_id"] == format_trace_id(span.context.trace_id)
        assert got["span_id"] == span_id
        assert got["parent_span_id"] == parent
        assert got["name"] == name
        assert got["kind"] == span.kind.value + 1  # the API's enum is OTLP's minus one
        assert (got["start_ns"], got["end_ns"]) == (span.start_time, span.end_time)
        assert got["status_code"] == span.status.status_code.value
        assert got["status_message"] == (span.status.description or "")
        assert_same(got["attributes"], stored(dict(span.attributes or {})))
        assert_same(
            got["events"],
            [{"time_ns": e.timestamp, "name": e.name,
              "attributes": stored(dict(e.attributes or {}))} for e in span.events],
        )  # fmt: skip
        assert_same(
            got["links"],
            [{"trace_id": format_trace_id(link.context.trace_id),
              "span_id": format_span_id(link.context.span_id),
              "attributes": stored(dict(link.attributes or {}))} for link in span.links],
        )  # fmt: skip
        assert_same(got["resource"], stored(dict(span.resource.attributes)))
        assert got["service_name"] == SERVICE
        assert got["scope"] == "bass.tests.exporters.python 1.2.3"

    # …and against literal values, so an SDK change cannot quietly weaken the test.
    root = stored_spans[format_span_id(sent["GET /orders"].context.span_id)]
    client = stored_spans[format_span_id(sent["SELECT orders"].context.span_id)]
    decode = stored_spans[format_span_id(sent["decode rows"].context.span_id)]
    publish = stored_spans[format_span_id(sent["publish"].context.span_id)]
    target = stored_spans[format_span_id(sent["queued job"].context.span_id)]
    assert root["parent_span_id"] == "" and target["parent_span_id"] == ""
    # children in start order (a span id would break a tie)
    assert sorted(c["name"] for c in root["children"]) == ["SELECT orders", "publish"]
    assert root["children"] == sorted(root["children"], key=lambda c: (c["start_ns"], c["span_id"]))
    assert [c["name"] for c in client["children"]] == ["decode rows"]
    assert [root["kind"], client["kind"], decode["kind"], target["kind"], publish["kind"]] == [
        2, 3, 1, 4, 5,
    ]  # fmt: skip
    assert root["start_ns"] % 10**9 == 123_456_789
    assert (root["status_code"], root["status_message"], root["bass_status"]) == (1, "", "ok")
    assert (client["status_code"], client["status_message"], client["bass_status"]) == (
        2, "database is locked", "failed",
    )  # fmt: skip
    assert (decode["status_code"], decode["bass_status"]) == (0, "ok")
    assert_same(
        root["attributes"],
        {
            **ATTRIBUTES,
            "strs": ["a", "b", ""],
            "bools": [True, False, True],
            "ints": [1, -2, 2**62],
            "floats": [0.5, -2.25, 1e100],
            "bytes": "AP9iaW5hcnk=",
            "map": {"k": "v", "n": 1, "inner": {"deep": True, "list": ["x", 2]}},
            "mixed": ["a", 1, 2.5, False],
        },
    )
    assert_same(publish["attributes"], {"empty.strs": []})
    assert_same(
        root["events"],
        [{"time_ns": root["start_ns"] + 1_000_001, "name": "request received",
          "attributes": {"http.method": "GET", "body.bytes": 512, "ratio": 0.75,
                         "retry": False, "headers": ["accept", "x-trace"]}}],
    )  # fmt: skip
    assert [(e["name"], e["attributes"]) for e in client["events"]] == [
        ("retry", {"attempt": 2}),
        ("no attributes", {}),
    ]
    assert client["links"] == [
        {"trace_id": target["trace_id"], "span_id": target["span_id"],
         "attributes": {"link.reason": "follows", "link.n": 2}},
    ]  # fmt: skip
    assert_same(
        {k: root["resource"][k] for k in RESOURCE_ATTRIBUTES},
        {**RESOURCE_ATTRIBUTES, "res.strs": ["x", "y"]},
    )

    # Log records: in emission order, each against the SDK's record.
    logs = trace_logs(server, trace_id, 5)
    records = [r.log_record for r in logs_out.sent]
    assert len(records) == 5
    for got, record in zip(logs, records, strict=True):
        assert got["trace_id"] == format_trace_id(record.trace_id) == trace_id
        assert got["span_id"] == format_span_id(record.span_id)
        # Without a timestamp the SDK sends only the observed time, which bass then uses.
        assert got["time_ns"] == (record.timestamp or record.observed_timestamp)
        assert record.severity_number is not None
        assert got["severity_number"] == record.severity_number.value
        assert got["severity_text"] == (record.severity_text or "")
        assert_same(got["attributes"], stored(dict(record.attributes or {})))
    info, error, warn, debug, trace = logs
    assert info["span_id"] == root["span_id"] and info["time_ns"] == root["start_ns"] + 2_000_003
    assert error["span_id"] == client["span_id"]
    assert warn["span_id"] == debug["span_id"] == trace["span_id"] == decode["span_id"]
    assert [(r["severity_number"], r["severity_text"]) for r in logs] == [
        (9, "INFO"), (17, "ERROR"), (14, "warning"), (5, ""), (4, ""),
    ]  # fmt: skip
    assert info["body"] == "request received: GET /orders"
    assert_same(info["attributes"], root["attributes"])
    # A non-string body is stored as its JSON text.
    assert_same(
        json.loads(error["body"]),
        {"error": "database is locked", "code": 5, "retryable": True,
         "tables": ["orders", "items"], "detail": {"wait.s": 1.5}},
    )  # fmt: skip
    assert_same(error["attributes"], {"db.system": "sqlite", "attempt": 2})
    assert_same(json.loads(warn["body"]), ["partial", 3, 0.5, False, None])
    assert (debug["body"], trace["body"]) == ("404", "true")
    assert warn["attributes"] == debug["attributes"] == {}


def test_python_sdk_bytes_log_body(serve) -> None:
    """A bytes body is stored as base64 text, as bytes attribute values are, and the same
    over protobuf as over JSON (tests/exporters/test_js_sdk.py sends one as JSON)."""
    server = serve({})
    pipeline = Pipeline(server.url)
    with pipeline.tracer.start_as_current_span("binary"):
        pipeline.logger.emit(severity_number=SeverityNumber.INFO, body=b"\x00\xffbin")
    pipeline.finish()
    (record,) = pipeline.logs_out.sent
    (log,) = trace_logs(server, format_trace_id(record.log_record.trace_id), 1)
    assert log["body"] == "AP9iaW4="


def test_python_sdk_non_finite_doubles(serve) -> None:
    """NaN and ±Infinity are doubles OTLP carries (OTLP/JSON spells them "NaN",
    "Infinity", "-Infinity"); the trace and its logs stay readable and keep them."""
    server = serve({})
    pipeline = Pipeline(server.url)
    values = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "one": 1.0}
    with pipeline.tracer.start_as_current_span("non-finite", attributes=values) as span:
        pipeline.logger.emit(severity_number=SeverityNumber.INFO, body="x", attributes=values)
    pipeline.finish()
    trace_id = format_trace_id(span.get_span_context().trace_id)

    def readable(attributes: dict[str, Any]) -> dict[str, Any]:
        # However bass spells them in JSON, as strings (OTLP/JSON's way) or otherwise,
        # float() must read them back.
        return {k: repr(float(v)) for k, v in attributes.items()}

    expected = {"nan": "nan", "inf": "inf", "-inf": "-inf", "one": "1.0"}
    (stored_span,) = trace_spans(server, trace_id, 1).values()
    assert readable(stored_span["attributes"]) == expected
    (log,) = trace_logs(server, trace_id, 1)
    assert readable(log["attributes"]) == expected
