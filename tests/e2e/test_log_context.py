"""A real `bass serve` and `bass worker` run a build: every line either logs about that
build (`NAME #N …`) carries its pipeline, number, id and trace id, in the text format
and in JSON (`--log-format json`, where every line parses), and neither log holds a
value of the env file."""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.e2e.waiting import wait_until

PIPELINE = "ctx-smoke"
SECRET = "s3cr3t-deploy-v4lue"
JOB = "#!/usr/bin/env python3\nprint('building', flush=True)\n"


def _run_one_build(repo, serve, worker, fmt: str) -> tuple[dict[str, Any], str, str]:
    """(the webhook's answer, serve's log, the worker's log) once the build has ended and
    both processes have stopped."""
    repo.commit({"job.py": JOB})
    pipelines = {PIPELINE: {"repository": str(repo.path), "exec": [sys.executable, "job.py"]}}
    server = serve(pipelines, env_file=f"DEPLOY_TOKEN={SECRET}\n", extra=["--log-format", fmt])
    w = worker(server, extra=["--log-format", fmt])
    queued = server.webhook(PIPELINE)
    assert server.wait_for(queued["id"])["state"] == "ok", server.output()
    wait_until(
        lambda: f"{PIPELINE} #1: ok" in w.output(),
        "the worker to log the build's end",
        context=w.output,
    )
    assert w.stop() == 0, w.output()
    server.stop()
    return queued, server.output(), w.output()


def _about_the_build(messages: list[str]) -> None:
    """Both processes logged the build's life: the lines this test checks exist."""
    for said in ("queued", "claimed by", "starting", ": ok"):
        assert any(said in m for m in messages), (said, messages)


def test_json_lines_parse_and_carry_the_build(repo, serve, worker) -> None:
    queued, serve_log, worker_log = _run_one_build(repo, serve, worker, "json")
    about = []
    for output in (serve_log, worker_log):
        assert SECRET not in output
        for text in output.splitlines():
            line = json.loads(text)  # every line, not only the build's
            assert isinstance(line, dict), text
            assert {"time", "level", "logger", "message"} <= line.keys(), text
            if f"{PIPELINE} #1" in line["message"]:
                about.append(line["message"])
                assert line.get("pipeline") == PIPELINE, text
                assert line.get("build_number") == 1, text
                assert line.get("build_id") == queued["id"], text
                assert line.get("trace_id") == queued["trace-id"], text
    _about_the_build(about)


def test_text_lines_end_with_the_build(repo, serve, worker) -> None:
    queued, serve_log, worker_log = _run_one_build(repo, serve, worker, "text")
    suffix = f" [{PIPELINE} #1 build={queued['id']} trace={queued['trace-id']}]"
    about = []
    for output in (serve_log, worker_log):
        assert SECRET not in output
        for line in output.splitlines():
            if f"{PIPELINE} #1" in line:
                about.append(line)
                assert line.endswith(suffix), line
    _about_the_build(about)
