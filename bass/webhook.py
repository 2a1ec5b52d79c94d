"""Triggers over HTTP: `POST /webhook` (the prototype's contract, plus GitHub, Gitea and
GitLab push bodies) and `GET /pipelines` (the configured pipelines, secrets redacted).
docs/contracts.md, "Webhook", is the contract; `bass run` posts here too."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass.guard import people_base_url
from bass.orchestrator import Orchestrator, UnknownPipeline
from bass.params import read_json, string_list
from bass.refs import valid_changed_ref


def _from_push_event(payload: dict[str, Any]) -> tuple[list[str], list[str]]:
    """changed-refs and tags from a GitHub/Gitea/GitLab-style push event body."""
    commits = payload.get("commits") or []
    if not isinstance(commits, list):
        raise HTTPException(400, '"commits" must be a list of commits')
    refs = [c["id"] for c in commits if isinstance(c, dict) and c.get("id")]
    tags = []
    ref = payload.get("ref")
    if isinstance(ref, str) and ref.startswith("refs/tags/"):
        tags.append(ref.removeprefix("refs/tags/"))
    return refs, tags


async def webhook(request: Request) -> Response:
    if (
        request.headers.get("x-github-event") == "ping"
        or request.headers.get("x-gitea-event") == "ping"
    ):
        return JSONResponse({"queued": False, "reason": "ping"})
    payload = await read_json(request, required=False)
    name = request.query_params.get("pipeline") or payload.get("pipeline")
    if not name or not isinstance(name, str):
        raise HTTPException(400, 'missing "pipeline" parameter')
    push_refs, push_tags = _from_push_event(payload)
    changed_refs = (
        string_list(request.query_params.get("changed-refs"), "changed-refs")
        + string_list(payload.get("changed-refs"), "changed-refs")
        + push_refs
    )
    tags = (
        string_list(request.query_params.get("tags"), "tags")
        + string_list(payload.get("tags"), "tags")
        + push_tags
    )
    # push-event commit ids come unchecked: anything but a ref name is refused
    bad = [r for r in changed_refs if not isinstance(r, str) or not valid_changed_ref(r)]
    if bad:
        raise HTTPException(400, f"not a commit, branch or tag name: {bad[0]!r:.80}")
    orchestrator: Orchestrator = request.state.orchestrator
    try:
        build = await orchestrator.enqueue(
            name, trigger="webhook", changed_refs=changed_refs, tags=tags
        )
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    if build is None:
        return JSONResponse({"queued": False, "reason": "suppressed by the tag-pattern"})
    base = people_base_url(request)
    return JSONResponse(
        {
            "queued": True,
            "id": build["id"],
            "pipeline": build["pipeline"],
            "number": build["number"],
            "trace-id": build["trace_id"],
            "url": f"{base}/pipelines/{build['pipeline']}/{build['number']}",
        }
    )


async def pipelines(request: Request) -> Response:
    config = request.state.orchestrator.config.pipelines
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


routes = [
    Route("/webhook", webhook, methods=["POST"]),
    Route("/pipelines", pipelines, methods=["GET"]),
]
