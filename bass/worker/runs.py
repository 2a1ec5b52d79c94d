"""The worker's side of `cleanup`: each build's run recorded in the workspace and
swept when it ends, a dead predecessor's runs swept at start, and the watchdog kept."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bass.worker import cleanup


class Run:
    """One build's run: its id (the marker's value) and where it is recorded."""

    def __init__(self, guard: Guard, record: dict[str, object]):
        self.id = secrets.token_hex(16)
        self.guard = guard
        self.record = {"worker-pid": os.getpid(), "started": time.time(), **record}

    def entry_started(self, pid: int) -> None:
        """The entry runs: its pid (its session's id too) goes into the record, for
        whoever looks into a leftover run."""
        self.record.update({"pid": pid, "start": cleanup.start_time(pid)})
        cleanup.write_record(self.guard.root, self.id, self.record)


class Guard:
    """What a worker keeps so that nothing of its builds outlives it: a record of each
    run, a sweep after each, the leftovers of a dead predecessor, the watchdog."""

    def __init__(self, root: Path):
        self.root = root
        self.watchdog: Watchdog | None = None

    def reap_leftovers(self) -> list[tuple[dict[str, object], int, list[int]]]:
        """Sweep every run recorded in the workspace (the caller holds its lock):
        [(record, killed, still alive)]."""
        swept = []
        cleanup.remove_stray_records(self.root)
        for record in cleanup.leftover_runs(self.root):
            killed, left = cleanup.sweep(str(record["run-id"]))
            if not left:
                cleanup.remove_record(self.root, str(record["run-id"]))
            swept.append((record, killed, left))
        return swept

    def start_watchdog(self) -> None:
        """Start the watchdog, or another if it was killed."""
        if self.watchdog is not None and not self.watchdog.alive():
            self.close()
        if cleanup.SUPPORTED and self.watchdog is None:
            self.watchdog = Watchdog(self.root)

    def tell(self, line: str) -> None:
        if self.watchdog is not None:
            self.watchdog.tell(line)

    @contextmanager
    def run(self, record: dict[str, object]) -> Iterator[Run]:
        """A build's run, recorded before its entry starts; on the way out everything
        still carrying its marker is killed, then the record goes."""
        if self.watchdog is not None:
            self.start_watchdog()  # again, if it was killed
        run = Run(self, record)
        cleanup.write_record(self.root, run.id, run.record)
        self.tell(f"run {run.id}")
        try:
            yield run
        finally:
            killed, left = cleanup.sweep(run.id)
            run.record.update({"killed": killed, "left": left})
            if not left:
                cleanup.remove_record(self.root, run.id)
            self.tell("end")

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()
            self.watchdog = None


class Watchdog:
    """The worker's end of the watchdog: lines on a pipe that only the worker holds
    (non-inheritable), so it reads EOF the moment the worker dies, however it dies."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen(
            cleanup.watchdog_command(root),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # outside the worker's group: not killed with it
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tell(self, line: str) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except OSError:  # killed: the next run starts another, the next worker sweeps
            pass

    def close(self) -> None:
        """Between builds: it reads EOF with no run going, and exits."""
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
