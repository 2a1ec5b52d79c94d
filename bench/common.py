"""Helpers shared by the benchmarks: the machine, samples, tables, child processes.

Nothing here asserts on time: a benchmark prints what it measured next to a peer or
floor measured in the same run, and says PASS or MISS against the issue's target.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# -- the machine ---------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def code_state() -> str:
    """The commit measured, and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"
    return head + (" with uncommitted changes" if dirty else "")


def machine_lines() -> list[str]:
    """What the numbers were measured on, one `key: value` per line."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()}" + (f" ({usable} usable)" if usable != os.cpu_count() else "")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"cpu: {cpu_model()}, {cores} cores",
        f"python: {platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})",
        f"sqlite: {sqlite3.sqlite_version}",
        f"os: {platform.system()} {platform.release()}",
        f"load average at start: {load}",
        f"bass: {code_state()}",
    ]


def print_machine() -> None:
    print("## machine\n")
    for line in machine_lines():
        print(f"- {line}")
    print()


# -- samples and tables ----------------------------------------------------------------


@dataclass
class Samples:
    """Repeated measurements of one quantity."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def show(self, fmt: Callable[[float], str]) -> str:
        """`median [min–max]` (just the value when there is one sample)."""
        if len(self.values) == 1:
            return fmt(self.values[0])
        return f"{fmt(self.median)} [{fmt(self.min)}–{fmt(self.max)}]"


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def per_second(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k/s"
    return f"{value:.0f}/s"


def count(value: float) -> str:
    return f"{value:,.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


HEADER = ("what", "measured", "peer / floor", "ratio", "target", "result")


def row(
    what: str,
    measured: str,
    peer: str = "—",
    ratio: float | None = None,
    target: str = "—",
    ok: bool | None = None,
) -> list[str]:
    """One table row; without `ok` the row is information only (no target)."""
    shown = "—" if ratio is None else f"{ratio:.2f}×"
    return [what, measured, peer, shown, target, "info" if ok is None else verdict(ok)]


def print_table(title: str, rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> None:
    """A Markdown table (pastes into a README as it is), then notes as a list."""
    print_grid(title, HEADER, rows, notes)


# -- child processes -------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of every process a benchmark starts.

    PYTHONDONTWRITEBYTECODE is dropped: an installed builder runs from cached bytecode,
    and compiling an 88 KB module on every start would be measured as overhead.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed_run(
    argv: Sequence[str], *, cwd: str | Path | None = None, stdout: int | None = subprocess.DEVNULL
) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command to its end; (whole-process wall seconds, the completed process).

    stderr is captured (a builder reports dropped telemetry there); a non-zero exit
    raises, with that stderr.
    """
    started = time.perf_counter()
    proc = subprocess.run(
        list(argv), cwd=cwd, env=child_env(), stdout=stdout, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"{argv[:4]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return elapsed, proc


def _http(method: str, url: str, timeout: float = 5) -> bytes:
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Sink:
    """The discarding OTLP receiver (bench/sink.py) in a process of its own."""

    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.traces_url = f"{self.url}/v1/traces"
        self.logs_url = f"{self.url}/v1/logs"

    def stats(self) -> dict[str, float]:
        return json.loads(_http("GET", f"{self.url}/stats"))

    def reset(self) -> None:
        _http("POST", f"{self.url}/reset")

    def spans(self) -> list[dict]:
        """The spans received since the reset: name, start_ns, end_ns (0: running)."""
        return json.loads(_http("GET", f"{self.url}/spans"))

    def step_seconds(self, name: str) -> float:
        """Run time of the ended span called `name`."""
        for span in self.spans():
            if span["name"] == name and span["end_ns"]:
                return (span["end_ns"] - span["start_ns"]) / 1e9
        raise RuntimeError(f"no ended span {name!r} received")

    def largest_log_body(self) -> bytes:
        """The OTLP/JSON body of the log request with the most records since the reset."""
        return _http("GET", f"{self.url}/largest-log-body")


@contextmanager
def sink() -> Iterator[Sink]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py")],
        env=child_env(),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first.strip().isdigit():
            raise RuntimeError(f"the sink did not start (said {first!r})")
        yield Sink(proc, int(first))
    finally:
        _stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Serve:
    proc: subprocess.Popen
    url: str
    db: Path
    home: Path

    @property
    def traces_url(self) -> str:
        return f"{self.url}/v1/traces"

    @property
    def logs_url(self) -> str:
        return f"{self.url}/v1/logs"


@contextmanager
def bass_serve(home: Path, start_timeout: float = 30) -> Iterator[Serve]:
    """A real `bass serve` in `home`: no pipelines, its own SQLite file, a free port."""
    with bass_serve_on(home, start_timeout=start_timeout) as serve:
        yield serve


@contextmanager
def bass_serve_on(
    home: Path,
    *,
    db: Path | None = None,
    pipelines: dict | None = None,
    extra_args: Sequence[str] = (),
    start_timeout: float = 30,
    code: Path | None = None,
) -> Iterator[Serve]:
    """A real `bass serve` in `home` on a free port: `--db` (default home/bass.db), a
    pipelines file holding `pipelines` (default none), `extra_args` appended; the bass of
    the checkout at `code` (a peer version) instead of this one."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "orchestrator-pipelines.json").write_text(json.dumps(pipelines or {}))
    db = home / "bass.db" if db is None else db
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(home / "serve.log", "ab")  # closed in the finally below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bass",
            "serve",
            "--port",
            str(port),
            "--db",
            str(db),
            "--log-level",
            "warning",
            *extra_args,
        ],
        cwd=home,
        env={**child_env(), "PYTHONPATH": f"{code}:{code / 'builder'}"} if code else child_env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bass serve exited: {(home / 'serve.log').read_text()[-2000:]}")
            try:
                _http("GET", f"{url}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("bass serve did not start") from None
                time.sleep(0.05)
        yield Serve(proc, url, db, home)
    finally:
        _stop(proc)
        log.close()


def http_get(url: str, timeout: float = 10) -> bytes:
    """The body of a GET (raises on an error answer)."""
    return _http("GET", url, timeout)


# -- processes: memory, CPU; percentiles; free-form tables ----------------------------------


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in bytes, from /proc."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0]) * 1024
    return out


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (its threads included)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def megabytes(value: float) -> str:
    return f"{value / 1e6:.0f} MB" if value >= 1e7 else f"{value / 1e6:.1f} MB"


def print_grid(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> None:
    """A Markdown table with any columns (print_table has the fixed comparison ones)."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(f"## {title}\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    print(flush=True)


def new_trace_ids() -> tuple[str, str]:
    """A fresh (trace id, root span id) pair, as a worker hands a build."""
    return os.urandom(16).hex(), os.urandom(8).hex()


def builder_argv(
    pipeline_file: Path, traces_url: str, logs_url: str, trace_id: str, root_span_id: str
) -> list[str]:
    """`python3 -m bass_builder pipeline.json` with the standard arguments a worker passes."""
    return [
        sys.executable,
        "-m",
        "bass_builder",
        str(pipeline_file),
        "--trace-id",
        trace_id,
        "--root-span-id",
        root_span_id,
        "-t",
        traces_url,
        "-l",
        logs_url,
    ]


def drop_report(stderr: bytes) -> str | None:
    """The builder's `telemetry: dropped …` line, if it printed one."""
    for line in stderr.decode(errors="replace").splitlines():
        if "telemetry: dropped" in line:
            return line.strip()
    return None


# -- correctness checks and parts --------------------------------------------------------


class Failures:
    """Correctness checks that failed (they make the exit code 1)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.items.append(what)
        return ok

    def report(self, started: float) -> int:
        """Print the bench's total time and any failed check; the exit code."""
        print(f"total bench time: {time.monotonic() - started:.0f} s")
        if not self.items:
            return 0
        print("\nCORRECTNESS CHECKS FAILED:")
        for item in self.items:
            print(f"- {item}")
        return 1


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
