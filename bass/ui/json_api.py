"""/api/… : the JSON the dashboard shows, for scripts (`bass run --wait` among them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass import params
from bass.store import jobs, telemetry
from bass.ui import steps


def _int_param(request: Request, name: str, default: int, top: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()):  # "²".isdigit(), but int("²") fails
        raise ValueError(f"{name} must be a non-negative integer")
    return min(int(value), top)


def _not_found(what: str) -> Response:
    return JSONResponse({"error": f"no {what}"}, status_code=404)


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("config",)}


async def job(request: Request) -> Response:
    found = await request.state.db.aread(jobs.get, request.path_params["job_id"])
    return JSONResponse(_public(found)) if found else _not_found("such job")


async def builds(request: Request) -> Response:
    try:
        limit = _int_param(request, "limit", 50, 500)
        before_number = params.number(request.query_params.get("before"))
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    rows = await request.state.db.aread(
        jobs.for_pipeline, request.path_params["name"], limit=limit, before=before_number
    )
    return JSONResponse({"builds": [_public(r) for r in rows]})


async def build(request: Request) -> Response:
    name, number = request.path_params["name"], request.path_params["number"]

    def load(conn):
        found = jobs.by_number(conn, name, number)
        return found, telemetry.spans_of(conn, found["trace_id"]) if found else []

    found, spans = await request.state.db.aread(load)
    if found is None:
        return _not_found(f"build {name} #{number}")
    return JSONResponse({"build": _public(found), "spans": steps.span_tree(spans)})


def log_query(request: Request) -> dict[str, Any]:
    """The paging and filter parameters of a logs request, checked (ValueError)."""
    before = request.query_params.get("before")
    return {
        "span_id": request.query_params.get("span") or None,
        "after_id": _int_param(request, "after", 0, 2**62),
        # past SQLite's 64-bit integers a bound would be an OverflowError
        "before_id": _int_param(request, "before", 0, 2**62) if before is not None else None,
        "limit": _int_param(request, "limit", 1000, 10000),
        "tail": request.query_params.get("tail") in ("1", "true"),
        "min_severity": _int_param(request, "severity", 0, 24),
        "search": request.query_params.get("q", "")[:500],
    }


async def _logs(request: Request, trace_id: str) -> Response:
    try:
        query = log_query(request)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    records = await request.state.db.aread(telemetry.logs_of, trace_id, **query)
    return JSONResponse({"logs": records})


async def build_logs(request: Request) -> Response:
    """A build's logs (or a step's, ?span=ID): ?after=ID pages forwards, ?before=ID or
    ?tail=1 backwards; ?severity=N keeps N and above; ?q=words searches."""
    name, number = request.path_params["name"], request.path_params["number"]
    found = await request.state.db.aread(jobs.by_number, name, number)
    if found is None:
        return _not_found(f"build {name} #{number}")
    return await _logs(request, found["trace_id"])


async def trace(request: Request) -> Response:
    """Any trace the receiver stored, bass build or not: its spans as a tree."""
    trace_id = request.path_params["trace_id"].lower()
    spans = await request.state.db.aread(telemetry.spans_of, trace_id)
    if not spans:
        return _not_found(f"trace {trace_id}")
    return JSONResponse({"trace_id": trace_id, "spans": steps.span_tree(spans)})


async def trace_logs(request: Request) -> Response:
    return await _logs(request, request.path_params["trace_id"].lower())


async def search(request: Request) -> Response:
    """Log records matching every word of ?q= across builds, newest first
    (?pipeline=NAME to narrow, ?before=ID to page)."""
    text = request.query_params.get("q", "")[:500]
    if not text.strip():
        return JSONResponse({"error": "q: say what to search for"}, status_code=400)
    try:
        limit = _int_param(request, "limit", 50, 500)
        before = request.query_params.get("before")
        before_id = _int_param(request, "before", 0, 2**62) if before is not None else None
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    records = await request.state.db.aread(
        telemetry.search_logs,
        text,
        pipeline=request.query_params.get("pipeline") or None,
        before_id=before_id,
        limit=limit,
    )
    return JSONResponse({"logs": records})


async def status(request: Request) -> Response:
    """What the server has received, forwarded and queued since it started."""
    return JSONResponse(await server_status(request))


async def server_status(request: Request) -> dict[str, Any]:
    state = request.state
    counts = await state.db.aread(jobs.state_counts)
    return {
        "builds": counts,
        "ingest": state.ingest_stats.as_dict(),
        "forwarding": [f.status() for kind in state.forwarders.values() for f in kind],
        "store": {"path": str(state.db.path), "bytes": state.db.size()},
    }


routes = [
    Route("/api/status", status, methods=["GET"]),
    Route("/api/search", search, methods=["GET"]),
    Route("/api/traces/{trace_id}", trace, methods=["GET"]),
    Route("/api/traces/{trace_id}/logs", trace_logs, methods=["GET"]),
    Route("/api/jobs/{job_id:id}", job, methods=["GET"]),
    Route("/api/pipelines/{name}/builds", builds, methods=["GET"]),
    Route("/api/pipelines/{name}/builds/{number:id}", build, methods=["GET"]),
    Route("/api/pipelines/{name}/builds/{number:id}/logs", build_logs, methods=["GET"]),
]
