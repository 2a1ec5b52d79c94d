"""Running a build entry: its output line by line, its whole process tree stoppable."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

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


def run_streaming(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    on_line: Callable[[str, str], None],
    stop_reason: Callable[[], str | None],
    grace: float = 15.0,
) -> tuple[int, str | None]:
    """Run argv in a new session, calling on_line(stream, text) for every line of its
    stdout and stderr as it comes. `stop_reason()` is polled; when it returns a reason
    the process tree is stopped. Returns (exit code, stop reason or None)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    selector = selectors.DefaultSelector()
    pending = {"stdout": b"", "stderr": b""}
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
                pending[stream] = _emit_lines(pending[stream] + chunk, stream, on_line)
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
    for stream, rest in pending.items():
        if rest:
            on_line(stream, rest.decode("utf-8", "replace"))
    while proc.poll() is None:  # pipes closed, process still running
        reason = reason or stop_reason()
        if reason is not None:
            kill_tree(proc, grace)
        time.sleep(0.05)
    signal_process_group(proc.pid, signal.SIGKILL)  # nothing the build started outlives it
    return proc.returncode, reason


def _emit_lines(buffer: bytes, stream: str, on_line: Callable[[str, str], None]) -> bytes:
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        on_line(stream, line.rstrip(b"\r").decode("utf-8", "replace"))
    while len(rest) > MAX_LINE:
        on_line(stream, rest[:MAX_LINE].decode("utf-8", "replace"))
        rest = rest[MAX_LINE:]
    return rest
