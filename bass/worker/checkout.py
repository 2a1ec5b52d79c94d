"""Git for the worker: bring a workspace to a ref, list what the changed refs touched.

What it says (commands, git's output, errors) never shows a password or token given in
a repository URL: the command line carries the URL, and git may echo it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from bass.refs import redact_url, redact_urls, valid_changed_ref

Say = Callable[[str], None]


class CheckoutError(Exception):
    pass


def workspace_dir(root: str | Path, pipeline: str, repository: str) -> Path:
    """One workspace per pipeline and repository, as the prototype laid them out; named
    without the URL's password or token, which would show in every path (`--root`, a
    traceback, `ps`)."""
    escaped = re.sub(r"[^A-Za-z0-9._-]+", "-", redact_url(repository)).strip("-")
    escaped = escaped or "repository"
    return Path(root).resolve() / "pipeline" / pipeline / escaped


def git(args: list[str], cwd: Path, say: Say, *, timeout: float = 600) -> str:
    """Run git, logging the command and its output; raise CheckoutError on failure."""
    say(redact_urls("$ git " + " ".join(args)))
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except FileNotFoundError:
        raise CheckoutError("git is not installed on this worker") from None
    except subprocess.TimeoutExpired:
        raise CheckoutError(f"git {args[0]} took longer than {timeout:g} s") from None
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip():
            say(redact_urls(line))
    if result.returncode != 0:
        last = redact_urls((result.stderr.strip().splitlines() or ["(no output)"])[-1])
        raise CheckoutError(f"git {args[0]} failed (exit {result.returncode}): {last}")
    return result.stdout


def checkout(repository: str, ref: str | None, workdir: Path, say: Say) -> str:
    """Clone or update `workdir` to `ref` (branch, tag or commit; None: the remote's
    default branch), remove every untracked file; returns the commit checked out."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / ".git").exists():
        git(["init", "--quiet"], workdir, say)
        git(["remote", "add", "origin", repository], workdir, say)
    else:
        git(["remote", "set-url", "origin", repository], workdir, say)
    git(
        ["fetch", "--prune", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*"],
        workdir,
        say,
    )
    if ref:
        candidates = [f"refs/remotes/origin/{ref}", f"refs/tags/{ref}", ref]
    else:
        git(["remote", "set-head", "origin", "--auto"], workdir, say)
        candidates = ["refs/remotes/origin/HEAD"]
    commit = None
    for candidate in candidates:
        found = _rev_parse(workdir, candidate)
        if found:
            commit = found
            break
    if commit is None:
        raise CheckoutError(f"ref {ref or 'HEAD'!r} not found in {redact_url(repository)}")
    git(["checkout", "--quiet", "--force", "--detach", commit], workdir, say)
    git(["clean", "-ffdxq"], workdir, say)
    return commit


def _rev_parse(workdir: Path, rev: str) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


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
