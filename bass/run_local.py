"""A pipeline's build entry run in this working copy as a worker runs it, with no queue
and no worker: `bass run --local` (one run) and, through `LocalRun`, `bass watch`.

What runs is what a worker runs (`bass.worker.runner.entry_argv` and
`entry_environment`: the pipeline's `exec` in its `cwd`, the env file's variables, the
standard arguments and `BASS_*`; docs/contracts.md, "Build entry"), in the working copy
instead of a checkout, with the changeset given here. With a `bass serve` to report to,
the run is a local build on its dashboard: its root span is exported here as a worker
exports it, and carries the changed paths (`bass.changeset`) and, for `bass watch`, the
previous run's trace (`bass.previous_trace_id`). Without one nothing is sent
(`BASS_NO_TELEMETRY=1` for the builder, `OTEL_SDK_DISABLED=true` for SDKs in steps).

The entry runs in a session of its own, marked as a worker marks a build
(`BASS_RUN_ID`, bass.worker.cleanup). Stopping it sends SIGTERM to its process group
(the builder cancels its steps and runs their teardowns), SIGKILL to what is left after
a grace (bass.worker.procs.kill_tree); when it has ended, every process still carrying
the marker is killed. Its output is passed through as it comes, on a terminal through a
pseudo-terminal, so the builder draws its live tree.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import bass_builder
from bass import ansi, states
from bass import config as config_files
from bass.worker import changes, checkout, cleanup, procs, runner

KILL_GRACE = 10.0  # SIGTERM to the entry's group, then SIGKILL this much later
DEFAULT_ENTRY = ["python3", "job.py"]
LOCAL_SERVER = f"http://localhost:{config_files.Settings().port}"
# the builder's last line: "✓ pipeline app ok in 1.2s (2 ok, 1 skipped)"
_SUMMARY = re.compile(r"pipeline \S.* (\w+) in (\S+) \(((?:\d+ \w+(?:, )?)+)\)\s*$")


class LocalError(Exception):
    """A run that cannot start (not a working copy, no such pipeline): one line, exit 2."""


def git_root(directory: Path) -> Path:
    """The top of the git working copy `directory` is in."""
    done = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=directory, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise LocalError(f"{directory} is not in a git working copy")
    return Path(done.stdout.strip()).resolve()


def head_commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()  # empty in a repository without commits


def changed_since(root: Path, ref: str) -> list[str]:
    """`git diff --name-only REF`: the paths the working tree changed since REF."""
    done = subprocess.run(
        ["git", "diff", "--name-only", "--no-renames", "-z", ref, "--"],
        cwd=root,
        capture_output=True,
    )
    if done.returncode != 0:
        raise LocalError(f"git diff {ref}: {done.stderr.decode(errors='replace').strip()}")
    return changes.clean(os.fsdecode(done.stdout).split("\0"))


def changed_by_refs(root: Path, refs: list[str]) -> list[str]:
    """What a worker makes of `changed-refs` (bass.worker.checkout.changed_paths)."""
    return checkout.changed_paths(refs, root, lambda line: print(line, file=sys.stderr))


def find_server(url: str | None) -> str | None:
    """`url` (default: the `bass serve` on this machine's default port) if a bass serve
    answers there, else None: offline."""
    candidate = (url or LOCAL_SERVER).rstrip("/")
    try:
        with urllib.request.urlopen(f"{candidate}/healthz", timeout=2) as answer:
            return candidate if answer.status == 200 else None
    except (OSError, ValueError):  # nothing listens, or not a URL: offline
        return None


def read_pipeline(pipelines_file: str, name: str | None) -> tuple[str, dict[str, Any]]:
    """The pipeline `name` of the pipelines file, or its only one."""
    try:
        pipelines = config_files.load_pipelines(pipelines_file)
    except config_files.ConfigError as e:
        raise LocalError(str(e)) from None
    if name is None and len(pipelines) == 1:
        name = next(iter(pipelines))
    if name is None or name not in pipelines:
        known = ", ".join(pipelines) or "none"
        what = f"no pipeline {name!r}" if name else "several pipelines: name one"
        raise LocalError(f"{pipelines_file}: {what} (it has: {known})")
    return name, pipelines[name]


def read_env(env_file: str) -> dict[str, str]:
    if not Path(env_file).exists():
        return {}  # as bass serve: no variables (and no line saying so on every run)
    try:
        return config_files.load_env(env_file)
    except config_files.ConfigError as e:
        raise LocalError(str(e)) from None


def entry_cwd(root: Path, pipeline: dict[str, Any]) -> Path:
    """The pipeline's `cwd` in the working copy, as a worker finds it in its checkout."""
    cwd = (root / pipeline.get("cwd", ".")).resolve()
    if not cwd.is_relative_to(root) or not cwd.is_dir():
        raise LocalError(f"cwd {pipeline.get('cwd')!r} is not a directory in {root}")
    return cwd


def local_job(
    name: str,
    pipeline: dict[str, Any],
    env: dict[str, str],
    server: str | None,
    changed_refs: list[str] | None = None,
) -> dict[str, Any]:
    """The job JSON a worker would get for this run (docs/contracts.md, "Job JSON"),
    with new trace and root span ids, its telemetry going to `server`."""
    trace_id, root_span_id = secrets.token_hex(16), secrets.token_hex(8)
    base = server or LOCAL_SERVER  # offline: passed, as always, but nothing is sent
    return {
        "name": name,
        "pipeline": pipeline,
        "env": env,
        "changed-refs": changed_refs or [],
        "otel": {
            "traces-endpoint": f"{base}/v1/traces",
            "logs-endpoint": f"{base}/v1/logs",
            "service-name": f"bass:pipeline:{name}",
            "trace-id": trace_id,
            "root-span-id": root_span_id,
        },
        "build-url": f"{server}/traces/{trace_id}" if server else "",
    }


class LocalRun:
    """One run of a job's build entry in the working copy `root`, from `cwd`.

    `start`, then `running` until it ends by itself or `stop`; `finish` reaps it and
    returns its status. `work` is a private directory for the changeset file and the
    builder's `bass` shim (outside the working copy: nothing there for a watcher to see).
    """

    def __init__(
        self,
        job: dict[str, Any],
        root: Path,
        cwd: Path,
        work: Path,
        changed: list[str],
        server: str | None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.job, self.cwd, self.changed, self.server = job, cwd, changed, server
        self.trace_id = job["otel"]["trace-id"]
        self.run_id = secrets.token_hex(16)  # the marker every process of the run carries
        self.changeset = work / f"changeset-{self.run_id}"
        self.changeset.write_text("".join(p + "\n" for p in changed), encoding="utf-8")
        shim = runner.python_shim(work / "python")
        self.argv = runner.entry_argv(job, root, self.changeset)
        self.env = runner.entry_environment(
            job, root, head_commit(root), self.changeset, self.run_id, shim
        )
        if server is None:
            self.env["BASS_NO_TELEMETRY"] = "1"  # the builder's own switch
            self.env["OTEL_SDK_DISABLED"] = "true"  # and SDKs in its steps: no one to tell
        self.attributes = {
            "bass.pipeline": job["name"],
            "bass.changeset": changed or ["(everything)"],
            **(attributes or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.status: str | None = None  # set when the entry could not start
        self.started = 0.0
        self.tail: deque[bytes] = deque(maxlen=64)
        self._copier: threading.Thread | None = None
        self._reporter: bass_builder.Reporter | None = None
        self._root: Any = None

    def start(self) -> None:
        self.started = time.monotonic()
        if self.server is not None:
            otel = self.job["otel"]
            secrets_ = [v for v in self.job["env"].values() if len(v) >= 4]
            self._reporter = bass_builder.Reporter(
                otel["traces-endpoint"], otel["logs-endpoint"], otel["service-name"],
                self.trace_id, secrets=secrets_,
            )  # fmt: skip
            self._root = self._reporter.start_span(
                f"build {self.job['name']}",
                span_id=otel["root-span-id"],
                attributes=self.attributes,
            )
            shown = ", ".join(self.changed) if self.changed else "everything"
            self._reporter.log(self._root, f"changed: {shown}")
        read, write = _output_pipe()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=write,
                stderr=write,
                start_new_session=True,  # its own group: SIGTERM reaches all of it, Ctrl-C none
            )
        except (OSError, ValueError) as e:
            os.close(read)
            self.status = states.ERROR
            print(f"bass: the build entry cannot be run: {e}", file=sys.stderr, flush=True)
            return
        finally:
            os.close(write)
        self._copier = threading.Thread(target=self._copy, args=(read,), daemon=True)
        self._copier.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM to the entry's group (teardowns run), SIGKILL after the grace."""
        if self.running():
            assert self.proc is not None
            procs.kill_tree(self.proc, KILL_GRACE)

    def finish(self) -> str:
        """Wait for the entry, kill whatever of the run is left, end the root span;
        returns the run's status."""
        status = self.status or states.ERROR
        if self.proc is not None:
            code = self.proc.wait()
            status = states.status_of_exit_code(code)
        if cleanup.SUPPORTED:
            cleanup.sweep(self.run_id)
        if self._copier is not None:
            self._copier.join(5)  # the pipe closes with the last process holding it
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[?25h")  # the cursor, if the builder was killed hiding it
        if self._reporter is not None:
            message = "" if status == states.OK else f"build entry ended {status}"
            self._reporter.end_span(self._root, status, message)
            dropped = self._reporter.close()
            if dropped:
                print(f"bass: {dropped}", file=sys.stderr)
        self.changeset.unlink(missing_ok=True)
        return status

    def summary(self, status: str) -> str:
        """One line: the status, the builder's counts of steps (from its last line),
        the time, and the build's page."""
        elapsed = time.monotonic() - self.started
        counts = builder_counts(b"".join(self.tail))
        line = f"{status} in {elapsed:.1f}s"
        if counts is not None:
            failed = sum(counts.get(s, 0) for s in states.FAILURES)
            ran = sum(n for s, n in counts.items() if s != states.SKIPPED)
            line += f": {ran} ran, {counts.get(states.SKIPPED, 0)} skipped, {failed} failed"
        if self.job.get("build-url"):
            line += f" · {self.job['build-url']}"
        return line

    def _copy(self, fd: int) -> None:
        out = sys.stdout.buffer
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: a pseudo-terminal whose last writer has gone
                    break
                if not chunk:
                    break
                self.tail.append(chunk)
                try:
                    out.write(chunk)
                    out.flush()
                except (OSError, ValueError):
                    pass  # a closed stdout must not stop the run
        finally:
            os.close(fd)


def builder_counts(output: bytes) -> dict[str, int] | None:
    """The builder's count of leaf steps by status, from its summary line."""
    lines = output.decode("utf-8", "replace").replace("\r", "").split("\n")
    for line in reversed(lines[-30:]):
        match = _SUMMARY.search(ansi.plain(line))
        if match:
            pairs = (part.split(" ", 1) for part in match.group(3).split(", "))
            return {status: int(n) for n, status in pairs}
    return None


def _output_pipe() -> tuple[int, int]:
    """(read, write) for the entry's output: a pseudo-terminal of this terminal's size
    when stdout is one (the builder then draws its live tree), else a pipe."""
    if not sys.stdout.isatty():
        return os.pipe()
    import fcntl
    import pty
    import termios

    read, write = pty.openpty()
    try:
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(write, termios.TIOCSWINSZ, size)
    except OSError:
        pass  # the builder falls back to its default width
    return read, write


def run_until_done(run: LocalRun, stop: threading.Event) -> str:
    """Start `run` and wait for it; `stop` set meanwhile stops it."""
    run.start()
    while run.running():
        if stop.wait(0.1):
            run.stop()
    return run.finish()


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT (Ctrl-C) and SIGTERM set `stop` instead of raising."""

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def main(args: argparse.Namespace) -> int:
    """`bass run --local PIPELINE`: one run; the exit code is the build's (the
    builder's codes: 0 ok, 1 failed, 3 error, 4 timeout, 5 cancelled)."""
    try:
        root = git_root(Path.cwd())
        name, pipeline = read_pipeline(args.pipelines_file, args.pipeline)
        env = read_env(args.env_file)
        cwd = entry_cwd(root, pipeline)
        refs = [r.strip() for r in args.changed_refs.split(",") if r.strip()]
        changed = changed_since(root, args.since) if args.since else changed_by_refs(root, refs)
    except LocalError as e:
        print(f"bass run: {e}", file=sys.stderr)
        return 2
    server = None if args.offline else find_server(args.server)
    if server is None and not args.offline:
        print(f"bass run: no bass serve answers at {args.server}: offline", file=sys.stderr)
    stop = threading.Event()
    stop_on_signals(stop)
    job = local_job(name, pipeline, env, server, refs)
    with tempfile.TemporaryDirectory(prefix="bass-local-") as work:
        run = LocalRun(job, root, cwd, Path(work), changed, server)
        print(f"bass: {name} in {cwd}, changed: {shown_paths(changed)}", flush=True)
        status = run_until_done(run, stop)
    print(f"bass: {name} {run.summary(status)}", flush=True)
    return bass_builder.EXIT_CODES.get(status, 1)


def shown_paths(changed: list[str], most: int = 20) -> str:
    if not changed:
        return "everything"
    more = f" and {len(changed) - most} more" if len(changed) > most else ""
    return ", ".join(changed[:most]) + more
