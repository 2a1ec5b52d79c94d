"""The builder's own HTTP/1.1 client (`Endpoint.post`) against a raw socket server.

http.server cannot produce every framing the client has to read (chunk extensions,
trailers, close-delimited bodies, garbage), so the server here is a listening socket on
127.0.0.1 that each test drives by hand: it accepts, reads the request the client sent,
and writes the exact bytes of the answer, while `post()` runs in a thread of its own, as
it does in the exporter. Nothing is sequenced by sleeping: every step waits on a socket
(with a timeout, so a broken client fails the test instead of hanging it) or on a
condition polled by `wait_for`.
"""

from __future__ import annotations

import select
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from builder_testing import wait_for

import bass_builder

WAIT = 10.0  # seconds: the bound on anything that should take milliseconds
PATH = "/v1/traces"
# A request body in parts, as the exporter sends it (head, records, tail).
BODY = (b'{"resourceSpans":[{"spans":[', b'{"name":"a"},{"name":"b"}', b"]}]}")
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

Outcome = tuple[int | None, str | None, bytes | BaseException]


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) == 1, f"{len(values)} {name} headers in {self.headers}"
        return values[0]

    def names(self) -> list[str]:
        return [k.lower() for k, _ in self.headers]


class Conn:
    """The server's end of one accepted connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(WAIT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"the client closed the connection; unparsed: {self.buffer!r}")
        self.buffer += data

    def read_request(self) -> Request:
        """The next request on this connection, checked to be well-framed HTTP/1.1."""
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        assert all(b"\n" not in line and b"\r" not in line for line in lines), head
        method, target, version = lines[0].decode("ascii").split(" ")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep and name and name == name.strip(), f"malformed header line {line!r}"
            headers.append((name, value.strip()))
        request = Request(method, target, version, headers)
        length = int(request.header("Content-Length"))
        while len(self.buffer) < length:
            self._recv()
        request.body, self.buffer = self.buffer[:length], self.buffer[length:]
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_in_pieces(self, pieces: Sequence[bytes], endpoint: bass_builder.Endpoint) -> None:
        """Each piece in its own TCP write, the next only once the client has read the last
        one out of its socket: the client sees the answer arrive piece by piece."""
        for piece in pieces:
            self.sock.sendall(piece)
            assert wait_for(lambda: _read_by_client(self.sock, endpoint), WAIT), piece

    def wait_closed_by_client(self) -> None:
        """Returns once the client closed its end, having sent nothing more."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        assert data == b"" and self.buffer == b"", self.buffer + data

    def close(self) -> None:
        self.sock.close()


def _ioctl_int(sock: Any, request: int) -> int:
    import fcntl
    import struct

    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0]


def _read_by_client(server_sock: socket.socket, endpoint: bass_builder.Endpoint) -> bool:
    """True once everything the server sent reached the client's kernel (nothing unacked:
    SIOCOUTQ) and the client read it out of there (nothing left to read: SIOCINQ)."""
    if not sys.platform.startswith("linux"):
        return True  # the pieces still go out as separate writes
    import termios

    client = endpoint._sock
    if client is None:
        return True  # the client is done with the answer (and closed the connection)
    try:
        unacked = _ioctl_int(server_sock, termios.TIOCOUTQ)  # SIOCOUTQ == TIOCOUTQ
        unread = _ioctl_int(client, termios.FIONREAD)  # SIOCINQ == FIONREAD
    except (OSError, ValueError):
        return True  # the client closed the socket meanwhile
    return unacked == 0 and unread == 0


class Call:
    """One `endpoint.post(body, timeout)` running in its own thread."""

    def __init__(
        self, endpoint: bass_builder.Endpoint, body: Sequence[bytes], timeout: float
    ) -> None:
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.elapsed = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(endpoint, body, timeout), name="test-post", daemon=True
        )
        self.thread.start()

    def _run(self, endpoint: bass_builder.Endpoint, body: Sequence[bytes], timeout: float) -> None:
        started = time.monotonic()
        try:
            self.outcome = endpoint.post(body, timeout)
        except BaseException as e:  # reported by result(): post() must never raise
            self.error = e
        finally:
            self.elapsed = time.monotonic() - started
            self.done.set()

    def result(self) -> Outcome:
        assert self.done.wait(WAIT), "post() neither returned nor timed out"
        self.thread.join()
        if self.error is not None:
            raise AssertionError(f"post() raised {self.error!r}") from self.error
        assert self.outcome is not None
        return self.outcome


class RawServer:
    """A listening socket on 127.0.0.1 and the endpoints (clients) aimed at it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port: int = self.listener.getsockname()[1]
        self.conns: list[Conn] = []
        self.endpoints: list[bass_builder.Endpoint] = []
        self.calls: list[Call] = []

    def endpoint(self, headers: dict[str, str] | None = None) -> bass_builder.Endpoint:
        endpoint = bass_builder.Endpoint(f"http://127.0.0.1:{self.port}{PATH}", headers or {})
        self.endpoints.append(endpoint)
        return endpoint

    def post(
        self, endpoint: bass_builder.Endpoint, body: Sequence[bytes] = BODY, timeout: float = WAIT
    ) -> Call:
        call = Call(endpoint, body, timeout)
        self.calls.append(call)
        return call

    def accept(self) -> Conn:
        sock, _ = self.listener.accept()
        conn = Conn(sock)
        self.conns.append(conn)
        return conn

    def assert_no_pending_connection(self) -> None:
        self.listener.setblocking(False)
        try:
            sock, peer = self.listener.accept()
        except BlockingIOError:
            return
        finally:
            self.listener.settimeout(WAIT)
        sock.close()
        raise AssertionError(f"the client opened another connection (from {peer})")

    def close(self) -> None:
        for conn in self.conns:  # a client still waiting on an answer sees the end of it
            conn.close()
        self.listener.close()
        for call in self.calls:
            call.thread.join(WAIT)
        for endpoint in self.endpoints:
            endpoint.close()


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    yield raw
    raw.close()


def assert_well_formed(
    request: Request,
    server: RawServer,
    body: Sequence[bytes] = BODY,
    extra: dict[str, str] | None = None,
) -> None:
    """A POST of `body` as the client must send it: one of each header, exact length."""
    assert (request.method, request.target, request.version) == ("POST", PATH, "HTTP/1.1")
    expected = {
        "host": f"127.0.0.1:{server.port}",
        "content-type": "application/json",
        "user-agent": f"bass_builder/{bass_builder.__version__}",
        "content-length": str(sum(map(len, body))),
        **{k.lower(): v for k, v in (extra or {}).items()},
    }
    assert sorted(request.names()) == sorted(expected), request.headers
    assert {k.lower(): v for k, v in request.headers} == expected
    assert request.body == b"".join(body)


def exchange(
    server: RawServer,
    endpoint: bass_builder.Endpoint,
    conn: Conn,
    extra: dict[str, str] | None = None,
) -> None:
    """One more POST answered 200 on `conn`: the connection was left exactly at the end of
    the last answer, and the client reuses it."""
    call = server.post(endpoint, (b"{}",))
    assert_well_formed(conn.read_request(), server, (b"{}",), extra)
    conn.send(OK)
    assert call.result() == (200, None, b"{}")
    server.assert_no_pending_connection()


# ---------------------------------------------------------------------------
# Answers with a Content-Length


def test_content_length_answer_and_the_request_on_the_wire(server: RawServer) -> None:
    extra = {"Authorization": "Bearer s3cret", "X-Tenant": "a b"}
    endpoint = server.endpoint({**extra, "X-Bad": "x\r\nInjected: 1"})
    call = server.post(endpoint)
    conn = server.accept()
    # the header with a CR LF in its value is left out rather than splitting the head
    assert_well_formed(conn.read_request(), server, extra=extra)
    answer = b'{"partialSuccess":{}}'
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
    assert call.result() == (200, None, answer)
    exchange(server, endpoint, conn, extra)


def test_a_large_request_in_parts_and_a_large_answer(server: RawServer) -> None:
    body = (b"[" + b"x" * 300_000, b"y" * 700_000, b"]")
    answer = bytes(range(256)) * 1000
    endpoint = server.endpoint()
    call = server.post(endpoint, body)
    conn = server.accept()
    assert_well_formed(conn.read_request(), server, body)
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
    assert call.result() == (200, None, answer)


def test_an_answer_cut_short_of_its_content_length_is_an_error(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")
    conn.close()
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, ConnectionResetError) and "mid-answer" in str(error)
    assert endpoint._sock is None
    server.assert_no_pending_connection()  # an answer on a fresh connection: no retry


def test_interim_1xx_answers_are_skipped(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-A: 1\r\n\r\n" + OK)
    assert call.result() == (200, None, b"{}")
    exchange(server, endpoint, conn)


def test_204_without_a_length_has_an_empty_body_and_keeps_the_connection(
    server: RawServer,
) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 204 No Content\r\nServer: raw\r\n\r\n")
    assert call.result() == (204, None, b"")
    exchange(server, endpoint, conn)


# ---------------------------------------------------------------------------
# Chunked answers


def test_chunked_answer_with_extensions_and_trailers(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    assert_well_formed(conn.read_request(), server)
    conn.send(
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: Chunked\r\n"
        b"Trailer: X-Checksum, X-Count\r\n"
        b"\r\n"
        b"7;name=value\r\n"
        b'{"part"\r\n'
        b'3 ; quoted="a;b" ; flag\r\n'
        b":1,\r\n"
        b"9\r\n"
        b'"other":2\r\n'
        b"1\r\n"
        b"}\r\n"
        b"0;last=yes\r\n"
        b"X-Checksum: abc\r\n"
        b"X-Count: 4\r\n"
        b"\r\n"
    )
    assert call.result() == (200, None, b'{"part":1,"other":2}')
    exchange(server, endpoint, conn)  # the trailers and the final CRLF were all consumed


def test_chunked_answer_without_trailers_keeps_the_connection(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert call.result() == (200, None, b"{}")
    exchange(server, endpoint, conn)


def test_chunked_answer_split_across_many_tcp_writes(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    assert_well_formed(conn.read_request(), server)
    big = bytes(range(256)) * 64  # 16 KiB: more than one buffer's worth of one chunk
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n"
        b"4000\r\n" + big + b"\r\n"
        b"6\r\n world\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    cuts = [
        4,  # inside the status line
        answer.index(b"\r\n") + 1,  # between CR and LF
        answer.index(b"chunked") + 3,  # inside a header
        answer.index(b"5;ext") + 3,  # inside a chunk-size line
        answer.index(b"hello") + 2,  # inside a chunk's data
        answer.index(b"hello") + 6,  # between a chunk's data and its CRLF
        answer.index(b"4000") + 2,  # inside a hex size
        answer.index(big) + 3000,  # inside the big chunk, three times
        answer.index(big) + 9000,
        answer.index(big) + len(big) - 1,
        answer.index(b" world") + 1,
        answer.index(b"0\r\nX-") + 1,  # after the last chunk's size
        answer.index(b"X-Trailer") + 4,  # inside the trailer
        len(answer) - 1,  # before the final LF
    ]
    pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
    assert b"".join(pieces) == answer and all(pieces)
    conn.send_in_pieces(pieces, endpoint)
    assert call.result() == (200, None, b"hello" + big + b" world")
    exchange(server, endpoint, conn)


@pytest.mark.parametrize(
    "size",
    [b"1A", b"1a", b"fF", b"00ff", b"186A0", b"186a0"],
)
def test_chunk_sizes_in_hex_upper_and_lower_case(server: RawServer, size: bytes) -> None:
    data = bytes(i % 251 for i in range(int(size, 16)))  # a pattern a misread shows up in
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size
        + b"\r\n"
        + data
        + b"\r\nA\r\n0123456789\r\n0\r\n\r\n"
    )
    assert call.result() == (200, None, data + b"0123456789")
    exchange(server, endpoint, conn)


def test_a_chunked_error_answer_with_retry_after(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n"
        b"\r\n4\r\nbusy\r\n0\r\n\r\n"
    )
    assert call.result() == (503, "3", b"busy")
    exchange(server, endpoint, conn)


# ---------------------------------------------------------------------------
# Close-delimited answers


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",  # neither a length nor a Connection header
    ],
)
def test_close_delimited_answer(server: RawServer, head: bytes) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    assert_well_formed(conn.read_request(), server)
    conn.send_in_pieces([head + b'{"partial', b'Success":', b"{}}"], endpoint)
    conn.close()  # the end of the body
    assert call.result() == (200, None, b'{"partialSuccess":{}}')
    assert endpoint._sock is None  # the client is done with that connection
    # ... and the next request goes out on a new one
    call = server.post(endpoint)
    conn = server.accept()
    assert_well_formed(conn.read_request(), server)
    conn.send(OK)
    assert call.result() == (200, None, b"{}")
    server.assert_no_pending_connection()


def test_an_empty_close_delimited_answer(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\n")
    conn.close()
    assert call.result() == (202, None, b"")
    assert endpoint._sock is None


def test_connection_close_with_a_content_length_opens_a_new_connection_next(
    server: RawServer,
) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    first = server.accept()
    first.read_request()
    first.send(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n{}")
    assert call.result() == (200, None, b"{}")
    first.wait_closed_by_client()  # closed on the client's own initiative, server still open
    call = server.post(endpoint)
    second = server.accept()
    assert_well_formed(second.read_request(), server)
    second.send(OK)
    assert call.result() == (200, None, b"{}")


# ---------------------------------------------------------------------------
# Keep-alive and reconnection


def test_keep_alive_reuses_one_connection(server: RawServer) -> None:
    endpoint = server.endpoint()
    conn: Conn | None = None
    for i in range(3):
        body = (b'{"n":%d}' % i,)
        call = server.post(endpoint, body)
        if conn is None:
            conn = server.accept()
        assert_well_formed(conn.read_request(), server, body)
        conn.send(OK)
        assert call.result() == (200, None, b"{}")
        server.assert_no_pending_connection()


def test_reconnects_after_the_server_closed_the_idle_connection(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    first = server.accept()
    first.read_request()
    first.send(OK)
    assert call.result() == (200, None, b"{}")
    first.close()  # an idle timeout on the server's side
    # the FIN has reached the client (its socket reads as readable) before it posts again
    assert select.select([endpoint._sock], [], [], WAIT)[0]
    call = server.post(endpoint)
    second = server.accept()
    assert_well_formed(second.read_request(), server)
    second.send(OK)
    assert call.result() == (200, None, b"{}")
    server.assert_no_pending_connection()
    exchange(server, endpoint, second)


def test_a_kept_alive_connection_dropped_unanswered_is_retried_once_on_a_new_one(
    server: RawServer,
) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    first = server.accept()
    first.read_request()
    first.send(OK)
    assert call.result() == (200, None, b"{}")
    call = server.post(endpoint)
    assert_well_formed(first.read_request(), server)
    first.close()  # closed just as the request came in: no answer
    second = server.accept()
    assert_well_formed(second.read_request(), server)  # the same request, whole
    second.send(OK)
    assert call.result() == (200, None, b"{}")
    server.assert_no_pending_connection()


def test_a_fresh_connection_dropped_unanswered_is_an_error_not_a_retry(
    server: RawServer,
) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.close()
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, ConnectionError), repr(error)
    assert endpoint._sock is None
    server.assert_no_pending_connection()


def test_an_endpoint_nobody_listens_on_is_connection_refused(server: RawServer) -> None:
    endpoint = server.endpoint()
    server.listener.close()
    status, retry_after, error = server.post(endpoint).result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, ConnectionRefusedError), repr(error)
    assert endpoint._sock is None


# ---------------------------------------------------------------------------
# Retry-After


@pytest.mark.parametrize(
    ("status_line", "header", "retry_after"),
    [
        (b"503 Service Unavailable", b"Retry-After: 7", "7"),
        (b"429 Too Many Requests", b"retry-after:   120  ", "120"),
        (
            b"503 Service Unavailable",
            b"RETRY-AFTER: Wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 GMT",  # passed on as is: the exporter decides
        ),
        (b"502 Bad Gateway", b"X-Other: 1", None),
    ],
)
def test_retry_after_is_returned_with_the_status(
    server: RawServer, status_line: bytes, header: bytes, retry_after: str | None
) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 " + status_line + b"\r\n" + header + b"\r\nContent-Length: 4\r\n\r\nslow")
    assert call.result() == (int(status_line[:3]), retry_after, b"slow")
    exchange(server, endpoint, conn)  # an error status leaves the connection usable


# ---------------------------------------------------------------------------
# Malformed answers and timeouts


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP response"),
        (b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\n{}", "not an HTTP response"),
        (b"\x00\xff garbage\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n{}", "malformed HTTP response"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            "malformed HTTP response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n1G\r\n",
            "malformed HTTP response",
        ),
    ],
)
def test_a_malformed_answer_is_an_error_not_a_hang_or_an_exception(
    server: RawServer, answer: bytes, message: str
) -> None:
    timeout = 5.0
    endpoint = server.endpoint()
    call = server.post(endpoint, timeout=timeout)
    conn = server.accept()
    conn.read_request()
    conn.send(answer)  # and the server keeps the connection open: no EOF to lean on
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, OSError) and not isinstance(error, TimeoutError), repr(error)
    assert message in str(error)
    conn.wait_closed_by_client()  # the client dropped the connection it cannot trust
    assert endpoint._sock is None
    server.assert_no_pending_connection()


def test_a_server_that_never_answers_times_out_within_the_timeout(server: RawServer) -> None:
    timeout = 0.5
    endpoint = server.endpoint()
    call = server.post(endpoint, timeout=timeout)
    conn = server.accept()
    assert_well_formed(conn.read_request(), server)
    status, retry_after, error = call.result()  # the server stays silent
    assert (status, retry_after) == (None, None)
    assert isinstance(error, TimeoutError), repr(error)
    assert call.elapsed >= timeout * 0.9  # it waited for the timeout, and no longer hangs
    conn.wait_closed_by_client()
    assert endpoint._sock is None
    server.assert_no_pending_connection()


def test_an_answer_that_stalls_mid_chunk_times_out(server: RawServer) -> None:
    timeout = 0.5
    endpoint = server.endpoint()
    call = server.post(endpoint, timeout=timeout)
    conn = server.accept()
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly half")
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, TimeoutError), repr(error)
    assert call.elapsed >= timeout * 0.9  # it waited for the timeout, and no longer hangs
    conn.wait_closed_by_client()
    assert endpoint._sock is None


# ---------------------------------------------------------------------------
# What is never sent twice, and answers cut short


def test_a_timeout_on_a_kept_alive_connection_is_not_sent_again(server: RawServer) -> None:
    """The endpoint may have the request: the client does not send it again at once
    (the exporter decides, after a backoff), nor wait a second timeout."""
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(OK)
    assert call.result() == (200, None, b"{}")
    call = server.post(endpoint, timeout=0.3)
    assert_well_formed(conn.read_request(), server)  # then silence
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, TimeoutError), repr(error)
    conn.wait_closed_by_client()
    server.assert_no_pending_connection()  # no second connection, no second copy


def test_a_kept_alive_connection_closed_mid_answer_is_not_sent_again(server: RawServer) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(OK)
    assert call.result() == (200, None, b"{}")
    call = server.post(endpoint)
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
    conn.close()
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, ConnectionResetError) and "mid-answer" in str(error)
    server.assert_no_pending_connection()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly half",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_a_chunked_answer_cut_short_is_an_error_not_a_200(server: RawServer, answer: bytes) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(answer)
    conn.close()
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, ConnectionResetError) and "mid-answer" in str(error), repr(error)
    assert endpoint._sock is None


@pytest.mark.parametrize("size", [b"0x4", b"+4", b"-1", b"4 4", b"0_4"])
def test_a_chunk_size_that_is_not_plain_hex_is_malformed(server: RawServer, size: bytes) -> None:
    endpoint = server.endpoint()
    call = server.post(endpoint)
    conn = server.accept()
    conn.read_request()
    conn.send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\n{}{}\r\n0\r\n\r\n"
    )
    status, retry_after, error = call.result()
    assert (status, retry_after) == (None, None)
    assert isinstance(error, OSError) and "malformed HTTP response" in str(error), repr(error)
    conn.wait_closed_by_client()


@pytest.mark.parametrize(
    "url", ["http://user:secret@bass.example.com:8080/v1/traces", "https://tok@bass.example.com/x"]
)
def test_a_url_with_credentials_is_refused_not_misread(url: str) -> None:
    """Credentials are never sent; read naively the host would be `user` (port 80) and
    the API key and tokens would go there in plain text."""
    with pytest.raises(ValueError, match="without credentials"):
        bass_builder.Endpoint(url, {})
