"""/pipelines/NAME/NUMBER : one build's step tree with each step's logs."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from bass import params, states
from bass.store import builds, telemetry
from bass.ui import MAX_LOG_LINES, render, steps
from bass.ui.ansi import terminal_safe

LOG_LINES_PER_STEP = 200  # the tail of a step's log the page shows
EMBED_LINES = 1_000  # log lines a build page embeds; other steps load theirs when opened
OPEN = (*states.FAILURES, states.RUNNING)  # steps shown opened


def _load_build(conn, name: str, number: int):
    build = builds.by_number(conn, name, number)
    if build is None:
        return None
    trace_id = build["trace_id"]
    spans = telemetry.spans_of(conn, trace_id)
    counts = telemetry.log_counts(conn, trace_id)
    parents = {s["parent_span_id"] for s in spans}
    opened = {
        s["span_id"] for s in spans if s["bass_status"] in OPEN and s["span_id"] not in parents
    }
    # The opened steps' logs first, then the build's own output, then steps in start
    # order, while the page's budget lasts: a build of a million lines renders as fast
    # as a small one.
    order = sorted(
        (s for s in spans if counts.get(s["span_id"])),
        key=lambda s: (
            s["span_id"] not in opened,
            s["span_id"] != build["root_span_id"],
            s["start_ns"],
        ),
    )
    logs, budget = {}, EMBED_LINES
    for span in order:
        lines = min(counts[span["span_id"]], LOG_LINES_PER_STEP)
        if lines <= budget:
            logs[span["span_id"]] = telemetry.log_tail(
                conn, trace_id, span["span_id"], LOG_LINES_PER_STEP
            )
            budget -= lines
    return build, spans, counts, logs, opened


async def build(request: Request) -> Response:
    name, number = request.path_params["name"], request.path_params["number"]
    loaded = await request.state.db.aread(_load_build, name, number)
    if loaded is None:
        raise HTTPException(404, f"no build {name} #{number}")
    build, spans, counts, logs, opened = loaded
    root = next((s for s in spans if s["span_id"] == build["root_span_id"]), None)
    context = {
        "build": build,
        "root": root,
        "steps": steps.build_steps(spans, build["root_span_id"]),
        "log_counts": counts,
        "logs": logs,
        "opened": opened,
        "limit": LOG_LINES_PER_STEP,
        "active": build["state"] in states.ACTIVE,
    }
    return render(request, "build.html", "_build.html", context)


async def timeline(request: Request) -> Response:
    """/pipelines/NAME/N/timeline: the build's trace as a waterfall of its spans."""
    name, number = request.path_params["name"], request.path_params["number"]

    def load(conn):
        build = builds.by_number(conn, name, number)
        if build is None:
            return None
        return build, telemetry.spans_of_traces(conn, [build["trace_id"]])

    loaded = await request.state.db.aread(load)
    if loaded is None:
        raise HTTPException(404, f"no build {name} #{number}")
    build, spans = loaded
    now_ns = time.time_ns()
    context = {
        "build": build,
        "now_ns": now_ns,
        "timeline": steps.timeline(spans, now_ns),
        "active": build["state"] in states.ACTIVE,
    }
    return render(request, "timeline.html", "_timeline.html", context)


async def step_log(request: Request) -> Response:
    """The tail of one step's log as the build page shows it (?span=ID): what a step
    the page did not embed loads when it is opened, and `lines=N` (up to MAX_LOG_LINES) when
    the reader asks for earlier lines."""
    name, number = request.path_params["name"], request.path_params["number"]
    span_id = request.query_params.get("span", "")
    wanted = params.number(request.query_params.get("lines"))
    lines = min(wanted, MAX_LOG_LINES) if wanted else LOG_LINES_PER_STEP

    def load(conn):
        build = builds.by_number(conn, name, number)
        if build is None:
            return None
        tail = telemetry.log_tail(conn, build["trace_id"], span_id, lines)
        n = telemetry.log_count(conn, build["trace_id"], span_id) if tail else 0
        return build, tail, n

    loaded = await request.state.db.aread(load)
    if loaded is None:
        raise HTTPException(404, f"no build {name} #{number}")
    build, tail, n = loaded
    context = {
        "build": build,
        "span_id": span_id,
        "lines": tail,
        "count": n,
        "limit": LOG_LINES_PER_STEP,
    }
    return request.state.templates.TemplateResponse(request, "_log.html", context)


async def build_log(request: Request) -> Response:
    """The whole log of a build, or of one step (?span=ID), as plain text, safe for a
    terminal (colours kept, other control sequences removed)."""
    name, number = request.path_params["name"], request.path_params["number"]
    span_id = request.query_params.get("span")
    build = await request.state.db.aread(builds.by_number, name, number)
    if build is None:
        raise HTTPException(404, f"no build {name} #{number}")

    def lines():
        after = 0
        while True:
            page = request.state.db.read(
                telemetry.logs_of, build["trace_id"], span_id=span_id, after_id=after, limit=5000
            )
            if not page:
                return
            yield "".join(terminal_safe(r["body"]) + "\n" for r in page)
            after = page[-1]["id"]

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


async def build_by_id(request: Request) -> Response:
    """/builds/ID: a build by its id (what a rerun links to); redirects to its page."""
    build = await request.state.db.aread(builds.get, request.path_params["build_id"])
    if build is None:
        raise HTTPException(404, "no such build")
    return RedirectResponse(
        str(request.url_for("build", name=build["pipeline"], number=build["number"])),
        status_code=302,
    )


async def trace(request: Request) -> Response:
    """/traces/ID: where a local run's printed URL lands; redirects to its build."""
    build = await request.state.db.aread(builds.by_trace, request.path_params["trace_id"].lower())
    if build is None:
        raise HTTPException(404, "no build has this trace (yet); reload in a moment")
    return RedirectResponse(
        str(request.url_for("build", name=build["pipeline"], number=build["number"])),
        status_code=302,
    )


routes = [
    Route("/pipelines/{name}/{number:id}", build, methods=["GET"], name="build"),
    Route("/pipelines/{name}/{number:id}/log", build_log, methods=["GET"], name="build_log"),
    Route("/pipelines/{name}/{number:id}/steplog", step_log, methods=["GET"], name="step_log"),
    Route("/pipelines/{name}/{number:id}/timeline", timeline, methods=["GET"], name="timeline"),
    Route("/traces/{trace_id}", trace, methods=["GET"], name="trace"),
    Route("/builds/{build_id:id}", build_by_id, methods=["GET"], name="build_by_id"),
]
