"""The git poller: a pipeline with `poll` builds when its branch moves."""

from __future__ import annotations

import sys
import time

from tests.conftest import http

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


def test_a_moved_branch_is_built_with_everything_since_the_last_poll(repo, serve, worker):
    first = repo.commit({"job.py": JOB, "README": "x\n"})
    pipeline = {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "job.py"],
                "poll": {"interval": "1s"}}  # fmt: skip
    server = serve({"polled": pipeline})
    worker(server)
    time.sleep(2.5)  # the poller has looked at least once: it records, it does not build
    assert _builds(server, "polled") == []
    assert server.query("SELECT commit_id FROM polls")[0][0] == first

    repo.commit({"src/a.c": "int a;\n"}, "one")
    last = repo.commit({"src/b.c": "int b;\n"}, "two")
    deadline = time.monotonic() + 20
    while not _builds(server, "polled"):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.2)
    (build,) = _builds(server, "polled")
    assert build["trigger"] == "poll"
    assert build["changed_refs"] == [f"{first}..{last}"]
    ended = server.wait_for(build["id"])
    assert ended["state"] == "ok"
    spans = {s["name"]: s for s in _flatten(server.build("polled", 1)["spans"])}
    assert spans["src"]["bass_status"] == "ok"  # both commits' files are in the changeset
    assert spans["docs"]["bass_status"] == "skipped"
    time.sleep(2.5)
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
