"""/pipelines/NAME/NUMBER : one build's step tree with each step's logs."""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bass import ansi, states
from bass.store import builds, logs, telemetry
from bass.ui import line_json, no_build, render, steps, waterfall

HEX = frozenset("0123456789abcdef")

OPEN = (*states.FAILURES, states.RUNNING)  # steps shown opened
SUMMARY_LINES = 2_000  # the last lines of a failed step its failure is looked for in
SEED_LINES = 80  # lines of an opened step the page carries, so its viewer shows them at once
SEEDED_STEPS = 8
SPAN_LINES = 200  # a span's first log lines its details panel shows


def _load_build(conn, name: str, number: int):
    build = builds.by_number(conn, name, number)
    if build is None:
        return None
    trace_id = build["trace_id"]
    spans = telemetry.spans_of(conn, trace_id)
    last_lines = logs.last_lines(conn, trace_id)
    parents = {s["parent_span_id"] for s in spans}
    opened = {
        s["span_id"] for s in spans if s["bass_status"] in OPEN and s["span_id"] not in parents
    }
    failed = _failure(conn, build, spans, last_lines) if build["state"] in states.FAILURES else None
    if failed is not None:
        opened.add(failed["span"]["span_id"])
    seeds = {}
    for span_id in sorted(opened & last_lines.keys())[:SEEDED_STEPS]:
        at = failed["line"] if failed and failed["span"]["span_id"] == span_id else None
        last = last_lines[span_id]
        first = max((at - SEED_LINES // 2) if at else (last - SEED_LINES + 1), 1)
        rows = logs.log_lines(conn, trace_id, span_id, first, first + SEED_LINES - 1)
        seeds[span_id] = [line_json(r) for r in rows]
    return build, spans, last_lines, opened, failed, seeds


def _failure(conn, build, spans, last_lines) -> dict[str, Any] | None:
    """Where a failed build failed: the first failing step that has no failing step
    under it (else the build's own output), its path, exit code and the line of its
    output most worth reading (bass.ui.failure), with that line's number."""
    root_id = build["root_span_id"]
    paths = steps.step_paths(steps.build_steps(spans, root_id))
    failing = {s["span_id"] for _, s in paths if s["bass_status"] in states.FAILURES}
    under = {s["parent_span_id"] for _, s in paths if s["span_id"] in failing}
    leaves = [(path, s) for path, s in paths if s["span_id"] in failing - under]
    leaves.sort(key=lambda item: item[1]["start_ns"] or 0)
    root = next((s for s in spans if s["span_id"] == root_id), None)
    path, span = leaves[0] if leaves else (("build output",), root)
    if span is None:
        return None
    found: dict[str, Any] = {
        "span": span,
        "path": " / ".join(path),
        "exit_code": span["attributes"].get("process.exit.code"),
        "line": None,
        "text": ansi.plain(span["status_message"] or ""),
    }
    last = last_lines.get(span["span_id"], 0)
    if last:
        first = max(last - SUMMARY_LINES + 1, 1)
        rows = logs.log_lines(conn, build["trace_id"], span["span_id"], first, last)
        from bass.ui import failure  # its patterns: at the first failed build's page

        finding = failure.summary([ansi.plain(r["body"]) for r in rows])
        if finding is not None:
            found["line"] = rows[finding.index]["line"] if rows else None
            found["text"] = finding.line or found["text"]
    return found


async def build(request: Request) -> Response:
    name, number = request.path_params["name"], request.path_params["number"]
    loaded = await request.state.db.aread(_load_build, name, number)
    if loaded is None:
        raise await no_build(request, name, number)
    build, spans, last_lines, opened, failed, seeds = loaded
    root = next((s for s in spans if s["span_id"] == build["root_span_id"]), None)
    context = {
        "seeds": seeds,
        "build": build,
        "root": root,
        "steps": steps.build_steps(spans, build["root_span_id"]),
        "last_lines": last_lines,
        "opened": opened,
        "failure": failed,
        "active": build["state"] in states.ACTIVE,
        "previous_trace": _previous_trace(root),
        "changeset": _changeset(root),
        # a build run by hand of a pipeline this server has no entry for cannot be rerun
        "rerunnable": build["pipeline"] in request.state.orchestrator.config.pipelines,
    }
    return render(request, "build.html", "_build.html", context)


def _previous_trace(root: dict[str, Any] | None) -> str | None:
    """The trace of the run before this one (`bass watch` names it on its root span),
    when it is a trace id: a link to it goes to that build."""
    value = root["attributes"].get("bass.previous_trace_id") if root else None
    if isinstance(value, str) and len(value) == 32 and all(c in HEX for c in value):
        return value
    return None


def _changeset(root: dict[str, Any] | None, shown: int = 5) -> str | None:
    """The changed paths a local run (`bass watch`, `bass run --local`) names on its
    root span: the first few, and how many more."""
    paths = root["attributes"].get("bass.changeset") if root else None
    if not isinstance(paths, list) or not paths:
        return None
    text = ", ".join(str(p) for p in paths[:shown])
    return text + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


async def timeline(request: Request) -> Response:
    """/pipelines/NAME/N/timeline: the build's trace as a waterfall of its spans;
    ?span=ID opens that span's details beside it (see bass.ui.waterfall for the rest)."""
    name, number = request.path_params["name"], request.path_params["number"]
    selected = request.query_params.get("span", "")

    def load(conn):
        build = builds.by_number(conn, name, number)
        if build is None:
            return None
        trace_id = build["trace_id"]
        span = telemetry.span(conn, trace_id, selected) if selected else None
        lines = logs.log_lines(conn, trace_id, selected, 1, SPAN_LINES) if span else []
        return build, telemetry.spans_of_traces(conn, [trace_id]), span, lines

    loaded = await request.state.db.aread(load)
    if loaded is None:
        raise await no_build(request, name, number)
    build, spans, span, lines = loaded
    now_ns = time.time_ns()
    shown = waterfall.waterfall(spans, now_ns, waterfall.view_of(request.query_params))
    context = {
        "build": build,
        "now_ns": now_ns,
        "timeline": shown,
        "selected": waterfall.details(span, shown.get("first_ns", 0), now_ns) if span else None,
        "span_lines": [(r["line"], ansi.to_html(r["body"])) for r in lines],
        "active": build["state"] in states.ACTIVE,
    }
    return render(request, "timeline.html", "_timeline.html", context)


async def build_by_id(request: Request) -> Response:
    """/builds/ID: a build by its id (what a rerun links to); redirects to its page."""
    build = await request.state.db.aread(builds.get, request.path_params["build_id"])
    if build is None:
        raise HTTPException(404, "no such build")
    return RedirectResponse(
        str(request.url_for("build", name=build["pipeline"], number=build["number"])),
        status_code=302,
    )


routes = [
    Route("/pipelines/{name}/{number:id}", build, methods=["GET"], name="build"),
    Route("/pipelines/{name}/{number:id}/timeline", timeline, methods=["GET"], name="timeline"),
    Route("/builds/{build_id:id}", build_by_id, methods=["GET"], name="build_by_id"),
]
