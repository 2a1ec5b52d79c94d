"""Forwarding what the receiver stored to Tempo, Loki or any OTLP/HTTP endpoint.

One bounded queue and one sender thread per destination, so a slow or dead destination
never slows ingest: when the queue is full, new requests are dropped and counted.
Bodies are sent as protobuf: a protobuf request is passed on as it came, a JSON one is
converted first (in the sender thread, not on the ingest path).
"""

from __future__ import annotations

import base64
import http.client
import logging
import threading
import time
import urllib.parse
from collections import deque
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bass.config import Destination
from bass.ingest import otlp_json
from bass_builder import Backoff

log = logging.getLogger("bass.forward")

RETRYABLE = {429, 502, 503, 504}
_ID_SIZES = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8,
             "parentSpanId": 8, "parent_span_id": 8}  # fmt: skip


def parse_headers(values: list[str]) -> dict[str, str]:
    """`Name: value` or `Name=value` strings → a header dict; raises ValueError."""
    headers = {}
    for value in values:
        # the first of the two separates: a header name has neither, a value may have both
        first = min((i for i in (value.find(":"), value.find("=")) if i >= 0), default=-1)
        name, sep, rest = value.partition(value[first]) if first >= 0 else (value, "", "")
        if not sep or not name.strip():
            raise ValueError(f"header {value!r}: expected 'Name: value'")
        headers[name.strip()] = rest.strip()
    return headers


def json_to_protobuf(kind: str, body: bytes) -> bytes:
    """Re-encode an OTLP/JSON request as protobuf. OTLP/JSON carries ids as hex where
    protobuf's JSON mapping expects base64, so the ids are converted first; the spans and
    log records the receiver refused for bad ids (partial success) are left out, not
    sent on with ids made up from their text."""
    payload = otlp_json.parse_json(body)
    _hex_ids_to_base64(payload)
    message = ExportTraceServiceRequest() if kind == "traces" else ExportLogsServiceRequest()
    json_format.ParseDict(payload, message, ignore_unknown_fields=True)
    return message.SerializeToString()


def _hex_ids_to_base64(node: Any) -> bool:
    """Convert the hex ids in `node` to base64, in place, leaving out of every list the
    items whose own ids are bad; False when `node`'s own ids are bad."""
    if isinstance(node, list):
        node[:] = [item for item in node if _hex_ids_to_base64(item)]
        return True
    if not isinstance(node, dict):
        return True
    ok = True
    for key, value in node.items():
        if key in _ID_SIZES:
            hex_value = otlp_json.hex_id(value, _ID_SIZES[key])
            if hex_value is None:  # not hex, the wrong size, or all zeros
                ok = False
            else:
                node[key] = base64.b64encode(bytes.fromhex(hex_value)).decode()
        else:
            _hex_ids_to_base64(value)
    return ok


class Forwarder:
    """Sends one kind of telemetry to one destination, in order, with retries."""

    def __init__(
        self,
        destination: Destination,
        *,
        max_queue_bytes: int = 64 << 20,
        backoff_first: float = 0.2,
        backoff_max: float = 30.0,
    ):
        self.destination = destination
        self.max_queue_bytes = max_queue_bytes
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self._parts = self.check_url(destination.url)
        self._queue: deque[tuple[bytes, str, int]] = deque()
        self._queued_bytes = 0
        self._lock = threading.Condition()
        self._stopping = False
        self._deadline = 0.0
        self.sent = 0  # records delivered
        self.retried = 0  # requests sent again
        self.dropped = 0  # records given up on
        self.last_error = ""
        self._thread = threading.Thread(
            target=self._run, name=f"bass-forward-{destination.kind}", daemon=True
        )
        self._thread.start()

    @staticmethod
    def check_url(url: str) -> urllib.parse.SplitResult:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"forward URL {url!r}: expected http(s)://host[:port]/path")
        return parts

    def offer(self, body: bytes, encoding: str, records: int) -> None:
        """Queue a received request; never blocks. Full queue: dropped and counted."""
        with self._lock:
            if self._queued_bytes + len(body) > self.max_queue_bytes:
                self.dropped += records
                self.last_error = "queue full"
                return
            self._queue.append((body, encoding, records))
            self._queued_bytes += len(body)
            self._lock.notify()

    def status(self) -> dict[str, Any]:
        with self._lock:
            queued = sum(r for _, _, r in self._queue)
        return {
            "kind": self.destination.kind,
            "url": self.destination.url,
            "sent": self.sent,
            "retried": self.retried,
            "dropped": self.dropped,
            "queued": queued,
            "last_error": self.last_error,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Stop after trying to deliver what is queued for up to `timeout` seconds."""
        with self._lock:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._lock.notify()
        self._thread.join(timeout + 15)

    def _run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if not self._queue:
                    return
                body, encoding, records = self._queue[0]
            try:
                payload = body
                if encoding != "application/x-protobuf":
                    payload = json_to_protobuf(self.destination.kind, body)
            except Exception as e:  # not convertible: the destination could not read it
                self._give_up(records, f"cannot convert to protobuf: {e}")
                continue
            backoff = Backoff(self.backoff_first, self.backoff_max)
            while True:
                connection = connection or self._connect()
                try:
                    connection.request("POST", self._target(), payload, self._headers())
                    response = connection.getresponse()
                    answer = response.read()
                    status, retry_after = response.status, response.getheader("Retry-After")
                    if response.will_close:
                        connection.close()
                        connection = None
                except (OSError, http.client.HTTPException) as e:
                    if connection is not None:
                        connection.close()
                    connection = None
                    status, retry_after, answer = 0, None, str(e).encode()
                if 200 <= status < 300:
                    self._delivered(records)
                    break
                reason = f"HTTP {status}: {answer[:200].decode('utf-8', 'replace')}"
                if status and status not in RETRYABLE:
                    self._give_up(records, reason)
                    break
                self.last_error = reason if status else f"connection failed: {answer.decode()}"
                if self._stopping and time.monotonic() > self._deadline:
                    self._give_up(records, "stopped before delivery")
                    break
                self.retried += 1
                with self._lock:
                    self._lock.wait(backoff.delay(retry_after))

    def _delivered(self, records: int) -> None:
        with self._lock:
            body, _, _ = self._queue.popleft()
            self._queued_bytes -= len(body)
            self.sent += records

    def _give_up(self, records: int, reason: str) -> None:
        log.warning("forwarding to %s: dropped %d records: %s", self.destination.url, records,
                    reason)  # fmt: skip
        with self._lock:
            body, _, _ = self._queue.popleft()
            self._queued_bytes -= len(body)
            self.dropped += records
            self.last_error = reason

    def _connect(self) -> http.client.HTTPConnection:
        parts = self._parts
        host = parts.hostname or ""  # check_url made sure there is one
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, parts.port, timeout=30)
        return http.client.HTTPConnection(host, parts.port, timeout=30)

    def _target(self) -> str:
        parts = self._parts
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/x-protobuf", **self.destination.headers}
