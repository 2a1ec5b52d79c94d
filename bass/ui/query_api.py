"""/api/… : the JSON query API, what the dashboard shows as JSON, for scripts (`bass run
--wait` among them)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass import params, states
from bass.orchestrator import NotBuilt, UnknownPipeline
from bass.params import people_base_url, query_int, read_json
from bass.store import builds, logs, telemetry
from bass.ui import no_build, server_status, source_of_ref, steps
from bass.webhook import queued_answer


def _public(build: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in build.items() if k not in ("config", "job_token")}


async def build_by_id(request: Request) -> Response:
    found = await request.state.db.aread(builds.get, request.path_params["build_id"])
    if found is None:
        raise HTTPException(404, "no such build")
    return JSONResponse(_public(found))


async def pipeline_builds(request: Request) -> Response:
    """A pipeline's builds, newest first (?before=N pages; ?branch=B, ?status=S filter)."""
    limit = query_int(request, "limit", 50, 500)
    before_number = params.number(request.query_params.get("before"))
    rows = await request.state.db.aread(
        builds.for_pipeline,
        request.path_params["name"],
        limit=limit,
        before=before_number,
        branch=request.query_params.get("branch") or None,
        state=request.query_params.get("status") or None,
    )
    return JSONResponse({"builds": [_public(r) for r in rows]})


async def queue_build(request: Request) -> Response:
    """POST /api/pipelines/NAME/builds {"ref": "branch, tag or commit"}: build now."""
    payload = await read_json(request, required=False)
    ref = payload.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise HTTPException(400, '"ref" must be a branch, tag or commit name')
    name = request.path_params["name"]
    try:
        build = await request.state.orchestrator.enqueue(
            name, trigger="api", source=source_of_ref(ref)
        )
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    except NotBuilt as e:
        return JSONResponse({"queued": False, "reason": str(e)})
    return JSONResponse(queued_answer(build, people_base_url(request)))


async def rerun(request: Request) -> Response:
    """POST /api/pipelines/NAME/builds/N/rerun: the same commit and changeset again."""
    name, number = request.path_params["name"], request.path_params["number"]
    original = await request.state.db.aread(builds.by_number, name, number)
    if original is None:
        raise await no_build(request, name, number)
    if original["state"] in states.ACTIVE:
        raise HTTPException(409, f"{name} #{number} has not ended: rerun it once it has")
    try:
        build = await request.state.orchestrator.rerun(original)
    except UnknownPipeline:
        raise HTTPException(404, f"pipeline {name!r} is gone") from None
    return JSONResponse(queued_answer(build, people_base_url(request)))


async def pause(request: Request) -> Response:
    """POST /api/pipelines/NAME/pause or /resume."""
    name = request.path_params["name"]
    paused = request.url.path.endswith("/pause")
    try:
        await request.state.orchestrator.set_paused(name, paused)
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    return JSONResponse({"pipeline": name, "paused": paused})


async def build(request: Request) -> Response:
    name, number = request.path_params["name"], request.path_params["number"]

    def load(conn):
        found = builds.by_number(conn, name, number)
        return found, telemetry.spans_of(conn, found["trace_id"]) if found else []

    found, spans = await request.state.db.aread(load)
    if found is None:
        raise await no_build(request, name, number)
    return JSONResponse({"build": _public(found), "spans": steps.span_tree(spans)})


def log_query(request: Request) -> dict[str, Any]:
    """The paging and filter parameters of a logs request, checked (400)."""
    before = request.query_params.get("before")
    return {
        "span_id": request.query_params.get("span") or None,
        "after_id": query_int(request, "after", 0, 2**62),
        # past SQLite's 64-bit integers a bound would be an OverflowError
        "before_id": query_int(request, "before", 0, 2**62) if before is not None else None,
        "limit": query_int(request, "limit", 1000, 10000),
        "tail": request.query_params.get("tail") in ("1", "true"),
        "min_severity": query_int(request, "severity", 0, 24),
        "search": request.query_params.get("q", "")[:500],
    }


async def _logs(request: Request, trace_id: str) -> Response:
    query = log_query(request)
    records = await request.state.db.aread(logs.logs_of, trace_id, **query)
    return JSONResponse({"logs": records})


async def build_logs(request: Request) -> Response:
    """A build's logs (or a step's, ?span=ID): ?after=ID pages forwards, ?before=ID or
    ?tail=1 backwards; ?severity=N keeps N and above; ?q=words searches."""
    name, number = request.path_params["name"], request.path_params["number"]
    found = await request.state.db.aread(builds.by_number, name, number)
    if found is None:
        raise await no_build(request, name, number)
    return await _logs(request, found["trace_id"])


async def trace(request: Request) -> Response:
    """Any trace the receiver stored, bass build or not: its spans as a tree."""
    trace_id = request.path_params["trace_id"].lower()
    spans = await request.state.db.aread(telemetry.spans_of, trace_id)
    if not spans:
        raise HTTPException(404, f"no trace {trace_id}")
    return JSONResponse({"trace_id": trace_id, "spans": steps.span_tree(spans)})


async def trace_logs(request: Request) -> Response:
    return await _logs(request, request.path_params["trace_id"].lower())


async def search(request: Request) -> Response:
    """Log records matching every word of ?q= across builds, newest first
    (?pipeline=NAME to narrow, ?before=ID to page)."""
    text = request.query_params.get("q", "")[:500]
    if not text.strip():
        raise HTTPException(400, "q: say what to search for")
    limit = query_int(request, "limit", 50, 500)
    before = request.query_params.get("before")
    before_id = query_int(request, "before", 0, 2**62) if before is not None else None
    records = await request.state.db.aread(
        logs.search_logs,
        text,
        pipeline=request.query_params.get("pipeline") or None,
        before_id=before_id,
        limit=limit,
    )
    return JSONResponse({"logs": records})


async def status(request: Request) -> Response:
    """What the server has received, forwarded and queued since it started."""
    return JSONResponse(await server_status(request))


# Named api_*: the dashboard's pages of the same names (search, status) are what
# url_for("search") and url_for("status") must find.
routes = [
    Route("/api/status", status, methods=["GET"], name="api_status"),
    Route("/api/search", search, methods=["GET"], name="api_search"),
    Route("/api/traces/{trace_id}", trace, methods=["GET"], name="api_trace"),
    Route("/api/traces/{trace_id}/logs", trace_logs, methods=["GET"], name="api_trace_logs"),
    Route("/api/builds/{build_id:id}", build_by_id, methods=["GET"], name="api_build_by_id"),
    # the same, as README named it first (`bass run --wait` of an older bass asks here)
    Route("/api/jobs/{build_id:id}", build_by_id, methods=["GET"], name="api_job"),
    Route("/api/pipelines/{name}/builds", pipeline_builds, methods=["GET"], name="api_builds"),
    Route("/api/pipelines/{name}/builds", queue_build, methods=["POST"], name="api_queue"),
    Route(
        "/api/pipelines/{name}/builds/{number:id}/rerun",
        rerun,
        methods=["POST"],
        name="api_rerun",
    ),
    Route("/api/pipelines/{name}/pause", pause, methods=["POST"], name="api_pause"),
    Route("/api/pipelines/{name}/resume", pause, methods=["POST"], name="api_resume"),
    Route("/api/pipelines/{name}/builds/{number:id}", build, methods=["GET"], name="api_build"),
    Route(
        "/api/pipelines/{name}/builds/{number:id}/logs",
        build_logs,
        methods=["GET"],
        name="api_build_logs",
    ),
]
