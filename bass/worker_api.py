"""The worker API: `POST /dequeue` (the prototype's contract: `X-API-KEY`, tags, the job
JSON), and what a newer worker adds beside it: long-poll, leases, heartbeats, cancel,
result reports (`/jobs/ID/heartbeat`, `/jobs/ID/result`). docs/contracts.md, "Worker
API", is the contract."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Awaitable
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass import states
from bass.auth import same_secret
from bass.metrics import Metrics
from bass.orchestrator import NotHolder, NotRunning, Orchestrator, UnknownBuild
from bass.params import people_base_url, read_json, string_list

MAX_WAIT = 60.0
T = TypeVar("T")
_WORKER_NAME = re.compile(r"^[\w.@:/-]{1,200}$")


def check_worker(request: Request) -> str:
    """The name of the worker key the caller holds; 401/403 unless it may act as a
    worker.

    With no worker keys configured only workers on this machine (loopback) may dequeue
    (they are all `loopback`). Keys are compared in constant time, against every key.
    """
    keys: list[tuple[str, str]] = request.state.worker_keys
    given = request.headers.get("x-api-key")
    if not keys:
        host = request.client.host if request.client else ""
        try:
            if ipaddress.ip_address(host).is_loopback:
                return "loopback"
        except ValueError:
            pass
        raise HTTPException(
            403, "no worker keys configured: only workers on this machine may dequeue"
        )
    if not given:
        raise HTTPException(401, "missing X-API-KEY header")
    found = None
    for name, key in keys:
        if same_secret(given, key):
            found = name
    if found is None:
        raise HTTPException(403, "wrong worker key")
    return found


def job_token(request: Request) -> str | None:
    """The job token a heartbeat or result carries: `Authorization: Bearer TOKEN`."""
    authorization = request.headers.get("authorization", "")
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else None


async def held(call: Awaitable[T]) -> T:
    """Run an orchestrator call on a build a worker says it holds, its refusals as
    HTTP: no such build 404, not the holder 403, not running 409."""
    try:
        return await call
    except UnknownBuild:
        raise HTTPException(404, "no such build") from None
    except NotHolder as e:
        raise HTTPException(403, f"not this worker's build: {e}") from None
    except NotRunning as e:
        raise HTTPException(409, f"the job is not running (it is {e})") from None


async def dequeue(request: Request) -> Response:
    key_name = check_worker(request)
    payload = await read_json(request, required=False)
    tags = string_list(payload.get("tags"), "tags")
    wait = payload.get("wait", 0)
    if (
        isinstance(wait, bool)
        or not isinstance(wait, (int, float))
        or not math.isfinite(wait)  # NaN would wait for ever, 1e400 is inf
        or wait < 0
    ):
        raise HTTPException(400, '"wait" must be a number of seconds >= 0')
    worker = payload.get("worker") or (request.client.host if request.client else "worker")
    if not isinstance(worker, str) or not _WORKER_NAME.match(worker):
        raise HTTPException(400, '"worker" must be a short name')
    heartbeats = payload.get("heartbeat") is True
    orchestrator: Orchestrator = request.state.orchestrator
    metrics: Metrics = request.state.metrics
    with metrics.workers.poll(worker):  # connected while it waits (bass.metrics)
        build = await orchestrator.claim(
            worker=worker,
            tags=tags,
            wait=min(float(wait), MAX_WAIT),
            heartbeats=heartbeats,
            gone=request.is_disconnected,
            worker_key=key_name,
        )
    if build is None:
        return Response(status_code=204)
    metrics.build_claimed(build)
    return JSONResponse(
        orchestrator.job_json(build, str(request.base_url), people_base_url(request))
    )


async def heartbeat(request: Request) -> Response:
    key_name = check_worker(request)
    orchestrator: Orchestrator = request.state.orchestrator
    build_id = request.path_params["build_id"]
    build = await held(orchestrator.heartbeat(build_id, key_name, job_token(request)))
    if build is None:
        raise HTTPException(409, "the job is not running any more")
    request.state.metrics.workers.saw(build["worker"])
    return JSONResponse({"state": build["state"], "cancel": bool(build["cancel_requested"])})


async def result(request: Request) -> Response:
    key_name = check_worker(request)
    payload = await read_json(request, required=True)
    status = payload.get("status")
    message = payload.get("message")
    if status not in states.STATUSES:
        raise HTTPException(400, f'"status" must be one of {", ".join(states.STATUSES)}')
    if message is not None and not isinstance(message, str):
        raise HTTPException(400, '"message" must be a string')
    orchestrator: Orchestrator = request.state.orchestrator
    build_id = request.path_params["build_id"]
    token = job_token(request)
    build = await held(orchestrator.report(build_id, status, message, key_name, token))
    if build is None:
        raise HTTPException(409, "the job had already ended")
    request.state.metrics.workers.saw(build["worker"])
    return JSONResponse({"state": build["state"]})


routes = [
    Route("/dequeue", dequeue, methods=["POST"]),
    Route("/jobs/{build_id:id}/heartbeat", heartbeat, methods=["POST"]),
    Route("/jobs/{build_id:id}/result", result, methods=["POST"]),
]
