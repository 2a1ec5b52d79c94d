"""Helpers for the builder tests: a real OTLP/HTTP JSON receiver and builder runners.

The builder always runs as a real subprocess (the way a worker runs it), pointed at a
`ThreadingHTTPServer` on 127.0.0.1 that records every request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILDER_DIR = REPO / "builder"
BUILDER_FILE = BUILDER_DIR / "bass_builder.py"
TESTPIPELINES = REPO / "testpipelines"
# The interpreter that runs the builder: the builder supports Python 3.9+, so
# BASS_BUILDER_PYTHON=python3.9 pytest tests/builder checks an older one.
PYTHON = os.environ.get("BASS_BUILDER_PYTHON") or sys.executable


def any_value(value: dict[str, Any]) -> Any:
    """An OTLP/JSON AnyValue as a plain Python value."""
    ((kind, inner),) = value.items()
    if kind == "arrayValue":
        return [any_value(v) for v in inner.get("values", [])]
    if kind == "intValue":
        return int(inner)
    return inner


def attributes(obj: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: any_value(a["value"]) for a in obj.get("attributes", [])}


class Receiver:
    """Records every OTLP/JSON request; can answer errors first, or be stopped."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.failures: deque[tuple[int, str | None]] = deque()
        self.lock = threading.Lock()
        self.gate = threading.Event()  # cleared: requests wait (a slow endpoint)
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.gate.wait(60)
                with receiver.lock:
                    failure = receiver.failures.popleft() if receiver.failures else None
                    if failure is None:
                        receiver.requests.append((self.path, dict(self.headers), body))
                if failure is not None:
                    status, retry_after = failure
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.traces_url = f"{self.url}/v1/traces"
        self.logs_url = f"{self.url}/v1/logs"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.running = True

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = "1") -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()

    # -- what arrived

    def payloads(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            bodies = [body for p, _, body in self.requests if p == path]
        return [json.loads(body) for body in bodies]

    def span_exports(self) -> list[dict[str, Any]]:
        """Every span export in arrival order, with `service` and `attrs` added."""
        out = []
        for payload in self.payloads("/v1/traces"):
            for rs in payload["resourceSpans"]:
                service = attributes(rs["resource"])["service.name"]
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        out.append(
                            {
                                **span,
                                "service": service,
                                "scope": ss["scope"],
                                "attrs": attributes(span),
                            }
                        )
        return out

    def spans(self) -> dict[str, dict[str, Any]]:
        """Each span's last export, by span id."""
        return {span["spanId"]: span for span in self.span_exports()}

    def span(self, name: str) -> dict[str, Any]:
        found = [s for s in self.spans().values() if s["name"] == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {found}"
        return found[0]

    def status(self, name: str) -> str:
        return self.span(name)["attrs"]["bass.status"]

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for payload in self.payloads("/v1/logs"):
            for rl in payload["resourceLogs"]:
                for sl in rl["scopeLogs"]:
                    for record in sl["logRecords"]:
                        out.append({**record, "attrs": attributes(record)})
        return out

    def bodies(self, name: str, stream: str | None = None) -> list[str]:
        span_id = self.span(name)["spanId"]
        return [
            r["body"]["stringValue"]
            for r in self.logs()
            if r["spanId"] == span_id
            and (stream is None or r["attrs"].get("log.iostream") == stream)
        ]


def builder_env(shim: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "BASS_", "PYTHON", "PYENV_VERSION")) and k != "TRACEPARENT"
    }
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(BUILDER_DIR)])
    env.update(extra or {})
    return env


class Result:
    def __init__(self, proc: subprocess.CompletedProcess, trace_id: str, root_span_id: str):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.trace_id = trace_id
        self.root_span_id = root_span_id

    def __repr__(self) -> str:
        return f"<exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}>"


class Builder:
    """Runs pipelines (JSON or Python scripts) as real builder subprocesses."""

    def __init__(self, tmp_path: Path, shim: Path, receiver: Receiver) -> None:
        self.tmp_path = tmp_path
        self.shim = shim
        self.receiver = receiver
        self.counter = 0

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return builder_env(self.shim, extra)

    def command(
        self,
        entry: list[str],
        args: list[str] = (),
        *,
        ids: bool = True,
        endpoints: bool = True,
        python: bool = True,
    ) -> tuple[list[str], str, str]:
        """The command line: python + entry (or entry alone) + ids + endpoints + args."""
        trace_id = os.urandom(16).hex()
        root_span_id = os.urandom(8).hex()
        cmd = [PYTHON, *entry] if python else list(entry)
        if ids:
            cmd += ["-i", trace_id, "-d", root_span_id]
        if endpoints:
            cmd += ["-t", self.receiver.traces_url, "-l", self.receiver.logs_url]
        return cmd + list(args), trace_id, root_span_id

    def write_json(self, pipeline: dict[str, Any]) -> Path:
        self.counter += 1
        path = self.tmp_path / f"pipeline{self.counter}.json"
        path.write_text(json.dumps(pipeline))
        return path

    def write_script(self, source: str) -> Path:
        self.counter += 1
        path = self.tmp_path / f"job{self.counter}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def run(
        self,
        entry: list[str],
        args: list[str] = (),
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ids: bool = True,
        endpoints: bool = True,
        python: bool = True,
        timeout: float = 30,
    ) -> Result:
        cmd, trace_id, root_span_id = self.command(
            entry, args, ids=ids, endpoints=endpoints, python=python
        )
        proc = subprocess.run(
            cmd,
            cwd=cwd or self.tmp_path,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc, trace_id, root_span_id)

    def run_json(self, pipeline: dict[str, Any], args: list[str] = (), **kw: Any) -> Result:
        path = self.write_json(pipeline)
        return self.run(["-m", "bass_builder", str(path)], args, **kw)

    def run_script(self, source: str, args: list[str] = (), **kw: Any) -> Result:
        path = self.write_script(source)
        return self.run([str(path)], args, **kw)

    def start(
        self,
        entry: list[str],
        args: list[str] = (),
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[subprocess.Popen, str]:
        """Start the builder without waiting (for signal tests)."""
        cmd, trace_id, _ = self.command(entry, args)
        proc = subprocess.Popen(
            cmd,
            cwd=cwd or self.tmp_path,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return proc, trace_id


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def kill_if_alive(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
