"""A build's changeset: the files changed by what it builds, whole, wherever the forge
cut its list of commits short (GitLab sends 20, GitHub 2,048).

The first rule that gives an answer is the changeset (docs/contracts.md, "Job JSON"):

1. the job has `commit` and `before`: `git diff` between them (`before` fetched by its
   sha if the workspace lacks it);
2. the job has `commit`, a `branch` or `tag` and no `before` (a new branch or tag):
   `git diff` between the merge base of the commit and the pipeline's ref head
   (fetched now) and the commit;
3. the forge's `changed-files`;
4. `changed-refs`, as always: each commit against its first parent, or `a..b` (after
   the fetch of all branches and tags, if the workspace had only fetched `commit`).

A rule that cannot answer (`before` not in the repository, no merge base, git failing)
says why in the checkout step's log and the next is tried; the changeset never fails
the build. An empty changeset means everything changed: every step runs."""

from __future__ import annotations

from collections.abc import Iterable

from bass.worker.checkout import SHA, CheckoutError, Wanted, Workspace, changed_paths


def changeset(wanted: Wanted, workspace: Workspace, commit: str) -> list[str]:
    """The changed paths of a build whose workspace has `commit` checked out."""
    say = workspace.say
    paths = None
    if wanted.commit is not None:
        if wanted.before is not None:
            paths = _since_before(workspace, wanted.before, commit)
        elif wanted.branch or wanted.tag:  # a new branch or tag, not a pinned rerun
            paths = _since_merge_base(workspace, wanted.pipeline_ref, commit)
    if paths is None and wanted.changed_files:
        files = clean(wanted.changed_files)
        if files:
            say(f"changeset: the {len(files)} file(s) the forge listed as changed")
            paths = files
    if paths is None:
        if wanted.changed_refs and not workspace.fetched_all:
            try:  # the changed refs may be commits that a fetch by sha did not bring
                workspace.fetch_all()
            except CheckoutError as e:
                say(f"changeset: {e}")
        paths = changed_paths(list(wanted.changed_refs), workspace.workdir, say)
        if wanted.changed_refs:
            say(f"changeset: {len(paths)} file(s) changed by the changed refs")
    if not paths:
        say("changeset empty: everything counts as changed, every step runs")
    return paths


def _since_before(workspace: Workspace, before: str, commit: str) -> list[str] | None:
    if not SHA.fullmatch(before):
        workspace.say(f"changeset: before {before!r} is not a commit sha; falling back")
        return None
    try:
        base = workspace.fetch_commit(before)
    except CheckoutError as e:
        workspace.say(f"changeset: fetching before {before} failed ({e}); falling back")
        return None
    if base is None:
        workspace.say(f"changeset: before {before} is not in the repository; falling back")
        return None
    return _diff(workspace, base, commit, f"between {base[:12]} (before the push) and")


def _since_merge_base(workspace: Workspace, ref: str | None, commit: str) -> list[str] | None:
    name = ref or "the default branch"
    try:
        if not workspace.fetched_all:
            workspace.fetch_all()  # the pipeline's ref head as it is now
        head = workspace.resolve(ref)
    except CheckoutError as e:
        workspace.say(f"changeset: fetching {name} failed ({e}); falling back")
        return None
    if head is None:
        workspace.say(f"changeset: no merge base: {name} not found; falling back")
        return None
    try:
        base = workspace.git(["merge-base", head, commit]).strip()
    except CheckoutError as e:
        workspace.say(f"changeset: no merge base of {commit} and {name} ({e}); falling back")
        return None
    return _diff(workspace, base, commit, f"since {base[:12]}, the merge base with {name}, in")


def _diff(workspace: Workspace, base: str, commit: str, what: str) -> list[str] | None:
    try:
        output = workspace.git(
            ["diff", "--name-only", "--no-renames", "-z", base, commit, "--"], show_output=False
        )
    except CheckoutError as e:
        workspace.say(f"changeset: {e}; falling back")
        return None
    paths = clean(output.split("\0"))
    workspace.say(f"changeset: {len(paths)} file(s) changed {what} {commit[:12]}")
    return paths


def clean(paths: Iterable[object]) -> list[str]:
    """Paths as the changeset file can hold them, one a line: each once, in order; an
    empty one, a non-string or one a line break would split is left out."""
    kept = (p for p in paths if isinstance(p, str) and p and p.splitlines() == [p])
    return list(dict.fromkeys(kept))
