"""Fixtures shared by the end-to-end and browser tests: real git repositories, real
`bass serve` and `bass worker` processes on free loopback ports, real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bass.store import logs

GIT = ["git", "-c", "user.name=bass tests", "-c", "user.email=tests@localhost",
       "-c", "init.defaultBranch=main"]  # fmt: skip


def terminate(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, as an operator stops a process; SIGKILL if it has not exited in `grace` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Repo:
    """A real git repository the tests commit into."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "--quiet")

    def git(self, *args: str) -> str:
        return subprocess.run(
            [*GIT, "-C", str(self.path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            if content.startswith("#!"):
                target.chmod(0o755)
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str, url: str, body: Any = None, headers: dict | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """One request; returns (status, decoded JSON or text or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, ctype = response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        with e:
            status, raw, ctype = e.code, e.read(), e.headers
    if "json" in (ctype.get("content-type") or ""):
        return status, json.loads(raw) if raw else None
    return status, raw.decode("utf-8", "replace")


class Server:
    """A `bass serve` process in its own directory."""

    def __init__(
        self,
        home: Path,
        pipelines: dict[str, Any],
        *,
        env_file: str = "",
        keys: list[str] | None = None,
        extra: list[str] | None = None,
    ):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "orchestrator-pipelines.json").write_text(json.dumps(pipelines))
        (home / "orchestrator.env").write_text(env_file)
        keys = ["key-1"] if keys is None else keys
        (home / "worker-keys").write_text("\n".join(keys))
        self.key = keys[0] if keys else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = extra or []
        self.db = home / "bass.db"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        self.log = open(self.home / "serve.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bass", "serve", "--port", str(self.port),
             "--lease-seconds", "6", "--grpc-port", "0", *self.extra],
            cwd=self.home, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bass serve exited: {self.output()}")
            try:
                if http("GET", f"{self.url}/healthz", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bass serve did not start: {self.output()}")

    def stop(self) -> None:
        if self.proc:
            terminate(self.proc, 15)
            self.log.close()
            self.proc = None

    def output(self) -> str:
        return (self.home / "serve.log").read_text(errors="replace")

    def webhook(self, pipeline: str, **params: str) -> dict:
        query = "&".join(f"{k.replace('_', '-')}={v}" for k, v in params.items())
        status, body = http("POST", f"{self.url}/webhook?pipeline={pipeline}&{query}")
        assert status == 200, body
        return body

    def wait_for(self, job_id: int, timeout: float = 60) -> dict:
        """The job once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = http("GET", f"{self.url}/api/jobs/{job_id}")
            assert status == 200, job
            if job["state"] not in ("queued", "running"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not end: {job}\n{self.output()}")

    def build(self, pipeline: str, number: int) -> dict:
        status, body = http("GET", f"{self.url}/api/pipelines/{pipeline}/builds/{number}")
        assert status == 200, body
        return body

    def logs(self, pipeline: str, number: int, span: str | None = None) -> list[dict]:
        url = f"{self.url}/api/pipelines/{pipeline}/builds/{number}/logs?limit=10000"
        status, body = http("GET", url + (f"&span={span}" if span else ""))
        assert status == 200, body
        return body["logs"]

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            logs.attach_view(conn)  # log records as rows: `SELECT … FROM logs`
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


class WorkerProcess:
    def __init__(
        self,
        server: Server,
        workspace: Path,
        tags: str = "",
        key: str | None = None,
        name: str | None = None,
        extra: list[str] | None = None,
    ):
        env = {**os.environ}
        env.pop("BASS_API_KEY", None)
        if key or server.key:
            env["BASS_API_KEY"] = key or server.key  # type: ignore[assignment]
        self.logfile = workspace.parent / f"{workspace.name}-{id(self)}.log"
        self.log = open(self.logfile, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bass", "worker", "--dequeue-endpoint",
             f"{server.url}/dequeue", "--workspace-root", str(workspace), "--tags", tags,
             *(["--name", name] if name else []), *(extra or [])],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> int:
        terminate(self.proc, 30)
        self.log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.logfile.read_text(errors="replace")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """serve(pipelines, ...) starts a bass serve; every one is stopped after the test."""
    started: list[Server] = []

    def start(pipelines: dict[str, Any], **kwargs: Any) -> Server:
        server = Server(tmp_path / f"serve{len(started)}", pipelines, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Any]:
    """worker(server, tags=...) starts a bass worker with its own workspace root."""
    started: list[WorkerProcess] = []

    def start(server: Server, workspace: Path | None = None, **kwargs: Any) -> WorkerProcess:
        w = WorkerProcess(server, workspace or tmp_path / f"workspace{len(started)}", **kwargs)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
