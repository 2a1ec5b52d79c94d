"""bass beside Buildbot, in one run: pickup, 200 trivial steps, idle memory, start-up.

    python -m bench.peer_bench [--quick] [--runs N] [--cache-dir DIR]

Run from the repository root with the test virtualenv's Python. bass runs as the Quick
start installs it: the bench pip-installs this checkout (not editable) into
DIR/bass-venv, and runs bass serve, the worker and the build entries with that
virtualenv's Python. The bench installs Buildbot (buildbot, buildbot-worker and buildbot-www,
without which the master serves no REST API: 4.3.0, else the newest 4.x) with
``python -m venv`` and pip into DIR/buildbot-venv (default DIR /tmp/bass-bench-cache;
reused once complete), makes a real git repository in a temp dir from
bench/peer/repository/, and runs both systems as anyone would, on loopback:

- bass: ``bass serve --grpc-port 0`` (its own pipelines file and SQLite file) and one
  ``bass worker``; builds are queued with ``POST /api/pipelines/NAME/builds``.
- Buildbot: a master (bench/peer/master.cfg: a builder per job, each a Git step from the
  local repository, mode full/fresh like bass's checkout, then shell steps; a
  ForceScheduler per builder) and one worker, each ``buildbot[-worker] start
  --nodaemon`` (twistd in the foreground); builds are forced through the REST API
  (JSON-RPC ``force`` on ``/api/v2/forceschedulers/force-NAME``).

Every process runs in a session of its own and is stopped by the bench (SIGTERM to its
process group, SIGKILL after 30 s), on errors, Ctrl-C and SIGTERM too. Both systems
check out the same repository before a build's first command. Measured, the systems
interleaved, N repetitions (default 5, --quick 2):

(1) pickup     trigger → the build's first command running. Trigger: ``time.time_ns()``
               just before the trigger request (a fresh HTTP connection each time). The
               first command is the repository's ``stamp.sh``, which writes
               ``date +%s%N`` to a file (bass: the entry's first builder step; Buildbot:
               the shell step after the Git step). 4N builds of bass, 2N of Buildbot,
               one at a time; median and p95 (linear interpolation). Targets: median
               ≤ 30 ms, p95 ≤ 60 ms. Where bass's time goes, from the same clock: the
               server's queued_at and started_at (the claim), the checkout span, the
               entry's first line (``pickup.py`` writes ``time.time_ns()`` before it
               imports the builder), the first step's stamp.
(2) 200 steps  a build of 200 ``true`` steps (bass: ``steps.py`` declaring them for the
               builder; Buildbot: 200 ShellCommand steps). Trigger → the first poll
               (every 50 ms, both systems) that sees the build ended. At the build
               entry (bass): the worker runs the entry through ``timed.sh``, which writes
               ``date +%s%N`` just before it starts the entry's Python and just after
               that exits, so the window is the entry's whole process as the worker runs
               it: interpreter start-up, the builder, the 200 steps, the export of their
               spans to bass serve until the builder exits. The floor is the bare loop,
               ``subprocess.run(["true"], capture_output=True)`` 200 times in ``python
               -c``, timed by the bench from start to exit (interpreter start-up
               included), before each pair of builds. Target: entry ≤ 1.25× the loop.
(3) idle RSS   VmRSS from /proc/PID/status, summed over each process and its descendants
               (the bass worker's watchdog among them), once both systems have started
               and run one build, and again after all builds. Targets: bass serve
               ≤ 40 MB, bass worker ≤ 30 MB (MB: 10^6 bytes).
(4) start-up   server launch → ready (bass: ``/healthz`` answers 200; Buildbot: the REST
               API lists both builders), polled every 10 ms; then, with a build queued,
               worker launch → that build's first command running. Fresh processes each
               repetition, on the state an untimed first round left (databases, clones).

The seed prototype's published figures (pickup 496 ms, 200 steps 2.34× the bare loop)
are printed as reference rows: published, not measured here.

Exit code: 0, or 1 when a correctness check failed (a build that did not succeed, a
timestamp or a step missing, a process that did not start). A missed target is
reported in the table only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bench.common import (
    HERE,
    Failures,
    Samples,
    child_env,
    free_port,
    megabytes,
    percentile,
    plural,
    print_grid,
    print_machine,
    print_table,
    proc_memory,
    row,
    seconds,
    timed_run,
)

T = TypeVar("T")

PEER = HERE / "peer"
BUILDBOT_VERSION = "4.3.0"  # else the newest 4.x
BUILDBOT_PACKAGES = ("buildbot", "buildbot-worker", "buildbot-www")
STEPS = 200

# issue 13's targets
PICKUP_MEDIAN_TARGET = 0.030
PICKUP_P95_TARGET = 0.060
ENTRY_TARGET = 1.25  # the build entry's wall ≤ 1.25 × the bare loop
SERVE_RSS_TARGET = 40e6
WORKER_RSS_TARGET = 30e6
# the seed prototype's published figures (not measured here)
PUBLISHED_PICKUP = 0.496
PUBLISHED_STEPS_RATIO = 2.34

BUILD_POLL = 0.05  # seconds between polls for a build's end
START_TIMEOUT = 120.0
STAMP_TIMEOUT = 120.0
BUILD_TIMEOUT = 600.0

BARE_LOOP = """\
import subprocess, sys
for _ in range(int(sys.argv[1])):
    subprocess.run(["true"], capture_output=True)
"""


# -- waiting, HTTP, processes ----------------------------------------------------------


class BenchError(Exception):
    """Something the bench needs did not happen: it stops, with exit code 1."""


def wait_until(
    condition: Callable[[], T | None], what: str, timeout: float, interval: float = 0.01
) -> T:
    """Ask `condition()` every `interval` s until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def http_json(method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
    """One request on a fresh connection; its JSON answer (raises on an error status)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def answers(url: str, check: Callable[[bytes], bool] = lambda _: True) -> bool:
    """Whether GET `url` answers 200 with a body that passes `check`."""
    try:
        with _OPENER.open(url, timeout=2) as response:
            return response.status == 200 and check(response.read())
    except (OSError, ValueError, KeyError):
        return False


@dataclass
class Daemon:
    """A long-running child in a session of its own (Ctrl-C reaches only the bench,
    which stops it), its output in a log file."""

    name: str
    proc: subprocess.Popen
    log: Path

    @classmethod
    def launch(cls, name: str, argv: list[str], cwd: Path, log: Path, env: dict) -> Daemon:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, proc, log)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            log = self.log.read_text(errors="replace")[-3000:]
            raise BenchError(f"{self.name} exited {self.proc.returncode}:\n{log}")

    def stop(self, grace: float = 30) -> None:
        """SIGTERM to its process group, SIGKILL to whatever is left after `grace` s."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def rss(self) -> list[int]:
        """VmRSS of the process and of each of its descendants, bytes."""
        sizes = []
        for pid in process_tree(self.proc.pid):
            try:
                sizes.append(proc_memory(pid).get("VmRSS", 0))
            except OSError:  # it ended meanwhile
                pass
        return sizes


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def stamp_ns(path: Path) -> list[int]:
    """The times (ns since the epoch) a stamp file holds."""
    return [int(word) for word in path.read_text().split()]


def clear(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


def make_repository(path: Path) -> Path:
    """A git repository (branch main) holding bench/peer/repository/'s files."""
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", str(path)]
    shutil.copytree(PEER / "repository", path, ignore=shutil.ignore_patterns("__pycache__"))
    for file in path.iterdir():
        file.chmod(0o755)
    for args in (["init", "--quiet", "-b", "main"], ["add", "--all"], ["commit", "-qm", "bench"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return path


# -- the two systems -------------------------------------------------------------------


@dataclass
class Pending:
    """A triggered build: when the trigger request was about to be sent."""

    job: str
    at_ns: int
    handle: int  # bass: the build id; Buildbot: the build request id


@dataclass
class Ended:
    seen_ns: int  # when the poll that saw the build ended was answered
    ok: bool
    number: int
    state: str
    record: dict = field(default_factory=dict)


class System(Protocol):
    label: str
    stamps: Path

    def start_server(self) -> float: ...
    def start_worker(self) -> None: ...
    def stop(self) -> None: ...
    def trigger(self, job: str) -> Pending: ...
    def end_of(self, pending: Pending) -> Ended | None: ...
    def steps_ok(self, ended: Ended) -> int: ...
    def rss(self) -> tuple[list[int], list[int]]: ...


class Bass:
    """`bass serve` and one `bass worker`, in `root`."""

    label = "bass"

    def __init__(self, root: Path, repository: Path, python: Path) -> None:
        self.python = str(python)  # of a virtualenv with bass installed (ensure_bass)
        self.home = root / "bass"
        self.home.mkdir()
        self.workspace = root / "bass-workspace"
        self.stamps = root / "stamps-bass"
        self.stamps.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        where = {"repository": str(repository), "ref": "main"}
        pipelines = {
            "pickup": {**where, "exec": [self.python, "pickup.py"]},
            "steps": {**where, "exec": ["./timed.sh", self.python, "steps.py"]},
        }
        (self.home / "pipelines.json").write_text(json.dumps(pipelines, indent=2))
        self.serve: Daemon | None = None
        self.worker: Daemon | None = None

    def start_server(self) -> float:
        argv = [self.python, "-m", "bass", "serve", "--port", str(self.port), "--grpc-port"]
        argv += ["0", "--db", "bass.db", "-f", "pipelines.json", "--log-level", "warning"]
        started = time.perf_counter()
        serve = Daemon.launch("bass serve", argv, self.home, self.home / "serve.log", child_env())
        self.serve = serve

        def ready() -> bool:
            serve.check_alive()
            return answers(f"{self.url}/healthz")

        wait_until(ready, "bass serve to answer /healthz", START_TIMEOUT)
        return time.perf_counter() - started

    def start_worker(self) -> None:
        env = child_env()
        env.pop("BASS_API_KEY", None)
        env |= {"BENCH_STAMPS": str(self.stamps), "BENCH_STEPS": str(STEPS)}
        argv = [self.python, "-m", "bass", "worker", "-d", f"{self.url}/dequeue"]
        argv += ["-w", str(self.workspace), "--name", "bench", "--log-level", "warning"]
        self.worker = Daemon.launch("bass worker", argv, self.home, self.home / "worker.log", env)

    def stop(self) -> None:
        for daemon in (self.worker, self.serve):
            if daemon is not None:
                daemon.stop()
        self.worker = self.serve = None

    def trigger(self, job: str) -> Pending:
        at_ns = time.time_ns()
        answer = http_json("POST", f"{self.url}/api/pipelines/{job}/builds", {})
        if not answer.get("queued"):
            raise BenchError(f"bass did not queue {job}: {answer}")
        return Pending(job, at_ns, answer["id"])

    def end_of(self, pending: Pending) -> Ended | None:
        for daemon in (self.serve, self.worker):
            if daemon is not None:
                daemon.check_alive()
        build = http_json("GET", f"{self.url}/api/builds/{pending.handle}")
        if build["state"] in ("queued", "running"):
            return None
        return Ended(time.time_ns(), build["state"] == "ok", build["number"], build["state"], build)

    def spans(self, job: str, number: int) -> list[dict]:
        """A build's spans, flattened."""
        tree = http_json("GET", f"{self.url}/api/pipelines/{job}/builds/{number}")["spans"]
        flat, todo = [], list(tree)
        while todo:
            flat.append(todo.pop())
            todo.extend(flat[-1]["children"])
        return flat

    def steps_ok(self, ended: Ended) -> int:
        return sum(
            s["name"].startswith("step-") and s["attributes"].get("bass.status") == "ok"
            for s in self.spans("steps", ended.number)
        )

    def rss(self) -> tuple[list[int], list[int]]:
        assert self.serve is not None and self.worker is not None
        return self.serve.rss(), self.worker.rss()


class Buildbot:
    """A Buildbot master and one worker, in `root`, run from the virtualenv `venv`."""

    label = "Buildbot"

    def __init__(self, root: Path, repository: Path, venv: Path) -> None:
        self.venv = venv
        self.master_dir = root / "buildbot-master"
        self.worker_dir = root / "buildbot-worker"
        self.stamps = root / "stamps-buildbot"
        self.stamps.mkdir()
        www_port, pb_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{www_port}/api/v2"
        self._run("buildbot", "create-master", "-q", str(self.master_dir))
        shutil.copyfile(PEER / "master.cfg", self.master_dir / "master.cfg")
        values = {"repository": str(repository), "stamps": str(self.stamps), "steps": STEPS}
        values |= {"www_port": www_port, "pb_port": pb_port}
        (self.master_dir / "bench.json").write_text(json.dumps(values, indent=2))
        self._run("buildbot", "checkconfig", str(self.master_dir))
        self._run(
            "buildbot-worker", "create-worker", "-q", str(self.worker_dir),
            f"127.0.0.1:{pb_port}", "bench", "bench",
        )  # fmt: skip
        self.builder_ids: dict[str, int] = {}
        self.master: Daemon | None = None
        self.worker: Daemon | None = None

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.venv / "bin" / tool), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=child_env())
        if proc.returncode != 0:
            raise BenchError(f"{tool} {args[0]} failed: {proc.stdout}{proc.stderr}")

    def start_server(self) -> float:
        argv = [str(self.venv / "bin" / "buildbot"), "start", "--nodaemon", str(self.master_dir)]
        log = self.master_dir / "stdout.log"
        started = time.perf_counter()
        master = Daemon.launch("buildbot master", argv, self.master_dir, log, child_env())
        self.master = master

        def listed(body: bytes) -> bool:
            builders = json.loads(body)["builders"]
            return {"pickup", "steps"} <= {b["name"] for b in builders if b["masterids"]}

        def ready() -> bool:
            master.check_alive()
            return answers(f"{self.url}/builders", listed)

        wait_until(ready, "the Buildbot master's REST API to list the builders", START_TIMEOUT)
        elapsed = time.perf_counter() - started
        builders = http_json("GET", f"{self.url}/builders")["builders"]
        self.builder_ids = {b["name"]: b["builderid"] for b in builders}
        return elapsed

    def start_worker(self) -> None:
        argv = [str(self.venv / "bin" / "buildbot-worker"), "start", "--nodaemon"]
        argv.append(str(self.worker_dir))
        log = self.worker_dir / "stdout.log"
        self.worker = Daemon.launch("buildbot worker", argv, self.worker_dir, log, child_env())

    def stop(self) -> None:
        for daemon in (self.worker, self.master):
            if daemon is not None:
                daemon.stop()
        self.worker = self.master = None

    def trigger(self, job: str) -> Pending:
        call = {"jsonrpc": "2.0", "method": "force", "id": 1}
        call["params"] = {"builderid": self.builder_ids[job]}
        at_ns = time.time_ns()
        answer = http_json("POST", f"{self.url}/forceschedulers/force-{job}", call)
        if "result" not in answer:
            raise BenchError(f"Buildbot did not force {job}: {answer}")
        _buildset, requests = answer["result"]
        return Pending(job, at_ns, int(next(iter(requests.values()))))

    def end_of(self, pending: Pending) -> Ended | None:
        for daemon in (self.master, self.worker):
            if daemon is not None:
                daemon.check_alive()
        url = f"{self.url}/buildrequests/{pending.handle}"
        (request,) = http_json("GET", url)["buildrequests"]
        if not request["complete"]:
            return None
        seen_ns = time.time_ns()
        builds = http_json("GET", f"{self.url}/builds?buildrequestid={pending.handle}")["builds"]
        build: dict[str, Any] = builds[-1] if builds else {"number": -1, "state_string": "none"}
        ok = request["results"] == 0 and bool(builds)
        return Ended(seen_ns, ok, build["number"], build["state_string"], build)

    def steps_ok(self, ended: Ended) -> int:
        found = http_json("GET", f"{self.url}/builds/{ended.record['buildid']}/steps")["steps"]
        return sum(s["name"].startswith("step-") and s["results"] == 0 for s in found)

    def rss(self) -> tuple[list[int], list[int]]:
        assert self.master is not None and self.worker is not None
        return self.master.rss(), self.worker.rss()


def ensure_buildbot(cache_dir: Path) -> tuple[Path, str]:
    """The Buildbot virtualenv under `cache_dir` (made unless a complete one is there)
    and the Buildbot version in it."""
    venv = cache_dir / "buildbot-venv"
    done = venv / ".bench-complete"
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)  # an install that was interrupted
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"installing Buildbot into {venv} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if not pip_install(venv, [f"{p}=={BUILDBOT_VERSION}" for p in BUILDBOT_PACKAGES]):
            print(f"Buildbot {BUILDBOT_VERSION} cannot be installed: the newest 4.x", flush=True)
            if not pip_install(venv, ["buildbot>=4,<5"]):
                raise BenchError("pip could not install Buildbot 4.x")
            newest = buildbot_version(venv)
            if not pip_install(venv, [f"{p}=={newest}" for p in BUILDBOT_PACKAGES]):
                raise BenchError(f"pip could not install buildbot-worker/-www {newest}")
        done.write_text(buildbot_version(venv))
    return venv, buildbot_version(venv)


def ensure_bass(cache_dir: Path) -> Path:
    """The Python of a virtualenv under `cache_dir` with bass installed from this
    checkout as the Quick start installs it (`pip install .`, not editable: an editable
    install's import hook costs every interpreter of that virtualenv ~14 ms at start,
    build entries included), reinstalled on every run so it is this tree's code."""
    venv = cache_dir / "bass-venv"
    done = venv / ".bench-complete"
    source = Path(__file__).resolve().parent.parent
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"installing bass's dependencies into {venv} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if not pip_install(venv, ["setuptools>=77", str(source)]):
            raise BenchError(f"pip could not install bass into {venv}")
        done.write_text("")
    reinstall = ["--no-deps", "--force-reinstall", "--no-build-isolation", str(source)]
    if not pip_install(venv, reinstall):
        raise BenchError(f"pip could not install this checkout of bass into {venv}")
    return venv / "bin" / "python"


def pip_install(venv: Path, requirements: list[str]) -> bool:
    """pip install into `venv`; its output is shown only when it fails."""
    argv = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
    return proc.returncode == 0


def buildbot_version(venv: Path) -> str:
    argv = [str(venv / "bin" / "python"), "-c", "import buildbot; print(buildbot.version)"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


# -- one build ---------------------------------------------------------------------------


def wait_ended(system: System, pending: Pending) -> Ended:
    what = f"{system.label}'s {pending.job} build to end"
    return wait_until(lambda: system.end_of(pending), what, BUILD_TIMEOUT, BUILD_POLL)


def wait_for_stamp(system: System, pending: Pending) -> Path | None:
    """The first command's stamp file once it appears (looked for every 2 ms), or None
    if the build ends without one (its state is asked every 0.5 s meanwhile)."""
    asked = time.monotonic()

    def seen() -> Path | str | None:
        nonlocal asked
        found = next(system.stamps.glob("pickup-*"), None)
        if found is not None:
            return found
        if time.monotonic() - asked > 0.5:
            asked = time.monotonic()
            if system.end_of(pending) is not None:
                return "ended without"
        return None

    what = f"{system.label}'s {pending.job} build to run its first command"
    found = wait_until(seen, what, STAMP_TIMEOUT, 0.002)
    return found if isinstance(found, Path) else None


def checked_stamp(
    system: System, pending: Pending, stamp: Path | None, failures: Failures
) -> tuple[Ended, int | None]:
    """The pickup build once ended, and its first command's time (None: a check failed)."""
    ended = wait_ended(system, pending)
    what = f"{system.label} {pending.job} #{ended.number}"
    if not failures.check(ended.ok, f"{what} ended {ended.state}"):
        return ended, None
    if not failures.check(stamp is not None, f"{what}: its first command wrote no timestamp"):
        return ended, None
    assert stamp is not None
    if not failures.check(stamp.name == f"pickup-{ended.number}", f"{what} wrote {stamp.name}"):
        return ended, None
    return ended, stamp_ns(stamp)[0]


@dataclass
class Pickup:
    seconds: float
    parts: dict[str, float]  # bass: where the time went


def run_pickup(system: System, failures: Failures) -> Pickup | None:
    """One pickup build, from its trigger to its end; None if it failed a check."""
    clear(system.stamps)
    pending = system.trigger("pickup")
    ended, first_ns = checked_stamp(system, pending, wait_for_stamp(system, pending), failures)
    if first_ns is None:
        return None
    parts = bass_pickup_parts(system, ended, pending, first_ns) if isinstance(system, Bass) else {}
    return Pickup((first_ns - pending.at_ns) / 1e9, parts)


def bass_pickup_parts(
    bass: Bass, ended: Ended, pending: Pending, first_ns: int
) -> dict[str, float]:
    """Where a bass pickup went (seconds each, one clock: the server's queued_at and
    started_at, the worker's checkout span, the entry's and the step's stamps)."""
    entry_ns = stamp_ns(bass.stamps / f"entry-pickup-{ended.number}")[0]
    checkout = next(s for s in bass.spans("pickup", ended.number) if s["name"] == "checkout")
    marks = [
        ("trigger → queued (request, enqueue)", pending.at_ns / 1e9),
        ("queued → claimed by the worker", ended.record["queued_at"]),
        ("claimed → checkout started", ended.record["started_at"]),
        ("checkout (git)", checkout["start_ns"] / 1e9),
        ("checkout ended → entry's first line", checkout["end_ns"] / 1e9),
        ("entry's first line → first step running", entry_ns / 1e9),
        ("", first_ns / 1e9),
    ]
    return {name: later - t for (name, t), (_, later) in zip(marks, marks[1:], strict=False)}


@dataclass
class StepsRun:
    wall: float  # trigger → the build seen ended
    entry: float | None  # bass: the entry's process, exec → exit


def run_steps(system: System, failures: Failures) -> StepsRun | None:
    """One build of STEPS trivial steps; None if it failed a check."""
    pending = system.trigger("steps")
    ended = wait_ended(system, pending)
    what = f"{system.label} steps #{ended.number}"
    if not failures.check(ended.ok, f"{what} ended {ended.state}"):
        return None
    ran = system.steps_ok(ended)
    if not failures.check(ran == STEPS, f"{what}: {ran} of {STEPS} steps ran ok"):
        return None
    entry = None
    if isinstance(system, Bass):
        path = system.stamps / f"entry-steps-{ended.number}"
        if not failures.check(path.exists(), f"{what}: the entry's timestamps are missing"):
            return None
        start, end = stamp_ns(path)
        entry = (end - start) / 1e9
    return StepsRun((ended.seen_ns - pending.at_ns) / 1e9, entry)


# -- the measurements ------------------------------------------------------------------


@dataclass
class Startup:
    server: list[float] = field(default_factory=list)
    worker: list[float] = field(default_factory=list)


def measure_startup(system: System, into: Startup | None, failures: Failures) -> None:
    """Start the server (timed to ready), queue a pickup build, start the worker (timed
    to that build's first command), let the build end, stop both."""
    try:
        server = system.start_server()
        clear(system.stamps)
        pending = system.trigger("pickup")
        launched_ns = time.time_ns()
        system.start_worker()
        _, first_ns = checked_stamp(system, pending, wait_for_stamp(system, pending), failures)
        if into is not None and first_ns is not None:
            into.server.append(server)
            into.worker.append((first_ns - launched_ns) / 1e9)
    finally:
        system.stop()


@dataclass
class Builds:
    pickups: dict[str, list[Pickup]]
    steps: dict[str, list[StepsRun]]
    bare: list[float]
    rss_idle: dict[str, tuple[list[int], list[int]]]
    rss_after: dict[str, tuple[list[int], list[int]]]


def measure_builds(systems: list[System], runs: int, failures: Failures, python: Path) -> Builds:
    """Both systems up; one build each, then idle RSS; pickups, then builds of many
    steps beside the bare loop, the systems interleaved; RSS again."""
    for system in systems:
        system.start_server()
        system.start_worker()
    for system in systems:  # workers connected, checkouts and caches warm
        if run_pickup(system, failures) is None:
            raise BenchError(f"{system.label}'s first build failed")
    rss_idle = {s.label: s.rss() for s in systems}
    pickups: dict[str, list[Pickup]] = {s.label: [] for s in systems}
    counts = {"bass": 4 * runs, "Buildbot": 2 * runs}
    turns = [(i / counts[s.label], s) for s in systems for i in range(counts[s.label])]
    for _, system in sorted(turns, key=lambda turn: turn[0]):  # evenly interleaved
        if pickup := run_pickup(system, failures):
            pickups[system.label].append(pickup)
    steps: dict[str, list[StepsRun]] = {s.label: [] for s in systems}
    bare: list[float] = []
    bare_argv = [str(python), "-c", BARE_LOOP, str(STEPS)]  # the entries' interpreter
    timed_run(bare_argv)  # untimed: page cache
    for _ in range(runs):
        bare.append(timed_run(bare_argv)[0])
        for system in systems:
            if build := run_steps(system, failures):
                steps[system.label].append(build)
    rss_after = {s.label: s.rss() for s in systems}
    return Builds(pickups, steps, bare, rss_idle, rss_after)


# -- the tables --------------------------------------------------------------------------


def ms(value: float) -> str:
    if math.isnan(value):
        return "no sample"
    return f"{value * 1000:.1f} ms" if value < 0.1 else seconds(value)


def ratio(a: float, b: float) -> float | None:
    return None if math.isnan(a / b) else a / b


def samples(values: list[float]) -> Samples:
    return Samples(values or [float("nan")])


def print_pickup(builds: Builds) -> None:
    b = [p.seconds for p in builds.pickups["bass"]]
    bb = [p.seconds for p in builds.pickups["Buildbot"]]
    bass, peer = samples(b), samples(bb)
    b_p95, bb_p95 = percentile(b, 95), percentile(bb, 95)
    rows = [
        row(
            "pickup median: trigger → first command running",
            bass.show(ms),
            f"Buildbot {peer.show(ms)}",
            ratio(bass.median, peer.median),
            f"≤ {PICKUP_MEDIAN_TARGET * 1000:.0f} ms",
            bass.median <= PICKUP_MEDIAN_TARGET,
        ),
        row(
            "pickup p95",
            ms(b_p95),
            f"Buildbot {ms(bb_p95)}",
            ratio(b_p95, bb_p95),
            f"≤ {PICKUP_P95_TARGET * 1000:.0f} ms",
            b_p95 <= PICKUP_P95_TARGET,
        ),
        row("seed prototype's pickup (published, not measured)", ms(PUBLISHED_PICKUP)),
    ]
    print_table(
        f"(1) pickup: {plural(len(b), 'bass build')}, {plural(len(bb), 'Buildbot build')}",
        rows,
        [
            "median [min–max]; ratio: bass / Buildbot; both check out the same local "
            "repository, then run its `stamp.sh` (`date +%s%N`) as the first command",
            "trigger: bass `POST /api/pipelines/pickup/builds`, Buildbot JSON-RPC `force` on "
            "`/api/v2/forceschedulers/force-pickup`, the clock read just before the request",
        ],
    )
    parts = [p.parts for p in builds.pickups["bass"] if p.parts]
    if parts:
        grid = []
        for name in parts[0]:
            part = Samples([p[name] for p in parts])
            grid.append([name, ms(part.median), ms(part.min), ms(part.max)])
        print_grid("(1) where bass's pickup goes", ("part", "median", "min", "max"), grid)


def print_steps(builds: Builds) -> None:
    b, bb = builds.steps["bass"], builds.steps["Buildbot"]
    wall, peer = samples([s.wall for s in b]), samples([s.wall for s in bb])
    entry = samples([s.entry for s in b if s.entry is not None])
    bare = samples(builds.bare)
    at_entry = entry.median / bare.median
    rows = [
        row(
            f"{STEPS} × true: trigger → build seen ended",
            wall.show(ms),
            f"Buildbot {peer.show(ms)}",
            ratio(wall.median, peer.median),
        ),
        row(
            f"{STEPS} × true at the build entry (its process, start → exit)",
            entry.show(ms),
            f"bare loop {bare.show(ms)}",
            ratio(entry.median, bare.median),
            f"≤ {ENTRY_TARGET}×",
            at_entry <= ENTRY_TARGET,
        ),
        row(
            "seed prototype's 200 steps (published, not measured)",
            f"{PUBLISHED_STEPS_RATIO}× the bare loop",
            ratio=PUBLISHED_STEPS_RATIO,
        ),
    ]
    per_step = (entry.median - bare.median) / STEPS * 1000
    print_table(
        f"(2) {STEPS} trivial steps: {plural(len(b), 'bass build')}, "
        f"{plural(len(bb), 'Buildbot build')}, {plural(len(bare.values), 'bare loop')}",
        rows,
        [
            "bass: `steps.py` declares the steps for the builder; the worker runs it through "
            "`timed.sh` (`date +%s%N` before and after); Buildbot: the Git step and "
            f"{STEPS} ShellCommand steps; a build's end is seen by polling every "
            f"{BUILD_POLL * 1000:.0f} ms",
            f"bare loop: `python -c` running `subprocess.run(['true'], capture_output=True)` "
            f"× {STEPS}, start to exit, timed by the bench",
            f"per step: bass's entry {per_step:.2f} ms more than the bare loop; Buildbot "
            f"{peer.median / STEPS * 1000:.1f} ms of build per step",
        ],
    )


def print_rss(builds: Builds) -> None:
    def mb(sizes: list[int]) -> str:
        return megabytes(sum(sizes))

    def parts(sizes: list[int]) -> str:
        return " + ".join(megabytes(s) for s in sizes)

    (serve, worker), (master, bb_worker) = builds.rss_idle["bass"], builds.rss_idle["Buildbot"]
    (serve2, worker2), (master2, bb_worker2) = (
        builds.rss_after["bass"],
        builds.rss_after["Buildbot"],
    )
    rows = [
        row(
            "bass serve, idle after start-up and one build",
            mb(serve),
            f"Buildbot master {mb(master)}",
            sum(serve) / sum(master),
            f"≤ {megabytes(SERVE_RSS_TARGET)}",
            sum(serve) <= SERVE_RSS_TARGET,
        ),
        row(
            "bass worker, idle after start-up and one build",
            mb(worker),
            f"Buildbot worker {mb(bb_worker)}",
            sum(worker) / sum(bb_worker),
            f"≤ {megabytes(WORKER_RSS_TARGET)}",
            sum(worker) <= WORKER_RSS_TARGET,
        ),
        row("bass serve, after all builds", mb(serve2), f"Buildbot master {mb(master2)}"),
        row("bass worker, after all builds", mb(worker2), f"Buildbot worker {mb(bb_worker2)}"),
    ]
    print_table(
        "(3) idle RSS",
        rows,
        [
            "VmRSS from /proc/PID/status, summed over the process and its descendants",
            f"processes when idle: bass serve {parts(serve)}, bass worker {parts(worker)} "
            f"(the worker, then its watchdog); Buildbot master {parts(master)}, "
            f"Buildbot worker {parts(bb_worker)}",
        ],
    )


def print_startup(startup: dict[str, Startup]) -> None:
    b, bb = startup["bass"], startup["Buildbot"]
    server, peer = samples(b.server), samples(bb.server)
    worker, peer_worker = samples(b.worker), samples(bb.worker)
    rows = [
        row(
            "server: launch → ready",
            server.show(ms),
            f"Buildbot master {peer.show(ms)}",
            ratio(server.median, peer.median),
        ),
        row(
            "worker: launch → a queued build's first command running",
            worker.show(ms),
            f"Buildbot worker {peer_worker.show(ms)}",
            ratio(worker.median, peer_worker.median),
        ),
    ]
    print_table(
        f"(4) start-up: {plural(len(server.values), 'repetition')}",
        rows,
        [
            "ready: bass `/healthz` answers 200; Buildbot's REST API lists both builders "
            "(polled every 10 ms)",
            "the worker's figure includes its first checkout (a fetch into the workspace the "
            "previous round left) and the pickup build's start",
        ],
    )


# -- the command ---------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.peer_bench",
        description="bass beside Buildbot: pickup, 200 steps, idle RSS, start-up.",
    )
    p.add_argument("--quick", action="store_true", help="2 repetitions instead of 5")
    p.add_argument(
        "--runs", type=int, help="repetitions (default 5, --quick 2); pickups: 4N bass, 2N Buildbot"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bass-bench-cache",
        help="where Buildbot's virtualenv is kept (default %(default)s)",
    )
    args = p.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM unwinds the bench like Ctrl-C, so every process it started is stopped."""

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(
    args: argparse.Namespace, root: Path, failures: Failures, stack: ExitStack
) -> tuple[dict[str, Startup], Builds]:
    venv, version = ensure_buildbot(args.cache_dir)
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"## peer\n\n- buildbot {version} ({venv})\n- {git}\n")
    python = ensure_bass(args.cache_dir)
    print(f"- bass: installed from this checkout into {python.parent.parent} (not editable)\n")
    repository = make_repository(root / "repository")
    bass = Bass(root, repository, python)
    buildbot = Buildbot(root, repository, venv)
    stack.callback(bass.stop)
    stack.callback(buildbot.stop)
    systems: list[System] = [bass, buildbot]
    startup = {s.label: Startup() for s in systems}
    phase = time.monotonic()
    for i in range(args.runs + 1):  # the first round (clones, database files) is untimed
        for system in systems:
            measure_startup(system, startup[system.label] if i else None, failures)
    print(f"(start-up: {time.monotonic() - phase:.0f} s)", flush=True)
    phase = time.monotonic()
    builds = measure_builds(systems, args.runs, failures, python)
    print(f"(builds: {time.monotonic() - phase:.0f} s)\n", flush=True)
    return startup, builds


def print_logs(root: Path) -> None:
    """The end of every log the processes wrote (when the bench gives up)."""
    for log in sorted([*root.glob("*/*.log")]):
        text = log.read_text(errors="replace")[-3000:]
        print(f"\n--- {log.relative_to(root)} (end) ---\n{text}")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    print("# bass beside Buildbot\n")
    print_machine()
    failures = Failures()
    try:
        with sigterm_unwinds(), ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bass-peer-")))
            try:
                startup, builds = run(args, root, failures, stack)
            except BenchError as e:
                print_logs(root)
                failures.check(False, str(e))
                return failures.report(started)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the bench started is stopped", file=sys.stderr)
        return 130
    print_pickup(builds)
    print_steps(builds)
    print_rss(builds)
    print_startup(startup)
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return failures.report(started)


if __name__ == "__main__":
    sys.exit(main())
