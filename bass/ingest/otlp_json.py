"""OTLP/JSON decoding into store rows, following the specification's JSON mapping.

Hex trace and span ids (any case, stored lowercase), 64-bit integers as strings or
numbers, integer enums (names accepted too), every AnyValue kind, lowerCamelCase or
snake_case field names, unknown fields ignored, `null` where a field may be absent.
A payload whose structure is wrong raises OTLPDecodeError (the request stores nothing);
a record with bad ids is rejected alone and counted, as OTLP's partial success reports.

This is the ingest hot path: the happy path calls few functions per record, ids and
attribute sets that repeat within a request are decoded once, and the location of an
error is only spelled out when there is one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bass import states
from bass.ingest import builder_logs

SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
BASS_STATUSES = frozenset((*states.STATUSES, states.RUNNING))
_HEX = frozenset("0123456789abcdef")


class OTLPDecodeError(ValueError):
    """The payload is not OTLP; nothing from it may be stored. `path` says where."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, prefix: str) -> OTLPDecodeError:
        """The same error, located one level further out."""
        joined = prefix + ("" if not self.path or self.path[0] == "[" else ".") + self.path
        return OTLPDecodeError(self.message, joined if self.path else prefix)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


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


def derive_status(bass_status: Any, end_ns: int, code: int) -> str:
    """The span's bass status: its `bass.status` attribute, else from its OTLP status."""
    # any AnyValue may come as the attribute: a list or dict is no status (and unhashable)
    if type(bass_status) is str and bass_status in BASS_STATUSES:
        return bass_status
    if end_ns == 0:
        return states.RUNNING
    return states.FAILED if code == 2 else states.OK


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# How deep AnyValues may nest (arrays in arrays, kvlists in kvlists). Protobuf's own limit
# (100 messages) allows 31 kvlist or 47 array levels; past 32 here the request is refused
# before any recursion (the decoder's, the JSON encoder's) can reach Python's limit.
MAX_DEPTH = 32


def storable_double(value: float) -> float | str:
    """A double as the store keeps it: NaN and the infinities as the strings OTLP/JSON
    uses for them ("NaN", "Infinity", "-Infinity"), since JSON has no such numbers."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def hex_id(value: Any, size: int) -> str | None:
    """A lowercase hex id of `size` bytes, '' when absent, None when invalid."""
    if value is None or value == "":
        return ""
    if type(value) is not str or len(value) != size * 2:
        return None
    value = value.lower()
    if not _HEX.issuperset(value) or value.count("0") == len(value):
        return None
    return value


class _Ids(dict):
    """Per-request memo of decoded ids: a batch repeats the same few."""

    def get_id(self, value: Any, size: int) -> str | None:
        if type(value) is str:
            found = self.get(value, False)
            if found is False:
                found = self[value] = hex_id(value, size)
            return found
        return hex_id(value, size)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake)
    return value


def _str(value: Any) -> str:
    """A string field: anything else (a number, NaN, an object) is taken as absent."""
    return value if type(value) is str else ""


def _list(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if type(value) is not list:
        raise OTLPDecodeError("expected an array", camel)
    return value


def _object(value: Any, path: str = "") -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise OTLPDecodeError("expected an object", path)
    return value


def _int(value: Any, path: str, default: int = 0) -> int:
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            if value == "":
                return default
    elif type(value) is int:
        return value
    elif value is None:
        return default
    elif type(value) is float and value.is_integer():
        return int(value)
    raise OTLPDecodeError(f"expected an integer, got {value!r:.40}", path)


MAX_TIME = 2**63 - 1  # the largest SQLite INTEGER: nanoseconds until the year 2262


def check_time(ns: int, path: str) -> int:
    """A time in nanoseconds that the store can hold (fixed64 allows twice as much)."""
    if 0 <= ns <= MAX_TIME:
        return ns
    raise OTLPDecodeError(f"{ns} is out of range for a time (0 to 2^63-1 ns)", path)


def _time(value: Any, path: str, default: int = 0) -> int:
    return check_time(_int(value, path, default), path)


def _int32(value: Any, path: str) -> int:
    number = _int(value, path)
    if -(2**31) <= number < 2**31:
        return number
    raise OTLPDecodeError(f"{number} is out of range for an enum (int32)", path)


def _enum(value: Any, names: dict[str, int], path: str) -> int:
    if type(value) is str and value in names:
        return names[value]
    return _int32(value, path)


def any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP AnyValue as a plain JSON-able Python value."""
    if value is None:
        return None
    if type(value) is not dict:
        raise OTLPDecodeError("expected an AnyValue object")
    for key, inner in value.items():
        if key == "stringValue" or key == "string_value":
            if type(inner) is not str:
                raise OTLPDecodeError("expected a string", "stringValue")
            return inner
        if key == "intValue" or key == "int_value":
            number = _int(inner, "intValue")
            if INT64_MIN <= number <= INT64_MAX:
                return number
            # OTLP ints are 64-bit; a larger one (the JS SDK sends big whole doubles as
            # intValue) is kept as the double it was, if it is one.
            return _double(number, "intValue")
        if key == "boolValue" or key == "bool_value":
            if type(inner) is not bool:
                raise OTLPDecodeError("expected a boolean", "boolValue")
            return inner
        if key == "doubleValue" or key == "double_value":
            if type(inner) is str:  # NaN, Infinity and friends travel as strings
                try:
                    return storable_double(float(inner))
                except ValueError:
                    raise OTLPDecodeError("not a number", "doubleValue") from None
            if type(inner) not in (int, float):
                raise OTLPDecodeError("expected a number", "doubleValue")
            return _double(inner, "doubleValue")
        if key == "arrayValue" or key == "array_value":
            if depth >= MAX_DEPTH:
                raise OTLPDecodeError(f"nested deeper than {MAX_DEPTH} levels", "arrayValue")
            values = _list(_object(inner, "arrayValue"), "values", "values")
            out = []
            for i, item in enumerate(values):
                try:
                    out.append(any_value(item, depth + 1))
                except OTLPDecodeError as e:
                    raise e.within(f"arrayValue.values[{i}]") from None
            return out
        if key == "kvlistValue" or key == "kvlist_value":
            if depth >= MAX_DEPTH:
                raise OTLPDecodeError(f"nested deeper than {MAX_DEPTH} levels", "kvlistValue")
            items = _list(_object(inner, "kvlistValue"), "values", "values")
            try:
                return attributes(items, depth + 1)
            except OTLPDecodeError as e:
                raise e.within("kvlistValue.values") from None
        if key == "bytesValue" or key == "bytes_value":
            if type(inner) is not str:
                raise OTLPDecodeError("expected base64 text", "bytesValue")
            return inner
    return None  # an empty AnyValue, or only unknown fields


def _double(number: int | float, path: str) -> float | str:
    """A JSON number as a stored double; an integer of hundreds of digits has none."""
    try:
        return storable_double(float(number))
    except OverflowError:
        raise OTLPDecodeError("out of range for a double (about ±1.8e308)", path) from None


def attributes(items: Any, depth: int = 0) -> dict[str, Any]:
    """KeyValue list → dict."""
    if items is None:
        return {}
    if type(items) is not list:
        raise OTLPDecodeError("attributes must be an array")
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if type(item) is not dict or type(item.get("key")) is not str:
            raise OTLPDecodeError("expected {key, value}", f"[{i}]")
        try:
            out[item["key"]] = any_value(item.get("value"), depth)
        except OTLPDecodeError as e:
            raise e.within(f"[{i}].value") from None
    return out


# json.dumps with options builds a new encoder on every call; one shared encoder is
# a good part faster for the three small documents of every span. allow_nan=False: what
# the store keeps must read back as JSON (NaN is not JSON: the API could never answer
# again); the decoders turn non-finite doubles into OTLP/JSON's strings first.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def to_json(value: Any) -> str:
    """Attributes, events or links as the store keeps them (JSON text)."""
    if not value:
        return "[]" if type(value) is list else "{}"
    try:
        return _encode(value)
    except ValueError as e:  # a NaN that got past the decoder: refuse, never store it
        raise OTLPDecodeError(f"not representable as JSON: {e}") from None


class _AttributeSets(dict):
    """Per-request memo: attribute lists of plain strings (one log.iostream, say)
    repeat on every record, so each distinct one is decoded and encoded once."""

    last: tuple[Any, tuple[dict[str, Any], str]] = (None, ({}, "{}"))  # the last list seen

    def encode(self, items: Any) -> tuple[dict[str, Any], str]:
        if items == self.last[0] and items:  # as the record before (compared in C)
            return self.last[1]
        found = self._encode(items)
        if type(items) is list and len(items) <= 4 and all(map(_string_attribute, items)):
            self.last = (items, found)  # only then is an equal list surely decoded alike
        return found

    def _encode(self, items: Any) -> tuple[dict[str, Any], str]:
        if not items:
            if items is None or type(items) is list:
                return {}, "{}"
            attributes(items)  # raises the right error
        key = None
        if type(items) is list and len(items) <= 4:
            try:
                key = tuple((item["key"], item["value"]["stringValue"]) for item in items)
                found = self.get(key)  # TypeError too when a key or value is a list
            except (TypeError, KeyError):
                key = found = None
            if found is not None:
                return found
        decoded = attributes(items)
        encoded = (decoded, to_json(decoded))
        if key is not None and all(type(v) is str for _, v in key):
            self[key] = encoded
        return encoded


def _string_attribute(item: Any) -> bool:
    """Whether `item` is exactly {"key": "…", "value": {"stringValue": "…"}}."""
    if type(item) is not dict or len(item) != 2 or type(item.get("key")) is not str:
        return False
    value = item.get("value")
    return type(value) is dict and len(value) == 1 and type(value.get("stringValue")) is str


def resource_json(attrs: dict[str, Any]) -> str:
    """A resource's attributes as the store keeps them: canonical JSON, so one resource
    is one row however its exporter ordered the attributes."""
    try:
        return json.dumps(
            attrs, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
    except ValueError as e:  # as to_json: never store what is not JSON
        raise OTLPDecodeError(f"resource attributes not representable as JSON: {e}") from None


def _resource(block: dict[str, Any]) -> tuple[str, str]:
    """(canonical resource JSON, service.name) of a resourceSpans/resourceLogs block."""
    resource = _object(block.get("resource"), "resource")
    try:
        attrs = attributes(resource.get("attributes"))
    except OTLPDecodeError as e:
        raise e.within("resource.attributes") from None
    service = attrs.get("service.name")
    return resource_json(attrs), service if type(service) is str else ""


def _resource_of(resource: Any) -> str:
    return _resource({"resource": resource})[0]


def _scope(block: dict[str, Any]) -> str:
    scope = _object(block.get("scope"), "scope")
    name = scope.get("name") or ""
    version = scope.get("version") or ""
    return f"{name} {version}".strip() if type(name) is str and type(version) is str else ""


def parse_json(body: bytes) -> dict[str, Any]:
    """The request's JSON. orjson parses it in a third of the time; what orjson refuses
    and the standard library takes (integers past 64 bits, NaN, lone surrogates, UTF-16)
    is parsed by the standard library, so both accept exactly the same bodies."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            payload = _scrub(json.loads(body))
        except RecursionError:  # the standard library's parser stops at ~1,000 levels
            raise OTLPDecodeError("body is not valid JSON: nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise OTLPDecodeError(f"body is not valid JSON: {e}") from None
    if type(payload) is not dict:
        raise OTLPDecodeError("body must be a JSON object")
    return payload


def _scrub(value: Any) -> Any:
    """`value` with every lone surrogate (JSON's "\\ud800", which no UTF-8 text can
    hold, so SQLite could not store it) replaced by U+FFFD, in place. A loop over a
    stack rather than recursion: the document may nest as deep as the parser went."""
    if type(value) is str:
        return _clean(value)
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is list:
            for i, item in enumerate(node):
                if type(item) is str:
                    node[i] = _clean(item)
                elif type(item) is list or type(item) is dict:
                    stack.append(item)
        elif type(node) is dict:
            items = [(_clean(k), v) for k, v in node.items()]
            node.clear()  # rebuilt rather than updated: a key may have changed
            for k, item in items:
                if type(item) is str:
                    item = _clean(item)
                elif type(item) is list or type(item) is dict:
                    stack.append(item)
                node[k] = item
    return value


def _clean(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def decode_traces(body: bytes) -> Decoded:
    """Decode an ExportTraceServiceRequest in OTLP/JSON into span rows."""
    payload = parse_json(body)
    out = Decoded()
    ids = _Ids()
    for r, rblock in enumerate(_list(payload, "resourceSpans", "resource_spans")):
        try:
            rblock = _object(rblock)
            resource, service = _resource(rblock)
            for s, sblock in enumerate(_list(rblock, "scopeSpans", "scope_spans")):
                try:
                    sblock = _object(sblock)
                    scope = _scope(sblock)
                    for i, span in enumerate(_list(sblock, "spans", "spans")):
                        try:
                            row = _span(_object(span), ids)
                        except OTLPDecodeError as e:
                            raise e.within(f"spans[{i}]") from None
                        if row is None:
                            out.reject(f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: "
                                       "invalid traceId, spanId or parentSpanId")  # fmt: skip
                            continue
                        row["service_name"] = service
                        row["resource"] = resource
                        row["scope"] = scope
                        out.spans.append(row)
                except OTLPDecodeError as e:
                    raise e.within(f"scopeSpans[{s}]") from None
        except OTLPDecodeError as e:
            raise e.within(f"resourceSpans[{r}]") from None
    return out


def _span(span: dict[str, Any], ids: _Ids) -> dict[str, Any] | None:
    trace_id = ids.get_id(_get(span, "traceId", "trace_id"), 16)
    span_id = ids.get_id(_get(span, "spanId", "span_id"), 8)
    parent = ids.get_id(_get(span, "parentSpanId", "parent_span_id"), 8)
    try:
        attrs = attributes(span.get("attributes"))
    except OTLPDecodeError as e:
        raise e.within("attributes") from None
    status = _object(span.get("status"), "status")
    start_ns = _time(_get(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
    end_ns = _time(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
    code = _enum(status.get("code"), STATUS_CODES, "status.code")
    events = []
    for i, event in enumerate(_list(span, "events", "events")):
        try:
            event = _object(event)
            events.append(
                {
                    "time_ns": _time(_get(event, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                    "name": _str(event.get("name")),
                    "attributes": attributes(event.get("attributes")),
                }
            )
        except OTLPDecodeError as e:
            raise e.within(f"events[{i}]") from None
    links = []
    for i, link in enumerate(_list(span, "links", "links")):
        try:
            link = _object(link)
            links.append(
                {
                    "trace_id": ids.get_id(_get(link, "traceId", "trace_id"), 16) or "",
                    "span_id": ids.get_id(_get(link, "spanId", "span_id"), 8) or "",
                    "attributes": attributes(link.get("attributes")),
                }
            )
        except OTLPDecodeError as e:
            raise e.within(f"links[{i}]") from None
    kind = _enum(span.get("kind"), SPAN_KINDS, "kind")
    if not trace_id or not span_id or parent is None:
        return None
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": _str(span.get("name")),
        "kind": kind,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "status_code": code,
        "status_message": _str(status.get("message")),
        "bass_status": derive_status(attrs.get("bass.status"), end_ns, code),
        "attributes": to_json(attrs),
        "events": to_json(events),
        "links": to_json(links),
    }


def decode_logs(body: bytes) -> Decoded:
    """Decode an ExportLogsServiceRequest in OTLP/JSON into log rows."""
    rows = builder_logs.decode(body, _resource_of)
    if rows is not None:  # the builder's own layout, read directly
        return Decoded(logs=rows)
    payload = parse_json(body)
    out = Decoded()
    now_ns = time.time_ns()
    ids = _Ids()
    attribute_sets = _AttributeSets()
    append = out.logs.append
    for r, rblock in enumerate(_list(payload, "resourceLogs", "resource_logs")):
        try:
            rblock = _object(rblock)
            resource, _ = _resource(rblock)
            for s, sblock in enumerate(_list(rblock, "scopeLogs", "scope_logs")):
                try:
                    sblock = _object(sblock)
                    for i, rec in enumerate(_list(sblock, "logRecords", "log_records")):
                        row = _usual_log(rec, resource, ids, attribute_sets)
                        if row is _UNUSUAL:
                            try:
                                row = _log(rec, resource, now_ns, ids, attribute_sets)
                            except OTLPDecodeError as e:
                                raise e.within(f"logRecords[{i}]") from None
                        if row is None:
                            out.reject(f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]: "
                                       "invalid traceId or spanId")  # fmt: skip
                        else:
                            append(row)
                except OTLPDecodeError as e:
                    raise e.within(f"scopeLogs[{s}]") from None
        except OTLPDecodeError as e:
            raise e.within(f"resourceLogs[{r}]") from None
    return out


_UNUSUAL = object()  # _usual_log's answer for a record only _log can decode


def _usual_log(rec: Any, resource: str, ids: _Ids, attribute_sets: _AttributeSets) -> Any:
    """A record as the builder and most SDKs send it (camelCase ids, time as a string of
    digits, a string body, an int severity and a text) decoded as _log would, in fewer
    steps (this is most of what bass receives); _UNUSUAL for anything else."""
    if type(rec) is not dict:
        return _UNUSUAL
    trace_id, span_id = rec.get("traceId"), rec.get("spanId")
    time_ns, number = rec.get("timeUnixNano"), rec.get("severityNumber")
    body, text = rec.get("body"), rec.get("severityText")
    if (
        type(trace_id) is not str or type(span_id) is not str or type(time_ns) is not str
        or type(number) is not int or type(text) is not str or type(body) is not dict
        or not time_ns.isdigit() or len(time_ns) > 19 or time_ns[0] == "0"
        or not -(2**31) <= number < 2**31
    ):  # fmt: skip
        return _UNUSUAL
    line = body.get("stringValue")
    if type(line) is not str:
        return _UNUSUAL
    trace_id, span_id = ids.get_id(trace_id, 16), ids.get_id(span_id, 8)
    try:
        _, attrs_json = attribute_sets.encode(rec.get("attributes"))
    except OTLPDecodeError:
        return _UNUSUAL
    when = int(time_ns)
    if when > MAX_TIME:
        return _UNUSUAL
    if trace_id is None or span_id is None:
        return None
    return (trace_id, span_id, when, number, text, line, attrs_json, resource)


def _log(
    rec: Any, resource: str, now_ns: int, ids: _Ids, attribute_sets: _AttributeSets
) -> tuple | None:
    if type(rec) is not dict:
        raise OTLPDecodeError("expected an object")
    trace_id = ids.get_id(_get(rec, "traceId", "trace_id"), 16)
    span_id = ids.get_id(_get(rec, "spanId", "span_id"), 8)
    body = rec.get("body")
    if type(body) is dict and type(body.get("stringValue")) is str:
        text = body["stringValue"]
    else:
        try:
            value = any_value(body)
        except OTLPDecodeError as e:
            raise e.within("body") from None
        text = value if type(value) is str else body_text(value)
    try:
        _, attrs_json = attribute_sets.encode(rec.get("attributes"))
    except OTLPDecodeError as e:
        raise e.within("attributes") from None
    time_ns = _time(_get(rec, "timeUnixNano", "time_unix_nano"), "timeUnixNano") or _time(
        _get(rec, "observedTimeUnixNano", "observed_time_unix_nano"),
        "observedTimeUnixNano",
        now_ns,
    )
    severity = _severity(_get(rec, "severityNumber", "severity_number"))
    severity_text = _get(rec, "severityText", "severity_text")
    if trace_id is None or span_id is None:
        return None
    return (
        trace_id,
        span_id,
        time_ns,
        severity,
        severity_text if type(severity_text) is str else "",
        text,
        attrs_json,
        resource,
    )


def _severity(value: Any) -> int:
    """A severity number; the enum's names (SEVERITY_NUMBER_WARN2 …) are read too."""
    if type(value) is int and -(2**31) <= value < 2**31:
        return value
    if type(value) is str and value.startswith("SEVERITY_NUMBER_"):
        suffix = value.removeprefix("SEVERITY_NUMBER_")
        for i, name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")):
            rest = suffix.removeprefix(name)
            if rest != suffix and (rest or "1") in ("1", "2", "3", "4"):
                return i * 4 + int(rest or "1")
        return 0
    return _int32(value, "severityNumber")


def body_text(value: Any) -> str:
    """A log body that is no string (a number, a list, a map) as JSON text."""
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError as e:  # as to_json: never store what is not JSON
        raise OTLPDecodeError(f"not representable as JSON: {e}", "body") from None
