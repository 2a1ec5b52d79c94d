"""/pipelines/NAME/badge.svg[?branch=B] : the pipeline's status as a shields-style badge
("build | passing"), for a README: the state of its newest build (of branch B). An
unknown pipeline gets a grey "unknown" badge, answered 404.

A badge is a page like the others: on a server people log in to, it needs a session or
an API token (bass.guard), so it shows where the dashboard shows; a README on a public
forge gets one from a server that is open without users. It is fetched anew each time
(`no-cache`: GitHub's image proxy asks again, and the ETag lets it hear "304: same")."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass.store import trends
from bass.ui import charts

MAX_BRANCH = 1000  # a longer one names no branch: no query is made for it


async def badge(request: Request) -> Response:
    name = request.path_params["name"]
    branch = request.query_params.get("branch") or None
    configured = name in request.state.orchestrator.config.pipelines
    if branch is not None and len(branch) > MAX_BRANCH:
        has_builds, newest = False, None
    else:
        has_builds, newest = await request.state.db.aread(trends.latest, name, branch)
    known = configured or has_builds
    svg = charts.status_badge(newest["state"] if newest else None, known=known)
    etag = '"' + hashlib.sha256(svg.encode()).hexdigest()[:20] + '"'
    headers = {"Cache-Control": "no-cache", "ETag": etag}
    tags = _tags(request.headers.get("if-none-match", ""))
    if known and (etag in tags or "*" in tags):
        return Response(status_code=304, headers=headers)
    return Response(
        svg, status_code=200 if known else 404, media_type="image/svg+xml", headers=headers
    )


def _tags(header: str) -> set[str]:
    """The entity tags an If-None-Match lists (weak ones compare as strong: a GET)."""
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


routes = [
    Route("/pipelines/{name}/badge.svg", badge, methods=["GET"], name="badge"),
]
