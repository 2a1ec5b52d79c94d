"""The first Quick-start command's core: `bass demo` builds every example, offline."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.conftest import free_port, http

EXPECTED = {
    "simple": "ok",
    "complex": "ok",
    "setup-teardown": "failed",  # on purpose: a failing test step, teardown still runs
    "changeset": "ok",
    "cwd": "ok",
    "json-pipeline": "ok",
    "shell": "ok",
}


def test_demo_builds_every_example(tmp_path):
    port = free_port()
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115
    demo = subprocess.Popen(
        [sys.executable, "-m", "bass", "demo", "--dir", str(tmp_path / "demo"),
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        states: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {}
            for name in EXPECTED:
                try:
                    status, body = http("GET", f"{url}/api/pipelines/{name}/builds", timeout=5)
                except OSError:
                    break
                if status == 200 and body["builds"]:
                    states[name] = body["builds"][0]["state"]
            if len(states) == len(EXPECTED) and all(
                s not in ("queued", "running") for s in states.values()
            ):
                break
            time.sleep(0.5)
        assert states == EXPECTED, (tmp_path / "demo.log").read_text()
        assert f"Dashboard: {url}/" in (tmp_path / "demo.log").read_text()
        status, page = http("GET", f"{url}/pipelines/setup-teardown/1")
        assert status == 200 and "FAILED: 2 tests failed" in page
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(30)
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()
    assert "Traceback" not in (tmp_path / "demo.log").read_text()
    assert (tmp_path / "demo" / "bass.db").exists()
    assert (tmp_path / "demo" / "repo" / ".git").is_dir()
