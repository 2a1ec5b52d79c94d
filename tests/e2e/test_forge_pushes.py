"""Forge pushes end to end: each forge's webhook delivery (GitHub, Gitea, Forgejo, GitLab,
Bitbucket Cloud), written from a real git repository with real branches and tags
(tests/e2e/forge_payloads.py), posted to a real `bass serve` and built by a real `bass
worker`. Each test asserts what was queued (the answer and the build row), the exact
commit the build entry ran on (its `git rev-parse HEAD`, $BASS_COMMIT, $BASS_BRANCH,
$BASS_TAG) and the changeset file it got ($BASS_CHANGESET).

One server, one worker and one repository serve the module: every test pushes branches
and tags of its own and waits for the builds it queued to end before it ends."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GIT, Repo, Server, WorkerProcess
from tests.e2e import forge_payloads as fp
from tests.e2e.forge_payloads import FORGES, WEB, Commit, Push, read_push
from tests.e2e.waiting import wait_until

APP_SECRET = "app: it is a secret to everybody"
RELEASE_SECRET = "release: another secret"
SECRETS = {"app": APP_SECRET, "release": RELEASE_SECRET, "plain": ""}
BRANCHES = "main|feature/.+"
TAG_PATTERN = r"^v[0-9]+\.[0-9]+\.[0-9]+$"
WEBHOOK_LIMIT = 25 << 20  # bass.webhook.MAX_WEBHOOK_BODY
ALICE = ("Alice Liddell", "alice@example.com")
MONA = ("Mona Lisa", "mona@example.com")
TITLES = {
    "github": "GitHub",
    "gitea": "Gitea",
    "forgejo": "Forgejo",
    "gitlab": "GitLab",
    "bitbucket": "Bitbucket",
}
DUPLICATE = {"queued": False, "duplicate": True, "reason": "this delivery was received before"}

# the build entry: what the build saw, kept in $OUT/PIPELINE-NUMBER/ for the test to read
ENTRY = (
    'd="$OUT/$BASS_PIPELINE-$BASS_BUILD_NUMBER"; mkdir -p "$d"; '
    'env | grep -E "^BASS_(COMMIT|REF|BRANCH|TAG)=" | sort > "$d/env"; '
    'cp "$BASS_CHANGESET" "$d/changeset"; git rev-parse HEAD > "$d/head"; true'
)  # the standard arguments are appended to the string: `true` takes them


# ------------------------------------------------------------------------- the bench


@dataclass
class Bench:
    server: Server
    worker: WorkerProcess
    repo: Repo
    out: Path

    def logs(self) -> str:
        return f"serve:\n{self.server.output()}\nworker:\n{self.worker.output()}"

    def builds(self) -> int:
        return self.server.query("SELECT COUNT(*) FROM builds")[0][0]


def pipelines(repository: Path) -> dict[str, Any]:
    def pipeline(**more: Any) -> dict[str, Any]:
        return {"repository": str(repository), "ref": "main", "exec": ENTRY, **more}

    return {
        # branch pushes: main and feature/*, deliveries signed with the env file's secret
        "app": pipeline(branches=BRANCHES, **{"webhook-secret": "$HOOK_SECRET"}),
        # tag pushes: v1.2.3, signed with a secret of its own
        "release": pipeline(**{"tag-pattern": TAG_PATTERN, "webhook-secret": RELEASE_SECRET}),
        # the prototype's webhook: no secret, no branches
        "plain": pipeline(),
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("forge-pushes")
    repo = Repo(root / "repo")
    change(
        repo,
        {"README": "widget\n", "src/app.py": "print('app')\n", "src/version.py": "VERSION = '0'\n"},
        "Start the widget",
        MONA,
    )
    change(repo, {"docs/index.md": "# Widget\n"}, "Document the widget", MONA)
    out = root / "out"
    out.mkdir()
    env_file = f"OUT={out}\nHOOK_SECRET={APP_SECRET}\n"
    server = Server(root / "serve", pipelines(repo.path), env_file=env_file)
    try:
        server.start()
    except Exception:
        server.stop()  # closes its log
        raise
    worker = WorkerProcess(server, root / "workspace")
    try:
        yield Bench(server, worker, repo, out)
    finally:
        worker.stop()
        server.stop()


# ------------------------------------------------------------------------ the repository


def change(
    repo: Repo, files: dict[str, str | None], message: str, author: tuple[str, str] = ALICE
) -> str:
    """Commit `files` (None: remove the file) on the checked-out branch as `author`;
    returns the commit's sha."""
    for name, content in files.items():
        if content is None:
            repo.git("rm", "--quiet", name)
            continue
        path = repo.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        repo.git("add", name)
    repo.git("commit", "--quiet", f"--author={author[0]} <{author[1]}>", "-m", message)
    return repo.git("rev-parse", "HEAD")


def branch(repo: Repo, name: str, start: str = "main") -> str:
    """Check out `name`, created (or reset) at `start`; returns its commit."""
    repo.git("checkout", "--quiet", "-B", name, start)
    return repo.git("rev-parse", "HEAD")


# ------------------------------------------------------------------------- deliveries


def post(url: str, body: bytes | None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST `body` as it is; (status, the JSON answer)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        with e:
            status, raw = e.code, e.read()
    return status, json.loads(raw)


@dataclass
class Delivery:
    """One webhook delivery, as bytes and headers: sent again, it is the same delivery."""

    url: str
    body: bytes
    headers: dict[str, str]

    def send(self) -> tuple[int, Any]:
        return post(self.url, self.body, self.headers)


def delivery(
    url: str,
    forge: str,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    pipeline: str | None = "app",
    secret: str | None = None,
    signature: fp.Signature = "good",
    delivery_id: str | None = None,
    form: bool = False,
) -> Delivery:
    """`payload` delivered by `forge` to `url`'s webhook for `pipeline`, signed with the
    pipeline's secret (`signature`: "wrong" or "missing" to not), as JSON or (`form`)
    form-encoded, `payload=` and the JSON (GitHub signs that body, Gitea the JSON)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    content_type, signed = "application/json", None
    if form:
        signed = body if forge in ("gitea", "forgejo") else None
        body = b"payload=" + urllib.parse.quote_plus(body.decode()).encode()
        content_type = "application/x-www-form-urlencoded"
    headers = fp.headers(
        forge,
        event,
        body,
        secret=secret if secret is not None else SECRETS.get(pipeline or "", ""),
        delivery=delivery_id or str(uuid.uuid4()),
        signature=signature,
        content_type=content_type,
        signed=signed,
    )
    query = f"?pipeline={pipeline}" if pipeline else ""
    return Delivery(f"{url}/webhook{query}", body, headers)


def deliver_push(
    bench: Bench, forge: str, push: Push, pipeline: str = "app", **options: Any
) -> Delivery:
    return delivery(
        bench.server.url,
        forge,
        fp.push_event(forge, push),
        fp.push_payload(forge, push),
        pipeline=pipeline,
        **options,
    )


def queued(answer: tuple[int, Any], pipeline: str) -> dict[str, Any]:
    """The answer of a delivery that queued a build of `pipeline`."""
    status, body = answer
    assert status == 200, body
    assert body["queued"] is True, body
    assert set(body) == {"queued", "id", "pipeline", "number", "trace-id", "url"}, body
    assert body["pipeline"] == pipeline, body
    assert body["url"].endswith(f"/pipelines/{pipeline}/{body['number']}"), body
    return body


def not_queued(reason: str) -> tuple[int, dict[str, Any]]:
    return 200, {"queued": False, "reason": reason}


# ------------------------------------------------------------------------- the builds


@dataclass
class Ran:
    """A build that ended ok, and what its entry saw."""

    build: dict[str, Any]  # its row, as /api/jobs/ID has it
    env: dict[str, str]  # BASS_COMMIT, BASS_REF, BASS_BRANCH, BASS_TAG
    changeset: list[str]
    head: str  # `git rev-parse HEAD` in the checkout


def ran(bench: Bench, answer: dict[str, Any]) -> Ran:
    """Wait for the build `answer` queued to end; it must end ok."""

    def ended() -> dict[str, Any]:
        status, build = get_json(f"{bench.server.url}/api/jobs/{answer['id']}")
        assert status == 200, build
        return {} if build["state"] in ("queued", "running") else build

    build = wait_until(ended, f"build {answer['id']} to end", context=bench.logs)
    log = "\n".join(r["body"] for r in bench.server.logs(answer["pipeline"], answer["number"]))
    assert (build["state"], build["message"]) == ("ok", None), (build, log, bench.logs())
    out = bench.out / f"{answer['pipeline']}-{answer['number']}"
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    return Ran(
        build=build,
        env=env,
        changeset=(out / "changeset").read_text().splitlines(),
        head=(out / "head").read_text().strip(),
    )


def get_json(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, json.loads(response.read())


def source(build: dict[str, Any]) -> dict[str, Any]:
    """What a build row says it builds and why."""
    keys = (
        "trigger",
        "branch",
        "tag",
        "commit_sha",
        "ref",
        "before_sha",
        "changed_refs",
        "tags",
        "changed_files",
        "commit_message",
        "author",
        "compare_url",
    )
    return {k: build[k] for k in keys}


def assert_row(build: Ran, **expected: Any) -> None:
    """The build's row has these fields (a column name each)."""
    assert {k: build.build[k] for k in expected} == expected


def entry_env(commit: str, branch: str = "", tag: str = "", ref: str = "main") -> dict[str, str]:
    return {"BASS_BRANCH": branch, "BASS_COMMIT": commit, "BASS_REF": ref, "BASS_TAG": tag}


def forge_message(forge: str, message: str) -> str:
    """A commit's message as the forge writes it (Gitea, Forgejo and Bitbucket keep
    its last line break)."""
    return message + ("\n" if forge in ("gitea", "forgejo", "bitbucket") else "")


# ------------------------------------------------------------------------ branch pushes


@pytest.mark.parametrize("forge", FORGES)
def test_a_push_to_a_built_branch_builds_the_pushed_commit(bench: Bench, forge: str) -> None:
    """Signed wrongly or not at all: 401, nothing queued (and the delivery id is not
    spent); signed: the pushed commit is built, with every file changed since `before`;
    the same delivery again: a duplicate, nothing queued."""
    repo = bench.repo
    name = "main" if forge == "github" else f"feature/{forge}-push"
    branch(repo, name)
    before = change(repo, {f"{forge}/old.txt": "old\n"}, f"Start {forge}", MONA)
    first = change(
        repo,
        {
            f"{forge}/new.py": "new = 1\n",
            "README": f"widget ({forge})\n",
            f"{forge}/scratch.txt": "gone again\n",
        },
        f"Add the {forge} module",
    )
    after = change(
        repo,
        {f"{forge}/old.txt": None, f"{forge}/scratch.txt": None, f"{forge}/new.py": "new = 2\n"},
        "Remove the old file\n\nIt was old.",
    )
    push = read_push(repo.path, f"refs/heads/{name}", before, after, [first, after])
    count = bench.builds()
    delivery_id = str(uuid.uuid4())

    refused = (401, {"error": "pipeline 'app' takes deliveries signed with its secret"})
    for signature in ("wrong", "missing"):
        sent = deliver_push(bench, forge, push, signature=signature, delivery_id=delivery_id)
        assert sent.send() == refused, signature
    assert bench.builds() == count

    signed = deliver_push(bench, forge, push, delivery_id=delivery_id)
    answer = queued(signed.send(), "app")
    assert signed.send() == (200, DUPLICATE)
    build = ran(bench, answer)
    assert bench.builds() == count + 1

    assert build.head == after
    assert build.env == entry_env(after, branch=name)
    # the diff from `before`: scratch.txt, added and removed again, is not in it (it is in
    # the forge's lists of the commits)
    assert sorted(build.changeset) == sorted([f"{forge}/new.py", f"{forge}/old.txt", "README"])
    compare = {
        "github": f"{WEB['github']}/compare/{before[:12]}...{after[:12]}",
        "gitea": f"{WEB['gitea']}/compare/{before}...{after}",
        "forgejo": f"{WEB['forgejo']}/compare/{before}...{after}",
        "gitlab": f"{WEB['gitlab']}/-/compare/{before}...{after}",
        "bitbucket": f"{WEB['bitbucket']}/branches/compare/{after}..{before}",
    }
    assert source(build.build) == {
        "trigger": "webhook",
        "branch": name,
        "tag": None,
        "commit_sha": after,
        "ref": None,
        "before_sha": before,
        "changed_refs": [first, after],
        "tags": [],
        "changed_files": None
        if forge == "bitbucket"
        else [f"{forge}/new.py", f"{forge}/scratch.txt", "README", f"{forge}/old.txt"],
        "commit_message": forge_message(forge, "Remove the old file\n\nIt was old."),
        "author": "Alice Liddell",
        "compare_url": compare[forge],
    }


@pytest.mark.parametrize("forge", FORGES)
def test_a_new_branch_changeset_is_since_the_merge_base_with_the_ref(
    bench: Bench, forge: str
) -> None:
    """A new branch (`before` all zeros, Bitbucket's `old` null): its changeset is what
    changed since it left the pipeline's ref, not what the ref did since."""
    repo = bench.repo
    name = f"feature/{forge}-new"
    branch(repo, name)
    first = change(
        repo, {f"{forge}/feature.txt": "feature\n", "scratch.txt": "s\n"}, "Start the feature"
    )
    after = change(
        repo, {"src/app.py": f"print('app, {forge}')\n", "scratch.txt": None}, "Use the feature"
    )
    branch(repo, "main", "main")
    change(repo, {f"main-moved-on-{forge}.txt": "later\n"}, "Main moves on", MONA)
    push = read_push(repo.path, f"refs/heads/{name}", None, after, [first, after])

    answer = queued(deliver_push(bench, forge, push).send(), "app")
    build = ran(bench, answer)
    assert build.head == after
    assert build.env == entry_env(after, branch=name)
    assert sorted(build.changeset) == sorted([f"{forge}/feature.txt", "src/app.py"])
    files = None if forge == "bitbucket" else [f"{forge}/feature.txt", "scratch.txt", "src/app.py"]
    assert_row(
        build,
        branch=name,
        tag=None,
        commit_sha=after,
        before_sha=None,
        changed_refs=[first, after],
        changed_files=files,
    )


@pytest.mark.parametrize("forge", ["github", "gitea"])
def test_a_form_encoded_push_builds(bench: Bench, forge: str) -> None:
    """GitHub's and Gitea's other content type: `payload=` and the URL-encoded JSON
    (GitHub signs the body as sent, Gitea the JSON)."""
    repo = bench.repo
    name = f"feature/{forge}-form"
    before = branch(repo, name)
    after = change(repo, {"form/a b&c=d.txt": f"{forge} + form\n"}, "A name to encode: a b&c=d")
    push = read_push(repo.path, f"refs/heads/{name}", before, after, [after])
    sent = deliver_push(bench, forge, push, form=True)
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.body.startswith(b"payload=%7B%22ref%22")

    build = ran(bench, queued(sent.send(), "app"))
    assert build.head == after
    assert build.env == entry_env(after, branch=name)
    assert build.changeset == ["form/a b&c=d.txt"]
    assert_row(
        build,
        branch=name,
        commit_sha=after,
        before_sha=before,
        changed_files=["form/a b&c=d.txt"],
        commit_message=forge_message(forge, "A name to encode: a b&c=d"),
    )
    assert sent.send() == (200, DUPLICATE)


def test_a_gitlab_push_of_25_commits_builds_with_all_25_files(bench: Bench) -> None:
    """GitLab lists the newest 20 commits and says there were 25: bass keeps no
    (incomplete) list, and the worker's diff from `before` finds every file."""
    repo = bench.repo
    name = "feature/gitlab-many"
    branch(repo, name)
    before = change(repo, {"many/README": "many\n"}, "Make room for many")
    commits = [change(repo, {f"many/{i:02}.txt": f"{i}\n"}, f"Commit {i}") for i in range(25)]
    push = read_push(repo.path, f"refs/heads/{name}", before, commits[-1], commits)
    payload = fp.gitlab_push(push)
    assert [c["id"] for c in payload["commits"]] == commits[5:]
    assert payload["total_commits_count"] == 25

    sent = delivery(bench.server.url, "gitlab", "Push Hook", payload)
    build = ran(bench, queued(sent.send(), "app"))
    assert build.head == commits[-1]
    assert build.env == entry_env(commits[-1], branch=name)
    assert sorted(build.changeset) == [f"many/{i:02}.txt" for i in range(25)]
    # the forge's list of commits, and so of files, is incomplete: neither is kept
    assert_row(
        build,
        commit_sha=commits[-1],
        before_sha=before,
        changed_files=None,
        changed_refs=[],
        commit_message="Commit 24",
    )


# ---------------------------------------------------------------------------- the 25 MB


HUGE_FILES = 100  # files, each with a path of about 1,000 characters
HUGE_DIR = "huge/" + "/".join(c * 200 for c in "abcd")


def huge_paths() -> list[str]:
    return [f"{HUGE_DIR}/file-{i:03}-{'x' * 150}.txt" for i in range(HUGE_FILES)]


def fast_import(repo: Repo, name: str, start: str, count: int) -> list[str]:
    """`count` commits on a new branch `name` from `start`, each one changing every one
    of huge_paths() (git fast-import: seconds, not minutes); returns their shas, oldest
    first."""
    paths = huge_paths()
    lines: list[bytes] = []
    for i in range(count):
        content = f"{i}\n".encode()
        message = f"Touch every file, {i:04}\n".encode()
        lines += [b"blob", f"mark :{i + 1}".encode(), f"data {len(content)}".encode(), content]
        lines += [
            f"commit refs/heads/{name}".encode(),
            f"author {MONA[0]} <{MONA[1]}> {1718000000 + i} +0000".encode(),
            f"committer bass tests <tests@localhost> {1718000000 + i} +0000".encode(),
            f"data {len(message)}".encode(),
            message,
        ]
        if i == 0:
            lines.append(f"from {start}".encode())
        lines += [f"M 100644 :{i + 1} {path}".encode() for path in paths]
        lines.append(b"")
    subprocess.run(
        [*GIT, "-C", str(repo.path), "fast-import", "--quiet"], input=b"\n".join(lines), check=True
    )
    return repo.git("rev-list", "--reverse", f"{start}..{name}").split()


def huge_commit(i: int, sha: str, tree: str, added: bool) -> Commit:
    paths = tuple(huge_paths())
    return Commit(
        id=sha,
        tree=tree,
        message=f"Touch every file, {i:04}",
        author=MONA[0],
        email=MONA[1],
        timestamp="2024-06-10T06:13:20+00:00",
        added=paths if added else (),
        modified=() if added else paths,
        removed=(),
    )


def huge_push(commits: list[Commit]) -> Push:
    """The push of feature/huge from the first of `commits` to the last."""
    before, pushed = commits[0], commits[1:]
    return Push(
        "refs/heads/feature/huge", before.id, pushed[-1].id, tuple(pushed), pushed[-1], before
    )


def test_a_github_push_of_almost_25_mb_builds(bench: Bench) -> None:
    """A push of hundreds of commits, each listing a hundred long paths, just under the
    25 MB GitHub sends at most: accepted, parsed and built (and a byte more: 413)."""
    # how many commits make the body just under the limit: every commit's entry in the
    # payload has the same size, so two trial payloads tell the size of any number
    fake = [huge_commit(i, f"{i:040x}", "f" * 40, i == 0) for i in range(3)]
    sizes = [len(json.dumps(fp.github_push(huge_push(fake[:n])))) for n in (2, 3)]
    per_commit = sizes[1] - sizes[0]
    count = 1 + (WEBHOOK_LIMIT - sizes[0]) // per_commit  # commits pushed

    repo = bench.repo
    start = repo.git("rev-parse", "main")
    shas = fast_import(repo, "feature/huge", start, count + 1)
    trees = repo.git("log", "--reverse", "--format=%T", f"{start}..feature/huge").split()
    commits = [
        huge_commit(i, s, t, i == 0) for i, (s, t) in enumerate(zip(shas, trees, strict=True))
    ]
    before, pushed = commits[0], commits[1:]
    sent = deliver_push(bench, "github", huge_push(commits))
    assert 25_000_000 < len(sent.body) <= WEBHOOK_LIMIT, len(sent.body)
    assert WEBHOOK_LIMIT - len(sent.body) < per_commit

    count_before = bench.builds()
    too_big = sent.body + b" " * (WEBHOOK_LIMIT + 1 - len(sent.body))  # JSON and a space more
    over = delivery(bench.server.url, "github", "push", too_big)
    assert over.send() == (413, {"error": f"body larger than {WEBHOOK_LIMIT} bytes"})
    assert bench.builds() == count_before

    build = ran(bench, queued(sent.send(), "app"))
    assert build.head == pushed[-1].id
    assert build.env == entry_env(pushed[-1].id, branch="feature/huge")
    assert sorted(build.changeset) == sorted(huge_paths())
    assert_row(
        build,
        commit_sha=pushed[-1].id,
        before_sha=before.id,
        changed_refs=[c.id for c in pushed],
        changed_files=huge_paths(),
        commit_message=f"Touch every file, {count:04}",
    )


# ----------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("forge", "annotated", "version"),
    [
        ("github", True, "1.0.0"),
        ("github", False, "1.0.1"),
        ("gitea", True, "2.0.0"),
        ("forgejo", True, "3.0.0"),
        ("gitlab", True, "4.0.0"),
        ("bitbucket", True, "5.0.0"),
    ],
)
def test_a_pushed_tag_matching_the_tag_pattern_builds_the_tagged_commit(
    bench: Bench, forge: str, annotated: bool, version: str
) -> None:
    """A tag on a release branch: the tagged commit is built (an annotated tag's object
    peeled), its changeset what changed since the release branch left main."""
    repo = bench.repo
    tag = f"v{version}"
    branch(repo, f"release/{tag}")
    tagged = change(
        repo,
        {f"release/{forge}.txt": f"{tag}\n", "src/version.py": f"VERSION = {version!r}\n"},
        f"Release {tag}",
    )
    if annotated:
        repo.git("tag", "--annotate", tag, "-m", f"Release {tag}\n\nThe {forge} one.", tagged)
    else:
        repo.git("tag", tag, tagged)
    branch(repo, "main", "main")
    change(repo, {f"main-after-{tag}.txt": "later\n"}, "Main moves on", MONA)
    after = repo.git("rev-parse", tag)
    assert (after != tagged) is annotated  # an annotated tag's own object
    push = read_push(repo.path, f"refs/tags/{tag}", None, after)

    build = ran(
        bench, queued(deliver_push(bench, forge, push, pipeline="release").send(), "release")
    )
    assert build.head == tagged
    assert build.env == entry_env(tagged, tag=tag)
    assert sorted(build.changeset) == sorted([f"release/{forge}.txt", "src/version.py"])
    # what each forge says: GitHub, Gitea and Forgejo the tag's object, GitLab and
    # Bitbucket the commit; GitHub the tagged commit as head_commit, Bitbucket its
    # target, Gitea, Forgejo and GitLab no commit (the pusher is the author)
    message = {"github": f"Release {tag}", "bitbucket": f"Release {tag}\n"}.get(forge)
    author = {"gitea": "Alice Liddell", "forgejo": "Alice Liddell", "gitlab": "John Smith"}
    assert source(build.build) == {
        "trigger": "webhook",
        "branch": None,
        "tag": tag,
        "commit_sha": tagged if forge in ("gitlab", "bitbucket") else after,
        "ref": None,
        "before_sha": None,
        "changed_refs": [],
        "tags": [tag],
        "changed_files": None,
        "commit_message": message,
        "author": author.get(forge, "Alice Liddell"),
        "compare_url": f"{WEB['github']}/compare/{tag}" if forge == "github" else None,
    }


def test_a_bitbucket_push_of_a_branch_and_a_tag_builds_each_where_it_is_built(
    bench: Bench,
) -> None:
    """`git push origin BRANCH TAG` is one Bitbucket delivery of two changes (the other
    forges send one a ref): the branch pipeline builds the branch, the tag pipeline
    the tag, each hook its own delivery."""
    repo = bench.repo
    name = "feature/bitbucket-both"
    before = branch(repo, name)
    after = change(repo, {"both/a.txt": "a\n", "src/version.py": "VERSION = '6'\n"}, "Both")
    repo.git("tag", "--annotate", "v6.0.0", "-m", "Six", after)
    payload = fp.bitbucket_push(read_push(repo.path, f"refs/heads/{name}", before, after, [after]))
    tag = fp.bitbucket_push(read_push(repo.path, "refs/tags/v6.0.0", None, after))
    payload["push"]["changes"] += tag["push"]["changes"]  # the branch first, then the tag

    url = bench.server.url
    on_branch = queued(delivery(url, "bitbucket", "repo:push", payload).send(), "app")
    on_tag = queued(
        delivery(url, "bitbucket", "repo:push", payload, pipeline="release").send(), "release"
    )
    branch_build, tag_build = ran(bench, on_branch), ran(bench, on_tag)
    assert branch_build.head == tag_build.head == after
    assert branch_build.env == entry_env(after, branch=name)
    assert sorted(branch_build.changeset) == ["both/a.txt", "src/version.py"]
    assert_row(branch_build, branch=name, tag=None, commit_sha=after, before_sha=before)
    assert tag_build.env == entry_env(after, tag="v6.0.0")
    assert sorted(tag_build.changeset) == ["both/a.txt", "src/version.py"]  # since main
    assert_row(tag_build, branch=None, tag="v6.0.0", commit_sha=after, before_sha=None)


# ------------------------------------------------------------------ what builds nothing


@pytest.mark.parametrize("forge", FORGES)
def test_deliveries_that_build_nothing_say_why_and_queue_nothing(bench: Bench, forge: str) -> None:
    """A push to a branch the pipeline does not build, a branch deleted, a tag deleted,
    another event: 200, a reason, nothing queued."""
    repo = bench.repo
    url = bench.server.url
    count = bench.builds()

    before = branch(repo, f"wip/{forge}")
    after = change(repo, {f"wip/{forge}.txt": "wip\n"}, "Work in progress")
    push = read_push(repo.path, f"refs/heads/wip/{forge}", before, after, [after])
    assert deliver_push(bench, forge, push).send() == not_queued(
        f"branch wip/{forge} does not match branches {BRANCHES!r}"
    )

    gone = f"feature/{forge}-gone"  # a branch the pipeline builds, deleted
    tip = branch(repo, gone)
    branch(repo, "main", "main")
    repo.git("branch", "--delete", "--force", gone)
    deleted = read_push(repo.path, f"refs/heads/{gone}", tip, None)
    for event, payload in fp.delete_deliveries(forge, deleted):
        sent = delivery(url, forge, event, payload)
        assert sent.send() == not_queued(f"branch {gone} deleted"), event

    tag = f"v9.9.{FORGES.index(forge)}"  # a tag the pipeline builds, deleted
    repo.git("tag", "--annotate", tag, "-m", "doomed")
    tip = repo.git("rev-parse", f"{tag}^{{commit}}")
    repo.git("tag", "--delete", tag)
    deleted = read_push(repo.path, f"refs/tags/{tag}", tip, None)
    for event, payload in fp.delete_deliveries(forge, deleted):
        sent = delivery(url, forge, event, payload, pipeline="release")
        assert sent.send() == not_queued(f"tag {tag} deleted"), event

    event, sample = fp.OTHER_EVENTS[forge]
    sent = delivery(url, forge, event, fp.template(sample))
    reason = f"a {TITLES[forge]} {event}" + ("" if forge == "gitlab" else " event")
    assert sent.send() == not_queued(f"{reason} builds nothing")

    assert bench.builds() == count


def test_branches_and_the_tag_pattern_decide_what_builds(bench: Bench) -> None:
    """A tag the tag-pattern does not match, a tag pushed to a pipeline without one, a
    branch pushed to a pipeline with one, a branch other than the ref of a pipeline
    without `branches`: a reason each, nothing queued."""
    repo = bench.repo
    count = bench.builds()
    head = branch(repo, "main", "main")
    for name in ("nightly-1", "v7.0.0"):
        repo.git("tag", name, head)
    nightly = read_push(repo.path, "refs/tags/nightly-1", None, head)
    sent = deliver_push(bench, "github", nightly, pipeline="release")
    assert sent.send() == not_queued("tag nightly-1 does not match the tag-pattern")
    release = read_push(repo.path, "refs/tags/v7.0.0", None, head)
    sent = deliver_push(bench, "gitlab", release, pipeline="app")
    assert sent.send() == not_queued("tag v7.0.0: the pipeline has no tag-pattern")
    before = repo.git("rev-parse", "main~1")
    pushed = read_push(repo.path, "refs/heads/main", before, head, [head])
    sent = deliver_push(bench, "gitea", pushed, pipeline="release")
    assert sent.send() == not_queued("suppressed by the tag-pattern")
    feature = read_push(repo.path, "refs/heads/feature/x", before, head, [head])
    sent = deliver_push(bench, "forgejo", feature, pipeline="plain")  # no `branches`: its ref
    assert sent.send() == not_queued("branch feature/x is not the pipeline's ref main")
    assert bench.builds() == count


def test_a_ping_answers_without_building(bench: Bench) -> None:
    """GitHub's ping (and Gitea's): answered, whether it names a pipeline or not; one
    that names a pipeline with a secret must be signed like any delivery."""
    url = bench.server.url
    count = bench.builds()
    ping = fp.template("github/ping.json")
    assert delivery(url, "github", "ping", ping).send() == not_queued("ping")
    unnamed = delivery(url, "github", "ping", ping, pipeline=None, signature="missing")
    assert unnamed.send() == not_queued("ping")
    assert delivery(url, "gitea", "ping", ping).send() == not_queued("ping")
    unsigned = delivery(url, "github", "ping", ping, signature="missing")
    assert unsigned.send() == (
        401,
        {"error": "pipeline 'app' takes deliveries signed with its secret"},
    )
    assert bench.builds() == count


# ----------------------------------------------------------------- the prototype's webhook


def test_the_prototype_webhook_without_a_body_builds_the_refs_head(bench: Bench) -> None:
    """`POST /webhook?pipeline=NAME&changed-refs=...`, no body: the pipeline's ref as it
    is when the build starts, the changeset the changed refs' files; `&ref=` another
    ref, a range `a..b` everything between."""
    repo = bench.repo
    url = bench.server.url
    branch(repo, "main", "main")
    head = change(repo, {"generic/one.txt": "1\n", "README": "widget (generic)\n"}, "Generic")

    answer = queued(post(f"{url}/webhook?pipeline=plain&changed-refs={head}", None), "plain")
    build = ran(bench, answer)
    assert build.head == head
    assert build.env == entry_env(head)
    assert sorted(build.changeset) == ["README", "generic/one.txt"]
    assert_row(
        build,
        trigger="webhook",
        branch=None,
        tag=None,
        commit_sha=None,
        ref=None,
        changed_refs=[head],
    )

    name = "feature/generic"
    branch(repo, name)
    change(repo, {"generic/two.txt": "2\n"}, "Two")
    tip = change(repo, {"generic/three.txt": "3\n", "generic/one.txt": None}, "Three")
    branch(repo, "main", "main")
    query = f"pipeline=plain&ref={name}&changed-refs={head}..{tip}"
    build = ran(bench, queued(post(f"{url}/webhook?{query}", None), "plain"))
    assert build.head == tip
    assert build.env == entry_env(tip, ref=name)  # asked for a ref: no branch was pushed
    assert sorted(build.changeset) == ["generic/one.txt", "generic/three.txt", "generic/two.txt"]
    assert_row(build, ref=name, commit_sha=None, changed_refs=[f"{head}..{tip}"])


# ------------------------------------------------------------- duplicates over a restart


def test_a_delivery_seen_before_a_restart_is_a_duplicate_after_it(repo: Repo, serve) -> None:
    """Each forge's delivery id is kept in the database: after `bass serve` restarts,
    the same deliveries queue nothing; a new one does."""
    before = change(repo, {"README": "r\n"}, "Start", MONA)
    after = change(repo, {"src/a.py": "a = 1\n"}, "Add a")
    secret = "restart secret"
    pipeline = {
        "repository": str(repo.path),
        "ref": "main",
        "exec": "true",
        "webhook-secret": secret,
    }
    server = serve({"app": pipeline})
    push = read_push(repo.path, "refs/heads/main", before, after, [after])
    sent = [
        delivery(
            server.url,
            forge,
            fp.push_event(forge, push),
            fp.push_payload(forge, push),
            secret=secret,
        )
        for forge in FORGES
    ]
    numbers = [queued(d.send(), "app")["number"] for d in sent]
    assert numbers == [1, 2, 3, 4, 5]

    server.stop()
    server.start()
    for d, forge in zip(sent, FORGES, strict=True):
        assert d.send() == (200, DUPLICATE), forge
    assert server.query("SELECT COUNT(*) FROM builds")[0][0] == 5
    again = delivery(server.url, "github", "push", fp.push_payload("github", push), secret=secret)
    assert queued(again.send(), "app")["number"] == 6
