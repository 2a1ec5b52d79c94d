"""OTLP/protobuf decoding into the same store rows as otlp_json, and protobuf answers.

Message classes come from `opentelemetry-proto`; with protobuf's upb backend parsing is
done in C. `check_backend()` says whether that fast backend is in use; this module is
loaded at the first OTLP/protobuf request (see `wire`), and says so then.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bass.ingest import wire
from bass.ingest.otlp_json import (
    MAX_TIME,
    Decoded,
    OTLPDecodeError,
    body_text,
    check_time,
    derive_status,
    resource_json,
    storable_double,
    to_json,
)

PROTOBUF = wire.PROTOBUF


def check_backend() -> str | None:
    """None when protobuf parses in C (upb), else a warning to log."""
    backend = api_implementation.Type()
    if backend == "upb":
        return None
    return f"protobuf uses its {backend!r} backend: OTLP/protobuf ingest will be slow"


_SLOW = check_backend()
if _SLOW:  # said once: when the first OTLP/protobuf request loads this module
    logging.getLogger("bass.ingest").warning(_SLOW)


def _id(value: bytes, size: int) -> str | None:
    """Lowercase hex of a `size`-byte id; '' when empty, None when invalid."""
    if not value:
        return ""
    if len(value) != size or not any(value):
        return None
    return value.hex()


def any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()  # as OTLP/JSON carries bytes
    if kind == "double_value":
        return storable_double(value.double_value)
    return getattr(value, kind)


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


def _parse(message: Any, body: bytes) -> Any:
    try:
        return message.FromString(body)
    except (DecodeError, ValueError) as e:
        why = str(e) or "truncated or malformed"
        if "MaxDepth" in why:  # upb's words for its limit of 100 nested messages
            why = "nested too deeply (more than 100 messages, e.g. AnyValues in AnyValues)"
        raise OTLPDecodeError(f"body is not a valid {message.DESCRIPTOR.name}: {why}") from None


def decode_traces(body: bytes) -> Decoded:
    """Decode an ExportTraceServiceRequest in protobuf into span rows."""
    request = _parse(ExportTraceServiceRequest, body)
    out = Decoded()
    for r, resource_spans in enumerate(request.resource_spans):
        resource = attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service = service if isinstance(service, str) else ""
        resource_text = resource_json(resource)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = f"{scope_spans.scope.name} {scope_spans.scope.version}".strip()
            for i, span in enumerate(scope_spans.spans):
                trace_id = _id(span.trace_id, 16)
                span_id = _id(span.span_id, 8)
                parent = _id(span.parent_span_id, 8)
                if not trace_id or not span_id or parent is None:
                    out.reject(
                        f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: "
                        "invalid traceId, spanId or parentSpanId"
                    )
                    continue
                attrs = attributes(span.attributes)
                events = [
                    {
                        "time_ns": check_time(e.time_unix_nano, "events.timeUnixNano"),
                        "name": e.name,
                        "attributes": attributes(e.attributes),
                    }
                    for e in span.events
                ]
                links = [
                    {
                        "trace_id": _id(link.trace_id, 16) or "",
                        "span_id": _id(link.span_id, 8) or "",
                        "attributes": attributes(link.attributes),
                    }
                    for link in span.links
                ]
                start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
                if start_ns > MAX_TIME or end_ns > MAX_TIME:  # fixed64: never negative
                    where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                    check_time(start_ns, f"{where}.startTimeUnixNano")
                    check_time(end_ns, f"{where}.endTimeUnixNano")
                code = span.status.code
                out.spans.append(
                    {
                        "trace_id": trace_id,
                        "span_id": span_id,
                        "parent_span_id": parent,
                        "name": span.name,
                        "kind": span.kind,
                        "start_ns": start_ns,
                        "end_ns": end_ns,
                        "status_code": code,
                        "status_message": span.status.message,
                        "bass_status": derive_status(attrs.get("bass.status"), end_ns, code),
                        "attributes": to_json(attrs),
                        "events": to_json(events),
                        "links": to_json(links),
                        "service_name": service,
                        "resource": resource_text,
                        "scope": scope,
                    }
                )
    return out


def decode_logs(body: bytes) -> Decoded:
    """Decode an ExportLogsServiceRequest in protobuf into log rows."""
    request = _parse(ExportLogsServiceRequest, body)
    out = Decoded()
    now_ns = time.time_ns()
    append = out.logs.append
    for r, resource_logs in enumerate(request.resource_logs):
        resource = resource_json(attributes(resource_logs.resource.attributes))
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            for i, record in enumerate(scope_logs.log_records):
                trace_id = _id(record.trace_id, 16)
                span_id = _id(record.span_id, 8)
                if trace_id is None or span_id is None:
                    out.reject(
                        f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]: "
                        "invalid traceId or spanId"
                    )
                    continue
                body_value = record.body
                if body_value.WhichOneof("value") == "string_value":
                    text = body_value.string_value
                else:
                    value = any_value(body_value)
                    text = value if isinstance(value, str) else body_text(value)
                attrs = attributes(record.attributes) if record.attributes else None
                time_ns = record.time_unix_nano or record.observed_time_unix_nano or now_ns
                if time_ns > MAX_TIME:
                    where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
                    check_time(time_ns, f"{where}.timeUnixNano")
                append(
                    (
                        trace_id,
                        span_id,
                        time_ns,
                        record.severity_number,
                        record.severity_text,
                        text,
                        to_json(attrs),
                        resource,
                    )
                )
    return out


def traces_response(decoded: Decoded) -> bytes:
    response = ExportTraceServiceResponse()
    if decoded.rejected:
        response.partial_success.rejected_spans = decoded.rejected
        response.partial_success.error_message = "; ".join(decoded.errors)
    return response.SerializeToString()


def logs_response(decoded: Decoded) -> bytes:
    response = ExportLogsServiceResponse()
    if decoded.rejected:
        response.partial_success.rejected_log_records = decoded.rejected
        response.partial_success.error_message = "; ".join(decoded.errors)
    return response.SerializeToString()
