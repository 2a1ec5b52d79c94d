"""`/metrics` of a real `bass serve`, read with prometheus_client's own parser while real
traffic flows: OTLP/JSON, OTLP/protobuf (the OpenTelemetry SDK's HTTP exporters) and
OTLP/gRPC (its gRPC exporter), refused requests, forwarding to a destination that takes
and one that refuses, a build through a real `bass worker`, a retention pass; and who
may read it once people must log in."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bass.auth import Users
from tests.conftest import Server, free_port, http
from tests.e2e.waiting import wait_until
from tests.unit.fake_destination import FakeDestination
from tests.unit.helpers import json_logs, record

Samples = dict[tuple[str, frozenset], float]
TRACE = "6f1d2c3b4a5968778695a4b3c2d1e0f1"
SPAN = "a1b2c3d4e5f60718"
# the build entry waits for a file the test writes: running until the test says
WAIT = '#!/bin/sh\nwhile [ ! -e "$MARKER" ]; do sleep 0.05; done\n'


def scrape(server: Server, headers: dict[str, str] | None = None) -> Samples:
    request = urllib.request.Request(f"{server.url}/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_until(server: Server, holds: Callable[[Samples], bool], what: str) -> Samples:
    """The first scrape for which `holds(samples)`."""

    def ready() -> Samples | None:
        samples = scrape(server)
        return samples if holds(samples) else None

    return wait_until(ready, what, context=server.output)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for one not (yet) shown, as a counter that never moved."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def send_with_the_sdk(server: Server, grpc_port: int) -> None:
    """Two spans over OTLP/HTTP protobuf and one over OTLP/gRPC (a request each: the
    simple processors export every span as it ends), one log record over OTLP/HTTP."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": "metrics-test"})
    over_http = TracerProvider(resource=resource)
    over_http.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10))
    )
    tracer = over_http.get_tracer("tests")
    with tracer.start_as_current_span("first"), tracer.start_as_current_span("second"):
        pass
    over_http.shutdown()

    over_grpc = TracerProvider(resource=resource)
    exporter = GrpcSpanExporter(endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True)
    over_grpc.add_span_processor(SimpleSpanProcessor(exporter))
    with over_grpc.get_tracer("tests").start_as_current_span("over grpc"):
        pass
    over_grpc.shutdown()

    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.url}/v1/logs", timeout=10))
    )
    logs.get_logger("tests").emit(body="one line from the SDK")
    logs.shutdown()


def post(server: Server, path: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(
        f"{server.url}{path}", data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        with e:
            return e.code


def test_counters_move_with_real_traffic(
    serve: Any, worker: Any, repo: Any, tmp_path: Path
) -> None:
    repo.commit({"wait.sh": WAIT})
    marker = tmp_path / "go"
    taking, refusing = FakeDestination(), FakeDestination()
    refusing.default = 400  # not retryable: given up on, counted as dropped
    grpc_port = free_port()
    pipeline = {"repository": str(repo.path), "ref": "main", "exec": ["./wait.sh"]}
    try:
        server = serve(
            {"app": pipeline, "parked": {**pipeline, "worker-tags": ["nowhere"]}},
            env_file=f"MARKER={marker}\n",
            extra=["--grpc-port", str(grpc_port), "--keep-builds", "50",
                   "--forward-logs", taking.url("/v1/logs"),
                   "--forward-logs", refusing.url("/v1/logs")],
        )  # fmt: skip
        worker(server, name="metrics-worker")
        # connected, and retention's first pass (at start) done
        before = scrape_until(
            server,
            lambda s: (
                value(s, "bass_workers_connected") == 1
                and value(s, "bass_retention_runs_total", result="ok") >= 1
            ),
            "the worker to be connected and a retention pass",
        )

        # OTLP: JSON (3 records, then 2 of which 1 has a bad span id), SDK protobuf and
        # gRPC, and three refusals
        records = [record(TRACE, SPAN, f"line {n}") for n in range(3)]
        assert post(server, "/v1/logs", json_logs(*records), "application/json") == 200
        partial = json_logs(record(TRACE, SPAN, "kept"), record(TRACE, "not-an-id", "left out"))
        assert post(server, "/v1/logs", partial, "application/json") == 200
        send_with_the_sdk(server, grpc_port)
        assert post(server, "/v1/traces", b"{", "application/json") == 400
        assert post(server, "/v1/traces", b"\x0a\xff", "application/x-protobuf") == 400
        assert post(server, "/v1/logs", b"hello", "text/plain") == 415
        # forwarded: the JSON requests' 4 stored records and the SDK's 1, to each
        wait_until(
            lambda: moved(before, scrape(server), "bass_forward_records_dropped_total",
                          signal="logs", destination=refusing.url("/v1/logs")) == 5,
            "the refusing destination's records counted as dropped", context=server.output,
        )  # fmt: skip
        wait_until(
            lambda: moved(before, scrape(server), "bass_forward_records_sent_total",
                          signal="logs", destination=taking.url("/v1/logs")) == 5,
            "the records sent to the destination that takes them", context=server.output,
        )  # fmt: skip
        after = scrape(server)

        # (signal, encoding, result) → requests; (signal, encoding) → records
        answered = {
            ("logs", "json", "accepted"): 2,
            ("logs", "protobuf", "accepted"): 1,
            ("traces", "protobuf", "accepted"): 2,
            ("traces", "grpc", "accepted"): 1,
            ("traces", "json", "malformed"): 1,
            ("traces", "protobuf", "malformed"): 1,
            ("logs", "other", "unsupported"): 1,
        }
        stored = {("logs", "json"): 4, ("logs", "protobuf"): 1, ("traces", "protobuf"): 2,
                  ("traces", "grpc"): 1}  # fmt: skip
        for (signal, encoding, result), n in answered.items():
            labels = {"signal": signal, "encoding": encoding, "result": result}
            assert moved(before, after, "bass_otlp_requests_total", **labels) == n, labels
        # and nothing else
        every = [dict(labels) for name, labels in after if name == "bass_otlp_requests_total"]
        total = sum(moved(before, after, "bass_otlp_requests_total", **labels) for labels in every)
        assert total == sum(answered.values())
        for (signal, encoding), n in stored.items():
            labels = {"signal": signal, "encoding": encoding}
            assert moved(before, after, "bass_otlp_records_stored_total", **labels) == n, labels
        assert moved(before, after, "bass_otlp_records_rejected_total", signal="logs",
                     encoding="json") == 1  # fmt: skip
        # one latency observation per request taken, each in the bucket of +Inf
        latency = "bass_otlp_ingest_seconds"
        for (signal, encoding, result), taken in answered.items():
            if result != "accepted":
                continue
            labels = {"signal": signal, "encoding": encoding}
            assert moved(before, after, f"{latency}_count", **labels) == taken
            assert moved(before, after, f"{latency}_bucket", le="+Inf", **labels) == taken
        assert value(after, "bass_forward_queue_records", signal="logs",
                     destination=taking.url("/v1/logs")) == 0  # fmt: skip
        assert value(after, "bass_forward_queue_limit_bytes") == 64 << 20
        assert value(after, "bass_store_size_bytes") > 0
        assert value(after, "bass_otlp_inflight_bytes") == 0

        # a build that waits in the queue, and one that runs through the worker
        parked = server.webhook("parked")
        built = server.webhook("app")
        # the build's row says running a moment before its claim is counted
        running = scrape_until(
            server,
            lambda s: (
                value(s, "bass_builds_running", pipeline="app") == 1
                and value(s, "bass_build_pickup_seconds_count", pipeline="app") == 1
            ),
            "a build to run",
        )
        assert value(running, "bass_builds_queued", pipeline="parked") == 1
        assert value(running, "bass_builds_queued", pipeline="app") == 0
        assert value(running, "bass_build_pickup_seconds_bucket", pipeline="app", le="+Inf") == 1
        assert value(running, "bass_build_pickup_seconds_count", pipeline="parked") == 0
        assert value(running, "bass_workers_connected") == 1
        marker.touch()
        assert server.wait_for(built["id"])["state"] == "ok"
        ended = scrape_until(
            server,
            lambda s: value(s, "bass_builds_ended_total", pipeline="app", status="ok") == 1,
            "the build's end to be counted",
        )
        assert value(ended, "bass_builds_running", pipeline="app") == 0
        assert value(ended, "bass_build_duration_seconds_count", pipeline="app") == 1
        assert value(ended, "bass_build_duration_seconds_bucket", pipeline="app", le="+Inf") == 1
        assert value(ended, "bass_builds_queued", pipeline="parked") == 1
        assert sum(v for (name, _), v in ended.items() if name == "bass_builds_ended_total") == 1
        assert http("GET", f"{server.url}/api/jobs/{parked['id']}")[1]["state"] == "queued"
        assert value(ended, "bass_retention_deleted_total", what="builds") == 0
    finally:
        taking.close()
        refusing.close()


def test_with_users_only_a_persons_token_opens_it(serve: Any, tmp_path: Path) -> None:
    users_file = tmp_path / "users.json"
    users = Users(users_file)
    users.add("prometheus", "a long password for the scraper")
    token = users.new_token("prometheus", "scrape")
    tokens_file = tmp_path / "ingest-tokens"
    tokens_file.write_text("shop: shop-token-123\n")
    server = serve({}, keys=["worker-key-1"], extra=["--users-file", str(users_file),
                   "--ingest-tokens-file", str(tokens_file)])  # fmt: skip
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused = {
        "no credentials": {},
        "a worker key": {"X-API-KEY": "worker-key-1"},
        "a worker key as a token": {"Authorization": "Bearer worker-key-1"},
        "an ingest token": {"Authorization": "Bearer shop-token-123"},
        "a forged token": {"Authorization": f"Bearer {forged}"},
    }  # fmt: skip
    for what, headers in refused.items():
        status, body = http("GET", f"{server.url}/metrics", headers=headers)
        assert status == 401, (what, status, body)
        assert "bass_" not in str(body), what

    samples = scrape(server, {"Authorization": f"Bearer {token}"})

    assert value(samples, "bass_workers_connected") == 0
    assert ("bass_store_size_bytes", frozenset()) in samples
