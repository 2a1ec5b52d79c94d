"""/api/… : the JSON the dashboard shows, for scripts (`bass run --wait` among them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass.store import jobs, telemetry
from bass.ui import steps


def _int_param(request: Request, name: str, default: int, top: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit():
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
        before = request.query_params.get("before")
        before_number = int(before) if before is not None and before.isdigit() else None
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


async def build_logs(request: Request) -> Response:
    name, number = request.path_params["name"], request.path_params["number"]
    try:
        limit = _int_param(request, "limit", 1000, 10000)
        after = _int_param(request, "after", 0, 2**62)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    found = await request.state.db.aread(jobs.by_number, name, number)
    if found is None:
        return _not_found(f"build {name} #{number}")
    records = await request.state.db.aread(
        telemetry.logs_of,
        found["trace_id"],
        span_id=request.query_params.get("span"),
        after_id=after,
        limit=limit,
        tail=request.query_params.get("tail") in ("1", "true"),
    )
    return JSONResponse({"logs": records})


async def trace(request: Request) -> Response:
    """Any trace the receiver stored, bass build or not: its spans as a tree."""
    trace_id = request.path_params["trace_id"].lower()
    spans = await request.state.db.aread(telemetry.spans_of, trace_id)
    if not spans:
        return _not_found(f"trace {trace_id}")
    return JSONResponse({"trace_id": trace_id, "spans": steps.span_tree(spans)})


async def trace_logs(request: Request) -> Response:
    try:
        limit = _int_param(request, "limit", 1000, 10000)
        after = _int_param(request, "after", 0, 2**62)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    records = await request.state.db.aread(
        telemetry.logs_of,
        request.path_params["trace_id"].lower(),
        span_id=request.query_params.get("span"),
        after_id=after,
        limit=limit,
    )
    return JSONResponse({"logs": records})


routes = [
    Route("/api/traces/{trace_id}", trace, methods=["GET"]),
    Route("/api/traces/{trace_id}/logs", trace_logs, methods=["GET"]),
    Route("/api/jobs/{job_id:int}", job, methods=["GET"]),
    Route("/api/pipelines/{name}/builds", builds, methods=["GET"]),
    Route("/api/pipelines/{name}/builds/{number:int}", build, methods=["GET"]),
    Route("/api/pipelines/{name}/builds/{number:int}/logs", build_logs, methods=["GET"]),
]
