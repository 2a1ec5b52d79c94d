"""HTTP adapters for triggers and workers: /webhook, /pipelines, /dequeue, /jobs/*.

The prototype's contract (DESIGN.md) first; job ids, long-poll, leases, heartbeats,
cancel and result reports are additions a prototype worker never has to send.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass import params  # noqa: F401  (the {…:id} path parameters)
from bass.checkout import valid_changed_ref
from bass.orchestrator import Orchestrator, UnknownPipeline

MAX_CONTROL_BODY = 1 << 20  # webhook and worker requests are small
MAX_WAIT = 60.0


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request, *, required: bool) -> dict[str, Any]:
    """The request's JSON object body ({} when empty and not required)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CONTROL_BODY:
            raise BadRequest(413, f"body larger than {MAX_CONTROL_BODY} bytes")
    if not body.strip():
        if required:
            raise BadRequest(400, "a JSON object body is required")
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(400, f"malformed JSON body: {e}") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "the JSON body must be an object")
    try:  # JSON can spell a lone surrogate ("\ud800"); no UTF-8 text, so no SQLite row, can
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest(400, "malformed JSON body: a string holds a lone surrogate") from None
    return payload


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v]
    raise BadRequest(400, f'"{name}" must be a list of strings or a comma-separated string')


def _from_push_event(payload: dict[str, Any]) -> tuple[list[str], list[str]]:
    """changed-refs and tags from a GitHub/Gitea/GitLab-style push event body."""
    refs = [c["id"] for c in payload.get("commits") or [] if isinstance(c, dict) and c.get("id")]
    tags = []
    ref = payload.get("ref")
    if isinstance(ref, str) and ref.startswith("refs/tags/"):
        tags.append(ref.removeprefix("refs/tags/"))
    return refs, tags


def orchestrator(request: Request) -> Orchestrator:
    return request.state.orchestrator


async def webhook(request: Request) -> Response:
    if (
        request.headers.get("x-github-event") == "ping"
        or request.headers.get("x-gitea-event") == "ping"
    ):
        return JSONResponse({"queued": False, "reason": "ping"})
    try:
        payload = await read_json(request, required=False)
        name = request.query_params.get("pipeline") or payload.get("pipeline")
        if not name or not isinstance(name, str):
            return error(400, 'missing "pipeline" parameter')
        push_refs, push_tags = _from_push_event(payload)
        changed_refs = (
            _string_list(request.query_params.get("changed-refs"), "changed-refs")
            + _string_list(payload.get("changed-refs"), "changed-refs")
            + push_refs
        )
        tags = (
            _string_list(request.query_params.get("tags"), "tags")
            + _string_list(payload.get("tags"), "tags")
            + push_tags
        )
        # push-event commit ids come unchecked: anything but a ref name is refused
        bad = [r for r in changed_refs if not isinstance(r, str) or not valid_changed_ref(r)]
        if bad:
            raise BadRequest(400, f"not a commit, branch or tag name: {bad[0]!r:.80}")
    except BadRequest as e:
        return error(e.status, e.message)
    try:
        job = await orchestrator(request).enqueue(
            name, trigger="webhook", changed_refs=changed_refs, tags=tags
        )
    except UnknownPipeline:
        return error(404, f"no pipeline named {name!r}")
    if job is None:
        return JSONResponse({"queued": False, "reason": "suppressed by the tag-pattern"})
    return JSONResponse(build_summary(request, job))


def build_summary(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "queued": True,
        "id": job["id"],
        "pipeline": job["pipeline"],
        "number": job["number"],
        "trace-id": job["trace_id"],
        "url": f"{base}/pipelines/{job['pipeline']}/{job['number']}",
    }


async def pipelines(request: Request) -> Response:
    config = orchestrator(request).config.pipelines
    return JSONResponse(
        {name: {**p, "repository": redact_url(p["repository"])} for name, p in config.items()}
    )


def redact_url(url: str) -> str:
    """Hide a password or token given in a repository URL (`https://TOKEN@host` too)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    user, _, host = parts.netloc.rpartition("@")  # as written: IPv6 keeps its brackets
    if parts.password is not None:
        user = f"{parts.username}:***"
    elif parts.scheme in ("http", "https"):
        user = "***"  # a token given as the user name
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def worker_auth(request: Request) -> Response | None:
    """None when the caller may act as a worker, else the 401/403 response.

    With no worker keys configured only workers on this machine (loopback) may dequeue.
    Keys are compared in constant time, against every key.
    """
    keys: list[str] = request.state.worker_keys
    given = request.headers.get("x-api-key")
    if not keys:
        host = request.client.host if request.client else ""
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return error(403, "no worker keys configured: only workers on this machine may dequeue")
    if not given:
        return error(401, "missing X-API-KEY header")
    match = False
    for key in keys:
        match |= hmac.compare_digest(key.encode(), given.encode())
    return None if match else error(403, "wrong worker key")


_WORKER_NAME = re.compile(r"^[\w.@:/-]{1,200}$")


async def dequeue(request: Request) -> Response:
    denied = worker_auth(request)
    if denied is not None:
        return denied
    try:
        payload = await read_json(request, required=False)
        tags = _string_list(payload.get("tags"), "tags")
        wait = payload.get("wait", 0)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
            raise BadRequest(400, '"wait" must be a number of seconds >= 0')
        worker = payload.get("worker") or (request.client.host if request.client else "worker")
        if not isinstance(worker, str) or not _WORKER_NAME.match(worker):
            raise BadRequest(400, '"worker" must be a short name')
        heartbeats = payload.get("heartbeat") is True
    except BadRequest as e:
        return error(e.status, e.message)
    orch = orchestrator(request)
    job = await orch.claim(
        worker=worker,
        tags=tags,
        wait=min(float(wait), MAX_WAIT),
        heartbeats=heartbeats,
        gone=request.is_disconnected,
    )
    if job is None:
        return Response(status_code=204)
    return JSONResponse(orch.job_json(job, str(request.base_url)))


async def job_heartbeat(request: Request) -> Response:
    denied = worker_auth(request)
    if denied is not None:
        return denied
    job = await orchestrator(request).heartbeat(request.path_params["job_id"])
    if job is None:
        return error(409, "the job is not running any more")
    return JSONResponse({"state": job["state"], "cancel": bool(job["cancel_requested"])})


async def job_result(request: Request) -> Response:
    denied = worker_auth(request)
    if denied is not None:
        return denied
    try:
        payload = await read_json(request, required=True)
    except BadRequest as e:
        return error(e.status, e.message)
    status = payload.get("status")
    message = payload.get("message")
    if status not in ("ok", "failed", "timeout", "skipped", "cancelled", "error"):
        return error(400, '"status" must be one of ok, failed, timeout, skipped, cancelled, error')
    if message is not None and not isinstance(message, str):
        return error(400, '"message" must be a string')
    job = await orchestrator(request).report(request.path_params["job_id"], status, message)
    if job is None:
        return error(409, "the job had already ended")
    return JSONResponse({"state": job["state"]})


routes = [
    Route("/webhook", webhook, methods=["POST"]),
    Route("/pipelines", pipelines, methods=["GET"]),
    Route("/dequeue", dequeue, methods=["POST"]),
    Route("/jobs/{job_id:id}/heartbeat", job_heartbeat, methods=["POST"]),
    Route("/jobs/{job_id:id}/result", job_result, methods=["POST"]),
]
