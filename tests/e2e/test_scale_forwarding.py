"""README's scaling guide, "When one machine is not enough", as it is written there:
`bass serve` forwarding every span to Tempo and every log record to Loki while it keeps
only the newest builds itself. Tempo and Loki are stood in for by real OTLP/HTTP
receivers on loopback (tests/unit/fake_destination.py) at the paths the guide gives
(`/v1/traces` on Tempo's OTLP port, `/otlp/v1/logs` on Loki's); the flags are the
guide's, with `--keep-builds 2` so that four builds are enough to prune two.

Retention runs when `bass serve` starts and every 10 minutes after: the test restarts
the server (same directory and database) rather than waiting for a pass."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import http
from tests.e2e.waiting import wait_until
from tests.unit.fake_destination import FakeDestination

JOB = r"""#!/usr/bin/env python3
from bass import build

build({"name": "app", "steps": [
    {"name": "compile", "exec": ["printf", "compile %s\\n", "one", "two", "three"]},
    {"name": "tests", "steps": [
        {"name": "unit", "exec": ["sh", "-c", "echo unit ok; echo slow test >&2"]},
        {"name": "lint", "exec": ["echo", "lint ok"]},
    ]},
]})
"""

BUILDS = 4
KEEP = 2
TENANT = "X-Scope-OrgID: ci"


def guide_flags(tempo: FakeDestination, loki: FakeDestination) -> list[str]:
    """The flags of README's worked example, Tempo and Loki at the stand-ins' ports."""
    return [
        "--forward-traces", tempo.url("/v1/traces"),
        "--forward-logs", loki.url("/otlp/v1/logs"),
        "--forward-header", TENANT,
        "--retention-days", "14",
        "--keep-builds", str(KEEP),
    ]  # fmt: skip


def received_spans(tempo: FakeDestination) -> set[tuple[str, str]]:
    """(trace id, span id) of every span the Tempo stand-in received."""
    out = set()
    for request in list(tempo.received):
        for resource in ExportTraceServiceRequest.FromString(request.body).resource_spans:
            for scope in resource.scope_spans:
                out |= {(s.trace_id.hex(), s.span_id.hex()) for s in scope.spans}
    return out


def received_lines(loki: FakeDestination) -> Counter[tuple[str, str]]:
    """(trace id, text) of every log record the Loki stand-in received, counted."""
    out: Counter[tuple[str, str]] = Counter()
    for request in list(loki.received):
        for resource in ExportLogsServiceRequest.FromString(request.body).resource_logs:
            for scope in resource.scope_logs:
                out.update((r.trace_id.hex(), r.body.string_value) for r in scope.log_records)
    return out


def stored_spans(server: Any) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in server.query("SELECT trace_id, span_id FROM spans")}


def stored_lines(server: Any) -> Counter[tuple[str, str]]:
    return Counter((r[0], r[1]) for r in server.query("SELECT trace_id, body FROM logs"))


def page(server: Any, path: str) -> tuple[int, str]:
    status, body = http("GET", f"{server.url}{path}")
    return status, body if isinstance(body, str) else str(body)


def test_the_guide_forwards_everything_and_keeps_only_the_newest_builds(
    serve: Any, worker: Any, repo: Any
) -> None:
    repo.commit({"job.py": JOB})
    tempo, loki = FakeDestination(), FakeDestination()
    try:
        pipelines = {"app": {"repository": str(repo.path), "exec": [sys.executable, "job.py"]}}
        server = serve(pipelines, extra=guide_flags(tempo, loki))
        worker(server)
        traces = {}
        for _ in range(BUILDS):
            queued = server.webhook("app")
            build = server.wait_for(queued["id"])
            assert build["state"] == "ok", (build, server.output())
            traces[build["number"]] = build["trace_id"]
        numbers = sorted(traces)
        pruned, kept = numbers[:-KEEP], numbers[-KEEP:]

        # Every span and log line bass stored reached Tempo and Loki (a span exported at
        # its start and again at its end arrives twice; bass stores it once).
        assert {t for t, _ in stored_spans(server)} == set(traces.values())
        assert sum(stored_lines(server).values()) >= BUILDS * 6
        wait_until(
            lambda: (
                received_spans(tempo) >= stored_spans(server)
                and received_lines(loki) == stored_lines(server)
            ),
            "every span at the Tempo stand-in and every log record at the Loki one",
            context=server.output,
        )
        assert {r.path for r in tempo.received} == {"/v1/traces"}
        assert {r.path for r in loki.received} == {"/otlp/v1/logs"}
        assert {r.headers["x-scope-orgid"] for r in [*tempo.received, *loki.received]} == {"ci"}
        status, body = http("GET", f"{server.url}/api/status")
        assert status == 200, body
        assert {f["dropped"] for f in body["forwarding"]} == {0}

        # Retention's pass at start keeps the newest KEEP builds.
        server.stop()
        server.start()

        def listed() -> list[int]:
            status, body = http("GET", f"{server.url}/api/pipelines/app/builds")
            assert status == 200, body
            return sorted(b["number"] for b in body["builds"])

        wait_until(lambda: listed() == kept, f"only builds {kept} listed", context=server.output)
        gone = [traces[n] for n in pruned]
        marks = ",".join("?" * len(gone))
        assert (
            server.query(f"SELECT COUNT(*) FROM spans WHERE trace_id IN ({marks})", *gone)[0][0]
            == 0
        )
        assert (
            server.query(f"SELECT COUNT(*) FROM logs WHERE trace_id IN ({marks})", *gone)[0][0] == 0
        )
        # ... while the stand-ins keep them: the trace ids to look up in Tempo and Loki.
        assert set(gone) <= {t for t, _ in received_spans(tempo)}
        assert set(gone) <= {t for t, _ in received_lines(loki)}

        # The dashboard still serves the kept builds from SQLite.
        for number in kept:
            status, text = page(server, f"/pipelines/app/{number}")
            assert status == 200, text
            assert traces[number] in text  # the trace id, to look the build up in Tempo
            assert server.logs("app", number), f"no log lines of kept build {number}"
        status, text = page(server, "/pipelines/app")
        assert status == 200, text
        for number in kept:
            assert f'href="/pipelines/app/{number}"' in text
        for number in pruned:
            assert f'href="/pipelines/app/{number}"' not in text

        # A pruned build: a 404 page that says retention removed it, with the trace id
        # to look it up by in Tempo and Loki.
        for number in pruned:
            for path in (f"/pipelines/app/{number}", f"/traces/{traces[number]}"):
                status, text = page(server, path)
                assert status == 404
                assert f"app #{number} (ok) was removed by retention on " in text, text
                assert f"its trace id is {traces[number]}" in text
    finally:
        tempo.close()
        loki.close()
