"""A worker's life around its builds: stopping, dying, sharing a host."""

from __future__ import annotations

import signal
import sys
import time

SIMPLE = "#!/usr/bin/env python3\nfrom bass import build\nbuild({'name': 's', 'exec': ['true']})\n"


def _pipelines(repo) -> dict:
    return {"s": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "s.py"]}}


def _wait_polling(w) -> None:
    """Until the worker has opened its long-poll (it logs just before)."""
    deadline = time.monotonic() + 20
    while "dequeuing from" not in w.output():
        assert time.monotonic() < deadline, w.output()
        time.sleep(0.1)
    time.sleep(0.5)


def test_an_idle_worker_stops_at_once_despite_its_long_poll(repo, serve, worker):
    repo.commit({"s.py": SIMPLE})
    server = serve(_pipelines(repo))
    w = worker(server)
    _wait_polling(w)
    started = time.monotonic()
    assert w.stop() == 0, w.output()
    # the long-poll lasts 20 s; the worker must not wait for it
    assert time.monotonic() - started < 10, w.output()


def test_a_job_is_never_handed_to_a_worker_that_died_while_polling(repo, serve, worker):
    repo.commit({"s.py": SIMPLE})
    server = serve(_pipelines(repo))
    dead = worker(server, name="dead")
    _wait_polling(dead)
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait()
    time.sleep(0.5)
    job = server.webhook("s")
    worker(server, name="alive")
    ended = server.wait_for(job["id"])
    assert ended["state"] == "ok", ended
    assert ended["worker"] == "alive"


def test_two_workers_cannot_share_a_workspace_root(repo, serve, worker, tmp_path):
    repo.commit({"s.py": SIMPLE})
    server = serve(_pipelines(repo))
    shared = tmp_path / "shared"
    first = worker(server, workspace=shared)
    _wait_polling(first)
    second = worker(server, workspace=shared)
    assert second.proc.wait(30) == 2
    assert "another worker uses the workspace root" in second.output()
    job = server.webhook("s")
    assert server.wait_for(job["id"])["state"] == "ok"
    assert first.proc.poll() is None


HANG = "#!/usr/bin/env python3\nimport time\nprint('working', flush=True)\ntime.sleep(120)\n"


def test_stopping_serve_cancels_the_local_workers_build(repo, serve, tmp_path):
    repo.commit({"s.py": SIMPLE, "hang.py": HANG})
    pipelines = {
        "hang": {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "hang.py"]}
    }
    server = serve(pipelines, extra=["--local-worker", "--workspace-root", str(tmp_path / "ws")])
    job = server.webhook("hang")
    deadline = time.monotonic() + 30
    while server.query("SELECT state FROM builds WHERE id = ?", job["id"])[0][0] != "running":
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    time.sleep(0.5)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0, server.output()
    # the build was cancelled, not left running for the lease to expire
    assert time.monotonic() - started < 40
    (state, message) = server.query("SELECT state, message FROM builds WHERE id = ?", job["id"])[0]
    assert state == "cancelled", (state, message, server.output())
    assert "Traceback" not in server.output()
