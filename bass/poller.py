"""The git poller: for each pipeline with `"poll": {"interval": …}`, ask the remote
(`git ls-remote`) where its ref points; when that moved, queue a build whose changed
refs are `old..new` (so the changeset is everything in between).

The first look at a ref only records it: starting bass (or adding `poll`) does not
build every pipeline at once. A ref that is a commit id never moves and is not polled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import time
from typing import Any

from bass.orchestrator import NotBuilt, Orchestrator, UnknownPipeline
from bass.store import polls
from bass.store.builds import Source

log = logging.getLogger("bass.poller")

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def remote_head(repository: str, ref: str | None, timeout: float = 60) -> str | None:
    """The commit `ref` (a branch or tag; None: the default branch) points to."""
    patterns = ["HEAD"] if not ref else [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}",
                                         f"refs/tags/{ref}"]  # fmt: skip
    result = subprocess.run(
        ["git", "ls-remote", "--", repository, *patterns],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr else "failed")
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():  # "<commit>\t<ref>"
        commit, _, name = line.partition("\t")
        if name:
            found[name] = commit
    for pattern in patterns:  # a peeled tag (^{}) is the commit an annotated tag names
        if pattern in found:
            return found[pattern]
    return None


async def poll_once(orchestrator: Orchestrator, name: str, pipeline: dict[str, Any]) -> bool:
    """Look at one pipeline's ref; returns True when a build was queued."""
    ref = pipeline.get("ref")
    try:
        commit = await asyncio.to_thread(remote_head, pipeline["repository"], ref)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log.warning("%s: polling %s failed: %s", name, pipeline["repository"], e)
        return False
    if commit is None:
        log.warning("%s: ref %r not found in %s", name, ref or "HEAD", pipeline["repository"])
        return False
    db = orchestrator.db
    seen = await db.aread(polls.last_seen, name)
    await db.awrite(polls.record, name, ref=ref or "HEAD", commit=commit, now=time.time())
    if seen is None or seen["commit_id"] == commit or seen["ref"] != (ref or "HEAD"):
        return False
    try:
        build = await orchestrator.enqueue(
            name,
            trigger="poll",
            changed_refs=[f"{seen['commit_id']}..{commit}"],
            source=Source(commit=commit, before=seen["commit_id"]),
        )
    except (UnknownPipeline, NotBuilt):
        return False
    log.info("%s: %s moved to %s, build #%d queued", name, ref or "HEAD", commit[:12],
             build["number"])  # fmt: skip
    return True


async def poll_forever(orchestrator: Orchestrator) -> None:
    """Poll each polled pipeline at its own interval."""
    due: dict[str, float] = {}
    while True:
        now = time.monotonic()
        for name, pipeline in orchestrator.config.pipelines.items():
            poll = pipeline.get("poll")
            if not poll or _COMMIT.match(pipeline.get("ref") or ""):
                continue
            if due.get(name, 0.0) <= now:
                due[name] = now + poll["interval"]
                try:
                    await poll_once(orchestrator, name, pipeline)
                except Exception:
                    log.exception("%s: polling failed", name)
        await asyncio.sleep(max(0.05, min([d - time.monotonic() for d in due.values()] + [5.0])))
