"""The worker's checkout and changeset on real git repositories: a job's `commit` is
built exactly (a feature branch's head while the pipeline follows main, an annotated
tag's object sha as the tagged commit), its `ref` when it has no commit, the pipeline's
`ref` otherwise; the changeset is the whole diff of a push (`before..commit`), the
files since the merge base for a new branch, the forge's `changed-files` when no diff
can be made, `changed-refs` as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bass.worker import changes, checkout
from tests.conftest import Repo


class Upstream:
    """main: base, then main-only (after feature branched); feature: two commits;
    tags: `light` (lightweight, on base) and `v2` (annotated, on main's head)."""

    def __init__(self, root: Path):
        self.repo = Repo(root / "upstream")
        self.base = self.repo.commit({"README": "r\n", "src/a.py": "a\n"}, "base")
        self.repo.git("tag", "light")
        self.repo.git("checkout", "--quiet", "-b", "feature")
        self.repo.commit({"feature/x.txt": "x\n"}, "feature one")
        self.feature = self.repo.commit({"feature/y.txt": "y\n", "src/a.py": "a2\n"}, "two")
        self.repo.git("checkout", "--quiet", "main")
        self.main = self.repo.commit({"main-only.txt": "m\n"}, "main only")
        self.repo.git("tag", "-a", "v2", "-m", "release two")
        self.v2_object = self.repo.git("rev-parse", "v2")
        assert self.v2_object != self.main  # an annotated tag: its own object

    @property
    def url(self) -> str:
        return str(self.repo.path)


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path)


def job(upstream: Upstream, pipeline_ref: str | None = "main", **fields: Any) -> dict[str, Any]:
    return {"pipeline": {"repository": upstream.url, "ref": pipeline_ref}, **fields}


class Build:
    """One checkout and changeset as the worker makes them, and what its step said."""

    def __init__(self, workdir: Path, job: dict[str, Any]):
        self.said: list[str] = []
        self.wanted = checkout.Wanted.from_job(job)
        self.workspace = checkout.Workspace(self.wanted.repository, workdir, self.said.append)
        self.commit = checkout.check_out(self.wanted, self.workspace)
        self.changeset = changes.changeset(self.wanted, self.workspace, self.commit)

    def head(self) -> str:
        return checkout.git(["rev-parse", "HEAD"], self.workspace.workdir, lambda _: None).strip()

    def commands(self) -> list[str]:
        return [line.split()[2] for line in self.said if line.startswith("$ git ")]


def test_a_commit_is_built_even_off_the_pipelines_ref(upstream: Upstream, tmp_path: Path):
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.feature, branch="feature"))
    assert build.commit == build.head() == upstream.feature
    assert (tmp_path / "ws" / "feature" / "y.txt").exists()
    assert not (tmp_path / "ws" / "main-only.txt").exists()
    # fetched by its sha alone: no fetch of every branch was needed for the checkout
    assert f"$ git fetch origin {upstream.feature}" in build.said
    assert build.wanted.attributes(build.commit) == {
        "vcs.ref.head.revision": upstream.feature,
        "vcs.ref.head.name": "feature",
        "vcs.ref.head.type": "branch",
    }


def test_an_annotated_tags_object_sha_builds_the_tagged_commit(upstream, tmp_path):
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.v2_object, tag="v2"))
    assert build.commit == build.head() == upstream.main
    assert build.wanted.attributes(build.commit)["vcs.ref.head.type"] == "tag"


def test_an_upper_case_sha_is_the_same_commit(upstream, tmp_path):
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.feature.upper()))
    assert build.commit == upstream.feature


def test_a_commit_already_in_the_workspace_is_not_fetched_again(upstream, tmp_path):
    Build(tmp_path / "ws", job(upstream, ref="feature"))
    (tmp_path / "ws" / "untracked").write_text("left by the last build")
    again = Build(tmp_path / "ws", job(upstream, commit=upstream.main, before=upstream.base))
    assert "fetch" not in again.commands()
    assert again.head() == upstream.main
    assert not (tmp_path / "ws" / "untracked").exists()  # git clean -ffdx, as always


def test_a_server_that_refuses_a_sha_gets_the_fetch_of_every_branch(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # protocol v0 without uploadpack.allowReachableSHA1InWant: only ref tips may be asked
    for name, value in {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.version",
                        "GIT_CONFIG_VALUE_0": "0"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    inner = upstream.repo.git("rev-parse", "feature~1")
    build = Build(tmp_path / "ws", job(upstream, commit=inner, before=upstream.base))
    assert build.commit == build.head() == inner
    assert any(line.startswith(f"fetching {inner} by its sha failed") for line in build.said)
    assert build.commands().count("fetch") == 2  # the sha, then every branch and tag
    assert build.changeset == ["feature/x.txt"]


def test_an_unknown_commit_is_an_error_never_another_build(upstream, tmp_path):
    unknown = "1234567890" * 4
    with pytest.raises(checkout.CheckoutError, match=f"commit {unknown} not found in"):
        Build(tmp_path / "ws", job(upstream, commit=unknown))
    assert not (tmp_path / "ws" / "README").exists()  # nothing was checked out


@pytest.mark.parametrize("commit", ["main", "abc123", "--upload-pack=evil", "g" * 40, 7])
def test_a_commit_that_is_no_full_sha_is_an_error(upstream, tmp_path, commit):
    with pytest.raises(checkout.CheckoutError, match="is not a full commit sha"):
        Build(tmp_path / "ws", job(upstream, commit=commit))


@pytest.mark.parametrize(
    ("ref", "expected"), [("feature", "feature"), ("v2", "main"), ("light", "base")]
)
def test_a_jobs_ref_without_commit_is_resolved_like_the_pipelines(
    upstream: Upstream, tmp_path: Path, ref: str, expected: str
):
    build = Build(tmp_path / "ws", job(upstream, "main", ref=ref))
    assert build.commit == build.head() == getattr(upstream, expected)
    assert build.wanted.asked_ref == ref


def test_a_jobs_ref_as_a_sha(upstream, tmp_path):
    build = Build(tmp_path / "ws", job(upstream, "main", ref=upstream.feature))
    assert build.commit == upstream.feature


@pytest.mark.parametrize("ref", ["-x", "--upload-pack=evil", "a b", "nope"])
def test_a_jobs_ref_that_is_not_there_is_an_error(upstream, tmp_path, ref):
    with pytest.raises(checkout.CheckoutError, match="not a branch, tag or commit|not found"):
        Build(tmp_path / "ws", job(upstream, ref=ref))


def test_before_to_commit_is_the_whole_push(upstream: Upstream, tmp_path: Path):
    Build(tmp_path / "ws", job(upstream, commit=upstream.feature))  # a first build
    upstream.repo.git("checkout", "--quiet", "feature")
    for i in range(30):  # more than GitLab (20) lists
        head = upstream.repo.commit({f"pushed/{i:02}.txt": f"{i}\n", "pushed/00.txt": f"{i}"})
    build = Build(
        tmp_path / "ws", job(upstream, commit=head, before=upstream.feature, branch="feature")
    )
    assert build.head() == head
    assert build.changeset == [f"pushed/{i:02}.txt" for i in range(30)]
    assert any("30 file(s) changed between" in line for line in build.said)


def test_before_is_fetched_when_the_workspace_lacks_it(upstream, tmp_path):
    # a force push: before is in no branch any more, and the workspace never saw it
    upstream.repo.git("checkout", "--quiet", "-b", "gone", upstream.base)
    gone = upstream.repo.commit({"gone.txt": "g\n"}, "force-pushed away")
    upstream.repo.git("checkout", "--quiet", "main")
    upstream.repo.git("branch", "-D", "gone")
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.feature, before=gone))
    assert f"$ git fetch origin {gone}" in build.said
    assert set(build.changeset) == {"gone.txt", "feature/x.txt", "feature/y.txt", "src/a.py"}


def test_renames_list_both_names(upstream, tmp_path):
    upstream.repo.git("checkout", "--quiet", "feature")
    upstream.repo.git("mv", "src/a.py", "src/b.py")
    upstream.repo.git("commit", "--quiet", "-m", "rename")
    head = upstream.repo.git("rev-parse", "HEAD")
    build = Build(tmp_path / "ws", job(upstream, commit=head, before=upstream.feature))
    assert sorted(build.changeset) == ["src/a.py", "src/b.py"]


def test_a_new_branch_changed_what_it_added_since_the_merge_base(upstream, tmp_path):
    build = Build(
        tmp_path / "ws", job(upstream, commit=upstream.feature, branch="feature", before=None)
    )
    # not main-only.txt: main added it after feature branched off
    assert sorted(build.changeset) == ["feature/x.txt", "feature/y.txt", "src/a.py"]
    assert any(f"the merge base with main, in {upstream.feature[:12]}" in s for s in build.said)


def test_forges_zero_before_is_a_new_branch(upstream, tmp_path):
    build = Build(
        tmp_path / "ws", job(upstream, commit=upstream.feature, branch="feature", before="0" * 40)
    )
    assert sorted(build.changeset) == ["feature/x.txt", "feature/y.txt", "src/a.py"]


def test_the_merge_base_with_the_remotes_default_branch(upstream, tmp_path):
    build = Build(tmp_path / "ws", job(upstream, None, commit=upstream.feature, branch="feature"))
    assert sorted(build.changeset) == ["feature/x.txt", "feature/y.txt", "src/a.py"]


def test_a_new_tag_on_the_pipelines_branch_changed_everything(upstream, tmp_path):
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.v2_object, tag="v2"))
    assert build.changeset == []
    assert "changeset empty: everything counts as changed, every step runs" in build.said


def test_changed_files_when_before_is_not_in_the_repository(upstream, tmp_path):
    missing = "abcdef0123" * 4
    listed = ["docs/a.md", "docs/a.md", "bad\nname", "", 3, "src/é.py"]
    build = Build(
        tmp_path / "ws",
        job(upstream, commit=upstream.feature, before=missing, **{"changed-files": listed}),
    )
    assert build.changeset == ["docs/a.md", "src/é.py"]
    assert f"changeset: before {missing} is not in the repository; falling back" in build.said
    assert "changeset: the 2 file(s) the forge listed as changed" in build.said


def test_changed_files_when_there_is_no_merge_base(upstream, tmp_path):
    upstream.repo.git("checkout", "--quiet", "--orphan", "unrelated")
    orphan = upstream.repo.commit({"other.txt": "o\n"}, "no common history")
    fields = {"changed-files": ["other.txt"], "changed-refs": [upstream.main]}
    build = Build(tmp_path / "ws", job(upstream, commit=orphan, branch="unrelated", **fields))
    assert build.changeset == ["other.txt"]
    assert any(s.startswith(f"changeset: no merge base of {orphan}") for s in build.said)


def test_a_pinned_commit_without_a_pushed_branch_keeps_the_jobs_changeset(upstream, tmp_path):
    """A rerun of a build of a ref names its commit but no branch or tag: its changeset
    comes from what the original had (here its changed refs), not the merge base."""
    fields = {"changed-refs": [upstream.main]}
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.feature, **fields))
    assert not any("merge base" in s for s in build.said)
    assert build.changeset == ["main-only.txt"]


def test_changed_refs_when_nothing_else_answers(upstream, tmp_path):
    fields = {"before": "not-a-sha", "changed-files": [], "changed-refs": [upstream.main]}
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.feature, **fields))
    assert build.changeset == ["main-only.txt"]
    assert "changeset: before 'not-a-sha' is not a commit sha; falling back" in build.said


def test_a_failing_diff_falls_back(upstream, tmp_path, monkeypatch):
    real = checkout.Workspace.git

    def failing_diff(self, args, **options):
        if args[0] == "diff":
            raise checkout.CheckoutError("git diff failed (exit 128): broken")
        return real(self, args, **options)

    monkeypatch.setattr(checkout.Workspace, "git", failing_diff)
    fields = {"before": upstream.base, "changed-files": ["listed.txt"]}
    build = Build(tmp_path / "ws", job(upstream, commit=upstream.feature, **fields))
    assert build.changeset == ["listed.txt"]
    assert "changeset: git diff failed (exit 128): broken; falling back" in build.said


def test_without_a_commit_the_changeset_is_the_forges_list_then_the_changed_refs(
    upstream, tmp_path
):
    listed = Build(tmp_path / "a", job(upstream, **{"changed-files": ["x"], "changed-refs": []}))
    assert listed.changeset == ["x"]
    refs = Build(
        tmp_path / "b", job(upstream, **{"changed-refs": [f"{upstream.base}..{upstream.main}"]})
    )
    assert refs.changeset == ["main-only.txt"]


def test_a_job_of_today_is_checked_out_as_today(upstream: Upstream, tmp_path: Path):
    """No commit, ref, branch, tag, before or changed-files: the pipeline's ref, the same
    git commands as before, the changed refs' files."""
    today = {"pipeline": {"repository": upstream.url, "ref": "main"},
             "changed-refs": [upstream.feature]}  # fmt: skip
    build = Build(tmp_path / "ws", today)
    assert build.commit == build.head() == upstream.main
    assert [s for s in build.said if s.startswith("$ git")] == [
        "$ git init --quiet",
        f"$ git remote add origin {upstream.url}",
        "$ git clean -ffdxq",  # while the fetch runs
        "$ git fetch --no-write-fetch-head --prune --tags --force origin "
        "+refs/heads/*:refs/remotes/origin/*",
        # the branch's ref as the fetch wrote it, by name (no rev-parse first)
        "$ git checkout --quiet --force --detach refs/remotes/origin/main",
    ]
    assert sorted(build.changeset) == ["feature/y.txt", "src/a.py"]
    assert build.wanted.asked_ref == "main"
    assert build.wanted.attributes(build.commit) == {"vcs.ref.head.revision": upstream.main}
    # and through the function the worker called before
    said: list[str] = []
    assert checkout.checkout(upstream.url, "feature", tmp_path / "ws", said.append) == (
        upstream.feature
    )


def test_the_job_fields_as_the_worker_reads_them():
    base = {"pipeline": {"repository": "r", "ref": "main"}}
    wanted = checkout.Wanted.from_job(base)
    assert (wanted.commit, wanted.ref, wanted.branch, wanted.tag, wanted.before) == (None,) * 5
    assert (wanted.changed_files, wanted.changed_refs, wanted.asked_ref) == (None, (), "main")
    empty = {**base, "commit": None, "ref": "", "branch": "", "before": "0" * 40,
             "changed-files": None, "changed-refs": None}  # fmt: skip
    assert checkout.Wanted.from_job(empty) == wanted
    given = checkout.Wanted.from_job(
        {**base, "commit": "AB" * 20, "ref": "dev", "tag": "t1", "before": "CD" * 20}
    )
    assert (given.commit, given.before, given.asked_ref) == ("ab" * 20, "cd" * 20, "dev")
    assert checkout.Wanted.from_job({**base, "branch": "a\0b"}).branch is None


def test_clean_paths():
    paths = ["a", "a", "b c", "d\r", "e\u2028f", "", None, "g"]
    assert changes.clean(paths) == ["a", "b c", "g"]


def test_the_work_tree_is_exactly_the_commit_whatever_the_last_build_left(
    upstream: Upstream, tmp_path: Path
):
    """The clean runs while the fetch does, before the checkout: still nothing but the
    commit's files afterwards — untracked, ignored, modified, or in the way of a file
    the new commit tracks."""
    ws = tmp_path / "ws"
    Build(ws, job(upstream, ref="feature"))
    (ws / ".gitignore").write_text("*.log\n")  # not in any commit: its rule still applies
    (ws / "build.log").write_text("ignored\n")
    (ws / "out" / "deep").mkdir(parents=True)
    (ws / "out" / "deep" / "x.o").write_text("untracked\n")
    (ws / "src" / "a.py").write_text("modified by the build\n")
    (ws / "main-only.txt").write_text("untracked here, tracked by main\n")
    again = Build(ws, job(upstream, ref="main"))
    assert again.head() == upstream.main
    status = checkout.git(["status", "--porcelain", "--ignored"], ws, lambda _: None)
    assert status == ""
    files = sorted(
        str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    assert files == ["README", "main-only.txt", "src/a.py"]
    assert (ws / "main-only.txt").read_text() == "m\n"
    assert (ws / "src" / "a.py").read_text() == "a\n"


def test_a_branch_whose_ref_is_packed_is_found_as_before(upstream: Upstream, tmp_path: Path):
    """A branch's remote ref the fetch did not rewrite (packed by a gc, unchanged since)
    is asked of git, and its commit checked out; the commit read back either way."""
    ws = tmp_path / "ws"
    first = Build(ws, job(upstream, ref="feature"))
    assert first.commit == first.head() == upstream.feature
    checkout.git(["pack-refs", "--all", "--prune"], ws, lambda _: None)
    assert not (ws / ".git" / "refs" / "remotes" / "origin" / "main").exists()
    again = Build(ws, job(upstream, ref="main"))
    assert again.commit == again.head() == upstream.main
    assert f"$ git checkout --quiet --force --detach {upstream.main}" in again.said
    tag = Build(ws, job(upstream, ref="v2"))  # a tag: not a branch's ref
    assert tag.commit == tag.head() == upstream.main
