"""An OTLP/HTTP receiver that accepts everything and discards it, counting as it goes.

Run as its own process (``python bench/sink.py``) so that it never competes with the
process under test for a GIL. It listens on a free loopback port, prints that port on
its first line of output, and answers every ``POST /v1/traces`` and ``POST /v1/logs``
with 200 ``{}`` over HTTP/1.1 keep-alive, like a healthy collector.

It counts records with one ``bytes.count`` per request (no JSON parsing: the sink must
not be the bottleneck): spans by ``"spanId"`` (``"parentSpanId"`` does not match), log
records by ``"timeUnixNano"`` (``"observedTimeUnixNano"`` does not match, and a body's
quotes are escaped). ``GET /stats`` answers the counts and the CLOCK_MONOTONIC times
(``time.monotonic()``, the same clock in every process of the machine) of the first log
request's arrival and of the last log answer; ``GET /largest-log-body`` answers the
body of the log request with the most records (a real request, for decoding elsewhere);
``GET /spans`` the spans received, decoded only then (name, start and end times);
``POST /reset`` zeroes it all.

Standard library only.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()


def _zero() -> dict[str, float]:
    return {
        "requests": 0,
        "span_requests": 0,
        "log_requests": 0,
        "spans": 0,
        "logs": 0,
        "log_bytes": 0,
        "first_log_at": 0.0,
        "last_log_at": 0.0,
    }


_stats = _zero()
_largest: list[tuple[int, bytes]] = [(0, b"")]  # (records, body) of the biggest log request
_trace_bodies: list[bytes] = []  # kept as received: decoding them costs time while measuring


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the builder's exporter expects
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # the name http.server calls
        arrived = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/reset":
            with _lock:
                _stats.clear()
                _stats.update(_zero())
                _largest[0] = (0, b"")
                _trace_bodies.clear()
        elif self.path.endswith("/v1/logs"):
            records = body.count(b'"timeUnixNano"')
            with _lock:
                _stats["requests"] += 1
                _stats["log_requests"] += 1
                _stats["logs"] += records
                _stats["log_bytes"] += len(body)
                if not _stats["first_log_at"]:
                    _stats["first_log_at"] = arrived
                if records > _largest[0][0]:
                    _largest[0] = (records, body)
        elif self.path.endswith("/v1/traces"):
            spans = body.count(b'"spanId"')
            with _lock:
                _stats["requests"] += 1
                _stats["span_requests"] += 1
                _stats["spans"] += spans
                _trace_bodies.append(body)
        self._answer(b"{}")
        if self.path.endswith("/v1/logs"):
            with _lock:
                _stats["last_log_at"] = time.monotonic()

    def do_GET(self) -> None:
        with _lock:
            if self.path == "/largest-log-body":
                out = _largest[0][1]
            elif self.path == "/spans":
                out = json.dumps(_spans(_trace_bodies)).encode()
            else:
                out = json.dumps(_stats).encode()
        self._answer(out)

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: one line per request would cost more than the request


def _spans(bodies: list[bytes]) -> list[dict[str, object]]:
    spans = []
    for body in bodies:
        for resource in json.loads(body).get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    spans.append(
                        {
                            "name": span.get("name"),
                            "start_ns": int(span.get("startTimeUnixNano") or 0),
                            "end_ns": int(span.get("endTimeUnixNano") or 0),
                        }
                    )
    return spans


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
