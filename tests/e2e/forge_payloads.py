"""Webhook deliveries as GitHub, Gitea, Forgejo, GitLab and Bitbucket Cloud send them,
built from a real git repository: the commits, messages, authors and changed files are
git's, the surrounding fields (repository, sender, project, ...) those of the sample
payloads in tests/unit/data/forges/, and the headers each forge sets, signed as it
signs them.

`read_push(repo, ref, before, after, commits)` reads a push from git; `push_payload`
writes it in a forge's shape; `delete_deliveries` gives what a forge sends when a branch
or tag is deleted; `headers` the headers of a delivery.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DATA = Path(__file__).parents[1] / "unit" / "data" / "forges"
ZERO = "0" * 40
FORGES = ("github", "gitea", "forgejo", "gitlab", "bitbucket")
GITLAB_MAX_COMMITS = 20  # a GitLab push lists the newest 20 commits
BITBUCKET_MAX_COMMITS = 5  # a Bitbucket Cloud change lists the newest 5

# where each forge's sample repository lives (the compare and commit links point there)
WEB = {
    "github": "https://github.com/octo-org/widget",
    "gitea": "https://gitea.example.com/widgets/widget",
    "forgejo": "https://codeberg.example.org/widgets/widget",
    "gitlab": "https://gitlab.example.com/mike/diaspora",
    "bitbucket": "https://bitbucket.org/atlas/widget",
}

Signature = Literal["good", "wrong", "missing"]


def template(name: str) -> dict[str, Any]:
    """A sample payload of tests/unit/data/forges/ (a fresh copy)."""
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@dataclass(frozen=True)
class Commit:
    """A commit as git has it, with the paths it added, modified and removed against its
    first parent (as the forges list them)."""

    id: str
    tree: str
    message: str  # without its trailing line break
    author: str
    email: str
    timestamp: str  # ISO 8601
    added: tuple[str, ...]
    modified: tuple[str, ...]
    removed: tuple[str, ...]


def read_commit(repo: Path, rev: str) -> Commit:
    """The commit `rev` names (a tag peeled)."""
    fields = git(
        repo, "show", "-s", "--format=%H%x00%T%x00%an%x00%ae%x00%aI%x00%B", f"{rev}^{{commit}}"
    )
    sha, tree, author, email, timestamp, message = fields.split("\0", 5)
    status = git(
        repo,
        "diff-tree",
        "-r",
        "-z",
        "--no-commit-id",
        "--name-status",
        "--no-renames",
        "--root",
        sha,
    )
    parts = status.split("\0")
    changed: dict[str, list[str]] = {"A": [], "M": [], "D": []}
    for kind, path in zip(parts[0::2], parts[1::2], strict=False):
        if kind:
            changed.setdefault(kind[0], []).append(path)
    return Commit(
        id=sha,
        tree=tree,
        message=message.rstrip("\n"),
        author=author,
        email=email,
        timestamp=timestamp,
        added=tuple(changed["A"]),
        modified=tuple(changed["M"] + changed.get("T", [])),
        removed=tuple(changed["D"]),
    )


@dataclass(frozen=True)
class Push:
    """A ref moved from `before` (None: created) to `after` (None: deleted; a tag's
    object for an annotated tag), with `commits` new on it, oldest first. `head` is the
    commit `after` names, `old` the one `before` names; `tag_message` an annotated
    tag's message."""

    ref: str
    before: str | None
    after: str | None
    commits: tuple[Commit, ...]
    head: Commit | None
    old: Commit | None
    tag_message: str | None = None

    @property
    def name(self) -> str:
        return self.ref.removeprefix("refs/heads/").removeprefix("refs/tags/")

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")


def read_push(
    repo: Path, ref: str, before: str | None, after: str | None, commits: Sequence[str] = ()
) -> Push:
    """The push of `ref` (a full ref name) from `before` to `after` as git has it."""
    tag_message = None
    if after and ref.startswith("refs/tags/"):
        if git(repo, "cat-file", "-t", after).strip() == "tag":
            body = git(repo, "cat-file", "tag", after)
            tag_message = body.split("\n\n", 1)[1].rstrip("\n")
    return Push(
        ref=ref,
        before=before,
        after=after,
        commits=tuple(read_commit(repo, c) for c in commits),
        head=read_commit(repo, after) if after else None,
        old=read_commit(repo, before) if before else None,
        tag_message=tag_message,
    )


# ---------------------------------------------------------------------------- GitHub


def _github_commit(c: Commit) -> dict[str, Any]:
    person = {"name": c.author, "email": c.email, "username": c.email.split("@")[0]}
    return {
        "id": c.id,
        "tree_id": c.tree,
        "distinct": True,
        "message": c.message,
        "timestamp": c.timestamp,
        "url": f"{WEB['github']}/commit/{c.id}",
        "author": person,
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": list(c.added),
        "removed": list(c.removed),
        "modified": list(c.modified),
    }


def github_compare(push: Push) -> str:
    if push.before and push.after:
        return f"{WEB['github']}/compare/{push.before[:12]}...{push.after[:12]}"
    if push.after:  # a new ref
        return f"{WEB['github']}/compare/{push.name}"
    return f"{WEB['github']}/compare/{(push.before or ZERO)[:12]}...{ZERO[:12]}"


def github_push(push: Push) -> dict[str, Any]:
    p = template("github/push-main.json")
    p.update(
        ref=push.ref,
        before=push.before or ZERO,
        after=push.after or ZERO,
        created=push.before is None,
        deleted=push.after is None,
        forced=False,
        base_ref="refs/heads/main" if push.is_tag and push.after else None,
        compare=github_compare(push),
        commits=[_github_commit(c) for c in push.commits],
        head_commit=_github_commit(push.head) if push.head else None,
    )
    return p


# ----------------------------------------------------------------------- Gitea, Forgejo


def _gitea_commit(forge: str, c: Commit) -> dict[str, Any]:
    person = {"name": c.author, "email": c.email, "username": c.email.split("@")[0]}
    return {
        "id": c.id,
        "message": c.message + "\n",  # Gitea keeps the message's line break
        "url": f"{WEB[forge]}/commit/{c.id}",
        "author": person,
        "committer": person,
        "verification": None,
        "timestamp": c.timestamp,
        "added": list(c.added),
        "removed": list(c.removed),
        "modified": list(c.modified),
    }


def gitea_compare(forge: str, push: Push) -> str:
    if push.before and push.after:
        return f"{WEB[forge]}/compare/{push.before}...{push.after}"
    return WEB[forge].split("/widgets/")[0] + "/"  # a new ref: Gitea's bare AppURL


def gitea_push(forge: str, push: Push, max_commits: int = 5) -> dict[str, Any]:
    """Gitea's and Forgejo's push: commits newest first, cut to FeedMaxCommitNum."""
    p = template("gitea/push-main.json" if forge == "gitea" else "forgejo/push-feature.json")
    listed = [_gitea_commit(forge, c) for c in reversed(push.commits)][:max_commits]
    p.update(
        ref=push.ref,
        before=push.before or ZERO,
        after=push.after or ZERO,
        compare_url=gitea_compare(forge, push),
        commits=listed,
        total_commits=len(push.commits),
        head_commit=_gitea_commit(forge, push.head) if push.head and not push.is_tag else None,
    )
    return p


def gitea_delete(forge: str, kind: str, name: str) -> dict[str, Any]:
    p = template("gitea/delete-branch.json" if forge == "gitea" else "forgejo/delete-tag.json")
    p.update(ref=name, ref_type=kind, pusher_type="user")
    return p


# ---------------------------------------------------------------------------- GitLab


def _gitlab_commit(c: Commit) -> dict[str, Any]:
    return {
        "id": c.id,
        "message": c.message,
        "title": c.message.splitlines()[0],
        "timestamp": c.timestamp,
        "url": f"{WEB['gitlab']}/-/commit/{c.id}",
        "author": {"name": c.author, "email": c.email},
        "added": list(c.added),
        "modified": list(c.modified),
        "removed": list(c.removed),
    }


def gitlab_push(push: Push) -> dict[str, Any]:
    """GitLab's Push Hook or Tag Push Hook: the newest 20 commits, oldest first, and
    total_commits_count all of them."""
    p = template("gitlab/tag-push-annotated.json" if push.is_tag else "gitlab/push-main.json")
    p.update(
        object_kind="tag_push" if push.is_tag else "push",
        event_name="tag_push" if push.is_tag else "push",
        before=push.before or ZERO,
        after=push.after or ZERO,
        ref=push.ref,
        checkout_sha=push.head.id if push.head else None,
        message=push.tag_message,
        commits=[_gitlab_commit(c) for c in push.commits[-GITLAB_MAX_COMMITS:]],
        total_commits_count=len(push.commits),
    )
    return p


def gitlab_event(push: Push) -> str:
    return "Tag Push Hook" if push.is_tag else "Push Hook"


# ------------------------------------------------------------------------- Bitbucket

_BITBUCKET = template("bitbucket/repo-push-main.json")
_BITBUCKET_USER = _BITBUCKET["push"]["changes"][0]["new"]["target"]["author"]["user"]


def _bitbucket_commit(c: Commit) -> dict[str, Any]:
    api = "https://api.bitbucket.org/2.0/repositories/atlas/widget"
    return {
        "type": "commit",
        "hash": c.id,
        "date": c.timestamp,
        "author": {
            "type": "author",
            "raw": f"{c.author} <{c.email}>",
            "user": {**copy.deepcopy(_BITBUCKET_USER), "display_name": c.author},
        },
        "message": c.message + "\n",
        "summary": {
            "type": "rendered",
            "raw": c.message + "\n",
            "markup": "markdown",
            "html": f"<p>{c.message}</p>",
        },
        "links": {
            "self": {"href": f"{api}/commit/{c.id}"},
            "html": {"href": f"{WEB['bitbucket']}/commits/{c.id}"},
            "diff": {"href": f"{api}/diff/{c.id}"},
        },
        "parents": [],
        "rendered": {},
        "properties": {},
    }


def _bitbucket_ref(kind: str, name: str, target: Commit, tag_message: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {
        "name": name,
        "type": kind,
        "target": _bitbucket_commit(target),
        "links": {"html": {"href": f"{WEB['bitbucket']}/branch/{name}"}},
    }
    if kind == "tag":
        ref.update(message=tag_message, date=None, tagger=None)
    return ref


def bitbucket_compare(push: Push) -> str | None:
    if push.before and push.after and push.head:
        return f"{WEB['bitbucket']}/branches/compare/{push.head.id}..{push.before}"
    return None


def bitbucket_push(push: Push) -> dict[str, Any]:
    """Bitbucket Cloud's repo:push: one change, its commits newest first (at most 5,
    `truncated` past that), no file lists."""
    p = template("bitbucket/repo-push-main.json")
    kind = "tag" if push.is_tag else "branch"
    old = _bitbucket_ref(kind, push.name, push.old, None) if push.old else None
    new = _bitbucket_ref(kind, push.name, push.head, push.tag_message) if push.head else None
    listed = [_bitbucket_commit(c) for c in reversed(push.commits)]
    compare = bitbucket_compare(push)
    p["push"]["changes"] = [
        {
            "old": old,
            "new": new,
            "truncated": len(listed) > BITBUCKET_MAX_COMMITS,
            "created": old is None,
            "forced": False,
            "closed": new is None,
            "links": {"html": {"href": compare}} if compare else {},
            "commits": listed[:BITBUCKET_MAX_COMMITS],
        }
    ]
    return p


# ------------------------------------------------------------------------ every forge


def push_payload(forge: str, push: Push) -> dict[str, Any]:
    if forge == "github":
        return github_push(push)
    if forge in ("gitea", "forgejo"):
        return gitea_push(forge, push)
    if forge == "gitlab":
        return gitlab_push(push)
    assert forge == "bitbucket", forge
    return bitbucket_push(push)


def push_event(forge: str, push: Push) -> str:
    """The event header's value for a push (or a delete sent as a push)."""
    if forge == "gitlab":
        return gitlab_event(push)
    return "repo:push" if forge == "bitbucket" else "push"


def delete_deliveries(forge: str, push: Push) -> list[tuple[str, dict[str, Any]]]:
    """(event, payload) of each delivery a forge sends when `push` deletes a ref: GitHub
    a push with `deleted` and a `delete` event, Gitea and Forgejo a `delete` event,
    GitLab a push with an all-zero `after`, Bitbucket a change whose `new` is null."""
    assert push.after is None
    kind = "tag" if push.is_tag else "branch"
    if forge in ("gitea", "forgejo"):
        return [("delete", gitea_delete(forge, kind, push.name))]
    as_push = (push_event(forge, push), push_payload(forge, push))
    if forge == "github":
        deleted = template("github/delete.json")
        deleted.update(ref=push.name, ref_type=kind)
        return [as_push, ("delete", deleted)]
    return [as_push]


# the samples of events that build nothing, and the event header's value, by forge
OTHER_EVENTS = {
    "github": ("issues", "github/issues.json"),
    "gitea": ("issues", "gitea/issues.json"),
    "forgejo": ("pull_request", "forgejo/pull_request.json"),
    "gitlab": ("Merge Request Hook", "gitlab/merge-request.json"),
    "bitbucket": ("pullrequest:created", "bitbucket/pullrequest-created.json"),
}


def headers(
    forge: str,
    event: str,
    body: bytes,
    *,
    secret: str,
    delivery: str,
    signature: Signature = "good",
    content_type: str = "application/json",
    signed: bytes | None = None,
) -> dict[str, str]:
    """The headers `forge` sends with `body`: its event and delivery id, and its
    signature with `secret` ("wrong": with another secret; "missing": none) of the body,
    or of `signed` (Gitea signs the JSON of a form-encoded body)."""
    key = (secret if signature == "good" else "not " + secret).encode()
    digest = hmac.new(key, body if signed is None else signed, hashlib.sha256).hexdigest()
    sign = signature != "missing"
    if forge == "github":
        h = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": "481726353",
            "User-Agent": "GitHub-Hookshot/9f2a1c4",
        }
        if sign:
            h["X-Hub-Signature"] = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
            h["X-Hub-Signature-256"] = f"sha256={digest}"
    elif forge in ("gitea", "forgejo"):
        h = {
            "X-Gitea-Event": event,
            "X-Gitea-Event-Type": event,
            "X-Gitea-Delivery": delivery,
            "X-Gogs-Event": event,
            "X-Gogs-Delivery": delivery,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
        }
        if sign:
            h |= {
                "X-Gitea-Signature": digest,
                "X-Gogs-Signature": digest,
                "X-Hub-Signature-256": f"sha256={digest}",
            }
        if forge == "forgejo":
            h |= {
                "X-Forgejo-Event": event,
                "X-Forgejo-Event-Type": event,
                "X-Forgejo-Delivery": delivery,
            }
            if sign:
                h["X-Forgejo-Signature"] = digest
    elif forge == "gitlab":
        h = {
            "User-Agent": "GitLab/17.0.1-ee",
            "X-Gitlab-Event": event,
            "X-Gitlab-Event-UUID": delivery,
            "X-Gitlab-Webhook-UUID": "0a5c1b36-0a4a-4c9e-9f59-3c2b5f6e7d01",
            "X-Gitlab-Instance": "https://gitlab.example.com",
            # the same across GitLab's retries of one delivery; not bass's delivery id
            "Idempotency-Key": str(uuid.uuid5(uuid.NAMESPACE_URL, delivery)),
        }
        if sign:
            h["X-Gitlab-Token"] = secret if signature == "good" else "not " + secret
    else:
        assert forge == "bitbucket", forge
        h = {
            "User-Agent": "Bitbucket-Webhooks/2.0",
            "X-Event-Key": event,
            "X-Hook-UUID": "{8f1a2e9c-0000-4000-8000-00000000000a}",
            "X-Request-UUID": delivery,
            "X-Attempt-Number": "1",
        }
        if sign:
            h["X-Hub-Signature"] = f"sha256={digest}"
    return {"Content-Type": content_type, **h}
