"""Load-generating HTTP clients for bench/ingest_bench.py, each run as its own process.

    python -m bench.otlp_client send SPEC INDEX PORT N   # POST pre-encoded OTLP bodies
    python -m bench.otlp_client get SPEC          # GET dashboard URLs, timing each

Both speak HTTP/1.1 over one keep-alive socket with pre-built request bytes and a
minimal response parser, so the client costs little next to the server it measures
(its own CPU time is reported, to show it).

`send`: SPEC is a pickle written by the benchmark: {"path", "content_type", "templates":
[(body bytes, trace ids)], "protobuf": bool, "records": records per body, "fresh":
bool}; INDEX is this client's number, PORT the server's, N the number of requests to
send (with `fresh`) or else the bytes of bodies to send. The client builds every
request before it says `ready` (with `fresh`, each body gets new trace ids: re-sent
spans would otherwise be upserts, not new spans; without it, it cycles through the
templates until N bytes are sent), then waits for `go` on
stdin, sends its requests one after another and records each one's latency. A 503
answer is retried after its Retry-After (the time spent waiting counts in that
request's latency); any other non-200 answer is counted and not retried. It prints one
JSON line: start and end (time.monotonic(), one clock for every process of the
machine), latencies, answers by status, records and bytes sent with a 200, CPU seconds.

`get`: SPEC is a JSON file {"port", "warmup": [[kind, path], ...], "requests": [[kind,
path], ...]}; the warm-up requests are sent untimed, then each request in order; prints
{"latencies": {kind: [seconds]}, "status": {kind: {code: n}}, "bytes": {kind: n}}.
"""

from __future__ import annotations

import json
import pickle
import resource
import socket
import sys
import time


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.reconnects = -1

    def connect(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.reconnects += 1

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send one request, read its answer: (status, headers, body). Reconnects once
        when the server had closed an idle connection."""
        for attempt in (0, 1):
            if self.sock is None:
                self.connect()
            try:
                assert self.sock is not None
                self.sock.sendall(request)
                return self._response()
            except (ConnectionError, BrokenPipeError) as e:
                self.sock.close()
                self.sock = None
                if attempt:
                    raise ConnectionError(f"request failed twice: {e}") from None
        raise AssertionError("unreachable")

    def _response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = self._chunked()
        else:
            size = int(headers.get(b"content-length", b"0"))
            while len(self.buffer) < size:
                self._fill()
            body, self.buffer = self.buffer[:size], self.buffer[size:]
        if headers.get(b"connection", b"").lower() == b"close":
            assert self.sock is not None
            self.sock.close()
            self.sock = None
        return status, headers, body

    def _chunked(self) -> bytes:
        parts = []
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(self.buffer) < size + 2:
                self._fill()
            parts.append(self.buffer[:size])
            self.buffer = self.buffer[size + 2 :]
            if size == 0:
                return b"".join(parts)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def post_request(port: int, path: str, content_type: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def send(spec_path: str, index: int, port: int, n: int) -> dict:
    from bench.ingest_data import fresh_ids

    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    templates = spec["templates"]

    def request_for(body: bytes) -> bytes:
        return post_request(port, spec["path"], spec["content_type"], body)

    if spec["fresh"]:
        count = n
        requests = []
        for i in range(count):
            body, trace_ids = templates[(index * 7 + i) % len(templates)]
            requests.append((request_for(fresh_ids(body, trace_ids, spec["protobuf"])), len(body)))
        plan = iter(range(count))
        budget = None
    else:
        requests = [(request_for(body), len(body)) for body, _ in templates]
        budget = n
        plan = None
    conn = Connection(port)
    conn.connect()
    prepared_cpu = cpu_seconds()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return {"error": "not told to go"}
    latencies: list[float] = []
    answers: dict[str, int] = {}
    errors: list[str] = []
    records = sent_bytes = retries = 0
    started = time.monotonic()
    i = 0
    while True:
        if plan is not None:
            k = next(plan, None)
            if k is None:
                break
            request, size = requests[k]
        else:
            if sent_bytes >= budget:
                break
            request, size = requests[(index + i) % len(requests)]
        i += 1
        began = time.perf_counter()
        while True:
            status, headers, body = conn.exchange(request)
            answers[str(status)] = answers.get(str(status), 0) + 1
            if status != 503:
                break
            retries += 1
            time.sleep(float(headers.get(b"retry-after", b"1")))
        latencies.append(time.perf_counter() - began)
        if status == 200:
            records += spec["records"]
            sent_bytes += size
        elif len(errors) < 5:
            errors.append(f"{status}: {body[:200]!r}")
    ended = time.monotonic()
    return {
        "start": started,
        "end": ended,
        "latencies": latencies,
        "answers": answers,
        "retries": retries,
        "records": records,
        "bytes": sent_bytes,
        "errors": errors,
        "reconnects": conn.reconnects,
        "cpu": cpu_seconds() - prepared_cpu,
    }


def get(spec_path: str) -> dict:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    port = spec["port"]
    conn = Connection(port)
    conn.connect()

    def fetch(path: str) -> tuple[int, bytes]:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        status, _, body = conn.exchange(request)
        return status, body

    for _, path in spec["warmup"]:
        fetch(path)
    latencies: dict[str, list[float]] = {}
    answers: dict[str, dict[str, int]] = {}
    sizes: dict[str, int] = {}
    errors: list[str] = []
    started_cpu = cpu_seconds()
    for kind, path in spec["requests"]:
        began = time.perf_counter()
        status, body = fetch(path)
        latencies.setdefault(kind, []).append(time.perf_counter() - began)
        counts = answers.setdefault(kind, {})
        counts[str(status)] = counts.get(str(status), 0) + 1
        sizes[kind] = sizes.get(kind, 0) + len(body)
        if status != 200 and len(errors) < 10:
            errors.append(f"{path} → {status}: {body[:200]!r}")
    return {
        "latencies": latencies,
        "answers": answers,
        "bytes": sizes,
        "errors": errors,
        "reconnects": conn.reconnects,
        "cpu": cpu_seconds() - started_cpu,
    }


def main() -> None:
    mode, spec = sys.argv[1], sys.argv[2]
    if mode == "send":
        result = send(spec, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        result = get(spec)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
