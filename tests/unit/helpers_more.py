"""More helpers of the unit tests: builds made through the worker API, log records with a
severity, and a fake OTLP destination (a stand-in for Tempo or Loki) on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.unit.conftest import App
from tests.unit.helpers import KEY, as_body, logs_payload, traces_payload


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(
    trace_id: str,
    span_id: str,
    body: str,
    *,
    severity: int = 9,
    time_ns: int = 1_700_000_000_000_000_000,
    attributes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OTLP/JSON log record with a severity of its own."""
    return {
        "timeUnixNano": str(time_ns),
        "severityNumber": severity,
        "severityText": f"S{severity}",
        "body": {"stringValue": body},
        "traceId": trace_id,
        "spanId": span_id,
        "attributes": attributes or [],
    }


def post_logs(app: App, *records: dict[str, Any], service: str = "bass:pipeline:demo") -> None:
    app.send_logs(*records, service=service)


def post_spans(app: App, *spans: dict[str, Any], service: str = "bass:pipeline:demo") -> None:
    app.send_spans(*spans, service=service)


def start_build(app: App, pipeline: str = "demo") -> dict[str, Any]:
    """Queue a build by webhook and claim it as a worker: the job JSON (running)."""
    response = app.webhook(pipeline)
    assert response.status_code == 200, response.text
    response = app.dequeue({"tags": [], "worker": "w1"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["name"] == pipeline
    return job


def finish_build(app: App, job: dict[str, Any], status: str = "ok") -> None:
    response = app.client.post(
        f"/jobs/{job['id']}/result", json={"status": status}, headers={"X-API-KEY": KEY}
    )
    assert response.status_code == 200, response.text


def trace_of(job: dict[str, Any]) -> str:
    return job["otel"]["trace-id"]


def json_traces(*spans: dict[str, Any], service: str = "svc") -> bytes:
    return as_body(traces_payload(*spans, service=service))


def json_logs(*records: dict[str, Any], service: str = "svc") -> bytes:
    return as_body(logs_payload(*records, service=service))


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes  # decompressed


class FakeDestination:
    """An HTTP server on 127.0.0.1 that records every POST and answers with the statuses
    it is given, in order (then `default`). `port=` to come up on a port chosen before."""

    def __init__(self, port: int = 0, answers: Iterable[tuple[int, dict[str, str]]] = ()):
        self.received: list[Received] = []
        self.answers: deque[tuple[int, dict[str, str]]] = deque(answers)
        self.default = 200
        self._lock = threading.Lock()
        destination = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with destination._lock:
                    destination.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status, headers = (
                        destination.answers.popleft()
                        if destination.answers
                        else (destination.default, {})
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                answer = b"" if status == 204 else b"nope" if status >= 300 else b"{}"
                if status != 204:
                    self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/v1/traces") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
