"""/ : every pipeline with its latest build."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass import states
from bass.store import builds
from bass.ui import render


async def home(request: Request) -> Response:
    latest = await request.state.db.aread(builds.latest_per_pipeline)
    configured = request.state.orchestrator.config.pipelines
    names = sorted(set(configured) | set(latest))
    pipelines = [{"name": n, "config": configured.get(n), "latest": latest.get(n)} for n in names]
    active = any(p["latest"] and p["latest"]["state"] in states.ACTIVE for p in pipelines)
    return render(
        request, "home.html", "_pipelines.html", {"pipelines": pipelines, "active": active}
    )


routes = [Route("/", home, methods=["GET"], name="home")]
