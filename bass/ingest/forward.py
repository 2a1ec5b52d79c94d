"""Forwarding what the receiver stored to Tempo, Loki or any OTLP/HTTP endpoint.

What is offered is kept in the database (bass.store.forward_queue) until every
destination of its kind has passed it; one sender thread per destination sends it from
its cursor, in order, so a slow or dead destination never slows ingest, and stopping
bass loses nothing: the next start sends the rest (at least once). The queue is bounded:
past its cap the oldest entries are dropped and counted. Bodies are sent as protobuf: a
protobuf request is passed on as it came, a JSON one is converted first (in the sender
thread, not on the ingest path).
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import threading
import time
import urllib.parse
from typing import Any

from bass.config import Destination
from bass.ingest import otlp_json
from bass.store.db import Database
from bass.store.forward_queue import Entry, ForwardQueue, Reader
from bass_builder import Backoff

log = logging.getLogger("bass.forward")

RETRYABLE = {429, 502, 503, 504}
PROTOBUF = "application/x-protobuf"
# how a kept-alive connection the destination closed while idle fails, before any answer
STALE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)  # + RemoteDisconnected
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
    # loaded here, only by a server that forwards (bass.ingest.wire says why)
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

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


class Forwarding:
    """The forwarders of one `bass serve`: one per destination (a kind and URL given twice
    is one), sharing the database's queue (`max_queue_bytes` for all of it)."""

    def __init__(
        self,
        db: Database,
        destinations: list[Destination],
        *,
        max_queue_bytes: int = 64 << 20,
        backoff_first: float = 0.2,
        backoff_max: float = 30.0,
    ):
        unique: dict[tuple[str, str], Destination] = {}
        for destination in destinations:
            Forwarder.check_url(destination.url)
            unique.setdefault((destination.kind, destination.url), destination)
        self.queue = ForwardQueue(db, list(unique), max_bytes=max_queue_bytes)
        self.by_kind: dict[str, list[Forwarder]] = {"traces": [], "logs": []}
        for key, reader in self.queue.readers.items():
            same_kind = self.by_kind[key[0]]
            same_kind.append(
                Forwarder(unique[key], reader, leader=not same_kind,
                          backoff_first=backoff_first, backoff_max=backoff_max)
            )  # fmt: skip

    def all(self) -> list[Forwarder]:
        return self.by_kind["traces"] + self.by_kind["logs"]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the senders (a request under way has `timeout` seconds to be answered)
        and write the queue: what was not sent is sent after the next start."""
        self.queue.stop_reading()
        for forwarder in self.all():
            forwarder.stop()
        deadline = time.monotonic() + timeout
        for forwarder in self.all():
            forwarder.join(max(0.0, deadline - time.monotonic()))
            if forwarder.is_alive():
                forwarder.abort()  # its request fails, and is sent again after a restart
                forwarder.join(5)
        self.queue.close()


class Forwarder:
    """Sends one kind of telemetry to one destination, in order, with retries."""

    def __init__(
        self,
        destination: Destination,
        reader: Reader,
        *,
        leader: bool,
        backoff_first: float = 0.2,
        backoff_max: float = 30.0,
    ):
        self.destination = destination
        self.reader = reader
        # The receiver offers a request to every forwarder of its kind; the queue keeps it
        # once, for all of them: the first forwarder of the kind appends it.
        self.leader = leader
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self._parts = self.check_url(destination.url)
        self._lock = threading.Lock()  # the counters: this sender and the queue's writer
        self._stop = threading.Event()
        self._connection: http.client.HTTPConnection | None = None
        self.sent = 0  # records delivered
        self.retried = 0  # requests sent again
        self.dropped = 0  # records given up on, or dropped by the queue's cap
        self.last_error = ""  # cleared by the next delivery
        self.last_error_at: float | None = None  # time.time() of last_error
        reader.on_dropped = self._dropped_by_the_cap
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
        """Queue a received request (for every destination of its kind); never blocks."""
        if self.leader and records:
            self.reader.queue.append(self.destination.kind, body, encoding, records)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "kind": self.destination.kind,
                "url": self.destination.url,
                "sent": self.sent,
                "retried": self.retried,
                "dropped": self.dropped,
                "queued": self.reader.queued,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
            }

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def abort(self) -> None:
        """Cut the request under way (from another thread)."""
        connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.is_set() and (entry := self.reader.next()) is not None:
            try:
                payload = entry.body
                if entry.encoding != PROTOBUF:
                    payload = json_to_protobuf(self.destination.kind, entry.body)
            except Exception as e:  # not convertible: the destination could not read it
                self._give_up(entry, f"cannot convert to protobuf: {e}")
                continue
            try:
                delivered = self._deliver(entry, payload)
            except Exception:  # a bug: this entry is tried again, not skipped
                log.exception("forwarding to %s failed", self.destination.url)
                delivered = False
                self._stop.wait(self.backoff_max)
            if not delivered:
                self.reader.release()  # sent after the next start, or tried again
        self._drop_connection()

    def _deliver(self, entry: Entry, payload: bytes) -> bool:
        """Send until delivered or refused (True), or stopped (False)."""
        backoff = Backoff(self.backoff_first, self.backoff_max)
        while True:
            status, retry_after, answer = self._post(payload)
            if 200 <= status < 300:
                self.reader.passed(entry)
                with self._lock:
                    self.sent += entry.records
                    self.last_error, self.last_error_at = "", None
                return True
            reason = f"HTTP {status}: {answer[:200].decode('utf-8', 'replace')}"
            if status and status not in RETRYABLE:
                self._give_up(entry, reason)
                return True
            with self._lock:
                self.last_error = reason if status else f"connection failed: {answer.decode()}"
                self.last_error_at = time.time()
            if self._stop.wait(backoff.delay(retry_after)):
                return False
            with self._lock:
                self.retried += 1

    def _post(self, payload: bytes) -> tuple[int, str | None, bytes]:
        """One POST: (status, Retry-After, answer), or (0, None, why) without an answer.
        A connection kept alive since an earlier request may have been closed by the
        destination meanwhile (servers close idle ones after a few seconds): failing on
        it before any answer, the request goes again at once on a new connection,
        without counting a retry."""
        while True:
            reused = self._connection is not None
            connection = self._connection = self._connection or self._connect()
            answered = False
            try:
                connection.request("POST", self._target(), payload, self._headers())
                response = connection.getresponse()
                answered = True
                answer = response.read()
                if response.will_close:
                    self._drop_connection()
                return response.status, response.getheader("Retry-After"), answer
            except (OSError, http.client.HTTPException) as e:
                self._drop_connection()
                if reused and not answered and isinstance(e, STALE) and not self._stop.is_set():
                    log.debug("forwarding to %s: a kept-alive connection was closed: %s",
                              self.destination.url, e)  # fmt: skip
                    continue
                return 0, None, str(e).encode()

    def _give_up(self, entry: Entry, reason: str) -> None:
        log.warning("forwarding to %s: dropped %d records: %s", self.destination.url,
                    entry.records, reason)  # fmt: skip
        self.reader.passed(entry)
        with self._lock:
            self.dropped += entry.records
            self.last_error, self.last_error_at = reason, time.time()

    def _dropped_by_the_cap(self, records: int) -> None:
        with self._lock:
            self.dropped += records
            self.last_error = f"queue full: dropped the oldest {records} records"
            self.last_error_at = time.time()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

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
        return {"Content-Type": PROTOBUF, **self.destination.headers}
