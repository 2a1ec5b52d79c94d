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
# What comes before the body in a record, without the `{"traceId":"` it starts with.
RECORD_HEAD = re.compile(
    rb'([0-9a-f]{32})","spanId":"([0-9a-f]{16})","severityNumber":([0-9]{1,2}),'
    rb'"severityText":"([A-Z]{0,8})"'
    rb'(?:,"attributes":\[\{"key":"log\.iostream","value":\{"stringValue":"(std(?:out|err))"\}\}\])?'
    rb',"timeUnixNano":"([1-9][0-9]{0,18})'
)  # fmt: skip
FIRST = b'{"traceId":"'
BETWEEN = b'},{"traceId":"'  # between two records: no JSON string can hold it (its quote)
BODY = b'","body":{"stringValue":"'
TAIL = b"}]}]}]}"  # the last record's end, and the request's
ESCAPED = re.compile(rb'["\\\x00-\x1f]')  # a body holding one is read by the JSON parser
STREAMS = {  # the attributes as otlp_json.to_json writes them
    None: "{}",
    b"stdout": '{"log.iostream": "stdout"}',
    b"stderr": '{"log.iostream": "stderr"}',
}
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
MAX_TIME = 2**63 - 1


def decode(body: bytes, resource_of: Any) -> list[tuple] | None:
    """The rows of a request the builder made, else None. `resource_of(parsed resource
    object)` gives the resource's canonical JSON (as otlp_json makes it).

    The records are cut apart where one ends and the next begins (`},{"traceId":"`, which
    no JSON string can hold); the part of a record before its body is read once for the
    run of records that share it (the builder gives the lines of one read one time)."""
    head = HEAD.match(body)
    if head is None or not body.endswith(TAIL) or not body.startswith(FIRST, head.end()):
        return None
    try:
        resource = resource_of(orjson.loads(head.group(1)))
        orjson.loads(head.group(2))  # a scope object (its name is not kept on log records)
    except (orjson.JSONDecodeError, ValueError):
        return None
    rows: list[tuple] = []
    append = rows.append
    escaped = ESCAPED.search
    before: bytes = b""
    fields: tuple[Any, ...] = ()
    for record in body[head.end() + len(FIRST) : -len(TAIL)].split(BETWEEN):
        at = record.find(BODY)
        if at < 0 or not record.endswith(b'"}'):
            return None
        if record[:at] != before:
            before = record[:at]
            found = _fields(before, resource)
            if found is None:
                return None
            fields = found
        line = record[at + len(BODY) : -2]
        if escaped(line) is None:
            try:
                text = line.decode()
            except UnicodeDecodeError:
                return None
        else:
            try:
                text = orjson.loads(b'"' + line + b'"')
            except orjson.JSONDecodeError:
                return None
            if type(text) is not str:
                return None
        append((*fields[:5], text, *fields[5:]))
    return rows


def _fields(before: bytes, resource: str) -> tuple[Any, ...] | None:
    """(trace id, span id, time, severity number, severity text, attributes JSON,
    resource) of a record's part before its body, or None (otlp_json is to judge)."""
    found = RECORD_HEAD.fullmatch(before)
    if found is None:
        return None
    trace, span, number, text, stream, time_ns = found.groups()
    when = int(time_ns)
    if trace == _ZERO_TRACE or span == _ZERO_SPAN or when > MAX_TIME:
        return None  # a record otlp_json rejects: let it say so
    return (trace.decode(), span.decode(), when, int(number), text.decode(), STREAMS[stream],
            resource)  # fmt: skip
