"""Hypothesis strategies for hostile OTLP requests: structures close enough to OTLP to
get deep into the decoders, with hostile leaves anywhere (deep nesting, numbers past
64 bits and past doubles, NaN and the infinities as strings and as numbers, wrong types
at every field, lone surrogates, long strings, invalid ids, enums out of range), then
encoded, mangled and compressed the ways a client might send them.

Shared by tests/fuzz/test_fuzz_otlp.py and bench/hostile_bench.py.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

TRACES = ["5b8efff798038103d269b633813fc60c", "0af7651916cd43dd8448eb211c80319c"]
SPANS = ["eee19b7ec3c1b174", "eee19b7ec3c1b175", "00f067aa0ba902b7"]
PIPELINE_SERVICE = "bass:pipeline:demo"  # root spans of this service become builds


@dataclass(frozen=True)
class Deep:
    """A leaf replaced, in the JSON text, by an AnyValue nested `depth` levels (deeper
    than json.dumps could write)."""

    depth: int
    kind: str

    def text(self) -> str:
        if self.kind == "arrayValue":
            opening, closing = '{"arrayValue": {"values": [', "]}}"
        elif self.kind == "kvlistValue":
            opening, closing = '{"kvlistValue": {"values": [{"key": "k", "value": ', "}]}}"
        else:  # plain JSON arrays, where an AnyValue was expected
            opening, closing = "[", "]"
        return opening * self.depth + '{"stringValue": "bottom"}' + closing * self.depth


deep = st.builds(
    Deep,
    st.sampled_from([1, 31, 32, 33, 200, 990, 1100, 5000]),
    st.sampled_from(["arrayValue", "kvlistValue", "json"]),
)
text = st.text(
    st.characters(categories=["Lu", "Ll", "Nd", "Po", "Zs", "Cc", "Cs", "So", "Lo"]), max_size=12
)
long_text = st.integers(1_000, 100_000).map(lambda n: "x" * n)
numbers = st.one_of(
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**400, -(10**400)]),
    st.floats(),  # NaN, the infinities, -0.0 …
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f * 1e300),
)
number_words = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "nan", "inf", "1e400", "-1e400", "9" * 400, "1_000",
     " 7 ", "0x1f", "", "18446744073709551615", "9223372036854775808", "-5"]
)  # fmt: skip
scalar = st.one_of(st.none(), st.booleans(), numbers, number_words, text)


def opaque(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`strategy` as one branch: st.one_of flattens the branches of a one_of inside it,
    so a hostile strategy of many kinds would outweigh the good one beside it."""
    return strategy.map(lambda value: value)


hostile = opaque(
    st.one_of(scalar, st.lists(scalar, max_size=2), st.dictionaries(text, scalar, max_size=2))
)


def weighted(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int
) -> st.SearchStrategy[Any]:
    """`good`, but one time in `odds` `bad` (st.one_of would pick either half the time:
    it drops repeated branches). Shrinks towards `good`."""
    return st.sampled_from([True] * (odds - 1) + [False]).flatmap(
        lambda is_good: good if is_good else bad
    )


def maybe(good: st.SearchStrategy[Any], odds: int = 12) -> st.SearchStrategy[Any]:
    """Mostly `good`, one time in `odds` something hostile: with hostility at every
    field of a payload, a good share of payloads still gets stored."""
    return weighted(good, hostile, odds)


bad_ids = opaque(
    st.one_of(
        st.sampled_from(["", "0" * 32, "0" * 16, "zz" * 16, TRACES[0][:-1], TRACES[0] + "0"]),
        st.sampled_from(TRACES).map(str.upper),
        hostile,
    )
)
trace_id = weighted(st.sampled_from(TRACES), bad_ids, 6)
span_id = weighted(st.sampled_from(SPANS), bad_ids, 6)
parent_id = weighted(st.sampled_from(["", "", *SPANS]), bad_ids, 6)
time_ns = maybe(st.integers(0, 2**63 - 1).map(str) | st.integers(0, 2**63 - 1), odds=20)
enum = maybe(
    st.integers(0, 5)
    | st.sampled_from(["SPAN_KIND_SERVER", "STATUS_CODE_ERROR", "SEVERITY_NUMBER_WARN2", "X"]),
    odds=20,
)


def _any_value_leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"stringValue": weighted(text, st.one_of(long_text, hostile), 4)}),
        st.fixed_dictionaries({"intValue": maybe(st.integers(-(2**63), 2**63 - 1), odds=6)}),
        st.fixed_dictionaries({"intValue": st.integers(-(2**63), 2**63 - 1).map(str)}),
        st.fixed_dictionaries(
            {"doubleValue": weighted(numbers, st.one_of(number_words, hostile), 3)}
        ),
        st.fixed_dictionaries({"boolValue": maybe(st.booleans())}),
        st.fixed_dictionaries({"bytesValue": maybe(st.just("aGVsbG8="))}),
        st.fixed_dictionaries({"string_value": text}),
        st.just({}),
        deep,
        hostile,
    )  # a leaf in ~10: a whole attribute set is hostile about as often as one field


def key_values(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(
        st.sampled_from(["bass.status", "service.name", "log.iostream", "k"]), text, hostile
    )
    pair = st.fixed_dictionaries({"key": keys, "value": values})
    status = st.fixed_dictionaries(
        {"key": st.just("bass.status"), "value": st.one_of(values, st.sampled_from(
            [{"stringValue": s} for s in ("ok", "failed", "running", "bogus")]))}
    )  # fmt: skip
    return maybe(st.lists(weighted(pair, st.one_of(status, hostile), 5), max_size=4))


any_value = st.recursive(
    _any_value_leaves(),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {
                "arrayValue": maybe(
                    st.fixed_dictionaries({"values": maybe(st.lists(inner, max_size=3))})
                )
            }
        ),
        st.fixed_dictionaries(
            {"kvlistValue": maybe(st.fixed_dictionaries({"values": key_values(inner)}))}
        ),
    ),
    max_leaves=8,
)
attributes = key_values(any_value)
resource = maybe(
    st.fixed_dictionaries(
        {"attributes": st.one_of(
            st.just([{"key": "service.name", "value": {"stringValue": PIPELINE_SERVICE}}]),
            attributes)}
    )
)  # fmt: skip
scope = maybe(st.fixed_dictionaries({}, optional={"name": maybe(text), "version": maybe(text)}))

event = maybe(
    st.fixed_dictionaries(
        {"timeUnixNano": time_ns},
        optional={"name": maybe(text), "attributes": attributes},
    )
)
link = maybe(
    st.fixed_dictionaries(
        {"traceId": trace_id, "spanId": span_id}, optional={"attributes": attributes}
    )
)
span = maybe(
    st.fixed_dictionaries(
        {"traceId": trace_id, "spanId": span_id},
        optional={
            "parentSpanId": parent_id,
            "name": maybe(text),
            "kind": enum,
            "startTimeUnixNano": time_ns,
            "endTimeUnixNano": time_ns,
            "attributes": attributes,
            "events": maybe(st.lists(event, max_size=2)),
            "links": maybe(st.lists(link, max_size=2)),
            "status": maybe(
                st.fixed_dictionaries({}, optional={"code": enum, "message": maybe(text)})
            ),
        },
    )
)
log_record = maybe(
    st.fixed_dictionaries(
        {"traceId": trace_id, "spanId": span_id},
        optional={
            "timeUnixNano": time_ns,
            "observedTimeUnixNano": time_ns,
            "severityNumber": enum,
            "severityText": maybe(text),
            "body": any_value,
            "attributes": attributes,
        },
    )
)


def _payload(top: str, scopes: str, records: str, record: st.SearchStrategy) -> st.SearchStrategy:
    scope_block = maybe(
        st.fixed_dictionaries(
            {records: maybe(st.lists(record, max_size=4))}, optional={"scope": scope}
        )
    )
    resource_block = maybe(
        st.fixed_dictionaries(
            {scopes: maybe(st.lists(scope_block, max_size=2))}, optional={"resource": resource}
        )
    )
    return maybe(st.fixed_dictionaries({top: maybe(st.lists(resource_block, max_size=2))}))


payloads = {
    "traces": _payload("resourceSpans", "scopeSpans", "spans", span),
    "logs": _payload("resourceLogs", "scopeLogs", "logRecords", log_record),
}

SNAKE = {"traceId": "trace_id", "spanId": "span_id", "parentSpanId": "parent_span_id",
         "resourceSpans": "resource_spans", "scopeSpans": "scope_spans",
         "resourceLogs": "resource_logs", "scopeLogs": "scope_logs", "logRecords": "log_records",
         "startTimeUnixNano": "start_time_unix_nano", "timeUnixNano": "time_unix_nano"}  # fmt: skip


def json_text(payload: Any, snake: bool, ascii_only: bool) -> str:
    """The payload as JSON text, deep leaves spelled out, optionally in snake_case."""
    deep_leaves: list[Deep] = []

    def placeholder(value: Any) -> str:
        deep_leaves.append(value)
        return f"@@deep{len(deep_leaves) - 1}@@"

    out = json.dumps(payload, default=placeholder, ensure_ascii=ascii_only)
    for n, leaf in enumerate(deep_leaves):
        out = out.replace(f'"@@deep{n}@@"', leaf.text(), 1)
    if snake:
        for camel, snake_name in SNAKE.items():
            out = out.replace(f'"{camel}"', f'"{snake_name}"')
    return out


@dataclass(frozen=True)
class Mangle:
    """What happens to the bytes on the way: cut short, a byte changed, or nothing."""

    how: str
    at: float
    byte: int

    def __call__(self, body: bytes) -> bytes:
        if not body or self.how == "none":
            return body
        i = int(self.at * len(body)) % len(body)
        if self.how == "cut":
            return body[:i]
        return body[:i] + bytes([self.byte]) + body[i + 1 :]


mangles = weighted(
    st.just(Mangle("none", 0, 0)),
    st.builds(Mangle, st.sampled_from(["cut", "flip"]), st.floats(0, 1), st.integers(0, 255)),
    6,
)
compressions = st.sampled_from(
    ["identity"] * 4 + ["gzip", "deflate", "raw-deflate", "gzip-members", "gzip-cut", "br"]
)


def compress(body: bytes, how: str) -> tuple[bytes, dict[str, str]]:
    """`body` compressed `how`, and the Content-Encoding header saying so."""
    if how == "identity":
        return body, {}
    if how == "gzip":
        return gzip.compress(body, mtime=0), {"Content-Encoding": "gzip"}
    if how == "deflate":
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    if how == "raw-deflate":
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return c.compress(body) + c.flush(), {"Content-Encoding": "Deflate"}
    if how == "gzip-members":
        half = len(body) // 2
        members = gzip.compress(body[:half]) + gzip.compress(b"") * 50 + gzip.compress(body[half:])
        return members, {"Content-Encoding": "gzip"}
    if how == "gzip-cut":
        return gzip.compress(body)[:-5], {"Content-Encoding": "gzip"}
    return body, {"Content-Encoding": how}


# -- protobuf ----------------------------------------------------------------------------
# Values as tuples, made into messages by `protobuf_body`: ("s", text), ("i", int),
# ("d", float), ("b", bool), ("x", bytes), ("a", [values]), ("kv", [(key, value)]),
# ("deep", levels, "a" | "kv") and ("none",) for an AnyValue with nothing set.

pb_text = st.one_of(
    st.text(st.characters(categories=["Lu", "Ll", "Nd", "Po", "Cc", "So"]), max_size=10),
    st.sampled_from(["ok", "failed", "running", "NaN", PIPELINE_SERVICE]),
)
pb_value = st.recursive(
    st.one_of(
        st.tuples(st.just("s"), st.one_of(pb_text, long_text)),
        st.tuples(st.just("i"), st.integers(-(2**63), 2**63 - 1)),
        st.tuples(st.just("d"), st.floats()),
        st.tuples(st.just("b"), st.booleans()),
        st.tuples(st.just("x"), st.binary(max_size=8)),
        st.tuples(st.just("deep"), st.sampled_from([10, 30, 31, 46, 47, 60, 200]),
                  st.sampled_from(["a", "kv"])),
        st.just(("none",)),
    ),
    lambda inner: st.one_of(
        st.tuples(st.just("a"), st.lists(inner, max_size=3)),
        st.tuples(st.just("kv"), st.lists(st.tuples(pb_text, inner), max_size=3)),
    ),
    max_leaves=8,
)  # fmt: skip
pb_key = st.one_of(st.sampled_from(["bass.status", "service.name", "k"]), pb_text)
pb_attributes = st.lists(st.tuples(pb_key, pb_value), max_size=4)
pb_trace_id = st.one_of(
    st.sampled_from([bytes.fromhex(t) for t in TRACES]),
    st.sampled_from([bytes.fromhex(t) for t in TRACES]),
    st.just(bytes(16)),
    st.binary(max_size=20),
)
pb_span_id = st.one_of(
    st.sampled_from([bytes.fromhex(s) for s in SPANS]), st.just(b""), st.binary(max_size=10)
)
uint64 = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 2**63, 2**64 - 1]))
int32 = st.one_of(st.integers(0, 5), st.integers(-(2**31), 2**31 - 1))
pb_span = st.fixed_dictionaries(
    {
        "trace_id": pb_trace_id,
        "span_id": pb_span_id,
        "parent_span_id": pb_span_id,
        "name": pb_text,
        "kind": int32,
        "start_time_unix_nano": uint64,
        "end_time_unix_nano": uint64,
        "attributes": pb_attributes,
        "events": st.lists(st.tuples(uint64, pb_text, pb_attributes), max_size=2),
        "status": st.tuples(int32, pb_text),
    }
)
pb_log = st.fixed_dictionaries(
    {
        "trace_id": pb_trace_id,
        "span_id": pb_span_id,
        "time_unix_nano": uint64,
        "observed_time_unix_nano": uint64,
        "severity_number": int32,
        "severity_text": pb_text,
        "body": pb_value,
        "attributes": pb_attributes,
    }
)
pb_requests = {
    kind: st.lists(
        st.tuples(pb_attributes, st.lists(st.tuples(pb_text, st.lists(record, max_size=4)),
                                          max_size=2)),
        max_size=2,
    )
    for kind, record in (("traces", pb_span), ("logs", pb_log))
}  # fmt: skip


def _set_value(message: Any, value: tuple) -> None:
    what = value[0]
    if what == "s":
        message.string_value = value[1]
    elif what == "i":
        message.int_value = value[1]
    elif what == "d":
        message.double_value = value[1]
    elif what == "b":
        message.bool_value = value[1]
    elif what == "x":
        message.bytes_value = value[1]
    elif what == "a":
        message.array_value.SetInParent()
        for item in value[1]:
            _set_value(message.array_value.values.add(), item)
    elif what == "kv":
        message.kvlist_value.SetInParent()
        _set_attributes(message.kvlist_value.values, value[1])
    elif what == "deep":
        for _ in range(value[1]):
            if value[2] == "a":
                message = message.array_value.values.add()
            else:
                pair = message.kvlist_value.values.add()
                pair.key, message = "k", pair.value
        message.string_value = "bottom"


def _set_attributes(field: Any, pairs: list[tuple[str, tuple]]) -> None:
    for key, value in pairs:
        pair = field.add()
        pair.key = key
        _set_value(pair.value, value)


def protobuf_body(kind: str, blocks: list) -> bytes:
    """An ExportTraceServiceRequest or ExportLogsServiceRequest made of `blocks`."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    if kind == "traces":
        request: Any = ExportTraceServiceRequest()
        resources, scopes_of, records_of = request.resource_spans, "scope_spans", "spans"
    else:
        request = ExportLogsServiceRequest()
        resources, scopes_of, records_of = request.resource_logs, "scope_logs", "log_records"
    for resource_attributes, scopes in blocks:
        block = resources.add()
        _set_attributes(block.resource.attributes, resource_attributes)
        for scope_name, records in scopes:
            scope_block = getattr(block, scopes_of).add()
            scope_block.scope.name = scope_name
            for fields in records:
                record = getattr(scope_block, records_of).add()
                for name, value in fields.items():
                    if name == "attributes":
                        _set_attributes(record.attributes, value)
                    elif name == "body":
                        _set_value(record.body, value)
                    elif name == "events":
                        for time, event_name, event_attributes in value:
                            event = record.events.add()
                            event.time_unix_nano, event.name = time, event_name
                            _set_attributes(event.attributes, event_attributes)
                    elif name == "status":
                        record.status.code, record.status.message = value
                    else:
                        setattr(record, name, value)
    return request.SerializeToString()


def json_body(payload: Any, snake: bool, ascii_only: bool, utf16: bool) -> bytes:
    """A payload as the bytes of a JSON body (a lone surrogate makes invalid UTF-8)."""
    text = json_text(payload, snake, ascii_only)
    return text.encode("utf-16" if utf16 else "utf-8", "surrogatepass")


@st.composite
def requests(draw: Any) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of one hostile OTLP request of any kind and form."""
    kind = draw(st.sampled_from(["traces", "logs"]))
    form = draw(st.sampled_from(["json", "json", "protobuf", "bytes"]))
    content_type = "application/x-protobuf" if form == "protobuf" else "application/json"
    if form == "json":
        utf16 = draw(st.sampled_from([False, False, False, True]))
        body = json_body(draw(payloads[kind]), draw(st.booleans()), draw(st.booleans()), utf16)
    elif form == "protobuf":
        body = protobuf_body(kind, draw(pb_requests[kind]))
    else:
        body = draw(st.binary(max_size=2000))
        content_type = draw(st.sampled_from([content_type, "application/x-protobuf"]))
    body, headers = compress(draw(mangles)(body), draw(compressions))
    return f"/v1/{kind}", body, {"Content-Type": content_type, **headers}
