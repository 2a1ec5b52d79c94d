"""/pipelines/NAME/NUMBER : one build's step tree with each step's logs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from bass.store import jobs, telemetry
from bass.ui import ACTIVE, render, same_origin, steps
from bass.ui.pipelines import render_missing

LOG_LINES_PER_STEP = 200


def _load_build(conn, name: str, number: int):
    build = jobs.by_number(conn, name, number)
    if build is None:
        return None
    spans = telemetry.spans_of(conn, build["trace_id"])
    counts = telemetry.log_counts(conn, build["trace_id"])
    logs = {
        span_id: telemetry.logs_of(
            conn, build["trace_id"], span_id=span_id, tail=True, limit=LOG_LINES_PER_STEP
        )
        for span_id in counts
    }
    return build, spans, counts, logs


async def build(request: Request) -> Response:
    name, number = request.path_params["name"], request.path_params["number"]
    loaded = await request.state.db.aread(_load_build, name, number)
    if loaded is None:
        return render_missing(request, f"no build {name} #{number}")
    build, spans, counts, logs = loaded
    root = next((s for s in spans if s["span_id"] == build["root_span_id"]), None)
    context = {
        "build": build,
        "root": root,
        "steps": steps.build_steps(spans, build["root_span_id"]),
        "log_counts": counts,
        "logs": logs,
        "limit": LOG_LINES_PER_STEP,
        "active": build["state"] in ACTIVE,
    }
    return render(request, "build.html", "_build.html", context)


async def build_log(request: Request) -> Response:
    """The whole log of a build, or of one step (?span=ID), as plain text."""
    name, number = request.path_params["name"], request.path_params["number"]
    span_id = request.query_params.get("span")
    build = await request.state.db.aread(jobs.by_number, name, number)
    if build is None:
        return PlainTextResponse(f"no build {name} #{number}\n", status_code=404)

    def lines():
        after = 0
        while True:
            page = request.state.db.read(
                telemetry.logs_of, build["trace_id"], span_id=span_id, after_id=after, limit=5000
            )
            if not page:
                return
            yield "".join(r["body"] + "\n" for r in page)
            after = page[-1]["id"]

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


async def cancel(request: Request) -> Response:
    if not same_origin(request):
        return JSONResponse({"error": "cross-site request refused"}, status_code=403)
    name, number = request.path_params["name"], request.path_params["number"]
    build = await request.state.db.aread(jobs.by_number, name, number)
    if build is None:
        return render_missing(request, f"no build {name} #{number}")
    await request.state.orchestrator.cancel(build["id"])
    return RedirectResponse(
        str(request.url_for("build", name=name, number=number)), status_code=303
    )


async def trace(request: Request) -> Response:
    """/traces/ID: where a local run's printed URL lands; redirects to its build."""
    build = await request.state.db.aread(jobs.by_trace, request.path_params["trace_id"].lower())
    if build is None:
        return render_missing(request, "no build has this trace (yet); reload in a moment")
    return RedirectResponse(
        str(request.url_for("build", name=build["pipeline"], number=build["number"])),
        status_code=302,
    )


routes = [
    Route("/pipelines/{name}/{number:int}", build, methods=["GET"], name="build"),
    Route("/pipelines/{name}/{number:int}/log", build_log, methods=["GET"], name="build_log"),
    Route("/pipelines/{name}/{number:int}/cancel", cancel, methods=["POST"], name="cancel"),
    Route("/traces/{trace_id}", trace, methods=["GET"], name="trace"),
]
