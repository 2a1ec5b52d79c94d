"""A TCP relay between bass workers and a bass serve that tells what went through it.

bass serve does not say when a worker sits in its long-poll (there is no log line or
row for an idle `POST /dequeue`), so a test that needs a worker in its long-poll
points the worker at a Tap: a dequeue request that the Tap has passed to bass serve
whole, with no answer back yet, is a long-poll open at the server. The relay forwards
bytes unchanged (the Host header too, so the job's heartbeat, result and OTLP URLs
also lead through it), and passes a hang-up on either side to the other.
"""

from __future__ import annotations

import re
import socket
import threading
from typing import Any

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class Exchange:
    """One connection through the Tap. `request` holds the bytes that have been handed
    on to bass serve, `response` those handed on to the client. `client_gone` is set
    once the client hung up and the Tap has passed the hang-up on to bass serve."""

    def __init__(self) -> None:
        self.request = bytearray()
        self.response = bytearray()
        self.client_gone = False

    def dequeue_sent(self) -> bool:
        """The whole of a `POST /dequeue` request (headers and body) reached bass serve."""
        request = bytes(self.request)
        if not request.startswith(b"POST /dequeue "):
            return False
        end = request.find(b"\r\n\r\n")
        if end < 0:
            return False
        length = _LENGTH.search(request[:end])
        return len(request) >= end + 4 + (int(length.group(1)) if length else 0)


class Tap:
    """Listens on a free loopback port; `url` and `key` stand in for the Server's when
    a WorkerProcess is pointed at the Tap."""

    def __init__(self, server: Any) -> None:
        self.target = ("127.0.0.1", server.port)
        self.key = server.key
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so that close() ends the accept loop
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._start(self._accept)

    def open_long_poll(self) -> Exchange | None:
        """The exchange of a worker in its long-poll: its dequeue request reached bass
        serve whole, no answer came back, the worker has not hung up."""
        with self._lock:
            for exchange in self.exchanges:
                if exchange.dequeue_sent() and not exchange.response and not exchange.client_gone:
                    return exchange
        return None

    def close(self) -> None:
        self._closing = True
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            except OSError:
                pass
        for thread in self._threads:
            thread.join(10)
        for sock in sockets:
            sock.close()
        self._listener.close()

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="tap", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()  # bass serve is gone: so is the Tap, to the client
                continue
            exchange = Exchange()
            with self._lock:
                self.exchanges.append(exchange)
                self._sockets += [client, upstream]
            self._start(self._pump, client, upstream, exchange, True)
            self._start(self._pump, upstream, client, exchange, False)

    def _pump(
        self, source: socket.socket, sink: socket.socket, exchange: Exchange, from_client: bool
    ) -> None:
        record = exchange.request if from_client else exchange.response
        try:
            while data := source.recv(65536):
                sink.sendall(data)  # handed on first, recorded after
                with self._lock:
                    record += data
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)  # the hang-up goes on to the other side
        except OSError:
            pass
        if from_client:
            with self._lock:
                exchange.client_gone = True
