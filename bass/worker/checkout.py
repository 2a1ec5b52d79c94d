"""Git for the worker: bring a workspace to what a job asks for (a commit, a ref, the
pipeline's ref), list what the changed refs touched.

What it says (commands, git's output, errors) never shows a password or token given in
a repository URL: the command line carries the URL, and git may echo it."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bass.refs import REF, redact_url, redact_urls, valid_changed_ref

Say = Callable[[str], None]

# a full commit (or annotated tag) sha: SHA-1 or SHA-256
SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def git_environment(
    environ: Mapping[str, str] = os.environ, *, auto_maintenance: bool = False
) -> dict[str, str]:
    """The environment of a git command of the worker: no prompt, messages in English,
    and, unless `auto_maintenance`, no automatic maintenance after a fetch (a `gc
    --auto` on the way to the build's first command; the worker runs it after the
    build, `maintain`). A `-c` would show in every logged command: the setting goes
    beside those the environment may already give (GIT_CONFIG_COUNT, git 2.31+; an
    older git ignores it and gc-s in the fetch, as before)."""
    env = {**environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    if auto_maintenance:
        return env
    try:
        count = max(0, int(environ.get("GIT_CONFIG_COUNT") or 0))
    except ValueError:
        count = 0
    env[f"GIT_CONFIG_KEY_{count}"] = "maintenance.auto"
    env[f"GIT_CONFIG_VALUE_{count}"] = "false"
    env["GIT_CONFIG_COUNT"] = str(count + 1)
    return env


class CheckoutError(Exception):
    pass


def workspace_dir(root: str | Path, pipeline: str, repository: str) -> Path:
    """One workspace per pipeline and repository, as the prototype laid them out; named
    without the URL's password or token, which would show in every path (`--root`, a
    traceback, `ps`)."""
    escaped = re.sub(r"[^A-Za-z0-9._-]+", "-", redact_url(repository)).strip("-")
    escaped = escaped or "repository"
    return Path(root).resolve() / "pipeline" / pipeline / escaped


def git(
    args: list[str],
    cwd: Path,
    say: Say,
    *,
    timeout: float = 600,
    show_output: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    """Run git, logging the command and its output (its stdout only if `show_output`);
    raise CheckoutError on failure."""
    return Git(args, cwd, say, env=env).result(timeout=timeout, show_output=show_output)


class Git:
    """A git command started: its result waited for (and logged) later, so that another
    can run meanwhile."""

    def __init__(self, args: list[str], cwd: Path, say: Say, *, env: dict[str, str] | None = None):
        say(redact_urls("$ git " + " ".join(args)))
        self.args, self.say = args, say
        try:
            self.proc = subprocess.Popen(
                ["git", *args],
                cwd=cwd,
                env=env if env is not None else git_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
        except FileNotFoundError:
            raise CheckoutError("git is not installed on this worker") from None

    def result(self, *, timeout: float = 600, show_output: bool = True) -> str:
        """Its standard output, once it ended; CheckoutError if it failed."""
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise CheckoutError(f"git {self.args[0]} took longer than {timeout:g} s") from None
        for line in ((stdout if show_output else "") + stderr).splitlines():
            if line.strip():
                self.say(redact_urls(line))
        if self.proc.returncode != 0:
            last = redact_urls((stderr.strip().splitlines() or ["(no output)"])[-1])
            raise CheckoutError(f"git {self.args[0]} failed (exit {self.proc.returncode}): {last}")
        return stdout


def _text(value: Any) -> str | None:
    """A job field as text: absent, null and "" are None."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Wanted:
    """What a job asks to build and what it says changed (docs/contracts.md, "Job
    JSON"). The fields a server may leave out are None when absent, null or empty."""

    repository: str
    pipeline_ref: str | None  # the pipeline's `ref` (None: the remote's default branch)
    commit: str | None = None  # the sha to build (a tag object's too), before any ref
    ref: str | None = None  # a branch, tag or commit to build when there is no `commit`
    branch: str | None = None  # the pushed branch's name
    tag: str | None = None  # the pushed tag's name
    before: str | None = None  # what the branch pointed at before the push
    changed_files: tuple[str, ...] | None = None  # the forge's list, None without one
    changed_refs: tuple[str, ...] = ()

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> Wanted:
        """Read leniently: a field that cannot be used is refused where it is used
        (`check_out`, `changes.changeset`), with a message in the checkout's log."""
        pipeline = job["pipeline"]
        commit, before = _text(job.get("commit")), _text(job.get("before"))
        if commit and re.fullmatch(SHA.pattern, commit, re.IGNORECASE):
            commit = commit.lower()
        if before and re.fullmatch(r"0+", before):
            before = None  # the forges' "no commit before": a new branch
        files = job.get("changed-files")
        return cls(
            repository=pipeline["repository"],
            pipeline_ref=_text(pipeline.get("ref")),
            commit=commit,
            ref=_text(job.get("ref")),
            branch=_name(job.get("branch")),
            tag=_name(job.get("tag")),
            before=before.lower() if before else None,
            changed_files=tuple(files) if isinstance(files, list) else None,
            changed_refs=tuple(job.get("changed-refs") or ()),
        )

    @property
    def asked_ref(self) -> str | None:
        """The ref asked for: the job's, else the pipeline's (`BASS_REF`)."""
        return self.ref or self.pipeline_ref

    def attributes(self, commit: str) -> dict[str, str]:
        """The checkout span's attributes once `commit` is checked out."""
        attributes = {"vcs.ref.head.revision": commit}
        if self.branch or self.tag:
            attributes["vcs.ref.head.name"] = self.branch or self.tag or ""
            attributes["vcs.ref.head.type"] = "branch" if self.branch else "tag"
        return attributes


def _name(value: Any) -> str | None:
    """A branch or tag name as the build's environment may carry it."""
    text = _text(value)
    return text if text is not None and "\0" not in text else None


class Workspace:
    """A pipeline's clone of its repository, and the fetches made in it for one build:
    the fetch of all branches and tags is made at most once."""

    def __init__(self, repository: str, workdir: Path, say: Say):
        self.repository = repository
        self.workdir = workdir
        self.say = say
        self.fetched_all = False

    @property
    def _fetched_from(self) -> Path:
        """Where the URL origin was last fetched from is kept (the clone's own file)."""
        return self.workdir / ".git" / "bass-fetched-from"

    def open(self) -> None:
        """Create the clone, or point the existing one at the repository (unless the
        last fetch was from that very URL)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.workdir / ".git").exists():
            self.git(["init", "--quiet"])
            self.git(["remote", "add", "origin", self.repository])
            return
        try:
            if self._fetched_from.read_bytes() == os.fsencode(self.repository):
                return
        except OSError:
            pass
        self._fetched_from.unlink(missing_ok=True)
        self.git(["remote", "set-url", "origin", self.repository])

    def _fetched(self) -> None:
        """A fetch from origin worked: its URL is the repository's."""
        partial = self._fetched_from.with_suffix(".tmp")
        partial.write_bytes(os.fsencode(self.repository))
        partial.replace(self._fetched_from)

    def git(self, args: list[str], **options: Any) -> str:
        return git(args, self.workdir, self.say, **options)

    def fetch_all(self) -> None:
        self.git(
            ["fetch", "--no-write-fetch-head", "--prune", "--tags", "--force", "origin",
             "+refs/heads/*:refs/remotes/origin/*"]
        )  # fmt: skip
        self.fetched_all = True
        self._fetched()

    def commit_of(self, rev: str) -> str | None:
        """The commit `rev` names here (a tag peeled), or None."""
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            cwd=self.workdir,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def fetch_commit(self, sha: str) -> str | None:
        """The commit a full sha names (an annotated tag's: the tagged commit), fetched
        if the workspace lacks it: by its sha (`git fetch origin SHA`), and if the
        server refuses that, with all branches and tags. None if it is not there."""
        found = self.commit_of(sha)
        if found is not None:
            return found
        try:
            self.git(["fetch", "origin", sha])
            self._fetched()
        except CheckoutError as e:
            if self.fetched_all:
                return None
            self.say(f"fetching {sha} by its sha failed ({e}); fetching all branches and tags")
            self.fetch_all()
        return self.commit_of(sha)

    def resolve(self, ref: str | None) -> str | None:
        """The commit of a ref as fetched: a remote branch, a tag or a commit; None: the
        remote's default branch."""
        if ref:
            candidates = [f"refs/remotes/origin/{ref}", f"refs/tags/{ref}", ref]
        else:
            self.git(["remote", "set-head", "origin", "--auto"])
            candidates = ["refs/remotes/origin/HEAD"]
        for candidate in candidates:
            found = self.commit_of(candidate)
            if found:
                return found
        return None

    def clean(self) -> Git:
        """Start removing every untracked file (and ignored one), while the fetch runs:
        what `check_out` then overwrites or removes is the checkout's own."""
        return Git(["clean", "-ffdxq"], self.workdir, self.say)

    def fetched_branch(self, ref: str) -> str | None:
        """`refs/remotes/origin/REF` when the fetch left it as a file of its own (a loose
        ref: a fetch writes so each ref it updates), to be checked out by name, without
        asking git for its commit first; else None (then `resolve`)."""
        name = f"refs/remotes/origin/{ref}"
        return name if (self.workdir / ".git" / name).is_file() else None

    def check_out(self, target: str) -> str:
        """Check `target` (a commit, or a ref) out detached; returns the commit."""
        self.git(["checkout", "--quiet", "--force", "--detach", target])
        if SHA.fullmatch(target):
            return target
        try:  # a detached HEAD's file holds its commit
            head = (self.workdir / ".git" / "HEAD").read_text().strip()
        except OSError:
            head = ""
        if SHA.fullmatch(head):
            return head
        return self.git(["rev-parse", "HEAD"], show_output=False).strip()


def maintain(workdir: Path, timeout: float = 600) -> str | None:
    """What a fetch would otherwise do on the way to a build: `git maintenance run
    --auto` (a gc when the clone has gathered enough loose objects or packs). Run after
    the build; None, or why it failed."""
    if not (workdir / ".git").is_dir():
        return None
    try:
        git(["maintenance", "run", "--auto", "--quiet"], workdir, lambda _line: None,
            timeout=timeout, env=git_environment(auto_maintenance=True))  # fmt: skip
    except CheckoutError as e:
        return str(e)
    return None


def check_out(wanted: Wanted, workspace: Workspace) -> str:
    """Bring the workspace to what the job asks for, exactly: its `commit` (fetched by
    its sha, else with all branches and tags; an annotated tag's sha builds the tagged
    commit), else its `ref`, else the pipeline's `ref`. Returns the commit checked out;
    raises CheckoutError when that cannot be found, never building something else."""
    workspace.open()
    cleaning = workspace.clean()
    try:
        commit = _fetched_commit(wanted, workspace)
    except BaseException:
        with contextlib.suppress(CheckoutError):  # the fetch's error is the one to tell
            cleaning.result()
        raise
    cleaning.result()
    return workspace.check_out(commit)


def _fetched_commit(wanted: Wanted, workspace: Workspace) -> str:
    """The commit to check out — or, for a branch whose ref the fetch wrote, that ref."""
    where = redact_url(wanted.repository)
    if wanted.commit is not None:
        if not SHA.fullmatch(wanted.commit):
            raise CheckoutError(f"commit {wanted.commit!r} is not a full commit sha")
        commit = workspace.fetch_commit(wanted.commit)
        if commit is None:
            raise CheckoutError(
                f"commit {wanted.commit} not found in {where}: the server gave no such "
                "commit by its sha, nor in any branch or tag"
            )
    else:
        if wanted.ref is not None and not REF.match(wanted.ref):
            raise CheckoutError(f"ref {wanted.ref!r} is not a branch, tag or commit name")
        workspace.fetch_all()
        branch = workspace.fetched_branch(wanted.asked_ref) if wanted.asked_ref else None
        found = branch or workspace.resolve(wanted.asked_ref)
        if found is None:
            raise CheckoutError(f"ref {wanted.asked_ref or 'HEAD'!r} not found in {where}")
        commit = found
    return commit


def checkout(repository: str, ref: str | None, workdir: Path, say: Say) -> str:
    """Clone or update `workdir` to `ref` (branch, tag or commit; None: the remote's
    default branch), remove every untracked file; returns the commit checked out."""
    return check_out(Wanted(repository, ref), Workspace(repository, workdir, say))


def changed_paths(changed_refs: list[str], workdir: Path, say: Say) -> list[str]:
    """The files that the changed refs touched: a commit's own changes (against its
    first parent), or `a..b` for everything between two commits. A ref that is not in
    the repository is reported and ignored."""
    paths: dict[str, None] = {}
    for ref in changed_refs:
        if not valid_changed_ref(ref):
            say(f"changed ref {ref!r} ignored: not a ref name")
            continue
        if ".." in ref:
            old, _, new = ref.partition("..")
            args = ["diff", "--name-only", old, new]
        else:
            args = [
                "diff-tree",
                "-r",
                "--no-commit-id",
                "--name-only",
                "--root",
                "-m",
                "--first-parent",
                ref,
            ]
        try:
            output = git(args, workdir, lambda _line: None)
        except CheckoutError as e:
            say(f"changed ref {ref!r} ignored: {e}")
            continue
        for line in output.splitlines():
            if line.strip():
                paths[line.strip()] = None
    return list(paths)
