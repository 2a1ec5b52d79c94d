"""Running a build entry: its output line by line (secrets masked before a long line
is cut), its whole process tree stoppable, and dying with the worker (`cleanup`)."""

from __future__ import annotations

import codecs
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bass.worker import cleanup
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


def start(argv: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start argv in a new session, through `cleanup.exec_entry` where it can (Linux):
    the entry gets SIGKILL if the worker dies. An entry that cannot be executed raises
    OSError (FileNotFoundError, PermissionError, …) here, as Popen would."""
    options: dict = dict(
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    if not cleanup.SUPPORTED:
        return subprocess.Popen(argv, **options)
    status_r, status_w = os.pipe()
    try:
        proc = subprocess.Popen(cleanup.wrap(argv, status_w), pass_fds=(status_w,), **options)
    finally:
        os.close(status_w)
    with open(status_r, "rb") as status:
        failure = status.read()  # EOF at the exec: the entry runs
    if failure:
        proc.communicate()
        errno, strerror, filename = json.loads(failure)
        raise OSError(errno, strerror, filename)  # FileNotFoundError for ENOENT, …
    return proc


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
) -> tuple[int, str | None]:
    """Run argv in a new session, calling on_line(stream, text) for every line of its
    stdout and stderr as it comes, masked with `mask` (whose longest secret is
    `longest_secret` long). `on_start(pid)` is told the entry's pid. `stop_reason()` is
    polled; when it returns a reason the process tree is stopped. Returns (exit code,
    stop reason or None)."""
    proc = start(argv, cwd=cwd, env=env)
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
