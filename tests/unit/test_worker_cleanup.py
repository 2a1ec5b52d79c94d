"""The pieces that make a build's processes die with it (bass.worker.cleanup, runs,
procs.start), on real processes: what a sweep kills and what it spares, the records
a dead worker leaves, the watchdog, and an entry that cannot be executed."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bass.worker import cleanup, procs, runs
from tests.unit.helpers import wait_until

pytestmark = pytest.mark.skipif(not cleanup.SUPPORTED, reason="Linux /proc")

RUN = secrets.token_hex(16)  # another test run on this machine has another

# writes its pid (and those of what it starts) to argv[1], then sleeps
SLEEPER = """
import os, sys, time
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
"""
# forks a new sleeping child every 10 ms, for ever: a sweep must outrun it
FORKER = """
import os, sys, time
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
    time.sleep(0.01)
"""
# leaves the process group, clears its environment, stays in the session
SCRUBBED = """
import os, shutil, sys
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
os.setpgid(0, 0)
os.execve(shutil.which("sleep"), ["sleep", "300"], {})
"""
# a marked session leader that starts SCRUBBED in its session
LEADER = f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {SCRUBBED!r}, sys.argv[1] + ".scrubbed"], env={{}})
exec({SLEEPER!r})
"""


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[19])


class Procs:
    """Processes a test starts, each named by pid and start time; all killed after."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.popens: list[subprocess.Popen] = []
        self.named: dict[str, tuple[int, int]] = {}

    def start(self, name: str, code: str, marker: str | None, **popen) -> None:
        env = {"PATH": os.environ["PATH"]}
        if marker is not None:
            env[cleanup.MARKER] = marker
        pidfile = self.tmp / f"{name}.pid"
        self.popens.append(
            subprocess.Popen([sys.executable, "-c", code, str(pidfile)], env=env, **popen)
        )
        self.named[name] = self.wait_for_pid(pidfile)

    def wait_for_pid(self, pidfile: Path) -> tuple[int, int]:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert time.monotonic() < deadline, f"{pidfile} never came"
            time.sleep(0.01)
        pid = int(pidfile.read_text())
        stat = _stat(pid)
        assert stat is not None
        return pid, stat[1]

    def alive(self, name: str) -> bool:
        pid, start = self.named[name]
        stat = _stat(pid)
        return stat is not None and stat[0] not in "ZX" and stat[1] == start

    def close(self) -> None:
        for name in self.named:
            if self.alive(name):
                os.kill(self.named[name][0], signal.SIGKILL)
        for p in self.popens:
            p.kill()
            p.wait()


@pytest.fixture
def procs_(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.close()


def test_a_sweep_kills_the_marked_processes_and_spares_the_others(procs_: Procs) -> None:
    procs_.start("plain", SLEEPER, RUN)
    procs_.start("own-session", SLEEPER, RUN, start_new_session=True)
    procs_.start("nested", SLEEPER, f"{RUN[::-1]},{RUN}")  # a build inside a build
    procs_.start("forker", FORKER, RUN, start_new_session=True)
    procs_.start("other-run", SLEEPER, RUN[::-1])
    procs_.start("longer-id", SLEEPER, RUN + "0")  # the id is compared whole
    procs_.start("shorter-id", SLEEPER, RUN[:-1])
    procs_.start("unmarked", SLEEPER, None, start_new_session=True)
    forker = procs_.named["forker"][0]
    children = Path(f"/proc/{forker}/task/{forker}/children")
    wait_until(lambda: children.read_text().split(), what="the forker's children")
    killed, left = cleanup.sweep(RUN)
    assert left == []
    assert killed >= 5  # and the forker's children
    for name in ("plain", "own-session", "nested", "forker"):
        assert not procs_.alive(name), name
    for name in ("other-run", "longer-id", "shorter-id", "unmarked"):
        assert procs_.alive(name), name
    # nothing of the run is left, the forker's children neither
    assert cleanup._scan(RUN.encode(), {os.getpid()})[0] == []


def test_a_sweep_kills_what_cleared_its_environment_in_a_marked_session(
    procs_: Procs, tmp_path: Path
) -> None:
    procs_.start("leader", LEADER, RUN, start_new_session=True)
    procs_.named["scrubbed"] = procs_.wait_for_pid(tmp_path / "leader.pid.scrubbed")
    assert Path(f"/proc/{procs_.named['scrubbed'][0]}/environ").read_bytes() == b""
    cleanup.sweep(RUN)
    assert not procs_.alive("leader") and not procs_.alive("scrubbed")


def test_a_sweep_never_widens_to_its_own_session(procs_: Procs) -> None:
    """A marked process in the sweeper's own session (it cannot be a build's: every
    build has sessions of its own) is killed, but its session-mates are not."""
    procs_.start("marked-here", SLEEPER, RUN)
    procs_.start("unmarked-here", SLEEPER, None)
    cleanup.sweep(RUN)
    assert not procs_.alive("marked-here")
    assert procs_.alive("unmarked-here")


def test_the_next_worker_sweeps_a_recorded_run(procs_: Procs, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    procs_.start("leftover", SLEEPER, RUN, start_new_session=True)
    cleanup.write_record(root, RUN, {"pipeline": "p", "number": 3})
    ((record, killed, left),) = runs.Guard(root).reap_leftovers()
    assert (record["pipeline"], record["run-id"], killed, left) == ("p", RUN, 1, [])
    assert not procs_.alive("leftover")
    assert cleanup.leftover_runs(root) == []


def test_a_run_ends_with_its_leftovers_killed_and_its_record_gone(
    procs_: Procs, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    guard = runs.Guard(root)
    with guard.run({"pipeline": "p"}) as run:
        assert [r["run-id"] for r in cleanup.leftover_runs(root)] == [run.id]
        procs_.start("daemon", SLEEPER, run.id, start_new_session=True)
    assert not procs_.alive("daemon")
    assert run.record["killed"] == 1
    assert cleanup.leftover_runs(root) == []


@pytest.mark.parametrize(("lines", "swept"), [(b"run R\n", True), (b"run R\nend\n", False)])
def test_the_watchdog_sweeps_when_its_pipe_closes_during_a_run(
    procs_: Procs, tmp_path: Path, lines: bytes, swept: bool
) -> None:
    root = tmp_path / "ws"
    procs_.start("build", SLEEPER, RUN, start_new_session=True)
    cleanup.write_record(root, RUN, {})
    watchdog = subprocess.Popen(
        cleanup.watchdog_command(root),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = watchdog.communicate(lines.replace(b"R", RUN.encode()), timeout=30)
    assert watchdog.returncode == 0, err
    assert procs_.alive("build") is not swept
    assert (cleanup.leftover_runs(root) == []) is swept
    assert (b"the worker died during a build" in err) is swept


def test_an_entry_that_cannot_be_executed_raises_as_popen_would(tmp_path: Path) -> None:
    not_executable = tmp_path / "job.sh"
    not_executable.write_text("#!/bin/sh\n")
    env = {"PATH": os.environ["PATH"]}
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        procs.start(["./does-not-exist"], cwd=tmp_path, env=env)
    with pytest.raises(PermissionError):
        procs.start(["./job.sh"], cwd=tmp_path, env=env)


def test_the_entry_is_the_process_started_and_keeps_its_environment(tmp_path: Path) -> None:
    """The wrapper execs: the pid is the entry's, its environment the one given."""
    env = {"PATH": os.environ["PATH"], cleanup.MARKER: RUN, "PYTHONPATH": "/x"}
    proc = procs.start(
        [sys.executable, "-c", "import os; print(os.getpid(), os.environ['PYTHONPATH'])"],
        cwd=tmp_path,
        env=env,
    )
    out, _ = proc.communicate(timeout=30)
    assert out.decode().split() == [str(proc.pid), "/x"]
    assert proc.returncode == 0


def test_a_build_carries_its_run_id_and_those_its_worker_runs_under(
    tmp_path: Path, monkeypatch
) -> None:
    """A worker that is itself part of a build (bass's own tests, run by bass) passes
    the outer ids on: the outer build's sweep takes the inner builds too."""
    from bass.worker.runner import entry_environment

    otel = {"trace-id": "t", "root-span-id": "r", "traces-endpoint": "http://x/v1/traces",
            "logs-endpoint": "http://x/v1/logs", "service-name": "s"}  # fmt: skip
    job = {"name": "p", "otel": otel, "pipeline": {"repository": "/r"}}
    monkeypatch.setenv(cleanup.MARKER, "outer1,outer2")
    env = entry_environment(job, tmp_path, "c", tmp_path / "changes", "inner", tmp_path / "shim")
    assert env[cleanup.MARKER] == "inner,outer1,outer2"
    assert cleanup.marker_value("inner", {}) == "inner"
