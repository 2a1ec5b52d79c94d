"""A worker's life around its builds: stopping, dying, sharing a host."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.tap import Exchange, Tap
from tests.e2e.waiting import wait_until

SIMPLE = "#!/usr/bin/env python3\nfrom bass import build\nbuild({'name': 's', 'exec': ['true']})\n"


def _pipelines(repo) -> dict:
    return {"s": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "s.py"]}}


@pytest.fixture
def tap() -> Iterator:
    """tap(server) starts a Tap in front of that server; every one is closed after the
    test (after its workers: this fixture is set up before `worker`)."""
    started: list[Tap] = []

    def start(server) -> Tap:
        started.append(Tap(server))
        return started[-1]

    yield start
    for t in started:
        t.close()


def _wait_polling(t: Tap, w, server) -> Exchange:
    """Until the worker sits in its long-poll: its dequeue reached bass serve through
    the Tap, and no answer has come back."""
    return wait_until(
        t.open_long_poll,
        "the worker's long-poll to be open at bass serve",
        context=lambda: f"worker:\n{w.output()}\nserve:\n{server.output()}",
    )


def test_an_idle_worker_stops_at_once_despite_its_long_poll(repo, tap, serve, worker):
    repo.commit({"s.py": SIMPLE})
    server = serve(_pipelines(repo))
    t = tap(server)
    w = worker(t)
    poll = _wait_polling(t, w, server)
    assert w.stop() == 0, w.output()
    wait_until(lambda: poll.client_gone, "the Tap to see the worker hang up", context=w.output)
    # bass serve answers a long-poll after 20 s (or with a job); the worker must not
    # wait for that: it hung up on its long-poll before any answer came back
    assert poll.response == b"", (bytes(poll.response), w.output())


def test_a_job_is_never_handed_to_a_worker_that_died_while_polling(repo, tap, serve, worker):
    repo.commit({"s.py": SIMPLE})
    server = serve(_pipelines(repo))
    t = tap(server)
    dead = worker(t, name="dead")
    poll = _wait_polling(t, dead, server)
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait()
    # the hang-up has reached bass serve: from here on it must not hand "dead" a job
    wait_until(lambda: poll.client_gone, "the Tap to pass the dead worker's hang-up on")
    job = server.webhook("s")
    worker(server, name="alive")
    ended = server.wait_for(job["id"])
    assert ended["state"] == "ok", ended
    assert ended["worker"] == "alive"


def test_two_workers_cannot_share_a_workspace_root(repo, tap, serve, worker, tmp_path):
    repo.commit({"s.py": SIMPLE})
    server = serve(_pipelines(repo))
    shared = tmp_path / "shared"
    t = tap(server)
    first = worker(t, workspace=shared)
    _wait_polling(t, first, server)  # it dequeues: it holds the workspace root's lock
    second = worker(server, workspace=shared)
    assert second.proc.wait(60) == 2, second.output()
    assert "another worker uses the workspace root" in second.output()
    job = server.webhook("s")
    assert server.wait_for(job["id"])["state"] == "ok"
    assert first.proc.poll() is None


# prints its pid, so the test can tell whether the build's process outlived serve
HANG = (
    "#!/usr/bin/env python3\nimport os, time\n"
    "print('working', os.getpid(), flush=True)\ntime.sleep(120)\n"
)


def _running(pid: int, marker: str) -> bool:
    """Whether process `pid` runs and is the one whose command line has `marker` (where
    /proc tells; a zombie's command line is empty)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self/cmdline").exists():
        try:
            return marker in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def test_stopping_serve_cancels_the_local_workers_build(repo, serve, tmp_path):
    repo.commit({"s.py": SIMPLE, "hang.py": HANG})
    pipelines = {
        "hang": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "hang.py"]}
    }
    server = serve(pipelines, extra=["--local-worker", "--workspace-root", str(tmp_path / "ws")])
    job = server.webhook("hang")

    def entry_pid() -> int | None:
        for record in server.logs("hang", job["number"]):
            if record["body"].startswith("working "):
                return int(record["body"].split()[1])
        return None

    pid = wait_until(
        entry_pid, "the build entry to run (its 'working' line)", context=server.output
    )
    assert server.query("SELECT state FROM builds WHERE id = ?", job["id"])[0][0] == "running"
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0, server.output()
    # the build was cancelled, not left running for the lease to expire: its process is
    # gone, the local worker ended before serve stopped waiting for it, the row says so
    outlived = _running(pid, "hang.py")
    if outlived:
        os.kill(pid, signal.SIGKILL)
    assert not outlived, f"the build's process {pid} outlived bass serve\n{server.output()}"
    assert re.search(r"worker local:\d+ stopped", server.output()), server.output()
    (state, message) = server.query("SELECT state, message FROM builds WHERE id = ?", job["id"])[0]
    assert state == "cancelled", (state, message, server.output())
    assert message.startswith("cancelled"), message
    assert "Traceback" not in server.output()
    # the worker reported it itself, with its telemetry, while serve still listened
    assert message == "cancelled: the worker was stopped", (message, server.output())
    assert "could not be reported" not in server.output()
    assert "telemetry: dropped" not in server.output()
