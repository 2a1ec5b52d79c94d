"""/pipelines/NAME : builds as rows, steps as columns; the trigger button."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bass import params
from bass.orchestrator import UnknownPipeline
from bass.store import jobs, telemetry
from bass.ui import ACTIVE, render, same_origin, steps

PAGE = 30


async def pipeline(request: Request) -> Response:
    name = request.path_params["name"]
    before_number = params.number(request.query_params.get("before"))

    def load(conn):
        builds = jobs.for_pipeline(conn, name, limit=PAGE, before=before_number)
        spans = telemetry.spans_of_traces(conn, [b["trace_id"] for b in builds])
        return builds, spans

    builds, spans = await request.state.db.aread(load)
    config = request.state.orchestrator.config.pipelines.get(name)
    if config is None and not builds and before_number is None:
        return render_missing(request, f"no pipeline named {name!r}")
    now_ns = time.time_ns()
    context = {
        "now_ns": now_ns,
        "name": name,
        "config": config,
        "grid": steps.grid(
            builds,
            spans,
            now_ns,
            lambda b: request.url_for("build", name=b["pipeline"], number=b["number"]).path,
        ),
        "active": any(b["state"] in ACTIVE for b in builds),
        "older": builds[-1]["number"] if len(builds) == PAGE else None,
    }
    return render(request, "pipeline.html", "_grid.html", context)


def render_missing(request: Request, message: str) -> Response:
    response = request.state.templates.TemplateResponse(
        request, "missing.html", {"message": message}, status_code=404
    )
    return response


async def trigger(request: Request) -> Response:
    if not same_origin(request):
        return JSONResponse({"error": "cross-site request refused"}, status_code=403)
    name = request.path_params["name"]
    try:
        job = await request.state.orchestrator.enqueue(name, trigger="dashboard")
    except UnknownPipeline:
        return render_missing(request, f"no pipeline named {name!r}")
    if job is None:
        url = request.url_for("pipeline", name=name)
    else:
        url = request.url_for("build", name=name, number=job["number"])
    return RedirectResponse(str(url), status_code=303)


routes = [
    Route("/pipelines/{name}", pipeline, methods=["GET"], name="pipeline"),
    Route("/pipelines/{name}/trigger", trigger, methods=["POST"], name="trigger"),
]
