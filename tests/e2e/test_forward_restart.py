"""Forwarding survives restarts: `bass serve --forward-logs URL` stopped (SIGTERM) while
the destination is down, started again once it is up, sends every log request it took,
once each, in order; what was sent is not sent again after the next restart; and the
queue empties once everything was sent."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.conftest import free_port, http
from tests.e2e.waiting import wait_until
from tests.unit.fake_destination import FakeDestination

N = 30


def _post_line(server: Any, text: str) -> None:
    record = {"timeUnixNano": "1700000000000000000", "body": {"stringValue": text}}
    payload = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    request = urllib.request.Request(
        f"{server.url}/v1/logs",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _forwarding(server: Any) -> dict[str, Any]:
    status, body = http("GET", f"{server.url}/api/status")
    assert status == 200, body
    (state,) = body["forwarding"]
    return state


def _lines(destination: FakeDestination) -> list[str]:
    got = [ExportLogsServiceRequest.FromString(r.body) for r in destination.received]
    return [
        record.body.string_value
        for request in got
        for resource in request.resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    ]


def test_a_restart_with_the_destination_down_loses_nothing(serve: Any) -> None:
    port = free_port()  # nothing listens there yet
    server = serve({}, extra=["--forward-logs", f"http://127.0.0.1:{port}/otlp/v1/logs"])
    for n in range(N):
        _post_line(server, f"line {n}")
    wait_until(lambda: _forwarding(server)["retried"] >= 1, "a retry", context=server.output)
    state = _forwarding(server)
    assert (state["sent"], state["dropped"], state["queued"]) == (0, 0, N)
    assert state["last_error"].startswith("connection failed")
    assert state["last_error_at"] is not None

    server.stop()  # SIGTERM while the destination is down
    assert server.query("SELECT COUNT(*) FROM forward_queue")[0][0] == N

    loki = FakeDestination(port=port)
    try:
        server.start()  # the same directory and database
        wait_until(lambda: len(loki.received) >= N, "all N requests", context=server.output)
        wait_until(lambda: _forwarding(server)["sent"] == N, "the count", context=server.output)
        assert _lines(loki) == [f"line {n}" for n in range(N)]  # once each, in order
        assert {r.path for r in loki.received} == {"/otlp/v1/logs"}
        state = _forwarding(server)
        assert (state["dropped"], state["queued"], state["last_error"]) == (0, 0, "")
        wait_until(
            lambda: server.query("SELECT COUNT(*) FROM forward_queue")[0][0] == 0,
            "the sent entries deleted",
            context=server.output,
        )

        server.stop()
        server.start()  # nothing is sent again, and new requests still go
        _post_line(server, "after the second restart")
        wait_until(lambda: len(loki.received) > N, "the new request", context=server.output)
        assert _lines(loki) == [f"line {n}" for n in range(N)] + ["after the second restart"]
    finally:
        server.stop()
        loki.close()
