"""Forwarding to Tempo, Loki or any OTLP/HTTP endpoint: bass.ingest.forward.Forwarder
against a fake destination on 127.0.0.1, and end to end through the app."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bass.ingest.forward import Destination, Forwarder, json_to_protobuf, parse_headers
from tests.unit.conftest import App
from tests.unit.fake_destination import FakeDestination, free_port
from tests.unit.helpers import attr, json_logs, json_traces, record, span, wait_until

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
CHILD = "eee19b7ec3c1b175"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
TENANT = {"X-Scope-OrgID": "team-a", "Authorization": "Bearer s3cret"}


@pytest.fixture
def destinations() -> Iterator[Any]:
    """destinations(port=..., answers=[...]) → a FakeDestination, closed after the test."""
    started: list[FakeDestination] = []

    def start(**kwargs: Any) -> FakeDestination:
        started.append(FakeDestination(**kwargs))
        return started[-1]

    yield start
    for destination in started:
        destination.close()


@pytest.fixture
def forwarders() -> Iterator[Any]:
    """forwarders(destination, **options) → a Forwarder, closed after the test."""
    started: list[Forwarder] = []

    def start(destination: Destination, **kwargs: Any) -> Forwarder:
        kwargs.setdefault("backoff_first", 0.02)
        kwargs.setdefault("backoff_max", 0.1)
        started.append(Forwarder(destination, **kwargs))
        return started[-1]

    yield start
    for forwarder in started:
        forwarder.close(timeout=1)


def two_spans() -> bytes:
    return json_traces(
        span(TRACE, ROOT, name="build", start=10, end=20, bass_status="ok"),
        span(TRACE, CHILD, parent=ROOT, name="compile", start=11, end=19,
             attributes=[attr("bass.status", "failed"), attr("retries", 3)]),
        service="bass:pipeline:demo",
    )  # fmt: skip


def two_logs() -> bytes:
    return json_logs(
        record(TRACE, CHILD, "first line", severity=9, attributes=[attr("stream", "stdout")]),
        record(TRACE, CHILD, "second line", severity=17),
        service="bass:pipeline:demo",
    )


def check_spans(body: bytes) -> None:
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    assert {a.key: a.value.string_value for a in resource_spans.resource.attributes} == {
        "service.name": "bass:pipeline:demo"
    }
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == "bass"
    root, child = scope_spans.spans
    assert root.trace_id == child.trace_id == bytes.fromhex(TRACE)
    assert (root.span_id, root.parent_span_id) == (bytes.fromhex(ROOT), b"")
    assert (child.span_id, child.parent_span_id) == (bytes.fromhex(CHILD), bytes.fromhex(ROOT))
    assert (root.name, child.name) == ("build", "compile")
    assert (child.start_time_unix_nano, child.end_time_unix_nano, child.kind) == (11, 19, 1)
    assert {a.key: a.value for a in child.attributes}["bass.status"].string_value == "failed"
    assert {a.key: a.value for a in child.attributes}["retries"].int_value == 3


def check_logs(body: bytes) -> None:
    request = ExportLogsServiceRequest.FromString(body)
    (resource_logs,) = request.resource_logs
    first, second = resource_logs.scope_logs[0].log_records
    assert first.trace_id == second.trace_id == bytes.fromhex(TRACE)
    assert first.span_id == bytes.fromhex(CHILD)
    assert (first.body.string_value, second.body.string_value) == ("first line", "second line")
    assert (first.severity_number, second.severity_number) == (9, 17)
    assert first.time_unix_nano == 1_700_000_000_000_000_000
    assert [(a.key, a.value.string_value) for a in first.attributes] == [("stream", "stdout")]


# -- the conversion ---------------------------------------------------------------------


def test_json_becomes_the_same_protobuf() -> None:
    check_spans(json_to_protobuf("traces", two_spans()))
    check_logs(json_to_protobuf("logs", two_logs()))


def test_uppercase_ids_convert_too() -> None:
    body = json_traces(span(TRACE.upper(), ROOT.upper(), name="x"))
    (converted,) = (
        ExportTraceServiceRequest.FromString(json_to_protobuf("traces", body))
        .resource_spans[0]
        .scope_spans[0]
        .spans
    )
    assert converted.trace_id == bytes.fromhex(TRACE)


def test_records_refused_for_bad_ids_are_left_out() -> None:
    """What the receiver refused (partial success) is not sent on with ids made up from
    its text: a destination would refuse the whole request for them."""
    body = json_traces(
        span(TRACE, ROOT, name="good"),
        span("not-hex", CHILD, name="bad trace id"),
        span(TRACE, "00", name="short span id"),
        span(TRACE, "0" * 16, name="zero span id"),
        span(TRACE, CHILD, parent="xyz", name="bad parent"),
        span(TRACE, CHILD, parent=ROOT, name="also good",
             links=[{"traceId": TRACE, "spanId": ROOT}]),
    )  # fmt: skip
    converted = ExportTraceServiceRequest.FromString(json_to_protobuf("traces", body))
    spans = converted.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["good", "also good"]
    assert spans[1].links[0].span_id == bytes.fromhex(ROOT)
    body = json_logs(record(TRACE, ROOT, "kept"), record(TRACE, "xyz", "refused"),
                     record("", "", "no trace, kept"))  # fmt: skip
    converted_logs = ExportLogsServiceRequest.FromString(json_to_protobuf("logs", body))
    records = converted_logs.resource_logs[0].scope_logs[0].log_records
    assert [(r.body.string_value, r.trace_id) for r in records] == [
        ("kept", bytes.fromhex(TRACE)),
        ("no trace, kept", b""),
    ]


def test_parse_headers() -> None:
    assert parse_headers(["X-Scope-OrgID: team-a", "Authorization=Basic Zm9v:YmFy"]) == {
        "X-Scope-OrgID": "team-a",
        "Authorization": "Basic Zm9v:YmFy",
    }
    for bad in (["no separator"], [": value"]):
        with pytest.raises(ValueError):
            parse_headers(bad)


# -- one Forwarder against a fake destination --------------------------------------------


def test_json_arrives_as_protobuf_with_the_headers(destinations: Any, forwarders: Any) -> None:
    tempo = destinations()
    forwarder = forwarders(Destination("traces", tempo.url("/otlp/v1/traces?x=1"), TENANT))
    forwarder.offer(two_spans(), "application/json", 2)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    (got,) = tempo.received
    assert got.path == "/otlp/v1/traces?x=1"
    assert got.headers["content-type"] == "application/x-protobuf"
    assert got.headers["x-scope-orgid"] == "team-a"
    assert got.headers["authorization"] == "Bearer s3cret"
    check_spans(got.body)
    assert forwarder.status() == {
        "kind": "traces",
        "url": tempo.url("/otlp/v1/traces?x=1"),
        "sent": 2,
        "retried": 0,
        "dropped": 0,
        "queued": 0,
        "last_error": "",
    }


def test_protobuf_passes_byte_identical(destinations: Any, forwarders: Any) -> None:
    tempo = destinations()
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    body = json_to_protobuf("traces", two_spans())
    forwarder.offer(body, "application/x-protobuf", 2)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    assert [r.body for r in tempo.received] == [body]


def test_requests_arrive_in_order(destinations: Any, forwarders: Any) -> None:
    loki = destinations()
    forwarder = forwarders(Destination("logs", loki.url("/otlp/v1/logs"), {}))
    for n in range(20):
        forwarder.offer(json_logs(record(TRACE, CHILD, f"line {n}")), "application/json", 1)
    wait_until(lambda: forwarder.status()["sent"] == 20, what="delivery")
    got = [ExportLogsServiceRequest.FromString(r.body) for r in loki.received]
    assert [g.resource_logs[0].scope_logs[0].log_records[0].body.string_value for g in got] == [
        f"line {n}" for n in range(20)
    ]


def test_loki_204_is_success(destinations: Any, forwarders: Any) -> None:
    loki = destinations()
    loki.default = 204
    forwarder = forwarders(Destination("logs", loki.url("/otlp/v1/logs"), {}))
    forwarder.offer(two_logs(), "application/json", 2)
    forwarder.offer(two_logs(), "application/json", 2)
    wait_until(lambda: forwarder.status()["sent"] == 4, what="delivery")
    assert len(loki.received) == 2
    check_logs(loki.received[0].body)
    assert forwarder.status()["retried"] == forwarder.status()["dropped"] == 0


@pytest.mark.parametrize("status", [503, 429, 502])
def test_overloaded_destination_gets_it_again(
    destinations: Any, forwarders: Any, status: int
) -> None:
    tempo = destinations(answers=[(status, {"Retry-After": "0"}), (status, {}), (200, {})])
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    forwarder.offer(two_spans(), "application/json", 2)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    assert len(tempo.received) == 3
    assert tempo.received[0].body == tempo.received[2].body
    state = forwarder.status()
    assert (state["sent"], state["retried"], state["dropped"], state["queued"]) == (2, 2, 0, 0)
    assert f"HTTP {status}" in state["last_error"]
    forwarder.offer(two_spans(), "application/json", 2)  # delivered once, not again and again
    wait_until(lambda: forwarder.status()["sent"] == 4, what="delivery")
    assert len(tempo.received) == 4


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_refused_request_is_dropped_not_retried(
    destinations: Any, forwarders: Any, status: int
) -> None:
    tempo = destinations(answers=[(status, {})])
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    forwarder.offer(two_spans(), "application/json", 2)
    forwarder.offer(json_traces(span(TRACE, "eee19b7ec3c1b176")), "application/json", 1)
    wait_until(lambda: forwarder.status()["sent"] == 1, what="the next request's delivery")
    assert len(tempo.received) == 2  # the refused one once, then the next one
    state = forwarder.status()
    assert (state["dropped"], state["retried"], state["queued"]) == (2, 0, 0)
    assert state["last_error"].startswith(f"HTTP {status}")


def test_unconvertible_json_is_dropped(destinations: Any, forwarders: Any) -> None:
    tempo = destinations()
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    forwarder.offer(b'{"resourceSpans": [{"scopeSpans": 7}]}', "application/json", 1)
    forwarder.offer(two_spans(), "application/json", 2)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    assert forwarder.status()["dropped"] == 1
    assert "protobuf" in forwarder.status()["last_error"]
    assert len(tempo.received) == 1


def test_records_wait_for_a_destination_that_is_down(destinations: Any, forwarders: Any) -> None:
    port = free_port()
    forwarder = forwarders(Destination("logs", f"http://127.0.0.1:{port}/v1/logs", {}))
    for _ in range(3):
        forwarder.offer(two_logs(), "application/json", 2)
    wait_until(lambda: forwarder.status()["retried"] >= 3, what="retries")
    state = forwarder.status()
    assert (state["sent"], state["dropped"], state["queued"]) == (0, 0, 6)
    assert state["last_error"].startswith("connection failed")

    loki = destinations(port=port)

    wait_until(lambda: forwarder.status()["sent"] == 6, what="delivery once up")
    assert forwarder.status()["queued"] == 0
    assert len(loki.received) == 3
    for got in loki.received:
        check_logs(got.body)


def test_a_full_queue_drops_and_counts(destinations: Any, forwarders: Any) -> None:
    port = free_port()
    body = two_logs()
    forwarder = forwarders(
        Destination("logs", f"http://127.0.0.1:{port}/v1/logs", {}),
        max_queue_bytes=2 * len(body) + 10,
    )
    for _ in range(5):
        forwarder.offer(body, "application/json", 2)  # never blocks
    state = forwarder.status()
    assert (state["queued"], state["dropped"]) == (4, 6)
    assert state["last_error"] == "queue full"

    loki = destinations(port=port)

    wait_until(lambda: forwarder.status()["sent"] == 4, what="delivery once up")
    assert len(loki.received) == 2
    forwarder.offer(body, "application/json", 2)  # room again
    wait_until(lambda: forwarder.status()["sent"] == 6, what="delivery")
    assert forwarder.status()["dropped"] == 6


def test_close_gives_up_on_what_cannot_be_delivered() -> None:
    forwarder = Forwarder(
        Destination("logs", f"http://127.0.0.1:{free_port()}/v1/logs", {}), backoff_first=0.02
    )
    forwarder.offer(two_logs(), "application/json", 2)
    forwarder.offer(two_logs(), "application/json", 2)
    forwarder.close(timeout=0.2)
    state = forwarder.status()
    assert (state["sent"], state["dropped"], state["queued"]) == (0, 4, 0)


def test_a_url_that_is_no_http_url_is_refused() -> None:
    for url in ("ftp://example.com/v1/traces", "tempo:4318", "http:///v1/traces"):
        with pytest.raises(ValueError):
            Forwarder(Destination("traces", url, {}))


# -- end to end through the app -----------------------------------------------------------


@pytest.fixture
def tempo_loki(destinations: Any, make_app: Any) -> tuple[App, FakeDestination, FakeDestination]:
    tempo, loki = destinations(), destinations()
    loki.default = 204
    app = make_app(
        forward=[
            Destination("traces", tempo.url("/v1/traces"), {"X-Scope-OrgID": "tempo-tenant"}),
            Destination("logs", loki.url("/otlp/v1/logs"), {"X-Scope-OrgID": "loki-tenant"}),
        ]
    )
    return app, tempo, loki


def forwarding(app: App) -> dict[str, dict[str, Any]]:
    return {f["kind"]: f for f in app.client.get("/api/status").json()["forwarding"]}


def test_the_app_forwards_json_as_protobuf(
    tempo_loki: tuple[App, FakeDestination, FakeDestination],
) -> None:
    app, tempo, loki = tempo_loki
    headers = {"Content-Type": "application/json"}
    assert app.client.post("/v1/traces", content=two_spans(), headers=headers).status_code == 200
    assert app.client.post("/v1/logs", content=two_logs(), headers=headers).status_code == 200
    wait_until(lambda: len(tempo.received) == 1 and len(loki.received) == 1, what="forwarding")
    (spans,), (logs,) = tempo.received, loki.received
    assert (spans.path, logs.path) == ("/v1/traces", "/otlp/v1/logs")
    assert spans.headers["x-scope-orgid"] == "tempo-tenant"
    assert logs.headers["x-scope-orgid"] == "loki-tenant"
    assert spans.headers["content-type"] == logs.headers["content-type"] == "application/x-protobuf"
    check_spans(spans.body)
    check_logs(logs.body)
    wait_until(lambda: forwarding(app)["logs"]["sent"] == 2, what="the count")
    assert forwarding(app)["traces"]["sent"] == 2
    assert app.count("spans") == 2 and app.count("logs") == 2  # stored as well


def test_the_app_passes_protobuf_on_byte_identical(
    tempo_loki: tuple[App, FakeDestination, FakeDestination],
) -> None:
    app, tempo, _ = tempo_loki
    body = json_to_protobuf("traces", two_spans())
    response = app.client.post(
        "/v1/traces", content=gzip.compress(body), headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    wait_until(lambda: tempo.received, what="forwarding")
    assert [r.body for r in tempo.received] == [body]


def test_the_app_forwards_only_what_it_accepts(
    tempo_loki: tuple[App, FakeDestination, FakeDestination],
) -> None:
    app, tempo, loki = tempo_loki
    headers = {"Content-Type": "application/json"}
    assert app.client.post("/v1/traces", content=b"{", headers=headers).status_code == 400
    assert app.client.post("/v1/logs", content=two_logs(), headers=headers).status_code == 200
    wait_until(lambda: loki.received, what="the logs")
    assert tempo.received == []
    assert forwarding(app)["traces"]["sent"] == 0


def test_the_app_forwards_what_it_stored_of_a_partial_success(
    tempo_loki: tuple[App, FakeDestination, FakeDestination],
) -> None:
    app, tempo, _ = tempo_loki
    body = json_traces(span(TRACE, ROOT, name="good"), span("not-hex", CHILD, name="bad"))
    response = app.client.post(
        "/v1/traces", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    wait_until(lambda: forwarding(app)["traces"]["sent"] == 1, what="delivery")
    (got,) = tempo.received
    spans = ExportTraceServiceRequest.FromString(got.body).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["good"]


def test_the_app_keeps_ingesting_while_the_destination_is_down(
    destinations: Any, make_app: Any
) -> None:
    port = free_port()
    app = make_app(forward=[Destination("logs", f"http://127.0.0.1:{port}/v1/logs", {})])
    headers = {"Content-Type": "application/json"}
    for n in range(5):
        body = json_logs(record(TRACE, CHILD, f"while down {n}"))
        response = app.client.post("/v1/logs", content=body, headers=headers)
        assert response.status_code == 200  # answered before the destination exists
    assert app.count("logs") == 5
    wait_until(lambda: forwarding(app)["logs"]["retried"] >= 1, what="a retry")
    state = forwarding(app)["logs"]
    assert (state["sent"], state["queued"], state["dropped"]) == (0, 5, 0)
    assert state["last_error"].startswith("connection failed")

    loki = destinations(port=port)

    wait_until(lambda: forwarding(app)["logs"]["sent"] == 5, timeout=30, what="delivery")
    assert forwarding(app)["logs"]["queued"] == 0
    got = [ExportLogsServiceRequest.FromString(r.body) for r in loki.received]
    assert [g.resource_logs[0].scope_logs[0].log_records[0].body.string_value for g in got] == [
        f"while down {n}" for n in range(5)
    ]


def test_the_status_page_shows_the_counters(destinations: Any, make_app: Any) -> None:
    tempo = destinations(answers=[*[(503, {"Retry-After": "0"})] * 3, (400, {})])
    app = make_app(forward=[Destination("traces", tempo.url(), {})])
    headers = {"Content-Type": "application/json"}
    app.client.post("/v1/traces", content=two_spans(), headers=headers)  # retried, then refused
    app.client.post(
        "/v1/traces", content=json_traces(span(TRACE, "eee19b7ec3c1b179")), headers=headers
    )
    wait_until(lambda: forwarding(app)["traces"]["sent"] == 1, what="delivery")
    state = forwarding(app)["traces"]
    assert (state["sent"], state["retried"], state["dropped"], state["queued"]) == (1, 3, 2, 0)
    assert state["last_error"].startswith("HTTP 400")

    page = app.client.get("/status")
    assert page.status_code == 200
    row = re.search(rf'<tr data-url="{re.escape(tempo.url())}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[0] == "traces"
    assert cells[2:6] == ["1", "3", "2", "0"]  # sent, retried, dropped, queued
    assert cells[6].startswith("HTTP 400")
