"""bass.forges reads webhook deliveries as GitHub, Gitea, Forgejo, GitLab and Bitbucket
Cloud send them (bodies in tests/unit/data/forges/, headers as each forge sets them),
and the prototype's own body; it refuses a malformed payload naming the field, and
checks each forge's signature or token."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bass import forges
from bass.forges import Delivery, PayloadError, parse, verify

DATA = Path(__file__).parent / "data" / "forges"
ZERO = "0" * 40
SECRET = "It's a Secret to Everybody"
UUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def payload(name: str) -> dict[str, Any]:
    return json.loads(body(name))


def digest(data: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def headers(forge: str, event: str, data: bytes = b"", secret: str | None = SECRET) -> dict:
    """The headers a forge sends with a delivery, signed with `secret` unless None."""
    sig = digest(data, secret) if secret is not None else None
    if forge == "github":
        h = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": UUID,
            "X-GitHub-Hook-ID": "481726353",
            "User-Agent": "GitHub-Hookshot/9f2a1c4",
            "Content-Type": "application/json",
        }
        if sig:
            h["X-Hub-Signature-256"] = f"sha256={sig}"
    elif forge in ("gitea", "forgejo"):
        h = {
            "Content-Type": "application/json",
            "X-Gitea-Event": event,
            "X-Gitea-Event-Type": event,
            "X-Gitea-Delivery": UUID,
            "X-Gogs-Event": event,
            "X-Gogs-Delivery": UUID,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": UUID,
        }
        if sig:
            h |= {
                "X-Gitea-Signature": sig,
                "X-Gogs-Signature": sig,
                "X-Hub-Signature-256": f"sha256={sig}",
            }
        if forge == "forgejo":
            h |= {
                "X-Forgejo-Event": event,
                "X-Forgejo-Event-Type": event,
                "X-Forgejo-Delivery": UUID,
            }
            if sig:
                h["X-Forgejo-Signature"] = sig
    elif forge == "gitlab":
        h = {
            "Content-Type": "application/json",
            "User-Agent": "GitLab/17.0.1-ee",
            "X-Gitlab-Event": event,
            "X-Gitlab-Event-UUID": UUID,
            "X-Gitlab-Webhook-UUID": "0a5c1b36-0a4a-4c9e-9f59-3c2b5f6e7d01",
            "X-Gitlab-Instance": "https://gitlab.example.com",
            "Idempotency-Key": "idem-1",
        }
        if secret is not None:
            h["X-Gitlab-Token"] = secret
    else:  # bitbucket
        h = {
            "Content-Type": "application/json",
            "User-Agent": "Bitbucket-Webhooks/2.0",
            "X-Event-Key": event,
            "X-Hook-UUID": "{8f1a2e9c-0000-4000-8000-00000000000a}",
            "X-Request-UUID": UUID,
            "X-Attempt-Number": "1",
        }
        if sig:
            h["X-Hub-Signature"] = f"sha256={sig}"
    return h  # fmt: skip


def deliver(forge: str, event: str, name: str) -> Delivery:
    data = body(name)
    h = headers(forge, event, data)
    assert verify(h, data, SECRET)
    return parse(h, data)


def ids(name: str, key: str = "commits", id_key: str = "id") -> list[str]:
    return [c[id_key] for c in payload(name)[key]]


# ---------------------------------------------------------------------------- GitHub


def test_github_push_to_main() -> None:
    p = payload("github/push-main.json")
    d = deliver("github", "push", "github/push-main.json")
    assert d == Delivery(
        forge="github",
        event="push",
        delivery_id=UUID,
        branch="main",
        before=p["before"],
        after=p["after"],
        commits=ids("github/push-main.json"),
        message="Document the webhook contract\n\nAnd the forges it reads.",
        author="Mona Lisa",
        compare_url=p["compare"],
        files=["bass/forges.py", "README.md", "docs/contracts.md", "docs/old.md"],
    )


def test_github_push_to_a_feature_branch() -> None:
    d = deliver("github", "push", "github/push-feature.json")
    assert (d.event, d.branch, d.tag, d.reason) == ("push", "feature/login", None, "")
    assert d.commits == [d.after] and d.author == "Hubot" and d.files == ["login/passkey.py"]


def test_github_new_branch_has_no_before() -> None:
    d = deliver("github", "push", "github/push-new-branch.json")
    assert (d.event, d.branch, d.before) == ("push", "feature/new-ui", None)
    assert d.compare_url == "https://github.com/octo-org/widget/compare/feature/new-ui"


def test_github_lightweight_tag() -> None:
    p = payload("github/push-tag-lightweight.json")
    d = deliver("github", "push", "github/push-tag-lightweight.json")
    assert (d.event, d.tag, d.branch, d.before) == ("tag", "v1.2.0", None, None)
    assert d.after == p["head_commit"]["id"]
    assert d.commits == [] and d.files is None and not d.truncated
    assert d.message == p["head_commit"]["message"] and d.author == "Mona Lisa"


def test_github_annotated_tag_after_is_the_tag_object() -> None:
    """GitHub's `after` for an annotated tag is the tag object: the worker peels it."""
    p = payload("github/push-tag-annotated.json")
    d = deliver("github", "push", "github/push-tag-annotated.json")
    assert (d.event, d.tag) == ("tag", "v1.3.0")
    assert d.after == p["after"] != p["head_commit"]["id"]
    assert d.message == p["head_commit"]["message"]


@pytest.mark.parametrize(
    ("name", "kind", "ref"),
    [("github/push-delete-branch.json", "branch", "feature/login"),
     ("github/push-delete-tag.json", "tag", "v0.9.0")],
)  # fmt: skip
def test_github_deletes(name: str, kind: str, ref: str) -> None:
    d = deliver("github", "push", name)
    assert (d.event, d.reason, d.after, d.commits) == ("delete", f"{kind} {ref} deleted", None, [])
    assert d.before == payload(name)["before"]
    assert (d.branch if kind == "branch" else d.tag) == ref


def test_github_delete_event() -> None:
    d = deliver("github", "delete", "github/delete.json")
    assert (d.event, d.branch, d.reason) == (
        "delete",
        "feature/login",
        "branch feature/login deleted",
    )


def test_github_zero_after_without_deleted_flag_is_a_delete() -> None:
    p = payload("github/push-feature.json") | {"after": ZERO, "deleted": False}
    d = parse(headers("github", "push"), json.dumps(p).encode())
    assert (d.event, d.branch) == ("delete", "feature/login")


def test_github_ping() -> None:
    d = deliver("github", "ping", "github/ping.json")
    assert (d.forge, d.event, d.reason, d.delivery_id) == ("github", "ping", "ping", UUID)


@pytest.mark.parametrize("event", ["issues", "pull_request"])
def test_github_events_that_build_nothing(event: str) -> None:
    d = deliver("github", event, f"github/{event}.json")
    assert (d.event, d.reason) == ("other", f"a GitHub {event} event builds nothing")
    assert d.after is None and d.commits == []


def test_github_push_to_another_ref_builds_nothing() -> None:
    p = payload("github/push-feature.json") | {"ref": "refs/notes/commits"}
    d = parse(headers("github", "push"), json.dumps(p).encode())
    assert (d.event, d.reason) == ("other", "a push to refs/notes/commits builds nothing")


def test_github_form_encoded_delivery() -> None:
    """The other content type GitHub offers: the JSON in a form's `payload` field,
    signed as sent (the form body)."""
    form = body("github/push-main.form")
    h = headers("github", "push", form) | {"Content-Type": "application/x-www-form-urlencoded"}
    assert verify(h, form, SECRET)
    assert parse(h, form) == deliver("github", "push", "github/push-main.json")


def test_github_caps_the_commit_list_at_2048() -> None:
    p = payload("github/push-main.json")
    one = p["commits"][0]
    p["commits"] = [one | {"id": f"{i + 1:040x}"} for i in range(2048)]
    d = parse(headers("github", "push"), json.dumps(p).encode())
    assert d.truncated and len(d.commits) == 2048 and d.total_commits is None


# ---------------------------------------------------------------------------- Gitea / Forgejo


def test_gitea_push_lists_commits_oldest_first() -> None:
    p = payload("gitea/push-main.json")
    d = deliver("gitea", "push", "gitea/push-main.json")
    assert (d.forge, d.event, d.branch, d.delivery_id) == ("gitea", "push", "main", UUID)
    assert d.commits == ids("gitea/push-main.json")[::-1]  # Gitea sends newest first
    assert d.after == d.commits[-1] == p["head_commit"]["id"]
    assert d.message == "Fix the poller's timeout\n" and d.author == "Alice Liddell"
    assert d.files == ["poller.py", "config.toml"]
    assert d.compare_url == p["compare_url"]
    assert (d.total_commits, d.truncated) == (3, False)


def test_gitea_new_branch() -> None:
    d = deliver("gitea", "push", "gitea/push-new-branch.json")
    assert (d.event, d.branch, d.before) == ("push", "dark-mode", None)
    assert d.compare_url is None  # Gitea sends its bare AppURL for a new ref


def test_gitea_truncated_commit_list() -> None:
    """Gitea cuts the list to FeedMaxCommitNum (5 by default) and says how many in
    total_commits."""
    d = deliver("gitea", "push", "gitea/push-truncated.json")
    assert d.truncated and d.total_commits == 8 and len(d.commits) == 5
    assert d.commits == ids("gitea/push-truncated.json")[::-1] and d.commits[-1] == d.after


def test_gitea_tag_push() -> None:
    p = payload("gitea/push-tag.json")
    d = deliver("gitea", "push", "gitea/push-tag.json")
    assert (d.event, d.tag, d.after, d.before) == ("tag", "v2.0.0", p["after"], None)
    assert d.commits == [] and d.message is None
    assert d.author == "Alice Liddell"  # the pusher: no commit is listed


@pytest.mark.parametrize(
    ("name", "kind", "ref"),
    [("gitea/delete-branch.json", "branch", "dark-mode"),
     ("gitea/delete-tag.json", "tag", "v1.0.0")],
)  # fmt: skip
def test_gitea_delete_events(name: str, kind: str, ref: str) -> None:
    d = deliver("gitea", "delete", name)
    assert (d.event, d.reason) == ("delete", f"{kind} {ref} deleted")
    assert (d.branch if kind == "branch" else d.tag) == ref


def test_gitea_issues_and_ping() -> None:
    d = deliver("gitea", "issues", "gitea/issues.json")
    assert (d.event, d.reason) == ("other", "a Gitea issues event builds nothing")
    assert parse(headers("gitea", "ping"), b"{}").event == "ping"


def test_forgejo_is_told_from_gitea_and_github() -> None:
    """Forgejo sends Gitea's, Gogs' and GitHub's headers too."""
    p = payload("forgejo/push-feature.json")
    d = deliver("forgejo", "push", "forgejo/push-feature.json")
    assert (d.forge, d.event, d.branch, d.after) == ("forgejo", "push", "i18n/de", p["after"])
    assert d.commits == ids("forgejo/push-feature.json")[::-1]
    assert d.files == ["README.de.md"] and d.message == "Fix a typo\n"
    assert forges.detect(headers("forgejo", "push")) == "forgejo"
    assert forges.detect(headers("gitea", "push")) == "gitea"


def test_forgejo_delete_tag_and_pull_request() -> None:
    d = deliver("forgejo", "delete", "forgejo/delete-tag.json")
    assert (d.event, d.tag, d.reason) == ("delete", "v0.1.0", "tag v0.1.0 deleted")
    d = deliver("forgejo", "pull_request", "forgejo/pull_request.json")
    assert (d.event, d.reason) == ("other", "a Forgejo pull_request event builds nothing")


# ---------------------------------------------------------------------------- GitLab


def test_gitlab_push_to_main() -> None:
    p = payload("gitlab/push-main.json")
    d = deliver("gitlab", "Push Hook", "gitlab/push-main.json")
    assert d == Delivery(
        forge="gitlab",
        event="push",
        delivery_id="idem-1",
        branch="main",
        before=p["before"],
        after=p["after"],
        commits=ids("gitlab/push-main.json"),
        message="fixed readme",
        author="Jordi Mallach",
        compare_url=f"{p['project']['web_url']}/-/compare/{p['before']}...{p['after']}",
        files=["CHANGELOG", "app/controller/application.rb", "README.md"],
        total_commits=2,
    )


def test_gitlab_new_branch_and_delete() -> None:
    d = deliver("gitlab", "Push Hook", "gitlab/push-new-branch.json")
    assert (d.event, d.branch, d.before, d.compare_url) == ("push", "parser", None, None)
    d = deliver("gitlab", "Push Hook", "gitlab/push-delete-branch.json")
    assert (d.event, d.branch, d.reason, d.after) == (
        "delete",
        "parser",
        "branch parser deleted",
        None,
    )
    assert d.before == payload("gitlab/push-delete-branch.json")["before"]


def test_gitlab_25_commits_truncated_at_20() -> None:
    p = payload("gitlab/push-25-commits.json")
    d = deliver("gitlab", "Push Hook", "gitlab/push-25-commits.json")
    assert d.truncated and d.total_commits == 25 and len(d.commits) == 20
    assert d.commits[-1] == d.after == p["after"] and d.message == "Migration step 24"
    assert d.files == [f"db/migrate/{i:03d}.rb" for i in range(5, 25)]


def test_gitlab_annotated_tag_is_its_checkout_sha() -> None:
    p = payload("gitlab/tag-push-annotated.json")
    d = deliver("gitlab", "Tag Push Hook", "gitlab/tag-push-annotated.json")
    assert (d.event, d.tag, d.before) == ("tag", "v2.0.0", None)
    assert d.after == p["checkout_sha"] != p["after"]
    assert d.author == "John Smith" and d.message is None  # no commits: the pusher


def test_gitlab_lightweight_tag_and_tag_delete() -> None:
    p = payload("gitlab/tag-push-lightweight.json")
    d = deliver("gitlab", "Tag Push Hook", "gitlab/tag-push-lightweight.json")
    assert (d.event, d.tag, d.after) == ("tag", "nightly", p["checkout_sha"])
    d = deliver("gitlab", "Tag Push Hook", "gitlab/tag-delete.json")
    assert (d.event, d.tag, d.reason, d.after) == ("delete", "v1.0.0", "tag v1.0.0 deleted", None)


def test_gitlab_other_hooks_and_system_hooks() -> None:
    d = deliver("gitlab", "Merge Request Hook", "gitlab/merge-request.json")
    assert (d.event, d.reason) == ("other", "a GitLab Merge Request Hook builds nothing")
    d = deliver("gitlab", "System Hook", "gitlab/push-main.json")
    assert (d.event, d.branch) == ("push", "main")
    d = deliver("gitlab", "System Hook", "gitlab/merge-request.json")
    assert d.event == "other" and "System Hook" in d.reason


def test_gitlab_delivery_id_is_the_idempotency_key_then_the_event_uuid() -> None:
    """GitLab keeps Idempotency-Key across retries and resends; the Event-UUID changes
    on a resend and is shared by webhooks that one webhook set off."""
    h = headers("gitlab", "Push Hook")
    assert parse(h, body("gitlab/push-main.json")).delivery_id == "idem-1"
    del h["Idempotency-Key"]
    assert parse(h, body("gitlab/push-main.json")).delivery_id == UUID


# ---------------------------------------------------------------------------- Bitbucket


def test_bitbucket_push_to_main() -> None:
    change = payload("bitbucket/repo-push-main.json")["push"]["changes"][0]
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-main.json")
    assert d == Delivery(
        forge="bitbucket",
        event="push",
        delivery_id=UUID,
        branch="main",
        before=change["old"]["target"]["hash"],
        after=change["new"]["target"]["hash"],
        commits=[c["hash"] for c in change["commits"]][::-1],  # Bitbucket: newest first
        message="Oil the gear\n",
        author="Tony Stark",
        compare_url=change["links"]["html"]["href"],
    )


def test_bitbucket_new_branch_tag_and_delete() -> None:
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-new-branch.json")
    assert (d.event, d.branch, d.before, d.compare_url) == ("push", "feature/gear", None, None)
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-tag.json")
    assert (d.event, d.tag, d.commits) == ("tag", "v3.0.0", [])
    assert (
        d.after
        == payload("bitbucket/repo-push-tag.json")["push"]["changes"][0]["new"]["target"]["hash"]
    )
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-delete-branch.json")
    assert (d.event, d.branch, d.reason, d.after) == (
        "delete",
        "feature/gear",
        "branch feature/gear deleted",
        None,
    )
    assert d.before is not None


def test_bitbucket_two_changes_gives_the_last_that_leaves_a_ref() -> None:
    """A Bitbucket push may change several refs; the delivery is the last change whose
    `new` is not null (main updated, then tag v3.0.0 created: the tag)."""
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-two-changes.json")
    assert (d.event, d.tag, d.branch) == ("tag", "v3.0.0", None)
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-update-and-delete.json")
    assert (d.event, d.branch) == ("push", "main")  # not the delete that comes after


def test_bitbucket_truncated() -> None:
    d = deliver("bitbucket", "repo:push", "bitbucket/repo-push-truncated.json")
    assert d.truncated and len(d.commits) == 5 and d.commits[-1] == d.after
    assert d.files is None and d.total_commits is None


def test_bitbucket_other_events() -> None:
    d = deliver("bitbucket", "pullrequest:created", "bitbucket/pullrequest-created.json")
    assert (d.event, d.reason) == ("other", "a Bitbucket pullrequest:created event builds nothing")
    assert parse(headers("bitbucket", "diagnostics:ping"), b"").event == "ping"
    d = parse(headers("bitbucket", "repo:push"), b'{"push": {"changes": []}}')
    assert d.event == "other"


# ---------------------------------------------------------------------------- generic


def test_generic_prototype_body() -> None:
    d = parse({"Content-Type": "application/json"}, body("generic/prototype.json"))
    assert (d.forge, d.event, d.pipeline, d.delivery_id) == ("generic", "push", "widget", None)
    assert d.changed_refs == ["9c1185a5c5e9fc54612808977ee8f548b2258d31", "v1.0..v1.1"]
    assert d.tags == ["nightly", "linux"] and d.commits == [] and d.branch is None


def test_generic_push_like_body_without_headers() -> None:
    d = parse({}, body("generic/push-like.json"))
    assert (d.forge, d.event, d.branch, d.pipeline) == ("generic", "push", "main", None)
    assert d.commits == ids("generic/push-like.json") and d.after == d.commits[-1]
    assert (d.message, d.author) == ("two", "Script")
    tag = parse({}, b'{"ref": "refs/tags/v1", "commits": [{"id": "main"}]}')
    assert (tag.event, tag.tag, tag.commits) == ("tag", "v1", ["main"])


def test_generic_empty_body_and_comma_lists() -> None:
    assert parse({}, b"") == Delivery(forge="generic", event="push")
    d = parse({}, b'{"changed-refs": "a,,b", "tags": "x,y", "pipeline": ""}')
    assert (d.changed_refs, d.tags, d.pipeline) == (["a", "b"], ["x", "y"], None)


def test_headers_any_case_or_a_callable() -> None:
    data = body("github/push-main.json")
    lower = {k.lower(): v for k, v in headers("github", "push", data).items()}
    upper = {k.upper(): v for k, v in lower.items()}
    expected = parse(lower, data)
    assert parse(upper, data) == expected and verify(upper, data, SECRET)
    assert parse(lower.get, data) == expected and verify(lower.get, data, SECRET)


def test_starlette_headers_as_the_webhook_route_has_them() -> None:
    from starlette.datastructures import Headers

    data = body("gitlab/push-main.json")
    h = Headers(headers=headers("gitlab", "Push Hook", data))
    assert parse(h, data).branch == "main" and verify(h, data, SECRET)


def test_a_json_body_sent_as_a_form_is_read_as_json() -> None:
    data = body("github/push-main.json")
    h = headers("github", "push", data) | {"Content-Type": "application/x-www-form-urlencoded"}
    assert parse(h, data) == deliver("github", "push", "github/push-main.json")


def test_delivery_ids_are_storable_text() -> None:
    h = headers("github", "ping") | {"X-GitHub-Delivery": "\udcff"}
    assert parse(h, b"").delivery_id is None
    h = headers("github", "ping") | {"X-GitHub-Delivery": "d" * 1000}
    assert parse(h, b"").delivery_id == "d" * 200


# ---------------------------------------------------------------------------- malformed


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation setting the field at `path` ("commits.0.id") to value (None: delete)."""

    def mutate(p: dict) -> None:
        *parents, last = path.split(".")
        node: Any = p
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is None:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


GH = ("github", "push", "github/push-main.json")
GH_DELETE = ("github", "delete", "github/delete.json")
GITEA = ("gitea", "push", "gitea/push-main.json")
GL = ("gitlab", "Push Hook", "gitlab/push-main.json")
GL_TAG = ("gitlab", "Tag Push Hook", "gitlab/tag-push-annotated.json")
BB = ("bitbucket", "repo:push", "bitbucket/repo-push-main.json")
BB_DELETE = ("bitbucket", "repo:push", "bitbucket/repo-push-delete-branch.json")
PROTOTYPE = ("generic", "", "generic/prototype.json")
PUSH_LIKE = ("generic", "", "generic/push-like.json")
C0 = "push.changes.0"
# (forge, event, file, field, value, the message; None: the field is not read, no error)
MALFORMED = [
    (*GH, "commits", 5, '"commits" must be a list'),
    (*GH, "commits.0", "x", '"commits[0]" must be an object'),
    (*GH, "ref", 5, '"ref" must be a string'),
    (*GH, "ref", None, '"ref" is missing'),
    (*GH, "commits.1.id", 5, '"commits[1].id" must be a string'),
    (*GH, "commits.1.id", None, '"commits[1].id" is missing'),
    (*GH, "commits.1.id", ZERO, '"commits[1].id" must be a commit id'),
    (*GH, "commits.1.id", "--upload-pack=x", '"commits[1].id" must be a commit id'),
    (*GH, "after", ["x"], '"after" must be a string'),
    (*GH, "before", "HEAD~1", '"before" must be a commit id'),
    (*GH, "deleted", "yes", '"deleted" must be true or false'),
    (*GH, "forced", 1, '"forced" must be true or false'),
    (*GH, "compare", {}, '"compare" must be a string'),
    (*GH, "head_commit", [], '"head_commit" must be an object'),
    (*GH, "head_commit.message", 7, '"head_commit.message" must be a string'),
    (*GH, "head_commit.author", "Mona", '"head_commit.author" must be an object'),
    (*GH, "commits.0.added", "a.py", '"commits[0].added" must be a list of strings'),
    (*GH, "commits.0.modified", [1], '"commits[0].modified[0]" must be a string'),
    (*GH, "head_commit.message", "\ud800", '"head_commit.message" holds a lone surrogate'),
    (*GH_DELETE, "ref_type", "note", '"ref_type" must be "branch" or "tag"'),
    (*GH_DELETE, "ref", None, '"ref" is missing'),
    (*GITEA, "total_commits", "3", '"total_commits" must be an integer'),
    (*GITEA, "pusher.full_name", 1, None),
    (*GL, "total_commits_count", True, '"total_commits_count" must be an integer'),
    (*GL, "checkout_sha", 1, '"checkout_sha" must be a string'),
    (*GL, "commits.0.id", None, '"commits[0].id" is missing'),
    (*GL, "project", "x", '"project" must be an object'),
    (*GL_TAG, "ref", None, '"ref" is missing'),
    (*BB, "push", None, '"push" is missing'),
    (*BB, "push.changes", {}, '"push.changes" must be a list'),
    (*BB, C0 + ".new.target.hash", 1, '"push.changes[0].new.target.hash" must be a string'),
    (*BB, C0 + ".new.name", None, '"push.changes[0].new.name" is missing'),
    (*BB, C0 + ".truncated", "no", '"push.changes[0].truncated" must be true or false'),
    (*BB, C0 + ".commits.1.hash", "abc", '"push.changes[0].commits[1].hash" must be a commit id'),
    (*BB, C0 + ".links.html", [], '"push.changes[0].links.html" must be an object'),
    (*BB_DELETE, C0 + ".old", None, "are both null"),
    (*PROTOTYPE, "changed-refs", 5, '"changed-refs" must be a list of strings'),
    (*PROTOTYPE, "changed-refs", ["-x"], "not a commit, branch or tag name"),
    (*PROTOTYPE, "tags", [1], '"tags" must be a list of strings'),
    (*PROTOTYPE, "pipeline", ["p"], '"pipeline" must be a string'),
    (*PUSH_LIKE, "commits.0.id", "--exec=x", '"commits[0].id" is not a commit, branch or tag name'),
    (*PUSH_LIKE, "commits", "abc", '"commits" must be a list'),
]


@pytest.mark.parametrize(("forge", "event", "name", "path", "value", "message"), MALFORMED)
def test_malformed_fields_are_named(
    forge: str, event: str, name: str, path: str, value: Any, message: str | None
) -> None:
    p = payload(name)
    _set(path, value)(p)
    data = json.dumps(p).encode()
    h = headers(forge, event, data) if forge != "generic" else {}
    if message is None:
        parse(h, data)
        return
    with pytest.raises(PayloadError, match=re.escape(message)):
        parse(h, data)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{", "malformed JSON body"), (b"[1, 2]", "must be an object"),
     (b'"push"', "must be an object"), (b"\xff\xfe{", "malformed JSON body"),
     (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
     (b"payload=%7B", "malformed JSON body"), (b"payload=%FF", "not URL-encoded UTF-8"),
     (b"payload=%5B%5D", "must be an object")],
)  # fmt: skip
def test_malformed_bodies(data: bytes, message: str) -> None:
    for h in (headers("github", "push"), {}):
        with pytest.raises(PayloadError, match=message):
            parse(h, data)


def test_form_without_payload_field() -> None:
    h = headers("github", "push") | {"Content-Type": "application/x-www-form-urlencoded"}
    with pytest.raises(PayloadError, match='no "payload" field'):
        parse(h, b"ref=refs%2Fheads%2Fmain")


def test_bodies_of_events_that_build_nothing_are_not_read() -> None:
    assert parse(headers("github", "issues"), b"not json").event == "other"
    assert parse(headers("github", "ping"), b"[").event == "ping"


# ---------------------------------------------------------------------------- signatures

SIGNED = [
    ("github", "push", "github/push-main.json"),
    ("gitea", "push", "gitea/push-main.json"),
    ("forgejo", "push", "forgejo/push-feature.json"),
    ("gitlab", "Push Hook", "gitlab/push-main.json"),
    ("bitbucket", "repo:push", "bitbucket/repo-push-main.json"),
]
SIGNATURE_HEADER = {
    "github": "X-Hub-Signature-256",
    "gitea": "X-Gitea-Signature",
    "forgejo": "X-Forgejo-Signature",
    "gitlab": "X-Gitlab-Token",
    "bitbucket": "X-Hub-Signature",
}


@pytest.mark.parametrize(("forge", "event", "name"), SIGNED)
def test_signatures_right_wrong_missing(forge: str, event: str, name: str) -> None:
    data = body(name)
    good = headers(forge, event, data)
    assert verify(good, data, SECRET)
    assert not verify(good, data, SECRET + "!")  # another secret
    if forge != "gitlab":  # GitLab's token is the secret itself: it signs no body
        assert not verify(good, data + b" ", SECRET)  # another body
    assert not verify(good, data, "")  # no secret: nothing proves it
    wrong = headers(forge, event, data, secret="guess")
    assert not verify(wrong, data, SECRET)
    missing = headers(forge, event, data, secret=None)
    assert not verify(missing, data, SECRET)
    for odd in ("sha256=é", "\udcff", "\x00", "sha256=" + "ä" * 64, "🔑" * 100, " "):
        # Forgejo's X-Forgejo-Signature is read first, Gitea's (the same HMAC) without it
        names = [SIGNATURE_HEADER[forge]] + (["X-Gitea-Signature"] if forge == "forgejo" else [])
        assert not verify(good | dict.fromkeys(names, odd), data, SECRET)


def test_signatures_of_other_forges_do_not_count() -> None:
    """A forge's delivery is checked by its own header only (Gitea's X-Hub-Signature-256
    would not do for a Forgejo delivery whose X-Forgejo-Signature is wrong)."""
    data = body("forgejo/push-feature.json")
    h = headers("forgejo", "push", data) | {"X-Forgejo-Signature": digest(b"other")}
    assert not verify(h, data, SECRET)
    gitlab = headers("gitlab", "Push Hook", data, secret=None)
    gitlab["X-Hub-Signature-256"] = f"sha256={digest(data)}"
    assert not verify(gitlab, data, SECRET)


def test_gitea_signs_the_json_of_a_form_delivery() -> None:
    """Gitea's form content type sends `payload=<json>` but signs the JSON itself."""
    data = body("gitea/push-main.json")
    form = urllib.parse.urlencode({"payload": data.decode()}).encode()
    h = headers("gitea", "push", data) | {"Content-Type": "application/x-www-form-urlencoded"}
    assert verify(h, form, SECRET)
    assert parse(h, form) == parse(headers("gitea", "push", data), data)
    assert not verify(h | {"X-Gitea-Signature": digest(b"{}")}, form, SECRET)


def test_generic_signs_like_github_and_hex_case_does_not_matter() -> None:
    data = body("generic/prototype.json")
    assert verify({"X-Hub-Signature-256": f"sha256={digest(data)}"}, data, SECRET)
    assert verify({"x-hub-signature-256": f"SHA256={digest(data).upper()}"}, data, SECRET)
    assert not verify({"X-Gitlab-Token": SECRET}, data, SECRET)  # no GitLab event header


def test_secrets_with_any_characters() -> None:
    secret = "pässwörd 🔑"
    data = body("github/push-main.json")
    h = {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest(data, secret)}"}
    assert verify(h, data, secret)
    assert verify(headers("gitlab", "Push Hook", secret=secret), data, secret)


# ---------------------------------------------------------------------------- size


def test_a_25_mb_body_parses() -> None:
    """GitHub caps payloads at 25 MB; bass reads one that size whole."""
    p = payload("github/push-main.json")
    size = 25 * 1024 * 1024
    p["repository"]["description"] = ""
    padding = size - len(json.dumps(p).encode())
    p["repository"]["description"] = "x" * padding
    data = json.dumps(p).encode()
    assert len(data) == size
    h = headers("github", "push", data)
    start = time.monotonic()
    d = parse(h, data)
    assert verify(h, data, SECRET)
    assert time.monotonic() - start < 10
    assert (d.event, d.branch, d.commits) == ("push", "main", ids("github/push-main.json"))


def test_a_huge_file_list_is_not_kept() -> None:
    """Past MAX_LISTED_FILES a forge's list of changed files is dropped, as a truncated
    one is: the worker diffs the push itself, and no build row or job carries it."""
    from bass.webhook import MAX_LISTED_FILES, source_of

    d = deliver("github", "push", "github/push-main.json")
    d.files = [f"f{i}" for i in range(MAX_LISTED_FILES)]
    assert source_of(d).changed_files == d.files
    d.files.append("one more")
    assert source_of(d).changed_files is None
