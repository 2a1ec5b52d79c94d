"""Hostile OTLP requests (issue 9): no request may freeze the server, exhaust its
memory or make it answer 500.

- Values that made the receiver answer 500 or store JSON the API could not read back:
  each answers 400 naming the field (storing nothing) or 200 storing valid data.
- Bodies of many gzip members: decompressed in linear time, off the event loop.
- The in-flight budget: past it 503 with Retry-After, and given back however a
  request ends.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from bass.ingest import bodies, receiver
from bass.ingest.receiver import Receiver
from tests.unit.conftest import App
from tests.unit.helpers import (
    KEY,
    attr,
    log_record,
    logs_payload,
    span,
    start_build,
    traces_payload,
)

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(app: App, path: str, body: bytes, headers: dict[str, str] = JSON) -> Any:
    return app.client.post(path, content=body, headers=headers)


def assert_readable(app: App, trace_id: str = TRACE) -> None:
    """Whatever was stored of the trace reads back, through the API and straight from
    the file with both JSON parsers (the dashboard uses one, exporters' tools the other)."""
    for row in app.rows("SELECT attributes, events, links FROM spans WHERE trace_id = ?", trace_id):
        for text in row.values():
            json.loads(text)
            orjson.loads(text)
    for row in app.rows("SELECT attributes FROM logs WHERE trace_id = ?", trace_id):
        json.loads(row["attributes"])
        orjson.loads(row["attributes"])
    for row in app.rows("SELECT attributes FROM resources"):
        orjson.loads(row["attributes"])
    response = app.client.get(f"/api/traces/{trace_id}")
    assert response.status_code in (200, 404), response.text
    assert app.client.get(f"/api/traces/{trace_id}/logs").status_code == 200


def nested(depth: int, kind: str = "arrayValue") -> str:
    """An AnyValue nested `depth` levels deep (arrays or kvlists), as JSON text (deeper
    than json.dumps could write it)."""
    if kind == "arrayValue":
        opening, closing = '{"arrayValue": {"values": [', "]}}"
    else:
        opening, closing = '{"kvlistValue": {"values": [{"key": "k", "value": ', "}]}}"
    return opening * depth + '{"stringValue": "bottom"}' + closing * depth


def span_with(*attributes: dict[str, Any] | str, events: str = "") -> bytes:
    """A span whose attributes are `attributes` (KeyValues, or JSON text of one)."""
    text = [a if type(a) is str else json.dumps(a) for a in attributes]
    body = json.dumps(traces_payload(span(TRACE, ROOT, end=5)))
    inner = (
        '"attributes": [' + ", ".join(text) + "]" + (f', "events": [{events}]' if events else "")
    )
    assert body.count('"attributes": []') == 1
    return body.replace('"attributes": []', inner).encode()


def deep_attribute(depth: int, kind: str = "arrayValue") -> str:
    return '{"key": "deep", "value": ' + nested(depth, kind) + "}"


# -- nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["arrayValue", "kvlistValue"])
@pytest.mark.parametrize("depth", [1000, 5000])
def test_deeply_nested_attribute_is_400_naming_the_field(app: App, kind: str, depth: int) -> None:
    body = span_with(deep_attribute(depth, kind))
    response = post(app, "/v1/traces", body)
    assert response.status_code == 400, response.text
    assert "nested" in response.json()["message"]
    assert app.count("spans") == 0


@pytest.mark.parametrize("kind", ["arrayValue", "kvlistValue"])
def test_deep_nesting_with_a_lone_surrogate_is_400(app: App, kind: str) -> None:
    """A lone surrogate makes orjson refuse the body: the standard library's parser and
    the surrogate scrubber take it, and must not recurse past Python's limit either."""
    body = span_with(deep_attribute(200, kind), attr("s", "\ud800"))
    assert b"\\ud800" in body
    response = post(app, "/v1/traces", body)
    assert response.status_code == 400, response.text
    assert "nested" in response.json()["message"]
    assert app.count("spans") == 0


@pytest.mark.parametrize("depth", [990, 3000, 100_000])
def test_deep_json_outside_any_attribute_is_400(app: App, depth: int) -> None:
    body = b'{"resourceSpans": [], "x": ' + b"[" * depth + b"]" * depth + b', "s": "\\ud800"}'
    response = post(app, "/v1/traces", body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert "nested" in response.json()["message"]


def test_moderate_nesting_is_stored(app: App) -> None:
    body = span_with(deep_attribute(20, "kvlistValue"), attr("s", "\ud800"))
    assert post(app, "/v1/traces", body).status_code == 200
    (row,) = app.rows("SELECT attributes FROM spans")
    deep = json.loads(row["attributes"])["deep"]
    for _ in range(20):
        deep = deep["k"]
    assert deep == "bottom"
    assert_readable(app)


def test_deeply_nested_log_body_is_400(app: App) -> None:
    body = json.dumps(logs_payload(log_record(TRACE, ROOT, "placeholder")))
    body = body.replace('{"stringValue": "placeholder"}', nested(2000))
    response = post(app, "/v1/logs", body.encode())
    assert response.status_code == 400
    assert "body" in response.json()["message"]
    assert app.count("logs") == 0


# -- numbers ----------------------------------------------------------------------------

HUGE = "9" * 400


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (f'{{"intValue": "{HUGE}"}}', "intValue"),
        (f'{{"intValue": {HUGE}}}', "intValue"),
        (f'{{"doubleValue": {HUGE}}}', "doubleValue"),
        (f'{{"doubleValue": -{HUGE}}}', "doubleValue"),
    ],
)
def test_numbers_past_a_double_are_400_naming_the_field(app: App, value: str, field: str) -> None:
    body = span_with({"key": "n", "value": {"stringValue": "placeholder"}})
    body = body.replace(b'{"stringValue": "placeholder"}', value.encode())
    response = post(app, "/v1/traces", body)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"] and "range" in response.json()["message"]
    assert app.count("spans") == 0


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ('{"doubleValue": "NaN"}', "NaN"),
        ('{"doubleValue": NaN}', "NaN"),
        ('{"doubleValue": Infinity}', "Infinity"),
        ('{"doubleValue": -Infinity}', "-Infinity"),
        ('{"doubleValue": 1e400}', "Infinity"),
        ('{"doubleValue": "-1e400"}', "-Infinity"),
        ('{"intValue": 1e300}', 1e300),
    ],
)
def test_non_finite_doubles_are_stored_as_strings(app: App, value: str, stored: Any) -> None:
    body = span_with({"key": "n", "value": {"stringValue": "placeholder"}})
    body = body.replace(b'{"stringValue": "placeholder"}', value.encode())
    assert post(app, "/v1/traces", body).status_code == 200
    (row,) = app.rows("SELECT attributes FROM spans")
    assert json.loads(row["attributes"]) == {"n": stored}
    assert_readable(app)


@pytest.mark.parametrize("name", ["NaN", "Infinity", "-Infinity", "[1, 2]", '{"a": NaN}', "7"])
def test_event_names_that_are_no_strings_are_stored_empty(app: App, name: str) -> None:
    body = span_with(events='{"timeUnixNano": "5", "name": ' + name + ', "attributes": []}')
    assert post(app, "/v1/traces", body).status_code == 200
    (row,) = app.rows("SELECT events FROM spans")
    assert json.loads(row["events"]) == [{"time_ns": 5, "name": "", "attributes": {}}]
    assert_readable(app)


def test_nan_where_json_has_no_number_is_never_stored(app: App) -> None:
    """NaN and the infinities in any field (names, messages, scope, keys' values)."""
    payload = traces_payload(span(TRACE, ROOT, end=5))
    body = json.dumps(payload).replace('"name": "step"', '"name": NaN')
    body = body.replace('"scope": {"name": "bass"}', '"scope": {"name": Infinity}')
    body = body.replace('"kind": 1', '"kind": 1, "status": {"message": NaN, "code": NaN}')
    response = post(app, "/v1/traces", body.encode())
    assert response.status_code == 400 and "status.code" in response.json()["message"]
    body = body.replace('"code": NaN', '"code": 2')
    assert post(app, "/v1/traces", body.encode()).status_code == 200
    assert app.rows("SELECT name, scope, status_message FROM spans") == [
        {"name": "", "scope": "", "status_message": ""}
    ]
    assert_readable(app)


# -- wrong types where a string was expected -----------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"arrayValue": {"values": [{"stringValue": "ok"}]}},
        {"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "ok"}}]}},
        {"intValue": "3"},
        {"doubleValue": "NaN"},
    ],
)
def test_bass_status_that_is_no_string_is_ignored(app: App, value: dict[str, Any]) -> None:
    body = span_with({"key": "bass.status", "value": value})
    assert post(app, "/v1/traces", body).status_code == 200
    (row,) = app.rows("SELECT bass_status FROM spans")
    assert row["bass_status"] == "ok"  # from the OTLP status: ended, not an error
    assert_readable(app)


@pytest.mark.parametrize(
    "attributes",
    [
        [{"key": ["a"], "value": {"stringValue": "x"}}],
        [{"key": "a", "value": {"stringValue": ["x"]}}],
        [{"key": "a", "value": {"stringValue": {"x": 1}}}],
        [{"key": {"a": 1}, "value": {"stringValue": "x"}}],
    ],
)
def test_log_attributes_of_unhashable_types_are_400(app: App, attributes: list[Any]) -> None:
    record = {**log_record(TRACE, ROOT), "attributes": attributes}
    response = post(app, "/v1/logs", json.dumps(logs_payload(record)).encode())
    assert response.status_code == 400, response.text
    assert "attributes[0]" in response.json()["message"]
    assert app.count("logs") == 0


# -- protobuf ---------------------------------------------------------------------------


def _proto_span() -> tuple[ExportTraceServiceRequest, Any]:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    service = resource.resource.attributes.add()
    service.key, service.value.string_value = "service.name", "svc"
    s = resource.scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = bytes.fromhex(TRACE), bytes.fromhex(ROOT), "pb"
    s.start_time_unix_nano, s.end_time_unix_nano = 1, 2
    return request, s


@pytest.mark.parametrize("kind", ["array_value", "kvlist_value"])
def test_protobuf_deep_nesting_is_400(app: App, kind: str) -> None:
    request, s = _proto_span()
    kv = s.attributes.add()
    kv.key = "deep"
    value = kv.value
    for _ in range(200):
        if kind == "array_value":
            value = value.array_value.values.add()
        else:
            inner = value.kvlist_value.values.add()
            inner.key, value = "k", inner.value
    value.string_value = "bottom"
    response = post(app, "/v1/traces", request.SerializeToString(), PROTOBUF)
    assert response.status_code == 400
    assert b"nested too deeply" in response.content
    assert app.count("spans") == 0


def test_protobuf_bass_status_array_and_nan_are_stored_readably(app: App) -> None:
    request, s = _proto_span()
    status = s.attributes.add()
    status.key = "bass.status"
    status.value.array_value.values.add().string_value = "ok"
    number = s.attributes.add()
    number.key, number.value.double_value = "n", float("nan")
    event = s.events.add()
    event.time_unix_nano, event.name = 3, "NaN"
    extreme = event.attributes.add()
    extreme.key, extreme.value.double_value = "inf", float("-inf")
    response = post(app, "/v1/traces", request.SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    (row,) = app.rows("SELECT bass_status, attributes, events FROM spans")
    assert row["bass_status"] == "ok"
    assert json.loads(row["attributes"]) == {"bass.status": ["ok"], "n": "NaN"}
    assert json.loads(row["events"])[0]["attributes"] == {"inf": "-Infinity"}
    assert_readable(app)


def test_protobuf_deep_log_body_is_400(app: App) -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    value = record.body
    for _ in range(200):
        value = value.array_value.values.add()
    value.int_value = 1
    response = post(app, "/v1/logs", request.SerializeToString(), PROTOBUF)
    assert response.status_code == 400
    assert app.count("logs") == 0


# == decompression: linear time, off the event loop =====================================

EMPTY_MEMBER = gzip.compress(b"", mtime=0)


def many_members(payload: bytes, size: int) -> bytes:
    """`payload` gzipped, followed by empty gzip members up to `size` bytes."""
    return gzip.compress(payload, mtime=0) + EMPTY_MEMBER * (size // len(EMPTY_MEMBER))


class CountingInflater:
    """zlib.decompressobj, counting the bytes it is given and the bytes it copies out
    of its input (`unused_data`, `unconsumed_tail`): the work, whatever the clock says."""

    work = 0
    real = zlib.decompressobj

    def __init__(self, wbits: int) -> None:
        self.inner = CountingInflater.real(wbits)

    def decompress(self, data: Any, max_length: int = 0) -> bytes:
        out = self.inner.decompress(data, max_length)
        inner = self.inner
        CountingInflater.work += len(data) + len(inner.unused_data) + len(inner.unconsumed_tail)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_decompressing_many_members_takes_work_linear_in_their_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(zlib, "decompressobj", CountingInflater)
    payload = json.dumps(traces_payload(span(TRACE, ROOT))).encode()
    work = {}
    for members in (1_000, 10_000, 100_000):
        body = many_members(payload, members * len(EMPTY_MEMBER))
        CountingInflater.work = 0
        assert bodies.inflate(body, "gzip", 64 << 20) == payload
        work[members] = CountingInflater.work
    # linear: 100 times the members, ~100 times the work (copying the rest of the body
    # at every member, as before, made it ~10,000 times)
    assert work[100_000] < 110 * work[1_000]
    assert work[100_000] < 11 * work[10_000]
    assert work[100_000] < 30 * len(body)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_decompression_reads_every_member_and_refuses_what_is_cut_short(encoding: str) -> None:
    def compress(data: bytes) -> bytes:
        return gzip.compress(data) if encoding == "gzip" else zlib.compress(data)

    parts = [bytes(range(256)) * 700, b"", b"x" * 5, bytes(300_000)]
    body = b"".join(compress(p) for p in parts)
    assert bodies.inflate(body, encoding, 1 << 20) == b"".join(parts)
    for cut in (body[:-1], body[: len(body) // 2], body + b"\x00"):
        with pytest.raises(HTTPException) as refused:
            bodies.inflate(cut, encoding, 1 << 20)
        assert refused.value.status_code == 400
    with pytest.raises(HTTPException) as refused:
        bodies.inflate(body, encoding, len(b"".join(parts)) - 1)
    assert refused.value.status_code == 413


def test_a_100k_member_body_is_stored(app: App) -> None:
    payload = json.dumps(traces_payload(span(TRACE, ROOT))).encode()
    body = many_members(payload, 100_000 * len(EMPTY_MEMBER))
    response = post(app, "/v1/traces", body, {**JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert app.count("spans") == 1


def test_the_server_answers_while_a_many_member_body_is_decompressed(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An 8 MB body of gzip members is decompressed in a worker thread: held there, the
    event loop still answers /healthz and a worker's heartbeat."""
    job = start_build(app)
    started, go_on, finished = threading.Event(), threading.Event(), threading.Event()
    real_inflate = bodies.inflate

    def held_inflate(*args: Any) -> bytes:
        started.set()
        try:
            assert go_on.wait(60), "never let go"
            return real_inflate(*args)
        finally:
            finished.set()

    monkeypatch.setattr(bodies, "inflate", held_inflate)
    payload = json.dumps(traces_payload(span(TRACE, ROOT, end=5), service="other")).encode()
    body = many_members(payload, 8 << 20)
    results: list[Any] = []
    sender = threading.Thread(
        target=lambda: results.append(
            post(app, "/v1/traces", body, {**JSON, "Content-Encoding": "gzip"})
        )
    )
    sender.start()
    try:
        assert started.wait(60)
        assert app.client.get("/healthz").status_code == 200
        worker = {"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"}
        beat = app.client.post(f"/jobs/{job['id']}/heartbeat", headers=worker)
        assert beat.status_code == 200
        assert not finished.is_set()  # both answered while the body was still in flight
    finally:
        go_on.set()
        sender.join(60)
    assert results[0].status_code == 200
    assert app.rows("SELECT span_id FROM spans") == [{"span_id": ROOT}]


# == the in-flight budget =================================================================


def receiver_of(app: App) -> Receiver:
    return app.client.app_state["receiver"]


def logs_body(text: str, lines: int = 1) -> bytes:
    records = [log_record(TRACE, ROOT, f"{text} {n}") for n in range(lines)]
    return json.dumps(logs_payload(*records)).encode()


def held_by(body: bytes) -> int:
    """What a JSON body holds of the budget while it is decoded."""
    return len(body) + bodies.decoded_size(body, protobuf=False)


def test_requests_past_the_budget_get_503_and_store_nothing(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, other = logs_body("first", 20), logs_body("other")
    app = make_app(max_inflight=held_by(first) + held_by(other) - 1)
    started, go_on = threading.Event(), threading.Event()
    real_decode = receiver.DECODERS[("logs", "application/json")]

    def held_decode(body: bytes) -> Any:
        if body == first:
            started.set()
            assert go_on.wait(60), "never let go"
        return real_decode(body)

    monkeypatch.setitem(receiver.DECODERS, ("logs", "application/json"), held_decode)
    results: list[Any] = []
    holder = threading.Thread(target=lambda: results.append(post(app, "/v1/logs", first)))
    holder.start()
    try:
        assert started.wait(60)
        assert receiver_of(app).budget.used == held_by(first)
        refused = []
        for n in range(5):  # each would fit alone, none beside the first
            body = logs_body(f"refused{n}")
            refused.append(post(app, "/v1/logs", body))
        for response in refused:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["code"] == 14  # UNAVAILABLE
        assert receiver_of(app).budget.used == held_by(first)  # the refused hold nothing
    finally:
        go_on.set()
        holder.join(60)
    assert results[0].status_code == 200
    assert receiver_of(app).budget.used == 0
    assert post(app, "/v1/logs", other).status_code == 200  # room again
    bodies_stored = {r["body"].split()[0] for r in app.rows("SELECT body FROM logs")}
    assert bodies_stored == {"first", "other"}
    assert receiver_of(app).budget.used == 0


def test_a_body_arriving_past_the_budget_is_read_to_its_end_and_answered_503(
    make_app: Any,
) -> None:
    """Refused as it streams in: the rest is read and dropped (held by nobody), so the
    client, still sending, gets to read its 503 instead of a reset connection."""
    app = make_app(max_inflight=100_000, max_body=1 << 20)
    chunks = [b"x" * 30_000] * 10  # 300 KB in ten chunks: past the budget at the 4th
    response = app.client.post("/v1/logs", content=iter(chunks), headers=JSON)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert receiver_of(app).budget.used == 0
    past_the_cap = iter([b"x" * 300_000] * 4)  # still counted while dropped: 413
    assert app.client.post("/v1/logs", content=past_the_cap, headers=JSON).status_code == 413
    assert receiver_of(app).budget.used == 0
    assert post(app, "/v1/logs", logs_body("after")).status_code == 200


def test_a_decompression_bomb_past_the_budget_is_503_and_gives_everything_back(
    make_app: Any,
) -> None:
    app = make_app(max_inflight=1 << 20, max_body=64 << 20)
    bomb = gzip.compress(bytes(8 << 20))
    assert len(bomb) < 1 << 20
    response = post(app, "/v1/traces", bomb, {**JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert receiver_of(app).budget.used == 0
    assert post(app, "/v1/logs", logs_body("after")).status_code == 200


def test_a_body_too_large_to_decode_within_the_budget_is_413(make_app: Any) -> None:
    body = logs_body("many", 500)
    app = make_app(max_inflight=held_by(body) - 1)
    response = post(app, "/v1/logs", body)
    assert response.status_code == 413
    assert "--max-inflight-mb" in response.json()["message"]
    assert app.count("logs") == 0 and receiver_of(app).budget.used == 0
    assert post(app, "/v1/logs", logs_body("few", 5)).status_code == 200


def test_the_budget_is_given_back_however_a_request_ends(make_app: Any) -> None:
    app = make_app(max_inflight=1 << 20, max_body=100_000)
    gz = {**JSON, "Content-Encoding": "gzip"}
    answers = [
        post(app, "/v1/logs", b"{not json").status_code,
        post(app, "/v1/logs", b"x" * 200_000).status_code,
        post(app, "/v1/logs", gzip.compress(bytes(300_000)), gz).status_code,
        post(app, "/v1/logs", gzip.compress(b"{}")[:-3], gz).status_code,
        post(app, "/v1/logs", b"{}", {**JSON, "Content-Encoding": "br"}).status_code,
        post(app, "/v1/logs", logs_body("ok")).status_code,
    ]
    assert answers == [400, 413, 413, 400, 415, 200]
    assert receiver_of(app).budget.used == 0


def test_a_client_that_hangs_up_mid_body_gives_its_bytes_back(app: App) -> None:
    ingest = receiver_of(app)
    messages = [
        {"type": "http.request", "body": b'{"resourceLogs": [', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/logs",
        "headers": [(b"content-type", b"application/json")],
    }
    portal = app.client.portal
    assert portal is not None
    response = portal.call(ingest.ingest, Request(scope, receive), "logs")
    assert response.status_code == 499  # nobody reads it: not a traceback in the log
    assert ingest.budget.used == 0
    assert app.count("logs") == 0


def _referenced_bytes(error: BaseException) -> int:
    """Bytes that the frames of `error`'s traceback (and chained exceptions) refer to."""
    total, seen = 0, set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                if isinstance(value, bytes | bytearray):
                    total += len(value)
            tb = tb.tb_next
        stack += [current.__context__, current.__cause__]
    return total


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (gzip.compress(bytes(8 << 20)), "gzip", 413),  # refused while decompressing
        (gzip.compress(b"[" * 100_000), "gzip", 400),  # refused by the decoder
        (b'{"resourceLogs": [{"scopeLogs": 5}]}' + b" " * (1 << 20), "identity", 400),
    ],
)
def test_a_refused_request_lets_go_of_its_bytes_when_it_gives_back_its_budget(
    make_app: Any, body: bytes, encoding: str, status: int
) -> None:
    """Its exception's traceback no longer refers to the body, the bytes decompressed so
    far or the parsed payload: they go with the budget, not once the answer is sent."""
    app = make_app(max_body=4 << 20)
    ingest = receiver_of(app)
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    del body  # this frame is in the traceback too

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    headers = [(b"content-type", b"application/json"), (b"content-encoding", encoding.encode())]
    request = Request({"type": "http", "method": "POST", "path": "/v1/logs", "headers": headers},
                      receive)  # fmt: skip
    portal = app.client.portal
    assert portal is not None
    with pytest.raises(HTTPException) as refused:
        portal.call(ingest.ingest, request, "logs")
    assert refused.value.status_code == status
    assert ingest.budget.used == 0
    assert _referenced_bytes(refused.value) < 64 << 10
