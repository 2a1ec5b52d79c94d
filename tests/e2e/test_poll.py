"""The git poller: a pipeline with `poll` builds when its branch moves."""

from __future__ import annotations

import sys

from tests.conftest import http
from tests.e2e.waiting import wait_until

JOB = r"""#!/usr/bin/env python3
from bass import build

build({"name": "p", "steps": [
    {"name": "docs", "if-changeset-matches": "^docs/", "exec": ["true"]},
    {"name": "src", "if-changeset-matches": "^src/", "exec": ["true"]},
]})
"""


def _builds(server, name: str) -> list[dict]:
    status, body = http("GET", f"{server.url}/api/pipelines/{name}/builds")
    assert status == 200, body
    return body["builds"]


def _checked_at(server, name: str) -> float | None:
    rows = server.query("SELECT checked_at FROM polls WHERE pipeline = ?", name)
    return rows[0][0] if rows else None


def _wait_for_whole_polls(server, name: str) -> None:
    """Until the poller has looked at `name`'s ref, from start to end, at least once
    from now. It records a look before it decides whether to build, so one new
    `checked_at` is not enough: a second one means the look before it has ended."""
    for _ in range(2):
        before = _checked_at(server, name)
        wait_until(
            lambda before=before: _checked_at(server, name) not in (None, before),
            f"the poller to look at {name} (checked_at {before})",
            context=server.output,
        )


def test_a_moved_branch_is_built_with_everything_since_the_last_poll(repo, serve, worker):
    first = repo.commit({"job.py": JOB, "README": "x\n"})
    pipeline = {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "job.py"],
                "poll": {"interval": "1s"}}  # fmt: skip
    server = serve({"polled": pipeline})
    worker(server)
    _wait_for_whole_polls(server, "polled")  # the first look records, it does not build
    assert _builds(server, "polled") == []
    assert server.query("SELECT commit_id FROM polls")[0][0] == first

    # two commits, and the branch moves over both at once: a look between two commits
    # on the branch itself would (rightly) build each of them on its own
    repo.git("checkout", "--quiet", "--detach")
    repo.commit({"src/a.c": "int a;\n"}, "one")
    last = repo.commit({"src/b.c": "int b;\n"}, "two")
    repo.git("update-ref", "refs/heads/main", last)
    (build,) = wait_until(lambda: _builds(server, "polled"), "a build", context=server.output)
    assert build["trigger"] == "poll"
    assert build["changed_refs"] == [f"{first}..{last}"]
    ended = server.wait_for(build["id"])
    assert ended["state"] == "ok"
    spans = {s["name"]: s for s in _flatten(server.build("polled", 1)["spans"])}
    assert spans["src"]["bass_status"] == "ok"  # both commits' files are in the changeset
    assert spans["docs"]["bass_status"] == "skipped"
    _wait_for_whole_polls(server, "polled")
    assert server.query("SELECT commit_id FROM polls")[0][0] == last
    assert len(_builds(server, "polled")) == 1, "an unchanged branch is not built again"


def _flatten(nodes: list[dict]) -> list[dict]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(_flatten(node["children"]))
    return out


def test_remote_head_reads_branches_tags_and_the_default_branch(repo):
    from bass.poller import remote_head

    first = repo.commit({"a": "1\n"})
    repo.git("tag", "light")
    repo.git("-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "annotated", "-m", "x")
    second = repo.commit({"a": "2\n"})
    assert remote_head(str(repo.path), "main") == second
    assert remote_head(str(repo.path), None) == second
    assert remote_head(str(repo.path), "light") == first
    assert remote_head(str(repo.path), "annotated") == first  # the commit, not the tag object
    assert remote_head(str(repo.path), "nope") is None
