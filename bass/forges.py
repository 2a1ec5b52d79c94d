"""Webhook deliveries as GitHub, Gitea, Forgejo, GitLab and Bitbucket Cloud send them,
and the prototype's own body: `parse(headers, body)` tells which forge sent it (by its
event header), what happened and what to build; `verify(headers, body, secret)` checks
the forge's signature or token in constant time. Pure: no Starlette, no I/O, nothing of
bass but `bass.refs`. Headers are a mapping (any case: keys are lowercased here) or a
callable taking a lowercase name; the body is the raw bytes (the caller bounds its size).

`Delivery` (defined in bass.forges_formats, with the readers of each format):

- forge: "github" | "gitea" | "forgejo" | "gitlab" | "bitbucket" | "generic" (no forge's
  event header). Forgejo also sends Gitea's and GitHub's headers and Gitea GitHub's, so
  X-Forgejo-Event is looked for first, then X-Gitea-Event, X-Gitlab-Event,
  X-GitHub-Event and Bitbucket's X-Event-Key.
- event: "push" (a branch), "tag" (a tag pushed), "delete" (a branch or tag deleted:
  GitHub `deleted: true`, an all-zero `after`, a GitHub/Gitea/Forgejo `delete` event, a
  Bitbucket change whose `new` is null), "ping" (GitHub's, or a Gitea/Forgejo `ping`;
  GitLab and Bitbucket Cloud have none, a Bitbucket Data Center `diagnostics:ping` is
  one), "other" (any other event, or a push to a ref that is neither branch nor tag).
- reason: why nothing is built ("ping", "branch feature deleted", "a GitHub issues
  event builds nothing", ...); "" for push and tag.
- delivery_id: X-GitHub-Delivery, X-Gitea-Delivery, X-Forgejo-Delivery,
  GitLab's Idempotency-Key (else X-Gitlab-Event-UUID, X-Gitlab-Webhook-UUID), Bitbucket's
  X-Request-UUID (never X-Hook-UUID: that names the webhook, not the delivery); None.
- pipeline: a generic body's "pipeline" (forges' bodies are not read for it).
- branch / tag: the short name pushed or deleted (at most one of them is set).
- before: the ref's previous commit; None when absent or all zeros (a new ref).
- after: the commit pushed (GitHub/Gitea/Forgejo `after`; GitLab `after` for a branch,
  `checkout_sha` for a tag; Bitbucket `new.target.hash`); None for a delete. For a tag,
  GitHub, Gitea and Forgejo give the tag object of an annotated tag: peel `after` with
  `^{commit}` before checking it out.
- commits: the listed commit ids, oldest first (Gitea, Forgejo and Bitbucket list them
  newest first; they are reversed here). The forges cap the list, see `truncated`.
- message / author: the head commit's message and author name (GitHub/Gitea/Forgejo
  head_commit, else the listed commit whose id is `after`, else the last; Bitbucket the
  new target); author falls back to the pusher (GitHub pusher.name, Gitea login, GitLab
  user_name, Bitbucket actor.display_name) when no commit is listed, e.g. for a tag.
- compare_url: GitHub `compare`, Gitea/Forgejo `compare_url`, Bitbucket the change's
  links.html.href; GitLab sends none, so it is project.web_url/-/compare/before...after
  when there is a before.
- files: added, modified and removed paths over the listed commits, each once, or None
  when the payload lists none (Bitbucket never does; a tag push lists no commits).
  Incomplete when `truncated`.
- truncated: the forge says or implies the commit list is incomplete: GitLab
  total_commits_count > len(commits) (it sends the newest 20), Gitea/Forgejo
  total_commits > len(commits) (FeedMaxCommitNum, 5 by default), GitHub at its cap of
  2,048, Bitbucket's `truncated` (it sends at most 5).
- total_commits: the forge's own count (GitLab total_commits_count, Gitea and Forgejo
  total_commits), else None.
- changed_refs / tags: a generic body's `changed-refs` and `tags` (a list of strings or
  a comma-separated string); empty for a forge. The prototype's contract derives the
  build's changed refs from these plus `commits`, and its tags plus `tag`.
- others: the other refs a Bitbucket push changed (one delivery for `git push origin
  main v1.0`; the other forges send one a ref), each a Delivery, the last pushed first;
  the delivery itself is the last change. Empty for every other forge.

A body is JSON, or form-encoded (`application/x-www-form-urlencoded`, GitHub's and
Gitea's other content type) with the JSON in its `payload` field. A body of the wrong
shape raises PayloadError naming the field: invalid JSON, not an object, nested too
deeply, or a field read of the wrong type (`"commits": 5`, a ref or commit id that is not
a string, a commit id that is not hex). Bodies of events that build nothing (ping,
issues, ...) are not decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from bass.forges_formats import (
    TITLES,
    Delivery,
    Event,
    Forge,
    Obj,
    PayloadError,
    read_bitbucket,
    read_delete,
    read_generic,
    read_gitlab,
    read_push,
)

__all__ = ["Delivery", "Event", "Forge", "PayloadError", "detect", "parse", "verify"]

Headers = Mapping[str, str] | Callable[[str], str | None]
Lookup = Callable[[str], str]

# the header naming the event, by forge, in the order they are looked for
_EVENT_HEADERS: tuple[tuple[Forge, str], ...] = (
    ("forgejo", "x-forgejo-event"),
    ("gitea", "x-gitea-event"),
    ("gitlab", "x-gitlab-event"),
    ("github", "x-github-event"),
    ("bitbucket", "x-event-key"),
)
_DELIVERY_HEADERS: dict[str, tuple[str, ...]] = {
    "github": ("x-github-delivery",),
    "gitea": ("x-gitea-delivery",),
    "forgejo": ("x-forgejo-delivery",),
    # Idempotency-Key stays the same when GitLab retries or resends a delivery; the
    # Event-UUID changes on a resend and is shared by webhooks one webhook set off
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid"),
    "bitbucket": ("x-request-uuid",),
    "generic": (),
}
_FORM = "application/x-www-form-urlencoded"


def _lookup(headers: Headers) -> Lookup:
    """A case-insensitive header getter answering "" for a header not sent."""
    if callable(headers) and not isinstance(headers, Mapping):
        get = headers
        return lambda name: _header_text(get(name))
    lowered = {str(k).lower(): v for k, v in headers.items()}
    return lambda name: _header_text(lowered.get(name))


def _header_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _storable(value: str) -> str:
    """A header's value as UTF-8 text can hold it ("" for a lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return value


def _detect(header: Lookup) -> tuple[Forge, str]:
    for forge, name in _EVENT_HEADERS:
        event = header(name)
        if event:
            return forge, event
    return "generic", ""


def detect(headers: Headers) -> Forge:
    """The forge a delivery comes from, by its event header ("generic" without one)."""
    return _detect(_lookup(headers))[0]


def _form_payload(header: Lookup, body: bytes) -> str | None:
    """The `payload` field of a form-encoded body; None when the body is not a form
    (its content type says otherwise, or it is JSON whatever the content type says)."""
    kind = header("content-type").split(";")[0].strip().lower()
    start = body.lstrip()[:1]
    if start in (b"{", b"[", b"") or (kind != _FORM and not body.startswith(b"payload=")):
        return None
    try:
        text = body.decode("utf-8")
        fields = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise PayloadError("the form body is not URL-encoded UTF-8") from None
    payloads = [value for name, value in fields if name == "payload"]
    if not payloads:
        raise PayloadError('the form body has no "payload" field')
    return payloads[-1]


def _decode(header: Lookup, body: bytes) -> dict[str, Any]:
    """The JSON object a delivery carries ({} for an empty body)."""
    form = _form_payload(header, body)
    raw: str | bytes = body if form is None else form
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise PayloadError("malformed JSON body: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise PayloadError(f"malformed JSON body: {e}") from None
    if not isinstance(payload, dict):
        raise PayloadError("the JSON body must be an object")
    return payload


def _other(d: Delivery, event: str) -> Delivery:
    d.event = "other"
    d.reason = f"a {TITLES[d.forge]} {event[:60]} event builds nothing"
    return d


def parse(headers: Headers, body: bytes) -> Delivery:
    """The delivery `body` with `headers` makes; PayloadError for a malformed payload."""
    header = _lookup(headers)
    forge, event = _detect(header)
    found = (_storable(header(name)[:200]) for name in _DELIVERY_HEADERS[forge])
    d = Delivery(forge=forge, delivery_id=next((v for v in found if v), None))
    if forge == "generic":
        return read_generic(Obj(_decode(header, body)), d)
    if forge == "gitlab":
        if event not in ("Push Hook", "Tag Push Hook", "System Hook"):
            d.reason = f"a GitLab {event[:60]} builds nothing"
            return d
        return read_gitlab(Obj(_decode(header, body)), d, event)
    if forge == "bitbucket":
        if event == "diagnostics:ping":  # Bitbucket Data Center's "Test connection"
            d.event, d.reason = "ping", "ping"
            return d
        if event != "repo:push":
            return _other(d, event)
        return read_bitbucket(Obj(_decode(header, body)), d)
    # GitHub, Gitea, Forgejo
    if event == "ping":
        d.event, d.reason = "ping", "ping"
        return d
    if event == "delete":
        return read_delete(Obj(_decode(header, body)), d)
    if event != "push":
        return _other(d, event)
    return read_push(Obj(_decode(header, body)), d, newest_first=forge != "github")


def _same(given: str, expected: str) -> bool:
    """Equal, in constant time, whatever characters `given` holds (never raises)."""
    return bool(given) and hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def verify(headers: Headers, body: bytes, secret: str) -> bool:
    """Whether a delivery proves it knows `secret`, the way its forge signs: GitHub's
    X-Hub-Signature-256 (`sha256=` and the hex HMAC-SHA256 of the body), Gitea's
    X-Gitea-Signature and Forgejo's X-Forgejo-Signature (the bare hex HMAC; of the
    `payload` field's JSON when the body is a form, as Gitea signs it), GitLab's
    X-Gitlab-Token (the secret itself), Bitbucket's X-Hub-Signature (`sha256=` and the
    hex). A generic caller signs like GitHub. False for an empty secret or a missing
    header; never raises on a header's value."""
    if not secret:
        return False
    header = _lookup(headers)
    forge = _detect(header)[0]
    if forge == "gitlab":
        return _same(header("x-gitlab-token"), secret)
    key = secret.encode("utf-8", "surrogatepass")
    digest = hmac.new(key, body, hashlib.sha256).hexdigest()
    if forge in ("github", "generic"):
        return _same(header("x-hub-signature-256").lower(), f"sha256={digest}")
    if forge == "bitbucket":
        return _same(header("x-hub-signature").lower(), f"sha256={digest}")
    given = (forge == "forgejo" and header("x-forgejo-signature")) or header("x-gitea-signature")
    if _same(given.lower(), digest):
        return True
    try:
        form = _form_payload(header, body)
    except PayloadError:
        return False
    if form is None:
        return False
    signed = hmac.new(key, form.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return _same(given.lower(), signed.hexdigest())
