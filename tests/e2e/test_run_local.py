"""`bass run --local PIPELINE`: what a worker would run for the pipeline — its `exec`
in its `cwd`, the env file's variables, the standard arguments, the changeset of
`--changed-refs` or `--since` — run in this working copy, with no queue or worker; it
exits with the build's status, and is a local build on a `bass serve` that answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Repo, http
from tests.e2e.waiting import wait_until

JOB = """\
import os, sys
from bass import build

def record():
    changeset = open(os.environ["BASS_CHANGESET"]).read().split()
    with open(os.environ["RECORD"], "w") as f:
        f.write(repr({"cwd": os.getcwd(), "greeting": os.environ.get("GREETING"),
                      "pipeline": os.environ["BASS_PIPELINE"], "changeset": changeset,
                      "argv": sys.argv[1:]}))

build({"name": "app", "steps": [
    {"name": "record", "exec": record},
    {"name": "docs", "exec": "test -n \\"$GREETING\\"", "if-changeset-matches": "^docs/"},
    {"name": "tests", "exec": "false", "if-changeset-matches": "^src/"},
]})
"""


def _run_local(
    repo: Repo, pipelines: Path, record: Path, *flags: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bass", "run", "--local", "app", "-f", str(pipelines),
         "-e", str(pipelines.parent / "orchestrator.env"), *flags],
        cwd=repo.path, env={**os.environ, "RECORD": str(record)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_run_local_runs_the_pipelines_entry_as_a_worker_would_and_exits_with_its_status(
    repo: Repo, tmp_path: Path, serve
) -> None:
    first = repo.commit({"ci/job.py": JOB, "docs/guide.md": "1\n", "src/app.py": "1\n"})
    docs = repo.commit({"docs/guide.md": "2\n"})
    pipelines = {"app": {"repository": str(repo.path), "cwd": "ci",
                         "exec": ["python3", "job.py"]}}  # fmt: skip
    server = serve(pipelines, env_file="GREETING=hello-from-env\n")
    files = server.home / "orchestrator-pipelines.json"
    record = tmp_path / "record"

    done = _run_local(repo, files, record, "--server", server.url, "--changed-refs", docs)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = eval(record.read_text())  # noqa: S307 (our own repr)
    assert seen["cwd"] == str(repo.path / "ci")
    assert seen["greeting"] == "hello-from-env"
    assert seen["pipeline"] == "app"
    assert seen["changeset"] == ["docs/guide.md"]
    argv = seen["argv"]
    for flag in ("--service-name", "--trace-id", "--root-span-id", "--traces-endpoint",
                 "--logs-endpoint", "--changeset", "--root"):  # fmt: skip
        assert flag in argv
    assert argv[argv.index("--root") + 1] == str(repo.path)
    assert argv[argv.index("--service-name") + 1] == "bass:pipeline:app"
    assert "⊘ app/tests skipped (changeset)" in done.stdout
    assert "1 skipped, 0 failed" in done.stdout
    trace_id = argv[argv.index("--trace-id") + 1]

    def build(number: int) -> dict | None:
        status, body = http("GET", f"{server.url}/api/pipelines/app/builds/{number}")
        ended = status == 200 and body["build"]["state"] not in ("queued", "running")
        return body if ended else None

    ok = wait_until(lambda: build(1), "the local build #1 to end", context=server.output)
    assert (ok["build"]["trigger"], ok["build"]["state"]) == ("local", "ok")
    assert ok["build"]["trace_id"] == trace_id
    assert ok["spans"][0]["attributes"]["bass.changeset"] == ["docs/guide.md"]

    # --since: the working tree against a commit; src/ changed, so the failing step runs
    (repo.path / "src" / "app.py").write_text("2\n")
    done = _run_local(repo, files, record, "--server", server.url, "--since", first)
    assert done.returncode == 1, done.stdout + done.stderr
    assert sorted(eval(record.read_text())["changeset"]) == ["docs/guide.md", "src/app.py"]  # noqa: S307
    assert "✗ app/tests" in done.stdout
    failed = wait_until(lambda: build(2), "the local build #2 to end", context=server.output)
    assert failed["build"]["state"] == "failed"


def test_run_local_offline_sends_nothing_and_says_so(repo: Repo, tmp_path: Path) -> None:
    repo.commit({"ci/job.py": JOB, "docs/guide.md": "1\n", "src/app.py": "1\n"})
    home = tmp_path / "home"
    home.mkdir()
    pipelines = home / "orchestrator-pipelines.json"
    pipelines.write_text(json.dumps({"app": {"repository": str(repo.path), "cwd": "ci",
                                             "exec": "python3 job.py"}}))  # fmt: skip
    (home / "orchestrator.env").write_text("GREETING=hi-there\n")
    done = _run_local(repo, pipelines, tmp_path / "record", "--offline")
    assert done.returncode == 1, done.stdout + done.stderr  # everything ran: tests fails
    assert "trace:" not in done.stdout  # the builder reported to nothing
    assert "dropped" not in done.stderr
    assert "✗ app/tests" in done.stdout and "✓ app/docs" in done.stdout
