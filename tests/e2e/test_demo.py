"""The first Quick-start command's core: `bass demo` builds every example, offline."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest import free_port, http
from tests.e2e.waiting import wait_until

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
         "--port", str(port), "--grpc-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def output() -> str:
        return (tmp_path / "demo.log").read_text(errors="replace")

    def ended() -> dict[str, str] | None:
        """Every example's latest build's state, once all have ended and the demo
        has announced its dashboard (after it queued the builds)."""
        if demo.poll() is not None:
            raise AssertionError(f"bass demo exited with {demo.returncode}\n{output()}")
        states: dict[str, str] = {}
        for name in EXPECTED:
            try:
                status, body = http("GET", f"{url}/api/pipelines/{name}/builds", timeout=5)
            except OSError:
                return None  # not listening yet
            if status != 200 or not body["builds"]:
                return None
            states[name] = body["builds"][0]["state"]
        if any(s in ("queued", "running") for s in states.values()):
            return None
        return states if f"Dashboard: {url}/" in output() else None

    try:
        states = wait_until(ended, "every example's build to end", timeout=120, context=output)
        assert states == EXPECTED, output()
        assert f"Dashboard: {url}/" in output()
        status, page = http("GET", f"{url}/pipelines/setup-teardown/1")
        assert status == 200 and "FAILED: 2 tests failed" in page
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(30)
        log.close()
    assert code == 0, output()
    assert "Traceback" not in output()
    assert (tmp_path / "demo" / "bass.db").exists()
    assert (tmp_path / "demo" / "repo" / ".git").is_dir()
