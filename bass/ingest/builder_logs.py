"""The builder's log requests, decoded without building a tree of them: most of what
bass receives, and the layout bass_builder writes is fixed.

A request laid out exactly as the builder writes it (one resource, one scope, records
with the builder's keys in the builder's order, a string body, no whitespace) is read
with one regular expression per record, straight into the rows bass.ingest.otlp_json
would make of it. Anything else — another SDK, another order, one record that differs —
gets None, and otlp_json decodes the request as any other.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

HEAD = re.compile(
    rb'\{"resourceLogs":\[\{"resource":(\{.*?\}),"scopeLogs":\[\{"scope":(\{[^{}]*\}),'
    rb'"logRecords":\['
)
RECORD = re.compile(
    rb'\{"traceId":"([0-9a-f]{32})","spanId":"([0-9a-f]{16})","severityNumber":([0-9]{1,2}),'
    rb'"severityText":"([A-Z]{0,8})"'
    rb'(?:,"attributes":\[\{"key":"log\.iostream","value":\{"stringValue":"(std(?:out|err))"\}\}\])?'
    rb',"timeUnixNano":"([1-9][0-9]{0,18})","body":\{"stringValue":"((?:[^"\\]++|\\.)*+)"\}\}'
    rb"(,|\]\}\]\}\]\}$)"
)  # fmt: skip
STREAMS = {  # the attributes as otlp_json.to_json writes them
    None: "{}",
    b"stdout": '{"log.iostream": "stdout"}',
    b"stderr": '{"log.iostream": "stderr"}',
}
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
MAX_TIME = 2**63 - 1


def decode(body: bytes, resource_of: Any) -> list[tuple] | None:
    """The rows of a request the builder made, else None. `resource_of(parsed resource
    object)` gives the resource's canonical JSON (as otlp_json makes it)."""
    head = HEAD.match(body)
    if head is None:
        return None
    try:
        resource = resource_of(orjson.loads(head.group(1)))
        orjson.loads(head.group(2))  # a scope object (its name is not kept on log records)
    except (orjson.JSONDecodeError, ValueError):
        return None
    rows: list[tuple] = []
    append = rows.append
    ids: dict[bytes, str] = {}
    match = RECORD.match
    position = head.end()
    end = len(body)
    while position < end:
        found = match(body, position)
        if found is None:
            return None
        trace, span, number, text, stream, time_ns, line, last = found.groups()
        when = int(time_ns)
        if trace == _ZERO_TRACE or span == _ZERO_SPAN or when > MAX_TIME:
            return None  # a record otlp_json rejects: let it say so
        if b"\\" in line:
            try:
                text_of_line = orjson.loads(b'"' + line + b'"')
            except orjson.JSONDecodeError:
                return None
        else:
            try:
                text_of_line = line.decode()
            except UnicodeDecodeError:
                return None
        trace_id = ids.get(trace)
        if trace_id is None:
            trace_id = ids[trace] = trace.decode()
        span_id = ids.get(span)
        if span_id is None:
            span_id = ids[span] = span.decode()
        append((trace_id, span_id, when, int(number), text.decode(), text_of_line,
                STREAMS[stream], resource))  # fmt: skip
        position = found.end()
        if last != b",":
            return rows if position == end else None
    return None
