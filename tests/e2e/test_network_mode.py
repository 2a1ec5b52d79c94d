"""`bass serve` on a network address, as a team runs it: people log in, workers hold
keys, and a build's telemetry is taken only with its job token, which the worker hands
the build entry (and any OpenTelemetry SDK in its steps) through
OTEL_EXPORTER_OTLP_HEADERS. The whole chain, with real processes."""

from __future__ import annotations

import json
import sys

from bass.auth import Users
from tests.conftest import http
from tests.e2e.waiting import wait_until

JOB = r"""#!/usr/bin/env python3
from bass import build

build({"name": "net", "steps": [
    {"name": "hello", "exec": ["echo", "hello from a step"]},
    {"name": "world", "exec": "echo and another; echo to stderr >&2"},
]})
"""


def test_a_build_on_a_network_server_reports_with_its_job_token(repo, serve, worker, tmp_path):
    repo.commit({"job.py": JOB})
    home = tmp_path / "serve0"  # the serve fixture's first home
    home.mkdir()
    Users(home / "users.json").add("ann", "a long password")
    server = serve(
        {"net": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "job.py"]}},
        extra=["--host", "0.0.0.0"],
    )
    worker(server)
    queued = server.webhook("net")
    token = Users(home / "users.json").new_token("ann")
    auth = {"Authorization": f"Bearer {token}"}

    def build() -> dict:
        status, body = http("GET", f"{server.url}/api/builds/{queued['id']}", headers=auth)
        assert status == 200, body
        return body

    ended = wait_until(lambda: (b := build())["state"] not in ("queued", "running") and b,
                       "the build to end", context=server.output)  # fmt: skip
    assert ended["state"] == "ok", server.output()
    status, logs = http(
        "GET", f"{server.url}/api/pipelines/net/builds/1/logs?limit=1000", headers=auth
    )
    bodies = [r["body"] for r in logs["logs"]]
    assert "hello from a step" in bodies and "to stderr" in bodies
    status, tree = http("GET", f"{server.url}/api/pipelines/net/builds/1", headers=auth)
    names = json.dumps(tree["spans"])
    assert '"hello"' in names and '"world"' in names
    # a stranger's exporter gets nothing in
    status, _ = http("POST", f"{server.url}/v1/logs", body={"resourceLogs": [{"scopeLogs": [
        {"logRecords": [{"body": {"stringValue": "x"}, "traceId": "ab" * 16}]}]}]},
        headers={"Content-Type": "application/json"})  # fmt: skip
    assert status == 401
    # and people must log in
    assert http("GET", f"{server.url}/api/status")[0] == 401
