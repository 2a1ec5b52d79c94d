"""Triggers over HTTP: `POST /webhook` (the prototype's contract, plus GitHub, Gitea and
GitLab push bodies) and `GET /pipelines` (the configured pipelines, secrets redacted).
docs/contracts.md, "Webhook", is the contract; `bass run` posts here too."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass import auth
from bass.orchestrator import NotBuilt, Orchestrator, UnknownPipeline
from bass.params import json_object, people_base_url, read_body, string_list
from bass.refs import redact_url, valid_changed_ref


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


def webhook_secret(pipeline: dict[str, Any], env: dict[str, str]) -> str | None:
    """A pipeline's `webhook-secret`: the value, or `$NAME` for the env file's NAME."""
    secret = pipeline.get("webhook-secret")
    if isinstance(secret, str) and secret.startswith("$") and secret[1:] in env:
        return env[secret[1:]]
    return secret


def signed(request: Request, body: bytes, secret: str) -> bool:
    """Whether a delivery proves it knows the pipeline's secret, as the forges do:
    GitHub's X-Hub-Signature-256, Gitea's/Forgejo's X-Gitea-Signature (HMAC-SHA256 of
    the body), GitLab's X-Gitlab-Token, or `Authorization: Bearer SECRET` from a
    script; or a person's API token. Compared in constant time."""
    headers = request.headers
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    offered = [
        (headers.get("x-hub-signature-256", ""), f"sha256={digest}"),
        (headers.get("x-gitea-signature", ""), digest),
        (headers.get("x-forgejo-signature", ""), digest),
        (headers.get("x-gitlab-token", ""), secret),
    ]
    bearer = headers.get("authorization", "")
    bearer = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
    offered.append((bearer, secret))
    ok = False
    for given, expected in offered:
        ok |= bool(given) and auth.same_secret(given, expected)
    if not ok and bearer:
        people: auth.People = request.state.people
        ok = people.users is not None and people.users.token_user(bearer) is not None
    return ok


async def webhook(request: Request) -> Response:
    body = await read_body(request)
    ping = "ping" in (
        request.headers.get("x-github-event"),
        request.headers.get("x-gitea-event"),
    )
    payload = {} if ping else json_object(body, required=False)
    name = request.query_params.get("pipeline") or payload.get("pipeline")
    if ping and not name:
        return JSONResponse({"queued": False, "reason": "ping"})
    if not name or not isinstance(name, str):
        raise HTTPException(400, 'missing "pipeline" parameter')
    orchestrator: Orchestrator = request.state.orchestrator
    pipeline = orchestrator.config.pipelines.get(name)
    if pipeline is None:
        raise HTTPException(404, f"no pipeline named {name!r}")
    secret = webhook_secret(pipeline, orchestrator.config.env)
    if secret and not signed(request, body, secret):
        raise HTTPException(401, f"pipeline {name!r} takes deliveries signed with its secret")
    if ping:
        return JSONResponse({"queued": False, "reason": "ping"})
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
    try:
        build = await orchestrator.enqueue(
            name, trigger="webhook", changed_refs=changed_refs, tags=tags
        )
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    except NotBuilt as e:
        return JSONResponse({"queued": False, "reason": str(e)})
    return JSONResponse(queued_answer(build, people_base_url(request)))


def queued_answer(build: dict[str, Any], base: str) -> dict[str, Any]:
    """What a trigger answers when it queued a build (the webhook, the JSON API)."""
    return {
        "queued": True,
        "id": build["id"],
        "pipeline": build["pipeline"],
        "number": build["number"],
        "trace-id": build["trace_id"],
        "url": f"{base}/pipelines/{build['pipeline']}/{build['number']}",
    }


async def pipelines(request: Request) -> Response:
    config = request.state.orchestrator.config.pipelines
    return JSONResponse({name: shown(p) for name, p in config.items()})


def shown(pipeline: dict[str, Any]) -> dict[str, Any]:
    """A pipeline as others may see it: no password in its URL, no webhook secret."""
    out = {**pipeline, "repository": redact_url(pipeline["repository"])}
    if "webhook-secret" in out:
        out["webhook-secret"] = "***"
    return out


routes = [
    Route("/webhook", webhook, methods=["POST"]),
    Route("/pipelines", pipelines, methods=["GET"]),
]
