"""What a build stores and what its worker and server print keeps its secrets: an env
file value straddling the 64 KiB cut of a long line, a password or token in the
repository URL (which git is given on its command line)."""

from __future__ import annotations

import json
import sys

from bass.worker.procs import MAX_LINE
from tests.e2e.waiting import wait_until

TOKEN = "tok-4f9a1c2e8b7d"

LONG = r"""#!/usr/bin/env python3
import os, sys
token = os.environ["DEPLOY_TOKEN"]
start = 65536 - len(token) // 2
line = "x" * start + token + "y" * (70000 - start - len(token))
assert len(line) == 70000
print(line, flush=True)
"""


def test_a_secret_across_the_cut_of_a_long_line_is_masked(repo, serve, worker):
    repo.commit({"long.py": LONG})
    pipelines = {
        "long": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "long.py"]}
    }
    server = serve(pipelines, env_file=f"DEPLOY_TOKEN={TOKEN}\n")
    w = worker(server)
    job = server.webhook("long")

    def pieces() -> list[str] | None:
        bodies = [r["body"] for r in server.logs("long", job["number"])]
        long = [b for b in bodies if b.startswith("x") or b.startswith("y")]
        return long if sum(map(len, long)) >= 70_000 - len(TOKEN) + 3 else None

    long = wait_until(pieces, "the long line's pieces to be stored", context=w.output)
    start = MAX_LINE - len(TOKEN) // 2
    expected = "x" * start + "***" + "y" * (70_000 - start - len(TOKEN))
    assert "".join(long) == expected
    assert [len(p) for p in long] == [MAX_LINE, len(expected) - MAX_LINE]
    stored = json.dumps([list(r) for r in server.query("SELECT body, attributes FROM logs")])
    for part in (TOKEN, TOKEN[:6], TOKEN[-6:]):
        assert part not in stored
        assert part not in w.output() and part not in server.output()


def test_credentials_in_the_repository_url_are_never_shown(repo, serve, worker, tmp_path):
    password_url = "https://user:pw-secret-1@127.0.0.1:1/x.git"
    token_url = "https://tok-secret-2@127.0.0.1:1/y.git"
    pipelines = {
        "password": {"repository": password_url, "ref": "main", "exec": ["true"]},
        "token": {"repository": token_url, "ref": "main", "exec": ["true"]},
    }
    server = serve(pipelines)
    w = worker(server)
    # twice: a new workspace (`git remote add`), then the same one (`git remote set-url`)
    jobs = [server.webhook(name) for name in ("password", "token", "password")]

    def root_ended(job: dict) -> bool:
        rows = server.query(
            "SELECT end_ns FROM spans WHERE trace_id = ? AND parent_span_id = ''",
            job["trace-id"],
        )
        return bool(rows) and rows[0][0] > 0

    for job in jobs:
        wait_until(
            lambda job=job: root_ended(job), "the build's root span to end", context=w.output
        )

    bodies = [r["body"] for job in jobs for r in server.logs(job["pipeline"], job["number"])]
    assert "$ git remote add origin https://user:***@127.0.0.1:1/x.git" in bodies, bodies
    assert "$ git remote add origin https://***@127.0.0.1:1/y.git" in bodies, bodies
    assert "$ git remote set-url origin https://user:***@127.0.0.1:1/x.git" in bodies, bodies
    messages = [row[0] for row in server.query("SELECT status_message FROM spans")]
    assert any(m.startswith("checkout failed: git fetch failed") for m in messages), messages

    # nothing stored about the builds (but the pipeline's own config), nothing printed
    stored = json.dumps(
        [list(r) for r in server.query("SELECT * FROM logs")]
        + [list(r) for r in server.query("SELECT * FROM spans")]
        + [list(r) for r in server.query("SELECT message FROM builds")]
    )
    paths = [str(p) for p in (tmp_path / "workspace0").rglob("*")]
    assert any(p.endswith("https-user-127.0.0.1-1-x.git") for p in paths), paths
    for secret in ("pw-secret-1", "tok-secret-2"):
        assert secret not in stored
        assert not any(secret in p for p in paths), paths
        assert secret not in w.output(), w.output()
        assert secret not in server.output(), server.output()
