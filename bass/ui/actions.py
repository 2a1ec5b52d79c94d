"""What the dashboard's buttons do: Build now (of a branch, tag or commit too), Rerun,
Cancel, Pause and Resume. Each is a form post with the CSRF token, answered with a
redirect to the page that shows the result; the JSON API has the same verbs
(bass.ui.query_api)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bass import states
from bass.orchestrator import NotBuilt, Orchestrator, UnknownPipeline
from bass.store import builds
from bass.ui import check_form, source_of_ref


def _to(request: Request, route: str, **params: object) -> Response:
    return RedirectResponse(str(request.url_for(route, **params)), status_code=303)


async def trigger(request: Request) -> Response:
    form = await check_form(request)
    name = request.path_params["name"]
    orchestrator: Orchestrator = request.state.orchestrator
    try:
        build = await orchestrator.enqueue(
            name, trigger="dashboard", source=source_of_ref(form.get("ref"))
        )
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    except NotBuilt:
        return _to(request, "pipeline", name=name)
    return _to(request, "build", name=name, number=build["number"])


async def _the_build(request: Request) -> dict:
    name, number = request.path_params["name"], request.path_params["number"]
    build = await request.state.db.aread(builds.by_number, name, number)
    if build is None:
        raise HTTPException(404, f"no build {name} #{number}")
    return build


async def rerun(request: Request) -> Response:
    await check_form(request)
    original = await _the_build(request)
    if original["state"] in states.ACTIVE:
        raise HTTPException(409, "this build has not ended: rerun it once it has")
    try:
        build = await request.state.orchestrator.rerun(original)
    except UnknownPipeline:
        raise HTTPException(404, f"pipeline {original['pipeline']!r} is gone") from None
    return _to(request, "build", name=build["pipeline"], number=build["number"])


async def cancel(request: Request) -> Response:
    await check_form(request)
    build = await _the_build(request)
    await request.state.orchestrator.cancel(build["id"])
    return _to(request, "build", name=build["pipeline"], number=build["number"])


async def pause(request: Request) -> Response:
    await check_form(request)
    name = request.path_params["name"]
    try:
        await request.state.orchestrator.set_paused(name, request.url.path.endswith("/pause"))
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    return _to(request, "pipeline", name=name)


routes = [
    Route("/pipelines/{name}/trigger", trigger, methods=["POST"], name="trigger"),
    Route("/pipelines/{name}/pause", pause, methods=["POST"], name="pause"),
    Route("/pipelines/{name}/resume", pause, methods=["POST"], name="resume"),
    Route("/pipelines/{name}/{number:id}/rerun", rerun, methods=["POST"], name="rerun"),
    Route("/pipelines/{name}/{number:id}/cancel", cancel, methods=["POST"], name="cancel"),
]
