"""Triggers over HTTP: `POST /webhook` (the prototype's contract, and the deliveries of
GitHub, Gitea, Forgejo, GitLab and Bitbucket, read by bass.forges) and `GET /pipelines`
(the configured pipelines, secrets redacted). docs/contracts.md, "Webhook", is the
contract; `bass run` posts here too."""

from __future__ import annotations

import os
from typing import Any

from anyio import to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bass import auth, forges
from bass.orchestrator import Duplicate, NotBuilt, Orchestrator, UnknownPipeline, not_built
from bass.params import people_base_url, read_body, string_list
from bass.refs import redact_url, valid_changed_ref
from bass.store.builds import Source

MAX_WEBHOOK_BODY = 25 << 20  # GitHub sends up to 25 MB (a push of many commits)
MAX_LISTED_FILES = 5_000  # changed files a build keeps of what a forge listed


def webhook_secret(pipeline: dict[str, Any], env: dict[str, str]) -> str | None:
    """A pipeline's `webhook-secret`: the value, or `$NAME` for the env file's NAME, else
    bass's own environment's."""
    secret = pipeline.get("webhook-secret")
    if isinstance(secret, str) and secret.startswith("$"):
        return env.get(secret[1:]) or os.environ.get(secret[1:]) or None
    return secret


def signed(request: Request, body: bytes, secret: str) -> bool:
    """Whether a delivery proves it knows the pipeline's secret: the forges' signatures
    (bass.forges.verify), `Authorization: Bearer SECRET` from a script, or a person's API
    token. Compared in constant time."""
    if forges.verify(request.headers, body, secret):
        return True
    bearer = request.headers.get("authorization", "")
    bearer = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
    if not bearer:
        return False
    if auth.same_secret(bearer, secret):
        return True
    people: auth.People = request.state.people
    return people.users is not None and people.users.token_user(bearer) is not None


def _answer(queued: bool, **detail: Any) -> Response:
    return JSONResponse({"queued": queued, **detail})


async def webhook(request: Request) -> Response:
    """A delivery (docs/contracts.md, "Webhook"): verified, read as its forge wrote it,
    and a build of the pushed commit queued when the pipeline builds it."""
    async with request.state.webhook_slots:  # a few large bodies at a time, not all at once
        body = await read_body(request, MAX_WEBHOOK_BODY)
        try:  # a 25 MB payload takes a moment to parse: not on the event loop
            delivery = await to_thread.run_sync(forges.parse, request.headers, body)
        except forges.PayloadError as e:
            raise HTTPException(400, str(e)) from None
    name = request.query_params.get("pipeline") or delivery.pipeline
    if delivery.event == "ping" and not name:
        return _answer(False, reason="ping")
    if not name:
        raise HTTPException(400, 'missing "pipeline" parameter')
    orchestrator: Orchestrator = request.state.orchestrator
    pipeline = orchestrator.config.pipelines.get(name)
    if pipeline is None:
        raise HTTPException(404, f"no pipeline named {name!r}")
    secret = webhook_secret(pipeline, orchestrator.config.env)
    if secret and not signed(request, body, secret):
        raise HTTPException(401, f"pipeline {name!r} takes deliveries signed with its secret")
    if delivery.event in ("ping", "delete", "other"):
        return _answer(False, reason=delivery.reason)
    query_tags = string_list(request.query_params.get("tags"), "tags")
    delivery = built_change(delivery, pipeline, query_tags)
    changed_refs = string_list(request.query_params.get("changed-refs"), "changed-refs")
    changed_refs += delivery.changed_refs
    if not delivery.truncated:  # an incomplete list would be a wrong changeset: none is "all"
        changed_refs += delivery.commits
    tags = tags_of(delivery, query_tags)
    bad = [r for r in changed_refs if not valid_changed_ref(r)]
    if bad:
        raise HTTPException(400, f"not a commit, branch or tag name: {bad[0]!r:.80}")
    source = source_of(delivery)
    ref = request.query_params.get("ref")
    if ref and source.commit is None:  # the prototype's webhook, or bass run --ref
        if not valid_changed_ref(ref) or ".." in ref:
            raise HTTPException(400, f"not a branch, tag or commit: {ref!r:.80}")
        source.ref = ref
    delivery_key = f"{delivery.forge}:{delivery.delivery_id}" if delivery.delivery_id else None
    try:
        build = await orchestrator.enqueue(
            name,
            trigger="webhook",
            changed_refs=changed_refs,
            tags=tags,
            source=source,
            delivery=delivery_key,
        )
    except UnknownPipeline:
        raise HTTPException(404, f"no pipeline named {name!r}") from None
    except NotBuilt as e:
        return _answer(False, reason=str(e))
    except Duplicate:
        return _answer(False, duplicate=True, reason="this delivery was received before")
    return JSONResponse(queued_answer(build, people_base_url(request)))


def source_of(delivery: forges.Delivery) -> Source:
    """What a delivery asks to build."""
    return Source(
        branch=delivery.branch,
        tag=delivery.tag,
        commit=delivery.after,
        before=delivery.before,
        # a list past MAX_LISTED_FILES is kept as a truncated one is: not at all (the
        # worker diffs the push itself; every build row and job would carry it)
        changed_files=None
        if delivery.truncated or len(delivery.files or ()) > MAX_LISTED_FILES
        else delivery.files,
        message=delivery.message,
        author=delivery.author,
        compare_url=delivery.compare_url,
    )


def tags_of(delivery: forges.Delivery, query_tags: list[str]) -> list[str]:
    """The build's tags: the query's, a generic body's, and the pushed tag."""
    return query_tags + delivery.tags + ([delivery.tag] if delivery.tag else [])


def built_change(
    delivery: forges.Delivery, pipeline: dict[str, Any], query_tags: list[str]
) -> forges.Delivery:
    """Of a push that changed several refs (a Bitbucket delivery of `git push origin main
    v1.0`), the change the pipeline builds: the delivery (the last change) if it does,
    else the first of its others that it does; else the delivery, whose reason is
    answered."""
    if not delivery.others:
        return delivery
    for change in (delivery, *delivery.others):
        if change.event in ("push", "tag"):
            if not_built(pipeline, source_of(change), tags_of(change, query_tags)) is None:
                return change
    return delivery


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
