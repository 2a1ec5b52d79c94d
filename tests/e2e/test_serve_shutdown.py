"""SIGTERM stops `bass serve` cleanly, with workers in their long-polls and an upload
that never finishes: the long-polls are answered (204: nothing to do), the upload is
cut, serve exits 0 instead of waiting on them."""

from __future__ import annotations

import json
import signal
import socket


def _open(port: int, head: bytes, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head + body)
    return sock


def test_sigterm_ends_long_polls_and_does_not_wait_for_uploads(serve) -> None:
    server = serve({})
    polls = []
    for _ in range(3):
        body = json.dumps({"wait": 60}).encode()
        head = (
            b"POST /dequeue HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: key-1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        polls.append(_open(server.port, head, body))
    upload = _open(
        server.port,
        b"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\n\r\n{",
    )
    try:
        # the three long-polls are waiting at the server (no answer yet)
        for poll in polls:
            poll.settimeout(0.2)
            try:
                assert poll.recv(1) == b"", "answered before the signal"
            except TimeoutError:
                pass
            poll.settimeout(30)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.output()  # a bound against a hang
        for poll in polls:
            assert poll.recv(64).startswith(b"HTTP/1.1 204"), server.output()
    finally:
        for sock in (*polls, upload):
            sock.close()
