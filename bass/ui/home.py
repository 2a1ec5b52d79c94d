"""/ : every pipeline with its latest build, and its last builds as a strip of squares."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass import states
from bass.store import builds, trends
from bass.ui import charts, render

STRIP = 10  # builds in a pipeline's strip


async def home(request: Request) -> Response:
    def load(conn):
        latest = builds.latest_per_pipeline(conn)
        return latest, trends.recent_per_pipeline(conn, list(latest), limit=STRIP)

    latest, recent = await request.state.db.aread(load)
    configured = request.state.orchestrator.config.pipelines
    names = sorted(set(configured) | set(latest))
    now = time.time()

    def build_url(b: dict[str, Any]) -> str:
        return request.url_for("build", name=b["pipeline"], number=b["number"]).path

    pipelines = [
        {
            "name": n,
            "config": configured.get(n),
            "latest": latest.get(n),
            "strip": charts.strip(recent[n], build_url, now) if recent.get(n) else None,
        }
        for n in names
    ]
    active = any(p["latest"] and p["latest"]["state"] in states.ACTIVE for p in pipelines)
    return render(
        request, "home.html", "_pipelines.html", {"pipelines": pipelines, "active": active}
    )


routes = [Route("/", home, methods=["GET"], name="home")]
