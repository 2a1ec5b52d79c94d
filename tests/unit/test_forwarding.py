"""Forwarding to Tempo, Loki or any OTLP/HTTP endpoint: bass.ingest.forward.Forwarder
against a fake destination on 127.0.0.1, and end to end through the app."""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bass.ingest import forward
from bass.ingest.forward import (
    Destination,
    Forwarder,
    Forwarding,
    json_to_protobuf,
    parse_headers,
)
from bass.store.db import Database
from tests.unit.conftest import App
from tests.unit.fake_destination import FakeDestination, free_port
from tests.unit.helpers import attr, count, json_logs, json_traces, record, span, wait_until

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
def forwardings(tmp_path: Path) -> Iterator[Any]:
    """forwardings(*destinations, **options) → a Forwarding on the test's database file
    (a Database of its own, as a new `bass serve` would open); `.stop(forwarding)` closes
    it and its Database (bass stopping). Whatever is left open is closed after the test."""
    started: list[tuple[Forwarding, Database]] = []

    def start(*destinations: Destination, **kwargs: Any) -> Forwarding:
        kwargs.setdefault("backoff_first", 0.02)
        kwargs.setdefault("backoff_max", 0.1)
        db = Database(tmp_path / "forward.db")
        try:
            started.append((Forwarding(db, list(destinations), **kwargs), db))
        except BaseException:
            db.close()
            raise
        return started[-1][0]

    def stop(forwarding: Forwarding) -> None:
        for pair in started:
            if pair[0] is forwarding:
                started.remove(pair)
                forwarding.close(timeout=1)
                pair[1].close()
                return

    start.stop = stop  # type: ignore[attr-defined]
    start.db_path = tmp_path / "forward.db"  # type: ignore[attr-defined]
    yield start
    for forwarding, db in reversed(started):
        forwarding.close(timeout=1)
        db.close()


@pytest.fixture
def forwarders(forwardings: Any) -> Any:
    """forwarders(destination, **options) → the Forwarder of a Forwarding of its own."""

    def start(destination: Destination, **kwargs: Any) -> Forwarder:
        return forwardings(destination, **kwargs).by_kind[destination.kind][0]

    return start


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


def log_body(n: int) -> bytes:
    return json_logs(record(TRACE, CHILD, f"line {n}"))


def lines(destination: FakeDestination) -> list[str]:
    """The body of the first log record of each request the destination received."""
    got = [ExportLogsServiceRequest.FromString(r.body) for r in destination.received]
    return [g.resource_logs[0].scope_logs[0].log_records[0].body.string_value for g in got]


def offer_all(forwarding: Forwarding, kind: str, body: bytes) -> None:
    """As the receiver does: a request is offered to every forwarder of its kind."""
    for forwarder in forwarding.by_kind[kind]:
        forwarder.offer(body, "application/json", 1)


def entries(forwardings: Any) -> int:
    return count(forwardings.db_path, "forward_queue")


class ClosingServer:
    """An HTTP/1.1 destination that answers one request per connection and then closes
    it, without saying so (no `Connection: close`): as a server closes a kept-alive
    connection once idle. An answer of None closes the connection without answering."""

    def __init__(self, answers: list[int | None]):
        self.answers = deque(answers)
        self.connections = 0
        self.bodies: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/logs"
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                while length and len(body) < int(length.group(1)):
                    body += conn.recv(65536)
                self.bodies.append(body)
                self.connections += 1
                status = self.answers.popleft() if self.answers else 200
                if status is not None:
                    conn.sendall(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}" % status)

    def close(self) -> None:
        self.closing.set()
        self.thread.join()
        self.sock.close()


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
        "last_error_at": None,
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
        forwarder.offer(log_body(n), "application/json", 1)
    wait_until(lambda: forwarder.status()["sent"] == 20, what="delivery")
    assert lines(loki) == [f"line {n}" for n in range(20)]


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
    destinations: Any, forwarders: Any, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str | None] = []

    class Recorded(forward.Backoff):
        def delay(self, retry_after: str | None = None) -> float:
            asked.append(retry_after)
            return 0.0

    monkeypatch.setattr(forward, "Backoff", Recorded)
    tempo = destinations(answers=[(status, {"Retry-After": "7"}), (status, {}), (200, {})])
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    forwarder.offer(two_spans(), "application/json", 2)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    assert len(tempo.received) == 3
    assert tempo.received[0].body == tempo.received[2].body
    assert asked == ["7", None]  # the wait the destination asked for, then backoff
    state = forwarder.status()
    assert (state["sent"], state["retried"], state["dropped"], state["queued"]) == (2, 2, 0, 0)
    assert (state["last_error"], state["last_error_at"]) == ("", None)  # delivered since
    forwarder.offer(two_spans(), "application/json", 2)  # delivered once, not again and again
    wait_until(lambda: forwarder.status()["sent"] == 4, what="delivery")
    assert len(tempo.received) == 4


def test_retry_after_is_the_wait() -> None:
    assert forward.Backoff(0.2, 30).delay("7") == 7
    assert forward.Backoff(0.2, 30).delay("0") == 0.2  # "0" makes no busy loop


def test_the_last_error_has_a_time_and_a_delivery_clears_it(
    destinations: Any, forwarders: Any
) -> None:
    tempo = destinations()
    tempo.default = 503
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    before = time.time()
    forwarder.offer(two_spans(), "application/json", 2)
    state = wait_until(
        lambda: (s := forwarder.status())["last_error"].startswith("HTTP 503") and s,
        what="the error",
    )
    assert before <= state["last_error_at"] <= time.time()
    tempo.default = 200
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    assert (forwarder.status()["last_error"], forwarder.status()["last_error_at"]) == ("", None)


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_refused_request_is_dropped_not_retried(
    destinations: Any, forwarders: Any, status: int
) -> None:
    tempo = destinations(answers=[(status, {})])
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    forwarder.offer(two_spans(), "application/json", 2)
    wait_until(lambda: forwarder.status()["dropped"] == 2, what="the drop")
    state = forwarder.status()
    assert (state["retried"], state["queued"]) == (0, 0)
    assert state["last_error"].startswith(f"HTTP {status}")
    assert state["last_error_at"] is not None
    forwarder.offer(json_traces(span(TRACE, "eee19b7ec3c1b176")), "application/json", 1)
    wait_until(lambda: forwarder.status()["sent"] == 1, what="the next request's delivery")
    assert len(tempo.received) == 2  # the refused one once, then the next one
    state = forwarder.status()
    assert (state["dropped"], state["retried"], state["queued"]) == (2, 0, 0)


def test_unconvertible_json_is_dropped(destinations: Any, forwarders: Any) -> None:
    tempo = destinations()
    forwarder = forwarders(Destination("traces", tempo.url(), {}))
    forwarder.offer(b'{"resourceSpans": [{"scopeSpans": 7}]}', "application/json", 1)
    wait_until(lambda: forwarder.status()["dropped"] == 1, what="the drop")
    assert "protobuf" in forwarder.status()["last_error"]
    forwarder.offer(two_spans(), "application/json", 2)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
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


def test_a_url_that_is_no_http_url_is_refused(forwardings: Any) -> None:
    for url in ("ftp://example.com/v1/traces", "tempo:4318", "http:///v1/traces"):
        with pytest.raises(ValueError):
            forwardings(Destination("traces", url, {}))


# -- the queue in the database ------------------------------------------------------------


def test_a_restart_sends_what_was_left_once_and_in_order(
    destinations: Any, forwardings: Any
) -> None:
    port = free_port()
    down = Destination("logs", f"http://127.0.0.1:{port}/v1/logs", {})
    first = forwardings(down)
    (forwarder,) = first.by_kind["logs"]
    for n in range(5):
        forwarder.offer(log_body(n), "application/json", 1)
    wait_until(lambda: forwarder.status()["retried"] >= 1, what="a retry")
    forwardings.stop(first)  # bass stops while the destination is down: nothing is dropped
    state = forwarder.status()
    assert (state["sent"], state["dropped"], state["queued"]) == (0, 0, 5)
    assert entries(forwardings) == 5

    loki = destinations(port=port)
    second = forwardings(down)
    wait_until(lambda: second.by_kind["logs"][0].status()["sent"] == 5, what="delivery")
    assert lines(loki) == [f"line {n}" for n in range(5)]
    forwardings.stop(second)

    third = forwardings(down)  # what was sent is not sent again
    third.by_kind["logs"][0].offer(log_body(5), "application/json", 1)
    wait_until(lambda: len(loki.received) == 6, what="the new request")
    assert lines(loki) == [f"line {n}" for n in range(6)]


def test_a_new_destination_is_not_sent_the_past(destinations: Any, forwardings: Any) -> None:
    old = Destination("logs", f"http://127.0.0.1:{free_port()}/v1/logs", {})
    first = forwardings(old)
    for n in range(3):
        offer_all(first, "logs", log_body(n))
    wait_until(lambda: entries(forwardings) == 3, what="the queue written")
    forwardings.stop(first)

    loki = destinations()
    second = forwardings(old, Destination("logs", loki.url("/v1/logs"), {}))
    waiting, new = second.by_kind["logs"]
    offer_all(second, "logs", log_body(3))
    wait_until(lambda: new.status()["sent"] == 1, what="delivery")
    assert lines(loki) == ["line 3"]
    assert waiting.status()["queued"] == 4
    assert entries(forwardings) == 4  # kept once for both


def test_a_destination_no_longer_configured_leaves_nothing_behind(forwardings: Any) -> None:
    first = forwardings(Destination("logs", f"http://127.0.0.1:{free_port()}/v1/logs", {}))
    for n in range(3):
        offer_all(first, "logs", log_body(n))
    wait_until(lambda: entries(forwardings) == 3, what="the queue written")
    forwardings.stop(first)

    forwardings()  # started without it: its cursor and what it never sent go
    wait_until(lambda: entries(forwardings) == 0, what="the deletes")
    assert count(forwardings.db_path, "forward_cursors") == 0


def test_the_cap_drops_the_oldest_and_counts(destinations: Any, forwardings: Any) -> None:
    port = free_port()
    fits = 2 * len(log_body(0)) + 10  # two entries
    forwarding = forwardings(
        Destination("logs", f"http://127.0.0.1:{port}/v1/logs", {}), max_queue_bytes=fits
    )
    (forwarder,) = forwarding.by_kind["logs"]
    forwarder.offer(log_body(0), "application/json", 1)
    wait_until(lambda: forwarder.status()["retried"] >= 1, what="line 0 under way")
    for n in range(1, 5):
        forwarder.offer(log_body(n), "application/json", 1)  # never blocks
    # lines 0-2 leave the queue; 0, being sent, is still sent: 1 and 2 are lost
    wait_until(lambda: forwarder.status()["dropped"] == 2, what="the drops")
    wait_until(lambda: entries(forwardings) == 2, what="the trim")
    assert forwarder.status()["queued"] == 3

    loki = destinations(port=port)

    wait_until(lambda: forwarder.status()["sent"] == 3, what="delivery once up")
    assert lines(loki) == ["line 0", "line 3", "line 4"]
    assert forwarder.status()["dropped"] == 2


def test_an_idle_connection_the_destination_closed_is_no_retry(forwarders: Any) -> None:
    """A destination closes a kept-alive connection once idle (uvicorn: after 5 s); this
    one does right after answering, without saying so. The next request fails on it
    before any answer, and goes again at once on a new connection: not a retry."""
    server = ClosingServer([200] * 3)
    forwarder = forwarders(Destination("logs", server.url, {}))
    for n in range(3):
        forwarder.offer(log_body(n), "application/json", 1)
        wait_until(lambda n=n: forwarder.status()["sent"] == n + 1, what="delivery")
    state = forwarder.status()
    assert (state["retried"], state["dropped"], state["last_error"]) == (0, 0, "")
    assert server.connections == 3
    assert server.bodies == [json_to_protobuf("logs", log_body(n)) for n in range(3)]
    server.close()


def test_a_new_connection_that_fails_is_a_retry(forwarders: Any) -> None:
    server = ClosingServer([200, None, 503, 200])  # None: closed without an answer
    forwarder = forwarders(Destination("logs", server.url, {}))
    forwarder.offer(log_body(0), "application/json", 1)
    wait_until(lambda: forwarder.status()["sent"] == 1, what="delivery")
    forwarder.offer(log_body(1), "application/json", 1)
    wait_until(lambda: forwarder.status()["sent"] == 2, what="delivery")
    # line 1: the kept connection is closed (free), a new one closed without answer
    # (retry 1), a new one answered 503 (retry 2), kept and closed (free), a new one 200
    assert forwarder.status()["retried"] == 2
    assert server.connections == 4
    server.close()


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


def test_the_app_keeps_an_entry_once_and_deletes_it_once_all_have_sent_it(
    destinations: Any, make_app: Any
) -> None:
    up, port = destinations(), free_port()
    late = Destination("logs", f"http://127.0.0.1:{port}/v1/logs", {})
    app = make_app(forward=[Destination("logs", up.url("/v1/logs"), {}), late])
    headers = {"Content-Type": "application/json"}
    for n in range(3):
        assert app.client.post("/v1/logs", content=log_body(n), headers=headers).status_code == 200

    def saved(url: str) -> int:
        return app.rows("SELECT position FROM forward_cursors WHERE url = ?", url)[0]["position"]

    wait_until(lambda: app.count("forward_queue") == 3, what="the queue written")
    last = app.rows("SELECT MAX(id) AS n FROM forward_queue")[0]["n"]
    wait_until(lambda: saved(up.url("/v1/logs")) == last, what="the first one's cursor saved")
    assert app.count("forward_queue") == 3  # once for both; kept for the one down
    assert saved(late.url) < last

    destinations(port=port)

    wait_until(lambda: app.count("forward_queue") == 0, what="the deletes")
    assert saved(late.url) == last
    assert [f["sent"] for f in app.client.get("/api/status").json()["forwarding"]] == [3, 3]


def test_the_status_page_shows_the_counters(destinations: Any, make_app: Any) -> None:
    tempo = destinations(answers=[*[(503, {"Retry-After": "0"})] * 3, (400, {})])
    app = make_app(forward=[Destination("traces", tempo.url(), {})])
    headers = {"Content-Type": "application/json"}
    app.client.post("/v1/traces", content=two_spans(), headers=headers)  # retried, then refused
    wait_until(lambda: forwarding(app)["traces"]["dropped"] == 2, what="the drop")
    state = forwarding(app)["traces"]
    assert (state["sent"], state["retried"], state["dropped"], state["queued"]) == (0, 3, 2, 0)
    assert state["last_error"].startswith("HTTP 400")
    assert isinstance(state["last_error_at"], float)

    page = app.client.get("/status")
    assert page.status_code == 200
    row = re.search(rf'<tr data-url="{re.escape(tempo.url())}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[0] == "traces"
    assert cells[2:6] == ["0", "3", "2", "0"]  # sent, retried, dropped, queued
    assert cells[6].startswith("HTTP 400")

    app.client.post(
        "/v1/traces", content=json_traces(span(TRACE, "eee19b7ec3c1b179")), headers=headers
    )
    wait_until(lambda: forwarding(app)["traces"]["sent"] == 1, what="delivery")
    assert forwarding(app)["traces"]["last_error"] == ""
