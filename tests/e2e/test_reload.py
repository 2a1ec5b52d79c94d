"""Live configuration against a real `bass serve`: an edit to its files takes effect
without a restart, a queued build keeps the pipeline config it was queued with, a broken
edit changes nothing and is reported on /api/status until fixed, and SIGHUP reads the
files again (and does not stop the server)."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from tests.conftest import Server, http
from tests.e2e.waiting import wait_until

PIPELINES = {"demo": {"repository": "https://example.com/demo.git", "exec": ["./old.sh"]}}


def config_status(server: Server) -> dict[str, Any]:
    status, body = http("GET", f"{server.url}/api/status")
    assert status == 200, body
    if "config" not in body:
        pytest.skip("bass serve does not report its configuration (bass.reload is not wired)")
    return body["config"]


def pipelines(server: Server) -> dict[str, Any]:
    status, body = http("GET", f"{server.url}/pipelines")
    assert status == 200, body
    return body


def dequeue(server: Server, key: str | None = None) -> tuple[int, Any]:
    headers = {"X-API-KEY": key or server.key or ""}
    return http("POST", f"{server.url}/dequeue", body={"worker": "probe"}, headers=headers)


def test_a_pipelines_edit_takes_effect_and_a_queued_build_keeps_its_config(serve) -> None:
    server = serve(PIPELINES)
    config_status(server)
    queued = server.webhook("demo")
    edited = {
        "demo": {**PIPELINES["demo"], "exec": ["./new.sh"]},
        "added": {"repository": "https://example.com/added.git", "exec": ["./build.sh"]},
    }
    (server.home / "orchestrator-pipelines.json").write_text(json.dumps(edited))
    wait_until(lambda: "added" in pipelines(server), "the added pipeline", context=server.output)
    assert pipelines(server)["demo"]["exec"] == ["./new.sh"]

    status, job = dequeue(server)
    assert status == 200, job
    assert job["otel"]["trace-id"] == queued["trace-id"]
    assert job["pipeline"]["exec"] == ["./old.sh"]  # as it was when it was queued
    assert server.webhook("added")["queued"] is True
    assert config_status(server)["error"] is None


def test_a_broken_edit_changes_nothing_and_is_reported_until_fixed(serve) -> None:
    server = serve(PIPELINES)
    config_status(server)
    path = server.home / "orchestrator-pipelines.json"
    path.write_text('{\n  "demo": {,\n}\n')
    error = wait_until(
        lambda: config_status(server)["error"], "the error on /api/status", context=server.output
    )
    assert "orchestrator-pipelines.json" in error and "line 2" in error
    assert error in server.output()  # logged too
    assert list(pipelines(server)) == ["demo"]
    assert server.webhook("demo")["queued"] is True  # the last good config still builds

    path.write_text(json.dumps({**PIPELINES, "fixed": PIPELINES["demo"]}))
    wait_until(lambda: "fixed" in pipelines(server), "the fix", context=server.output)
    assert config_status(server)["error"] is None


def test_worker_keys_and_env_edits_take_effect(serve) -> None:
    server = serve(PIPELINES, env_file="GREETING=hello\n", keys=["key-1"])
    config_status(server)
    assert dequeue(server, "key-2")[0] == 403
    (server.home / "orchestrator.env").write_text("GREETING=bonjour\n")
    (server.home / "worker-keys").write_text("ci: key-2\n")  # second: read with the env
    wait_until(lambda: dequeue(server, "key-2")[0] == 204, "the new key", context=server.output)
    assert dequeue(server, "key-1")[0] == 403
    server.webhook("demo")
    status, job = dequeue(server, "key-2")
    assert status == 200, job
    assert job["env"] == {"GREETING": "bonjour"}


def test_sighup_reads_the_files_again_and_the_server_goes_on(serve) -> None:
    """The env file is in a directory that did not exist at start: no watch sees it,
    SIGHUP does."""
    server = serve(PIPELINES, extra=["--env-file", "later/orchestrator.env"])
    assert config_status(server)["reads"] == 0
    (server.home / "later").mkdir()
    (server.home / "later" / "orchestrator.env").write_text("FROM_SIGHUP=1\n")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: config_status(server)["reads"] >= 1, "the reload", context=server.output)
    assert server.proc.poll() is None
    server.webhook("demo")
    status, job = dequeue(server)
    assert status == 200, job
    assert job["env"] == {"FROM_SIGHUP": "1"}
