"""/pipelines/NAME : builds as rows, steps as columns; the trigger button."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bass import params, states
from bass.orchestrator import UnknownPipeline
from bass.store import builds, telemetry
from bass.ui import check_form, render, steps

PAGE = 30


async def pipeline(request: Request) -> Response:
    name = request.path_params["name"]
    before_number = params.number(request.query_params.get("before"))

    def load(conn):
        rows = builds.for_pipeline(conn, name, limit=PAGE, before=before_number)
        spans = telemetry.spans_of_traces(conn, [b["trace_id"] for b in rows])
        return rows, spans

    rows, spans = await request.state.db.aread(load)
    config = request.state.orchestrator.config.pipelines.get(name)
    if config is None and not rows and before_number is None:
        raise HTTPException(404, f"no pipeline named {name!r}")
    now_ns = time.time_ns()
    context = {
        "now_ns": now_ns,
        "name": name,
        "config": config,
        "grid": steps.grid(
            rows,
            spans,
            now_ns,
            lambda b: request.url_for("build", name=b["pipeline"], number=b["number"]).path,
        ),
        "active": any(b["state"] in states.ACTIVE for b in rows),
        "older": rows[-1]["number"] if len(rows) == PAGE else None,
    }
    return render(request, "pipeline.html", "_grid.html", context)


async def trigger(request: Request) -> Response:
    await check_form(request)
    name = request.path_params["name"]
    try:
        build = await request.state.orchestrator.enqueue(name, trigger="dashboard")
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    if build is None:
        url = request.url_for("pipeline", name=name)
    else:
        url = request.url_for("build", name=name, number=build["number"])
    return RedirectResponse(str(url), status_code=303)


routes = [
    Route("/pipelines/{name}", pipeline, methods=["GET"], name="pipeline"),
    Route("/pipelines/{name}/trigger", trigger, methods=["POST"], name="trigger"),
]
