"""The forges' webhook payloads, read field by field: `Delivery` (what a delivery asks
for), `PayloadError` (a payload of the wrong shape, naming the field), and one reader a
forge. Pure: JSON already decoded in, a `Delivery` out; `bass.forges` picks the reader
from the headers and decodes the body. Only the fields a build needs are read, and each
is checked for its type where it is read (a payload that is wrong elsewhere is not ours
to refuse).

The formats, as their documentation and source give them:

- GitHub `push`: ref, before, after (zeros: deleted), created, deleted, forced, compare,
  commits[] oldest first (at most 2,048) with id, message, author.name, added, removed,
  modified; head_commit; pusher.name. `delete`: ref (short name), ref_type.
- Gitea and Forgejo `push`: GitHub's, plus compare_url and total_commits; commits[]
  newest first and cut to the instance's FeedMaxCommitNum (5 by default). `delete`:
  ref (short name), ref_type.
- GitLab `Push Hook` / `Tag Push Hook` (also inside a `System Hook`): object_kind,
  before, after (zeros: deleted), checkout_sha (a tag's commit), ref, commits[] oldest
  first (the newest 20), total_commits_count, user_name, project.web_url.
- Bitbucket Cloud `repo:push`: push.changes[] each with new/old {type: branch|tag,
  name, target {hash, message, author}} (new null: deleted), commits[] newest first (at
  most 5) and truncated, links.html.href (the compare view); actor.display_name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bass.refs import valid_changed_ref

Forge = Literal["github", "gitea", "forgejo", "gitlab", "bitbucket", "generic"]
Event = Literal["push", "tag", "delete", "ping", "other"]

TITLES: dict[str, str] = {
    "github": "GitHub",
    "gitea": "Gitea",
    "forgejo": "Forgejo",
    "gitlab": "GitLab",
    "bitbucket": "Bitbucket",
    "generic": "generic",
}
GITHUB_MAX_COMMITS = 2048  # "The array includes a maximum of 2048 commits."
_SHA = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")  # SHA-1 or SHA-256 object id


class PayloadError(ValueError):
    """A delivery whose body is not what its forge sends: the message names the field."""


@dataclass
class Delivery:
    """What a webhook delivery asks for. `commits` run oldest to newest whatever order
    the forge lists them in; `after` of a tag may be the tag object (GitHub, Gitea,
    Forgejo), so peel it with `^{commit}`. See `bass.forges` for every field."""

    forge: Forge
    event: Event = "other"
    reason: str = ""
    delivery_id: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    tag: str | None = None
    before: str | None = None
    after: str | None = None
    commits: list[str] = field(default_factory=list)
    message: str | None = None
    author: str | None = None
    compare_url: str | None = None
    files: list[str] | None = None
    truncated: bool = False
    total_commits: int | None = None
    changed_refs: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    others: list[Delivery] = field(default_factory=list)


def text(value: Any, path: str) -> str:
    """A JSON string that SQLite can store: UTF-8, so no lone surrogate ("\\ud800")."""
    if not isinstance(value, str):
        raise PayloadError(f'"{path}" must be a string')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f'"{path}" holds a lone surrogate') from None
    return value


def is_zero(value: str) -> bool:
    """The all-zeros object id forges give for "no commit" (a new or a deleted ref)."""
    return bool(value) and value.strip("0") == ""


class Obj:
    """A JSON object and where it is in the payload, read with its fields' types checked."""

    __slots__ = ("data", "path")

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise PayloadError(f'"{self.at(key)}" is missing')
            return None
        return text(value, self.at(key))

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise PayloadError(f'"{self.at(key)}" must be true or false')
        return bool(value)

    def number(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise PayloadError(f'"{self.at(key)}" must be an integer')
        return value

    def obj(self, key: str, *, required: bool = False) -> Obj | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise PayloadError(f'"{self.at(key)}" is missing')
            return None
        if not isinstance(value, dict):
            raise PayloadError(f'"{self.at(key)}" must be an object')
        return Obj(value, self.at(key))

    def objs(self, key: str) -> list[Obj]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise PayloadError(f'"{self.at(key)}" must be a list')
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise PayloadError(f'"{self.at(key)}[{i}]" must be an object')
            out.append(Obj(item, f"{self.at(key)}[{i}]"))
        return out

    def texts(self, key: str) -> list[str] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise PayloadError(f'"{self.at(key)}" must be a list of strings')
        return [text(v, f"{self.at(key)}[{i}]") for i, v in enumerate(value)]

    def sha(self, key: str, *, required: bool = False) -> str | None:
        """A commit id as forges send them (hex, SHA-1 or SHA-256); None for zeros."""
        value = self.text(key, required=required)
        if value is None or is_zero(value):
            return None
        if not _SHA.fullmatch(value):
            raise PayloadError(f'"{self.at(key)}" must be a commit id (40 or 64 hex digits)')
        return value.lower()

    def ref_id(self, key: str, *, required: bool = False) -> str | None:
        """A commit, branch or tag name (a generic caller's commit ids); None for zeros."""
        value = self.text(key, required=required)
        if value is None or is_zero(value):
            return None
        if not valid_changed_ref(value):
            raise PayloadError(f'"{self.at(key)}" is not a commit, branch or tag name')
        return value


Ident = Callable[[Obj, str], str | None]


def forge_sha(o: Obj, key: str) -> str | None:
    return o.sha(key)


def generic_id(o: Obj, key: str) -> str | None:
    return o.ref_id(key)


def split_ref(ref: str) -> tuple[str | None, str | None]:
    """(branch, tag) of a full ref name; (None, None) for any other ref."""
    for prefix, is_tag in (("refs/heads/", False), ("refs/tags/", True)):
        if ref.startswith(prefix) and len(ref) > len(prefix):
            name = ref[len(prefix) :]
            return (None, name) if is_tag else (name, None)
    return None, None


def files_of(commits: list[Obj]) -> list[str] | None:
    """Added, modified and removed paths over the commits, each once; None when no
    commit lists any (the forge sends none, or there are no commits)."""
    seen: dict[str, None] = {}
    listed = False
    for commit in commits:
        for key in ("added", "modified", "removed"):
            names = commit.texts(key)
            if names is not None:
                listed = True
                seen.update(dict.fromkeys(names))
    return list(seen) if listed else None


def person(o: Obj | None, *keys: str) -> str | None:
    """The first non-empty name among `keys` of a user or author object."""
    for key in keys:
        name = o.text(key) if o is not None else None
        if name:
            return name
    return None


def _head(commits: list[Obj], ids: list[str], after: str | None) -> Obj | None:
    if after in ids:
        return commits[len(ids) - 1 - ids[::-1].index(after)]
    return commits[-1] if commits else None


def _ref_event(d: Delivery, ref: str, *, deleted: bool, before: str | None) -> bool:
    """Set branch/tag and the event from a full ref; False when nothing more is to be
    read (another ref, or a delete)."""
    d.branch, d.tag = split_ref(ref)
    if d.branch is None and d.tag is None:
        d.event, d.reason = "other", f"a push to {ref[:100]} builds nothing"
        return False
    if deleted:
        return _deleted(d, "branch" if d.branch else "tag", d.branch or d.tag or "", before)
    d.event = "push" if d.branch else "tag"
    return True


def _deleted(d: Delivery, kind: str, name: str, before: str | None) -> bool:
    d.event, d.reason, d.before = "delete", f"{kind} {name} deleted", before
    d.branch, d.tag = (name, None) if kind == "branch" else (None, name)
    return False


def read_push(o: Obj, d: Delivery, *, newest_first: bool, ident: Ident = forge_sha) -> Delivery:
    """GitHub's push event, and Gitea's and Forgejo's (the same fields, plus
    `compare_url` and `total_commits`); a generic body's GitHub-like fields."""
    ref = o.text("ref", required=d.forge != "generic")
    before, after = ident(o, "before"), ident(o, "after")
    raw_after = o.text("after")
    deleted = o.flag("deleted") or (raw_after is not None and is_zero(raw_after))
    o.flag("created")  # read for their types only
    o.flag("forced")
    compare = o.text("compare") or o.text("compare_url")
    if d.forge in ("gitea", "forgejo") and compare and "/compare/" not in compare:
        compare = None  # a new ref: Gitea sends its bare AppURL
    commits = o.objs("commits")
    if newest_first:
        commits.reverse()
    ids = [ident(c, "id") or "" for c in commits]
    for c, commit_id in zip(commits, ids, strict=True):
        if not commit_id:
            what = "is missing" if c.data.get("id") is None else "must be a commit id"
            raise PayloadError(f'"{c.at("id")}" {what}')
    head = o.obj("head_commit")
    if head is not None:
        ident(head, "id")
    if ref is None:
        d.event = "delete" if deleted else "push"
        d.reason = "a push that deletes a ref builds nothing" if deleted else ""
    elif not _ref_event(d, ref, deleted=deleted, before=before):
        return d
    if d.event == "delete":
        return d
    head = head or _head(commits, ids, after)
    d.before, d.after, d.commits, d.compare_url = before, after, ids, compare
    d.message = head.text("message") if head else None
    d.author = person(head.obj("author") if head else None, "name")
    d.author = d.author or person(o.obj("pusher"), "name", "full_name", "login", "username")
    d.files = files_of(commits)
    d.total_commits = o.number("total_commits")
    if d.total_commits is not None:
        d.truncated = d.total_commits > len(ids)
    elif d.forge == "github":
        d.truncated = len(ids) >= GITHUB_MAX_COMMITS
    return d


def read_delete(o: Obj, d: Delivery) -> Delivery:
    """GitHub's, Gitea's and Forgejo's `delete` event: a branch or tag was deleted."""
    ref = o.text("ref", required=True) or ""
    kind = o.text("ref_type", required=True)
    if kind not in ("branch", "tag"):
        raise PayloadError('"ref_type" must be "branch" or "tag"')
    name = ref.removeprefix("refs/heads/" if kind == "branch" else "refs/tags/")
    _deleted(d, kind, name, None)
    return d


def read_gitlab(o: Obj, d: Delivery, hook: str) -> Delivery:
    """GitLab's Push Hook and Tag Push Hook (a System Hook's push by its object_kind)."""
    kind = o.text("object_kind")
    if hook == "System Hook" and kind not in ("push", "tag_push"):
        d.reason = f"a GitLab System Hook ({(kind or '?')[:40]}) builds nothing"
        return d
    ref = o.text("ref", required=True) or ""
    before, after, checkout = o.sha("before"), o.sha("after"), o.sha("checkout_sha")
    raw_after = o.text("after")
    commits = o.objs("commits")
    ids = [c.sha("id", required=True) or "" for c in commits]
    deleted = raw_after is not None and is_zero(raw_after)
    if not _ref_event(d, ref, deleted=deleted, before=before):
        return d
    d.before, d.commits = before, ids
    d.after = checkout if d.tag and checkout else after
    head = _head(commits, ids, checkout or after)
    d.message = head.text("message") if head else None
    d.author = person(head.obj("author") if head else None, "name") or o.text("user_name")
    d.files = files_of(commits)
    d.total_commits = o.number("total_commits_count")
    d.truncated = d.total_commits is not None and d.total_commits > len(ids)
    project = o.obj("project")
    web_url = project.text("web_url") if project else None
    if web_url and before and after:
        d.compare_url = f"{web_url.rstrip('/')}/-/compare/{before}...{after}"
    return d


def read_bitbucket(o: Obj, d: Delivery) -> Delivery:
    """Bitbucket Cloud's repo:push. A push may change several refs (`git push origin
    main v1.0`); the delivery is the last change that leaves a ref (the last of all when
    every change deletes one), and `others` the other changes that leave one, the last
    first."""
    changes = (o.obj("push", required=True) or o).objs("changes")
    if not changes:
        d.reason = "a Bitbucket push with no changes builds nothing"
        return d
    building = [c for c in changes if c.obj("new") is not None]
    read = [
        _bitbucket_change(o, change, Delivery(forge=d.forge, delivery_id=d.delivery_id))
        for change in reversed(building or changes[-1:])
    ]
    read[0].others = read[1:]
    return read[0]


def _bitbucket_change(o: Obj, change: Obj, d: Delivery) -> Delivery:
    """One change of a Bitbucket push (`o`), read into `d`."""
    new, old = change.obj("new"), change.obj("old")
    ref = new or old
    if ref is None:
        raise PayloadError(f'"{change.at("new")}" and "{change.at("old")}" are both null')
    kind, name = ref.text("type", required=True), ref.text("name", required=True) or ""
    old_target = old.obj("target") if old else None
    before = old_target.sha("hash") if old_target else None
    if kind not in ("branch", "tag"):
        d.reason = f"a Bitbucket push to a {(kind or '?')[:40]} builds nothing"
        return d
    if new is None:
        _deleted(d, kind, name, before)
        return d
    d.event = "push" if kind == "branch" else "tag"
    d.branch, d.tag = (name, None) if kind == "branch" else (None, name)
    target = new.obj("target", required=True) or new
    d.before, d.after = before, target.sha("hash", required=True)
    commits = change.objs("commits")
    commits.reverse()  # Bitbucket lists the most recent first
    d.commits = [c.sha("hash", required=True) or "" for c in commits]
    d.truncated = change.flag("truncated")
    d.message = target.text("message")
    author = target.obj("author")
    raw = author.text("raw") if author else None
    d.author = person(author.obj("user") if author else None, "display_name", "nickname")
    d.author = d.author or (raw.split(" <")[0] if raw else None)
    d.author = d.author or person(o.obj("actor"), "display_name", "nickname")
    links = change.obj("links")
    html = links.obj("html") if links else None
    d.compare_url = html.text("href") if html else None
    return d


def string_list(value: Any, name: str) -> list[str]:
    """A list of strings, or a comma-separated string, as a list (as bass.params has it)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in text(value, name).split(",") if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [text(v, f"{name}[{i}]") for i, v in enumerate(value) if v]
    raise PayloadError(f'"{name}" must be a list of strings or a comma-separated string')


def read_generic(o: Obj, d: Delivery) -> Delivery:
    """The prototype's body: `pipeline`, `changed-refs`, `tags`, and GitHub-like push
    fields without a forge's headers (`ref`, `before`, `after`, `commits`, ...)."""
    d.event = "push"
    d.pipeline = o.text("pipeline") or None
    d.changed_refs = string_list(o.data.get("changed-refs"), "changed-refs")
    for ref in d.changed_refs:
        if not valid_changed_ref(ref):
            raise PayloadError(f'"changed-refs": not a commit, branch or tag name: {ref!r:.80}')
    d.tags = string_list(o.data.get("tags"), "tags")
    if any(key in o.data for key in ("ref", "before", "after", "commits", "head_commit")):
        read_push(o, d, newest_first=False, ident=generic_id)
    return d
