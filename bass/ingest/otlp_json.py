"""OTLP/JSON decoding into store rows, following the specification's JSON mapping.

Hex trace and span ids (any case, stored lowercase), 64-bit integers as strings or
numbers, integer enums (names accepted too), every AnyValue kind, lowerCamelCase or
snake_case field names, unknown fields ignored, `null` where a field may be absent.
A payload whose structure is wrong raises OTLPDecodeError (the request stores nothing);
a record with bad ids is rejected alone and counted, as OTLP's partial success reports.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_BASS_STATUSES = {"ok", "failed", "timeout", "skipped", "cancelled", "error", "running"}
_HEX = frozenset("0123456789abcdef")


class OTLPDecodeError(ValueError):
    """The payload is not OTLP/JSON; nothing from it may be stored."""


@dataclass
class Decoded:
    spans: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, why: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:
            self.errors.append(why)


def _get(obj: dict[str, Any], camel: str, snake: str | None = None) -> Any:
    value = obj.get(camel)
    if value is None and snake is not None:
        value = obj.get(snake)
    return value


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OTLPDecodeError(f"{where}.{camel}: expected an array")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OTLPDecodeError(f"{where}: expected an object")
    return value


def _int(value: Any, where: str, default: int = 0) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise OTLPDecodeError(f"{where}: expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise OTLPDecodeError(f"{where}: expected an integer, got {value!r:.40}")


def _enum(value: Any, names: dict[str, int], where: str) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _int(value, where)


def _hex_id(value: Any, size: int) -> str | None:
    """A lowercase hex id of `size` bytes, '' when absent, None when invalid."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) != size * 2:
        return None
    value = value.lower()
    if not _HEX.issuperset(value) or value.count("0") == len(value):
        return None
    return value


def any_value(value: Any, where: str = "value") -> Any:
    """An OTLP AnyValue as a plain JSON-able Python value."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise OTLPDecodeError(f"{where}: expected an AnyValue object")
    for key, inner in value.items():
        if key in ("stringValue", "string_value"):
            if not isinstance(inner, str):
                raise OTLPDecodeError(f"{where}.stringValue: expected a string")
            return inner
        if key in ("boolValue", "bool_value"):
            if not isinstance(inner, bool):
                raise OTLPDecodeError(f"{where}.boolValue: expected a boolean")
            return inner
        if key in ("intValue", "int_value"):
            return _int(inner, f"{where}.intValue")
        if key in ("doubleValue", "double_value"):
            if isinstance(inner, str):  # NaN, Infinity and friends travel as strings
                try:
                    return float(inner)
                except ValueError as e:
                    raise OTLPDecodeError(f"{where}.doubleValue: not a number") from e
            if isinstance(inner, bool) or not isinstance(inner, (int, float)):
                raise OTLPDecodeError(f"{where}.doubleValue: expected a number")
            return float(inner)
        if key in ("arrayValue", "array_value"):
            values = _list(_object(inner, where), "values", "values", where)
            return [any_value(v, f"{where}[{i}]") for i, v in enumerate(values)]
        if key in ("kvlistValue", "kvlist_value"):
            return attributes(_list(_object(inner, where), "values", "values", where), where)
        if key in ("bytesValue", "bytes_value"):
            if not isinstance(inner, str):
                raise OTLPDecodeError(f"{where}.bytesValue: expected base64 text")
            return inner
    return None  # an empty AnyValue, or only unknown fields


def attributes(items: Any, where: str) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise OTLPDecodeError(f"{where}: attributes must be an array")
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise OTLPDecodeError(f"{where}[{i}]: expected {{key, value}}")
        out[item["key"]] = any_value(item.get("value"), f"{where}[{i}].value")
    return out


def _resource(block: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    resource = _object(block.get("resource"), f"{where}.resource")
    attrs = attributes(resource.get("attributes"), f"{where}.resource.attributes")
    service = attrs.get("service.name")
    return attrs, service if isinstance(service, str) else ""


def _scope(block: dict[str, Any], where: str) -> str:
    scope = _object(block.get("scope"), f"{where}.scope")
    name = scope.get("name") or ""
    version = scope.get("version") or ""
    return f"{name} {version}".strip() if isinstance(name, str) else ""


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise OTLPDecodeError(f"body is not valid JSON: {e}") from e
    if not isinstance(payload, dict):
        raise OTLPDecodeError("body must be a JSON object")
    return payload


def decode_traces(body: bytes) -> Decoded:
    """Decode an ExportTraceServiceRequest in OTLP/JSON into span rows."""
    payload = parse_json(body)
    out = Decoded()
    for r, rblock in enumerate(_list(payload, "resourceSpans", "resource_spans", "request")):
        where = f"resourceSpans[{r}]"
        rblock = _object(rblock, where)
        resource, service = _resource(rblock, where)
        resource_json = json.dumps(resource)
        for s, sblock in enumerate(_list(rblock, "scopeSpans", "scope_spans", where)):
            swhere = f"{where}.scopeSpans[{s}]"
            sblock = _object(sblock, swhere)
            scope = _scope(sblock, swhere)
            for i, span in enumerate(_list(sblock, "spans", "spans", swhere)):
                row = _span(_object(span, f"{swhere}.spans[{i}]"), f"{swhere}.spans[{i}]", out)
                if row is not None:
                    row["service_name"] = service
                    row["resource"] = resource_json
                    row["scope"] = scope
                    out.spans.append(row)
    return out


def _span(span: dict[str, Any], where: str, out: Decoded) -> dict[str, Any] | None:
    trace_id = _hex_id(_get(span, "traceId", "trace_id"), 16)
    span_id = _hex_id(_get(span, "spanId", "span_id"), 8)
    parent = _hex_id(_get(span, "parentSpanId", "parent_span_id"), 8)
    attrs = attributes(span.get("attributes"), f"{where}.attributes")
    status = _object(span.get("status"), f"{where}.status")
    start_ns = _int(_get(span, "startTimeUnixNano", "start_time_unix_nano"), f"{where}.start")
    end_ns = _int(_get(span, "endTimeUnixNano", "end_time_unix_nano"), f"{where}.end")
    code = _enum(status.get("code"), _STATUS_CODES, f"{where}.status.code")
    events = [
        {
            "time_ns": _int(_get(e, "timeUnixNano", "time_unix_nano"), f"{where}.events"),
            "name": e.get("name") or "",
            "attributes": attributes(e.get("attributes"), f"{where}.events.attributes"),
        }
        for e in (_object(e, f"{where}.events") for e in _list(span, "events", "events", where))
    ]
    links = [
        {
            "trace_id": (_hex_id(_get(link, "traceId", "trace_id"), 16) or ""),
            "span_id": (_hex_id(_get(link, "spanId", "span_id"), 8) or ""),
            "attributes": attributes(link.get("attributes"), f"{where}.links.attributes"),
        }
        for link in (_object(x, f"{where}.links") for x in _list(span, "links", "links", where))
    ]
    if not trace_id or not span_id or parent is None:
        out.reject(f"{where}: invalid traceId, spanId or parentSpanId")
        return None
    name = span.get("name")
    bass_status = attrs.get("bass.status")
    if bass_status not in _BASS_STATUSES:
        bass_status = "running" if end_ns == 0 else ("failed" if code == 2 else "ok")
    message = status.get("message")
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name if isinstance(name, str) else "",
        "kind": _enum(span.get("kind"), _SPAN_KINDS, f"{where}.kind"),
        "start_ns": start_ns,
        "end_ns": end_ns,
        "status_code": code,
        "status_message": message if isinstance(message, str) else "",
        "bass_status": bass_status,
        "attributes": json.dumps(attrs),
        "events": json.dumps(events),
        "links": json.dumps(links),
    }


def decode_logs(body: bytes) -> Decoded:
    """Decode an ExportLogsServiceRequest in OTLP/JSON into log rows."""
    payload = parse_json(body)
    out = Decoded()
    now_ns = time.time_ns()
    for r, rblock in enumerate(_list(payload, "resourceLogs", "resource_logs", "request")):
        where = f"resourceLogs[{r}]"
        rblock = _object(rblock, where)
        _, service = _resource(rblock, where)
        for s, sblock in enumerate(_list(rblock, "scopeLogs", "scope_logs", where)):
            swhere = f"{where}.scopeLogs[{s}]"
            sblock = _object(sblock, swhere)
            for i, rec in enumerate(_list(sblock, "logRecords", "log_records", swhere)):
                rwhere = f"{swhere}.logRecords[{i}]"
                rec = _object(rec, rwhere)
                trace_id = _hex_id(_get(rec, "traceId", "trace_id"), 16)
                span_id = _hex_id(_get(rec, "spanId", "span_id"), 8)
                body_value = any_value(rec.get("body"), f"{rwhere}.body")
                attrs = attributes(rec.get("attributes"), f"{rwhere}.attributes")
                time_ns = _int(_get(rec, "timeUnixNano", "time_unix_nano"), rwhere) or _int(
                    _get(rec, "observedTimeUnixNano", "observed_time_unix_nano"), rwhere, now_ns
                )
                severity = _severity(
                    _get(rec, "severityNumber", "severity_number"), f"{rwhere}.severityNumber"
                )
                text = _get(rec, "severityText", "severity_text")
                if trace_id is None or span_id is None:
                    out.reject(f"{rwhere}: invalid traceId or spanId")
                    continue
                out.logs.append(
                    (
                        trace_id,
                        span_id,
                        time_ns,
                        severity,
                        text if isinstance(text, str) else "",
                        body_value if isinstance(body_value, str) else _text(body_value),
                        json.dumps(attrs) if attrs else "{}",
                        service,
                    )
                )
    return out


def _severity(value: Any, where: str) -> int:
    """A severity number; the enum's names (SEVERITY_NUMBER_WARN2 …) are read too."""
    if isinstance(value, str) and value.startswith("SEVERITY_NUMBER_"):
        suffix = value.removeprefix("SEVERITY_NUMBER_")
        for i, name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")):
            rest = suffix.removeprefix(name)
            if rest != suffix and (rest or "1") in ("1", "2", "3", "4"):
                return i * 4 + int(rest or "1")
        return 0
    return _int(value, where)


def _text(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False)
