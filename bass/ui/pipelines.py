"""/pipelines/NAME : builds as rows, steps as columns, filtered by branch and status."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass import params, states
from bass.store import builds, telemetry
from bass.ui import render, steps

PAGE = 30


async def pipeline(request: Request) -> Response:
    name = request.path_params["name"]
    before_number = params.number(request.query_params.get("before"))
    branch = request.query_params.get("branch") or None
    status = request.query_params.get("status") or None
    if status not in (None, *states.STATES):
        status = None

    def load(conn):
        rows = builds.for_pipeline(
            conn, name, limit=PAGE, before=before_number, branch=branch, state=status
        )
        spans = telemetry.steps_of_traces(conn, [b["trace_id"] for b in rows])
        return rows, spans, builds.branches(conn, name), name in builds.paused(conn)

    rows, spans, known_branches, paused = await request.state.db.aread(load)
    config = request.state.orchestrator.config.pipelines.get(name)
    if config is None and not rows and before_number is None and not (branch or status):
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
        "branch": branch,
        "status": status,
        "branches": known_branches,
        "paused": paused,
    }
    return render(request, "pipeline.html", "_grid.html", context)


routes = [
    Route("/pipelines/{name}", pipeline, methods=["GET"], name="pipeline"),
]
