"""A worker killed with `kill -9` leaves nothing of its build running: not the entry,
not the builder's steps (each in a session of its own), not a process that left its
step's session or cleared its environment. Its watchdog kills them at once; with the
watchdog killed too, the next worker on the workspace root kills them before its
first build. Processes are named by pid and start time, read from /proc: a pid reused
by some other process never counts as a survivor."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="the kill tests read Linux /proc"
)

JOB = r'''#!/usr/bin/env python3
import os, shutil, sys
from bass import build

# every process writes its pid file, whole (a rename), once it runs
NOTE = """
import os, sys
def note(name, pid=None):
    path = os.path.join(os.environ["PIDS"], name)
    with open(path + ".tmp", "w") as f:
        f.write(str(pid or os.getpid()))
    os.replace(path + ".tmp", path + ".pid")
"""
os.environ.update({
    "PIDS": "@PIDS@",
    "PY": sys.executable,
    # `note NAME PID` in a shell
    "NOTE": NOTE + "note(sys.argv[1], int(sys.argv[2]))",
    # leaves its step's session, keeps the marker in its environment
    "ESCAPE": NOTE + "import time; os.setsid(); note('escaped'); time.sleep(300)",
    # stays in its step's session, leaves the process group, clears its environment
    "SCRUB": NOTE + "os.setpgid(0, 0); note('scrubbed'); "
             f"os.execve({shutil.which('sleep')!r}, ['sleep', '300'], {{}})",
})
exec(NOTE)
note("entry")
SH = 'note() { "$PY" -c "$NOTE" "$1" "$2"; }; '
build({"name": "kill-me", "order": "unordered", "steps": [
    {"name": "sleeper", "exec": SH + "sleep 300 & note sleep $!; note sleeper-sh $$; wait"},
    {"name": "python", "exec": [sys.executable, "-c",
                                NOTE + "import time; note('python'); time.sleep(300)"]},
    {"name": "background", "exec": SH + "note background-sh $$; sleep 300 & note background $!; "
                                   '"$PY" -c "$ESCAPE" & "$PY" -c "$SCRUB" & wait'},
]})
'''

# the pid files, once all the build's processes run
NAMES = ("entry", "sleeper-sh", "sleep", "python", "background-sh", "background", "escaped",
         "scrubbed")  # fmt: skip

# a build that leaves a daemon behind (a session of its own, its parent gone) and ends
DAEMON = r"""#!/usr/bin/env python3
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        path = os.path.join(sys.argv[1], "daemon")
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path + ".pid")
        time.sleep(300)
    os._exit(0)
os.wait()
while not os.path.exists(os.path.join(sys.argv[1], "daemon.pid")):
    time.sleep(0.01)
print("daemon started", flush=True)
"""

# a build that writes down which of the processes in expect.json still run when it
# starts (into seen.txt beside it)
CHECK = r"""#!/usr/bin/env python3
import json, os, sys
expected = json.load(open(sys.argv[1]))
alive = []
for name, (pid, start) in sorted(expected.items()):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if fields[0] not in "ZX" and int(fields[19]) == start:
        alive.append(name)
seen = os.path.join(os.path.dirname(sys.argv[1]), "seen.txt")
with open(seen + ".tmp", "w") as f:
    f.write(",".join(alive) or "none")
os.replace(seen + ".tmp", seen)
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, None if there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[19])


def _start(pid: int) -> int:
    """The start time of a process that runs."""
    stat = _stat(pid)
    assert stat is not None, f"process {pid} is gone"
    return stat[1]


def _alive(pid: int, start: int) -> bool:
    """Whether the process `pid` that started at `start` runs (a zombie does not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX" and stat[1] == start


def _running(pids: Path) -> dict[str, tuple[int, int]] | None:
    """name → (pid, start time) once every process has written its pid file."""
    found = {}
    for name in NAMES:
        path = pids / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text())
        stat = _stat(pid)
        if stat is None:
            return None
        found[name] = (pid, stat[1])
    return found


def _survivors(procs: dict[str, tuple[int, int]]) -> list[str]:
    return [name for name, (pid, start) in procs.items() if _alive(pid, start)]


def _watchdog_of(worker_pid: int) -> int | None:
    """The worker's watchdog: its child running cleanup.py watch."""
    for task in os.listdir(f"/proc/{worker_pid}/task"):
        children = Path(f"/proc/{worker_pid}/task/{task}/children").read_text().split()
        for child in map(int, children):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"cleanup.py") for arg in cmdline) and b"watch" in cmdline:
                return child
    return None


@pytest.fixture
def leftovers() -> Iterator[list[dict[str, tuple[int, int]]]]:
    """Processes a test started; whatever of them is left is killed after it."""
    started: list[dict[str, tuple[int, int]]] = []
    yield started
    for procs in started:
        for pid, start in procs.values():
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def _setup(repo, tmp_path: Path) -> tuple[Path, dict]:
    pids = tmp_path / "pids"
    pids.mkdir()
    job = JOB.replace("@PIDS@", str(pids))
    repo.commit({"job.py": job, "check.py": CHECK, "daemon.py": DAEMON})

    def p(*entry: str) -> dict:
        return {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, *entry]}

    # every step at once, whatever the CPU count
    return pids, {
        "kill": p("job.py", "--max-parallel", "8"),
        "check": p("check.py", str(tmp_path / "expect.json")),
        "daemon": p("daemon.py", str(pids)),
    }


def _wait_running(pids: Path, context) -> dict[str, tuple[int, int]]:
    return wait_until(lambda: _running(pids), "every process of the build to run", context=context)


def test_a_workers_build_dies_with_the_worker(repo, serve, worker, tmp_path, leftovers):
    pids, pipelines = _setup(repo, tmp_path)
    server = serve(pipelines)
    workspace = tmp_path / "ws"
    w = worker(server, workspace=workspace)
    server.webhook("kill")
    procs = _wait_running(pids, lambda: f"worker:\n{w.output()}\nserve:\n{server.output()}")
    leftovers.append(procs)
    watchdog = _watchdog_of(w.proc.pid)
    assert watchdog, w.output()
    watchdog_start = _start(watchdog)
    assert len(list((workspace / ".bass" / "runs").glob("*.json"))) == 1

    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait()
    # no other worker starts: the watchdog alone must see to it
    wait_until(
        lambda: not _survivors(procs),
        "every process of the killed worker's build to be gone",
        context=lambda: f"alive: {_survivors(procs)}\nworker:\n{w.output()}",
    )
    wait_until(
        lambda: "the worker died during a build" in w.output(),
        "the watchdog to say what it did",
        context=w.output,
    )
    assert not list((workspace / ".bass" / "runs").glob("*.json")), "the record is left"
    wait_until(lambda: not _alive(watchdog, watchdog_start), "the watchdog to exit")


def test_the_next_worker_kills_what_a_dead_one_left(repo, serve, worker, tmp_path, leftovers):
    pids, pipelines = _setup(repo, tmp_path)
    server = serve(pipelines)
    workspace = tmp_path / "ws"
    first = worker(server, workspace=workspace)
    server.webhook("kill")
    procs = _wait_running(pids, lambda: first.output())
    leftovers.append(procs)
    watchdog = _watchdog_of(first.proc.pid)
    assert watchdog, first.output()
    os.kill(watchdog, signal.SIGKILL)  # nothing sweeps when the worker dies now
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    # the kernel kills the entry (PDEATHSIG); its steps, in sessions of their own, and
    # what they started live on
    entry = procs["entry"]
    wait_until(lambda: not _alive(*entry), "the build entry to die", context=first.output)
    steps = {n: procs[n] for n in NAMES if n != "entry"}
    assert _survivors(steps) == list(steps), _survivors(steps)
    (record,) = (workspace / ".bass" / "runs").glob("*.json")

    # a build is queued before the next worker starts: its first build reports which
    # of the leftovers it saw running
    (tmp_path / "expect.json").write_text(json.dumps(steps))
    server.webhook("check")
    second = worker(server, workspace=workspace)
    seen = tmp_path / "seen.txt"
    wait_until(seen.exists, "the next worker's first build to run", context=second.output)
    assert seen.read_text() == "none", (seen.read_text(), second.output())
    assert not _survivors(procs), _survivors(procs)
    assert "left running by kill #1" in second.output(), second.output()
    assert not record.exists(), "the dead worker's record is left"


def test_killing_serve_kills_its_local_workers_build(repo, serve, tmp_path, leftovers):
    """The local worker is a thread of bass serve: the entry's death signal is tied to
    that thread, the watchdog to the process."""
    pids, pipelines = _setup(repo, tmp_path)
    workspace = tmp_path / "ws"
    server = serve(pipelines, extra=["--local-worker", "--workspace-root", str(workspace)])
    server.webhook("kill")
    procs = _wait_running(pids, server.output)
    leftovers.append(procs)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    wait_until(
        lambda: not _survivors(procs),
        "every process of the killed serve's build to be gone",
        context=lambda: f"alive: {_survivors(procs)}\nserve:\n{server.output()}",
    )
    # the watchdog removes the run's record after its sweep: wait for that too
    wait_until(
        lambda: not list((workspace / ".bass" / "runs").glob("*.json")),
        "the watchdog to remove the run's record",
        context=server.output,
    )


def test_what_a_build_leaves_running_dies_when_it_ends(repo, serve, worker, tmp_path, leftovers):
    """Not only when the worker dies: a build that ends (here: ok) takes with it what it
    left running, even outside its process group and with its parent gone."""
    pids, pipelines = _setup(repo, tmp_path)
    server = serve(pipelines)
    w = worker(server, workspace=tmp_path / "ws")
    server.webhook("daemon")
    daemon = pids / "daemon.pid"
    wait_until(daemon.exists, "the build to start its daemon", context=w.output)
    pid = int(daemon.read_text())
    stat = _stat(pid)
    if stat is not None:  # (else it is gone already)
        leftovers.append({"daemon": (pid, stat[1])})
        wait_until(
            lambda: not _alive(pid, stat[1]),
            "the daemon to be killed when its build ended",
            context=w.output,
        )
    assert w.proc.poll() is None, w.output()
