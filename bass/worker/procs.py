"""Running a build entry: its output line by line (secrets masked before a long line
is cut), its whole process tree stoppable, and dying with the worker (`cleanup`)."""

from __future__ import annotations

import codecs
import os
import re
import select
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bass.worker import cleanup, launch
from bass_builder import signal_process_group

MAX_LINE = 64 * 1024
ORPHAN_GRACE = 2.0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group (the builder then stops its steps and runs teardowns),
    then after `grace` seconds SIGKILL it and anything below it that is left."""
    signal_process_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    for pid in [proc.pid, *descendants(proc.pid)]:  # a child may have left the group
        signal_process_group(pid, signal.SIGKILL)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


# what a Python interpreter is called: an entry `python3 job.py` can start warm
PYTHON = re.compile(r"python[0-9.]*")


def warm_python(argv: list[str], env: dict[str, str], workdir: Path) -> str | None:
    """The interpreter of a Python entry (`python3 SCRIPT ARGS`, the interpreter found
    on the entry's PATH or named by its full path, outside the workspace) that can start
    in the entry's environment before the checkout (launch.py: `warm`); else None. Not
    with a relative PYTHONPATH, which would mean another directory at that start."""
    if len(argv) < 2 or argv[1].startswith("-") or not PYTHON.fullmatch(Path(argv[0]).name):
        return None
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        return None
    # every directory the interpreter or its site would look in named absolutely, and
    # none in the workspace (which the checkout changes after this start): an empty or
    # relative element means the start's own directory, not the entry's
    paths = env.get("PYTHONPATH", "")
    if paths and not all(os.path.isabs(p) for p in paths.split(os.pathsep)):
        return None
    searched = env.get("PATH", os.defpath).split(os.pathsep)
    if not all(os.path.isabs(p) and not Path(p).is_relative_to(workdir) for p in searched):
        return None
    found = shutil.which(argv[0], path=env.get("PATH", os.defpath))
    if found is None or Path(os.path.abspath(found)).is_relative_to(workdir):
        return None
    try:  # a program, not a script in front of one (pyenv's shims change the environment)
        with open(found, "rb") as program:
            if program.read(4) != b"\x7fELF":
                return None
    except OSError:
        return None
    return found


class Launcher:
    """The process that becomes a build's entry (`launch.py`), started ahead of it: its
    interpreter starts while the checkout runs. `start` hands it the entry; `discard`
    lets it go when the entry is not run after all. With `python` (see `warm_python`)
    and the entry's environment, the entry's own interpreter starts, and runs a Python
    entry itself."""

    READY_SECONDS = 60.0  # a warm interpreter that is not ready by then is not used
    DISCARD_SECONDS = 10.0  # one let go that has not exited by then is killed

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.warm = python is not None
        status_r, status_w = os.pipe()
        command_r, command_w = os.pipe()
        ours = [str(os.getpid()), str(status_w), str(command_r)]
        if python is None:
            argv = [sys.executable, "-I", "-S", launch.__file__, *ours]
        else:
            argv = [python, launch.__file__, "warm", *ours]
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd="/",  # nothing of the workspace, which the checkout changes meanwhile
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(status_w, command_r),
            )
        except BaseException:
            for fd in (status_r, command_w):
                os.close(fd)
            raise
        finally:
            os.close(status_w)
            os.close(command_r)
        self._status = status_r
        self._command: int | None = command_w

    def start(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
        """Exec argv in `cwd` with `env` (its PATH finds argv[0]); raise OSError as
        Popen would when it cannot be run, ValueError for a NUL in any of them."""
        if not argv:
            raise ValueError("no build entry to run")
        fields = [os.fsencode(cwd), str(len(argv)).encode(), *map(os.fsencode, argv)]
        fields += [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
        if any(b"\0" in field for field in fields) or any("=" in k for k in env):
            self.discard()
            raise ValueError("embedded null byte, or '=' in a variable's name")
        assert self._command is not None
        if self.warm and not self._ready():  # it died (not a Python 3, say), or hangs
            self.discard()
            return Launcher().start(argv, cwd=cwd, env=env)
        command, self._command = self._command, None
        try:
            with open(command, "wb") as pipe:
                pipe.write(b"\0".join(fields))
        except BrokenPipeError:  # it died before it read the entry (killed): another one
            os.close(self._status)
            self.proc.communicate()
            return Launcher().start(argv, cwd=cwd, env=env)
        with open(self._status, "rb") as status:
            failure = status.read()  # EOF at the exec: the entry runs
        if failure:
            self.proc.communicate()
            errno, strerror, filename = failure.split(b"\0", 2)
            raise OSError(int(errno), strerror.decode(errors="replace"), os.fsdecode(filename))
        return self.proc

    def _ready(self) -> bool:
        """Whether a warm interpreter says it is ready for the entry (launch.py writes
        `R` then); not if it ended first, or is not ready within READY_SECONDS."""
        readable, _, _ = select.select([self._status], [], [], self.READY_SECONDS)
        if readable and os.read(self._status, 1) == b"R":
            return True
        self.proc.kill()
        return False

    def discard(self) -> None:
        """The entry is not run: the launcher reads EOF and exits (a no-op once started)."""
        if self._command is None:
            return
        os.close(self._command)
        self._command = None
        os.close(self._status)
        try:  # it reads EOF and exits; a warm interpreter still starting may hang there
            self.proc.communicate(timeout=self.DISCARD_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def start(
    argv: list[str], *, cwd: Path, env: dict[str, str], launcher: Launcher | None = None
) -> subprocess.Popen:
    """Start argv in a new session, through a `Launcher` where it can (Linux; `launcher`
    if one was started ahead): the entry gets SIGKILL if the worker dies. An entry that
    cannot be executed raises OSError (FileNotFoundError, PermissionError, …) here, as
    Popen would."""
    if not cleanup.SUPPORTED:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    return (launcher or Launcher()).start(argv, cwd=cwd, env=env)


def run_streaming(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    on_line: Callable[[str, str], None],
    stop_reason: Callable[[], str | None],
    grace: float = 15.0,
    mask: Callable[[str], str] | None = None,
    longest_secret: int = 0,
    on_start: Callable[[int], None] | None = None,
    launcher: Launcher | None = None,
) -> tuple[int, str | None]:
    """Run argv in a new session, calling on_line(stream, text) for every line of its
    stdout and stderr as it comes, masked with `mask` (whose longest secret is
    `longest_secret` long), through `launcher` if one was started ahead. `on_start(pid)`
    is told the entry's pid. `stop_reason()` is
    polled; when it returns a reason the process tree is stopped. Returns (exit code,
    stop reason or None)."""
    proc = start(argv, cwd=cwd, env=env, launcher=launcher)
    if on_start is not None:
        on_start(proc.pid)
    selector = selectors.DefaultSelector()
    pending = {name: Lines(mask, longest_secret) for name in ("stdout", "stderr")}
    assert proc.stdout is not None and proc.stderr is not None
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    reason = None
    exited_at = None
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=0.2):
                stream = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                for line in pending[stream].feed(chunk):
                    on_line(stream, line)
            if reason is None:
                reason = stop_reason()
                if reason is not None:
                    kill_tree(proc, grace)
            if proc.poll() is not None:
                # The entry has exited; a background child it left may hold the pipes.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > ORPHAN_GRACE:
                    signal_process_group(proc.pid, signal.SIGKILL)
                    break
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
    for stream, lines in pending.items():
        for line in lines.feed(b"", final=True):
            on_line(stream, line)
    while proc.poll() is None:  # pipes closed, process still running
        reason = reason or stop_reason()
        if reason is not None:
            kill_tree(proc, grace)
        time.sleep(0.05)
    signal_process_group(proc.pid, signal.SIGKILL)  # nothing the build started outlives it
    return proc.returncode, reason


class Lines:
    """One output stream of the entry, cut into lines for log records.

    A line is masked whole, then cut into pieces of MAX_LINE characters: masking the
    pieces would leave a secret that straddles a cut as two unmasked halves. A line
    whose end has not come yet is cut once it is longer than MAX_LINE (memory stays
    bounded), but only up to the last `longest - 1` characters, which are kept back
    with the rest: a secret that starts there may go on in the next read."""

    def __init__(self, mask: Callable[[str], str] | None = None, longest: int = 0):
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._mask = mask or str
        self._hold = max(0, longest - 1)
        self._pending = ""

    def feed(self, data: bytes, final: bool = False) -> list[str]:
        """The lines (and pieces of lines) complete with `data`; all of them if final."""
        *lines, rest = (self._pending + self._decoder.decode(data, final)).split("\n")
        out = []
        for line in lines:
            out += _cut(self._mask(line.rstrip("\r")))
        if final:
            out += _cut(self._mask(rest)) if rest else []
            rest = ""
        elif len(rest) > MAX_LINE + self._hold:
            rest = self._mask(rest)  # a secret wholly inside is masked before any cut
            while len(rest) - self._hold > MAX_LINE:
                out.append(rest[:MAX_LINE])
                rest = rest[MAX_LINE:]
        self._pending = rest
        return out


def _cut(line: str) -> list[str]:
    return [line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE)] or [""]
