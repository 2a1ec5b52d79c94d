"""A fake OTLP destination (a stand-in for Tempo or Loki) on 127.0.0.1: records every
request and answers with the statuses a test gives it."""

from __future__ import annotations

import gzip
import socket
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
