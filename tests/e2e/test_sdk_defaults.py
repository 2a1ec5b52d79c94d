"""README's recipe for OpenTelemetry SDKs, as written, against real processes:

- an SDK left at its defaults (protocol grpc), given only OTEL_EXPORTER_OTLP_ENDPOINT
  (bass's --grpc-port) and OTEL_SERVICE_NAME, sends spans and logs that bass stores;
- a tool instrumented with OpenTelemetry inside a build step (pytest with the
  pytest-opentelemetry plugin) reports into the build's trace, under its step, with
  nothing but the environment the builder gives the step (an OTLP/HTTP endpoint, and
  the protocol that goes with it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, free_port
from tests.e2e.waiting import wait_until

SERVICE = "sdk-defaults-app"
# Uses the OpenTelemetry API only: whatever configures the SDK decides where it goes.
PROGRAM = r"""
import sys

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, get_logger_provider

if sys.argv[1:] == ["configure"]:
    # What opentelemetry-instrument does at start with opentelemetry-distro installed:
    # the distro's defaults (OTLP exporters for traces, metrics and logs, protocol grpc),
    # then the SDK configured from the environment. Called by name here because the
    # test environment has a second distro (pytest-opentelemetry's), and
    # opentelemetry-instrument loads whichever it finds first.
    from opentelemetry.distro import OpenTelemetryConfigurator, OpenTelemetryDistro

    OpenTelemetryDistro().configure()
    OpenTelemetryConfigurator().configure()

with trace.get_tracer("sdk-defaults").start_as_current_span("handle request") as span:
    get_logger_provider().get_logger("sdk-defaults").emit(
        body="a line from the SDK", severity_number=SeverityNumber.WARN
    )
    print(format(span.get_span_context().trace_id, "032x"), flush=True)
"""


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any OpenTelemetry configuration (the tests
    may run inside a build step, which has its own), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PYTEST_")) and k != "TRACEPARENT"}  # fmt: skip
    return {**env, **extra}


def run_app(command: list[str], server: Server, grpc_port: int, tmp_path: Path) -> str:
    """Run the program with only the endpoint and the service name; its trace id."""
    (tmp_path / "app.py").write_text(PROGRAM)
    env = clean_environ(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port}",
        OTEL_SERVICE_NAME=SERVICE,
    )
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Failed to export" not in done.stderr, done.stderr
    return done.stdout.split()[-1]


def stored_span(server: Server, trace_id: str) -> list:
    """(name, service name) of the trace's spans, once there are some."""
    sql = "SELECT name, service_name FROM spans WHERE trace_id = ?"
    return wait_until(lambda: server.query(sql, trace_id), f"the spans of trace {trace_id}",
                      context=server.output)  # fmt: skip


def test_an_sdk_at_its_defaults_exports_over_grpc(serve: Any, tmp_path: Path) -> None:
    grpc_port = free_port()
    server = serve({}, extra=["--grpc-port", str(grpc_port)])
    trace_id = run_app([sys.executable, "app.py", "configure"], server, grpc_port, tmp_path)
    assert stored_span(server, trace_id) == [("handle request", SERVICE)]
    ((span_id,),) = server.query("SELECT span_id FROM spans WHERE trace_id = ?", trace_id)
    sql = "SELECT span_id, body, severity_number FROM logs WHERE trace_id = ?"
    logs = wait_until(lambda: server.query(sql, trace_id), "the SDK's log record",
                      context=server.output)  # fmt: skip
    assert logs == [(span_id, "a line from the SDK", 13)]  # WARN, inside the span


def test_opentelemetry_instrument_at_its_defaults(serve: Any, tmp_path: Path) -> None:
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    if instrument is None:
        pytest.skip("opentelemetry-instrument (opentelemetry-distro) is not installed")
    grpc_port = free_port()
    server = serve({}, extra=["--grpc-port", str(grpc_port)])
    trace_id = run_app([instrument, sys.executable, "app.py"], server, grpc_port, tmp_path)
    ((name, service),) = stored_span(server, trace_id)
    assert (name, service) == ("handle request", SERVICE)


TESTS = """
def test_one():
    assert 1 + 1 == 2

def test_two():
    assert "bass"
"""

JOB = r"""#!/usr/bin/env python3
import sys

from bass import build

build({"name": "sdk", "steps": [
    {"name": "tests", "exec": [sys.executable, "-m", "pytest", "-p", "pytest_opentelemetry",
                               "-p", "no:cacheprovider", "--export-traces", "-q",
                               "test_sample.py"]},
]})
"""


def test_pytest_opentelemetry_in_a_build_step_reports_into_the_build(
    repo: Any, serve: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):  # the worker hands builds this environment
        if name.startswith(("OTEL_", "PYTEST_")) or name == "TRACEPARENT":
            monkeypatch.delenv(name)
    repo.commit({"job.py": JOB, "test_sample.py": TESTS})
    server = serve(
        {"sdk": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "job.py"]}},
        extra=["--grpc-port", "0"],  # the builder's endpoint is OTLP/HTTP: no gRPC needed
    )
    worker(server)
    queued = server.webhook("sdk")
    job = server.wait_for(queued["id"])
    assert job["state"] == "ok", server.output()

    def step_with_children() -> dict | None:
        """The step's span (build #1 → pipeline "sdk" → step "tests"), once pytest's
        spans are under it."""
        (root,) = server.build("sdk", 1)["spans"]
        (pipeline,) = [s for s in root["children"] if s["name"] == "sdk"]
        (step,) = [s for s in pipeline["children"] if s["name"] == "tests"]
        return step if step["children"] else None

    # pytest-opentelemetry flushes before pytest exits: its spans are in when the step ends
    step = wait_until(step_with_children, "pytest's spans under the step", timeout=15,
                      context=server.output)  # fmt: skip
    (session,) = step["children"]
    assert session["name"] == "test run"
    tests = {s["name"] for s in session["children"]}
    assert {"test_sample.py::test_one", "test_sample.py::test_two"} <= tests
    rows = server.query(
        "SELECT DISTINCT s.service_name FROM spans s JOIN builds b ON b.trace_id = s.trace_id "
        "WHERE b.number = 1 AND s.scope LIKE 'pytest-opentelemetry%'"
    )
    assert rows == [("bass:pipeline:sdk",)]
