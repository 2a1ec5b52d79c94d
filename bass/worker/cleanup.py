"""Nothing a build started outlives it, not even a worker killed with `kill -9`.

The entry runs in a session of its own and the builder starts each step in yet another
one, so no process group, session or parent link reaches every process of a build.
What does reach them all is the environment, which every child inherits:

- Every process of a build carries `BASS_RUN_ID`, this run's random id (followed by
  those of the builds the worker itself runs in, comma-separated: a bass worker run by
  a build is killed with that build, and so is what it runs). `sweep` kills each
  process of this user whose /proc/PID/environ holds the id, and each process that
  shares a session with one (it cleared its environment but stayed in its step's
  session). The worker sweeps after every build.
- While a build runs, `ROOT/.bass/runs/RUN_ID.json` records it. A worker starting on a
  workspace root (holding its lock) sweeps every run recorded there: what a dead
  predecessor left dies before the next checkout reuses the workspace.
- The entry gets SIGKILL from the kernel when the worker dies (PR_SET_PDEATHSIG, see
  `launch.py`), and the watchdog, a process in its own session that holds the read
  end of a pipe only the worker writes to (`runs.Watchdog`), reads EOF then and sweeps
  the run at once. So a build dies with its worker, not when (if ever) the next
  worker starts. A SIGKILL, not the SIGTERM of a cancel: the steps stay as they were
  (the builder would kill them one by one), so the sweep finds every session whose
  processes cleared their environment while a marked process still shares it.
  Teardowns do not run, as they cannot when the worker is killed with its build.

Only the standard library: this file also runs as a script (`python -I -S cleanup.py
sweep ROOT RUN_ID`, from the watchdog), with nothing of bass, however bass is installed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

MARKER = "BASS_RUN_ID"
SWEEP_SECONDS = 10.0  # how long a sweep keeps killing what keeps appearing
# Linux /proc, /bin/sh and this file (and launch.py) on disk to run as the watchdog (the
# launcher)
SUPPORTED = (
    sys.platform == "linux"
    and os.path.isdir("/proc/self")
    and os.access("/bin/sh", os.X_OK)
    and bool(sys.executable)
    and os.path.isfile(__file__)
    and os.path.isfile(os.path.join(os.path.dirname(__file__), "launch.py"))
)


def marker_value(run_id: str, environ: Mapping[str, str]) -> str:
    """BASS_RUN_ID of a build: its id first, then the ids this worker runs under."""
    outer = [i for i in environ.get(MARKER, "").split(",") if i and i != run_id]
    return ",".join([run_id, *outer])


# -- finding a run's processes in /proc ------------------------------------------------


class _Stat(NamedTuple):
    state: str
    session: int
    start: int  # clock ticks after boot: with the pid, names one process for good


def _stat(pid: int) -> _Stat | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # the command name may hold spaces
    return _Stat(fields[0].decode(), int(fields[3]), int(fields[19]))


def start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return stat.start if stat else None


def _alive(stat: _Stat) -> bool:
    return stat.state not in "ZXx"  # a zombie is dead already, its pid not yet free


def _marked(pid: int, run_id: bytes) -> bool:
    """Whether the process's environment has BASS_RUN_ID with `run_id` among its ids
    (compared whole: never a prefix of another run's id)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read (another user, setuid)
        return False
    prefix = MARKER.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return run_id in entry[len(prefix) :].split(b",")
    return False


def _own(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


def _member(pid: int, run_id: bytes, sessions: set[int]) -> bool:
    """Whether `pid` is, right now, a live process of the run: marked, or in a session
    of a marked one."""
    stat = _stat(pid)
    if stat is None or not _alive(stat):
        return False
    return _marked(pid, run_id) or stat.session in sessions


def _scan(run_id: bytes, spared: set[int]) -> tuple[list[int], set[int]]:
    """The live processes of the run (pids), and the sessions they are in."""
    marked: list[int] = []
    others: dict[int, int] = {}
    sessions: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spared or not _own(int(name)):
            continue
        pid = int(name)
        stat = _stat(pid)
        if stat is None or not _alive(stat):
            continue
        if _marked(pid, run_id):
            marked.append(pid)
            sessions.add(stat.session)
        else:
            others[pid] = stat.session
    # A marked process is in a session the build made (the entry's own, a step's, one
    # it made itself): never the sweeper's, which this guards all the same.
    sessions.discard(os.getsid(0))
    return marked + [p for p, s in others.items() if s in sessions], sessions


def _kill_member(pid: int, run_id: bytes, sessions: set[int]) -> bool:
    """SIGKILL `pid` if it is (still) a process of the run, and never a process that
    took the pid over after the check: the pidfd names the process before /proc is
    read again, and a signal through it reaches that process or none."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):  # Linux before 5.3: a narrow window remains
        pidfd = -1
    try:
        if not _member(pid, run_id, sessions):
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def sweep(run_id: str, timeout: float = SWEEP_SECONDS) -> tuple[int, list[int]]:
    """SIGKILL every process of the run, again and again until none is left: a process
    may fork between a scan and its kill, and its child is found by the next scan.
    Returns (processes killed, pids still alive after `timeout`: stuck in the kernel)."""
    if not SUPPORTED:
        return 0, []
    token = run_id.encode()
    spared = {os.getpid()}
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        found, sessions = _scan(token, spared)
        if not found or time.monotonic() > deadline:
            return len(killed), found
        killed.update(pid for pid in found if _kill_member(pid, token, sessions))
        time.sleep(0.01)  # SIGKILL is delivered at once; dying takes a moment


# -- the record of a running build in the workspace ------------------------------------


def _runs(root: Path) -> Path:
    return root / ".bass" / "runs"


def write_record(root: Path, run_id: str, record: dict[str, object]) -> None:
    """Written whole (a rename): a worker killed mid-write leaves the old record."""
    _runs(root).mkdir(parents=True, exist_ok=True)
    path = _runs(root) / f"{run_id}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"run-id": run_id, **record}))
    temporary.replace(path)


def remove_record(root: Path, run_id: str) -> None:
    (_runs(root) / f"{run_id}.json").unlink(missing_ok=True)


def remove_stray_records(root: Path) -> None:
    """Half-written records: the entry starts only once its record is complete."""
    for path in _runs(root).glob("*.tmp") if _runs(root).is_dir() else []:
        path.unlink(missing_ok=True)


def leftover_runs(root: Path) -> list[dict[str, object]]:
    """The records of runs a worker on this root did not finish."""
    found = []
    for path in sorted(_runs(root).glob("*.json")) if _runs(root).is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):  # unreadable: its name is the run id
            record = {}
        found.append({**record, "run-id": path.stem})
    return found


# -- the watchdog ------------------------------------------------------------------

# The watchdog waits in /bin/sh (~2 MB, where an idle Python is ~12 MB): it follows the
# worker's lines (`run ID`, `end`) until EOF, and only if a run was going then, the
# worker died: it becomes Python (`cleanup.py sweep ROOT ID`) to sweep that run. `read`
# is given one line at a time, so the ids are never words of a command. SIGINT is
# ignored (a terminal's ^C is the worker's), and so is it in the Python it execs.
WATCH_SCRIPT = """trap '' INT
run=
while IFS=' ' read -r word id rest; do
  case $word in run) run=$id ;; end) run= ;; esac
done
[ -n "$run" ] || exit 0
exec "$1" -I -S "$2" sweep "$3" "$run"
"""


def watchdog_command(root: Path) -> list[str]:
    """The watchdog's command line; its lines come on standard input."""
    return ["/bin/sh", "-c", WATCH_SCRIPT, "watch", sys.executable, __file__, str(root)]


def _say(text: str) -> None:
    try:
        print(f"bass worker watchdog {os.getpid()}: {text}", file=sys.stderr, flush=True)
    except OSError:  # the worker's log went with it
        pass


def sweep_dead_workers_run(root: Path, run_id: str) -> int:
    """The worker died during run `run_id`: sweep it, and say so."""
    killed, left = sweep(run_id)
    if not left:
        remove_record(root, run_id)
    _say(
        f"the worker died during a build (run {run_id}): {killed} of its processes killed"
        + (f", {len(left)} would not die: {left}" if left else "")
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sweep":
        sys.exit(sweep_dead_workers_run(Path(sys.argv[2]), sys.argv[3]))
    sys.exit(2)
