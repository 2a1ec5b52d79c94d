#!/usr/bin/env python3
"""bass_builder: run a build pipeline of nested steps and report it as OpenTelemetry.

One file, standard library only (Python 3.9+, POSIX). Copy it into a repository or
install it; `from bass import assert_pipeline, build` works too (the bass package
re-exports this module).

A pipeline is a tree of nodes, as Python dicts or JSON::

    pipeline = {
        "name": "build",
        "steps": [
            {"name": "lint", "exec": ["./lint.sh", "$TARGET"]},
            {"name": "tests", "order": "unordered", "timeout": 600, "steps": [
                {"name": "unit", "exec": "make test"},
                {"name": "docs", "exec": ["make", "docs"], "if-changeset-matches": "^docs/"},
            ]},
        ],
        "teardown": {"name": "clean", "exec": "rm -rf build/tmp"},
    }
    build(pipeline)          # parses the standard arguments, runs, exits

or, for a repository in any language, `python3 -m bass_builder pipeline.json [args]`.

Node keys
---------
name (required)         the step's name; the span's name
exec                    ["argv", ...] run without a shell, each argument through
                        os.path.expandvars ($VAR from the environment); or "a command"
                        run with /bin/sh -c (the shell expands $VAR); or, in Python
                        pipelines, a callable taking no arguments (None/True/0 = ok,
                        False/non-zero int = failed, an exception = failed).
                        Span attributes record the command unexpanded.
steps                   [nodes]; exactly one of "exec" and "steps"
order                   "ordered" (default: stop at the first failure, later steps
                        skipped) | "unordered" (all run, in parallel)
setup                   node run first; if it fails only the teardown runs
teardown                node that always runs (after failure, timeout or cancel); a
                        failing teardown fails its node
if-changeset-matches    regex searched in each changed path; the node is skipped unless
                        one matches (an empty changeset runs everything)
timeout                 seconds: a number, or a string with an optional unit ("90", "90s",
                        "30m", "2h", "1d"); on a group it bounds the whole
                        group: running children are killed, the rest skipped
cwd                     directory relative to the inherited one ("/sub": relative to
                        --root); must stay inside --root (symlinks resolved), else the
                        node ends in "error"

Standard arguments
------------------
-s/--service-name  default bass:pipeline:<pipeline name>
-i/--trace-id      32 hex digits; without it (a local run) ids are generated and the
                   root span is emitted as with -g
-d/--root-span-id  16 hex digits, the parent of the pipeline node's span
-t/--traces-endpoint, -l/--logs-endpoint   full OTLP/HTTP URLs; else
                   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
                   else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces | /v1/logs,
                   else http://localhost:8080/v1/traces | /v1/logs (a local bass serve)
-c/--changeset     file with one changed path per line (missing file: warning, empty)
-r/--root          directory the steps may not leave (default: the current directory)
-g/--generate-root-span   emit the root span (id --root-span-id) too
-j/--max-parallel  running leaf steps at most (default: the CPU count); groups take
                   no slot, so nested unordered groups cannot deadlock
Unknown arguments are ignored with a warning. BASS_NO_TELEMETRY=1: no telemetry at all
(nothing sent, no trace URL printed; `bass watch --offline`). OTEL_EXPORTER_OTLP_HEADERS
(k=v,k2=v2, URL-encoded values) is sent with every request, plus
OTEL_EXPORTER_OTLP_TRACES_HEADERS / OTEL_EXPORTER_OTLP_LOGS_HEADERS for one kind.

Environment of each step: the builder's environment plus TRACEPARENT (the step's span),
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_SERVICE_NAME
and BASS_STEP_NAME, so a tool using any OpenTelemetry SDK nests its spans under the step;
OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL and
OTEL_EXPORTER_OTLP_LOGS_PROTOCOL http/protobuf, since those are OTLP/HTTP URLs and SDKs
default to gRPC; unless the environment has its own,
OTEL_TRACES_EXPORTER=otlp (the standard default, which the protocol then picks: some
tools, pytest-opentelemetry among them, otherwise force their gRPC exporter) and, for
endpoints ending in /v1/traces, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT beside them (bass
takes metrics and drops them; without it an SDK's metrics exporter retries its default,
localhost:4318, for seconds before the tool can exit).
BASS_SECRET_NAMES (comma-separated variable names): the values of those variables (4
characters or more) are replaced by *** in whatever the builder sends or prints: log
records (a line is masked before it is cut at 64 Ki characters: no cut splits a secret),
span names, every span attribute but bass.status (process.command_args, bass.cwd,
code.function.name...), status messages, the service name made from the pipeline's name
(an explicit --service-name is used as given), the terminal output (names are masked
before a line of the live tree is cut to the terminal's width) and the problems of an
invalid pipeline. Output is masked line by line as it comes: a value of several lines is
masked whole when it comes at once, and each of its lines (4 characters or more, not
blank) is masked wherever it comes. Masking costs nothing without secrets.

Statuses and exit codes
-----------------------
ok 0 · skipped 0 · failed 1 · invalid pipeline or arguments 2 · error 3 · timeout 4 ·
cancelled 5. A group's status is the most severe of its children, setup and teardown
(cancelled > error > timeout > failed > ok > skipped). SIGINT/SIGTERM cancel the build:
running steps' process groups are killed, teardowns still run, the exit code is 5; a
second signal kills the teardowns too.

Telemetry
---------
OTLP/HTTP JSON, resource service.name, scope bass_builder. One span per node (kind
INTERNAL, parent: the parent node's span; the pipeline's parent is --root-span-id),
exported when the node starts (endTimeUnixNano "0", bass.status "running") and again
when it ends; a skipped node is exported once. Attributes: bass.status,
bass.skip_reason (changeset, earlier step failed, setup failed, timeout, cancelled),
bass.cwd (relative to --root), bass.timeout, bass.order, bass.role (setup, teardown),
bass.position (the node's place in the pipeline: steps[1].steps[0], steps[2].setup),
process.command_args (unexpanded), process.exit.code, code.function.name (Python
steps). OTLP status: ok -> OK, skipped -> UNSET, others -> ERROR with a message (the
last lines of stderr, or the reason). With -g or on a local run the root span
"build <name>" (id --root-span-id, no parent) is exported too.
Each line a step writes is a log record on its span, sent while the step runs: severity
INFO with log.iostream=stdout, WARN with log.iostream=stderr (lines over 64 Ki
characters are cut into several records, after masking). Messages of the builder itself
(a timeout, a cwd outside the root) are ERROR records on the step's span.
One background thread sends batches (at least every 200 ms) over a keep-alive
connection, retrying 429/502/503/504 and connection errors with backoff (honouring
Retry-After). Telemetry never fails the build, nor blocks it when the endpoint is down:
a full queue blocks a chatty step only while the endpoint keeps accepting; what cannot
be delivered is dropped, counted and reported on stderr at the end. At exit the builder
waits for delivery, at most about 10 s without progress (1 s if nothing ever listened).
The end of the output prints the trace's dashboard page: <traces endpoint's
scheme://host:port>/traces/<trace id>.

Output: on a terminal a live tree of the steps, redrawn in place; otherwise (a pipe, a
file, a worker's log) one line per node start and end. Both end with the failing steps'
last lines, a summary and the trace's dashboard URL. Step output itself goes only to
telemetry.

Limits: a step's background processes that outlive it are left running (only a timeout
or a cancel kills the step's whole process group) and are no longer read from once the
step has exited; a Python step runs in a thread of its own, and what its own threads or
subprocesses write is not captured on its span; a thread cannot be killed, so on timeout
or cancel a Python step is reported and abandoned.
"""

from __future__ import annotations

# This file stays runnable on Python 3.9, unlike the rest of the project (3.11).
# ruff: noqa: B905, UP035
import codecs
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from json.encoder import encode_basestring_ascii as _json_str

# What JSON (as encode_basestring_ascii writes it) must escape, but the newline that
# separates lines and the non-ASCII that str.isascii rules out.
_ESCAPED = tuple(chr(c) for c in range(0x20) if c != 0x0A) + ('"', "\\")


def _plain(text: str) -> bool:
    """No line of `text` needs escaping: a few memchr-speed scans, far cheaper than a
    regex over the same text (which cost more than the rest of the line handling)."""
    return text.isascii() and not any(c in text for c in _ESCAPED)


# Annotations are never evaluated (PEP 563): typing, dataclasses and the like are not
# imported at run time, they would slow down every build's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace
    from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TextIO

__version__ = "0.1.0"

__all__ = [
    "OK",
    "FAILED",
    "TIMEOUT",
    "SKIPPED",
    "CANCELLED",
    "ERROR",
    "RUNNING",
    "STATUSES",
    "EXIT_CODES",
    "EXIT_INVALID",
    "status_of_exit_code",
    "parse_duration",
    "retry_after_seconds",
    "Backoff",
    "signal_process_group",
    "PipelineError",
    "Reporter",
    "Options",
    "validate_pipeline",
    "assert_pipeline",
    "parse_arguments",
    "run_pipeline",
    "build",
    "main",
]

OK = "ok"
FAILED = "failed"
TIMEOUT = "timeout"
SKIPPED = "skipped"
CANCELLED = "cancelled"
ERROR = "error"
RUNNING = "running"  # only on live spans, never a final status
STATUSES = (OK, FAILED, TIMEOUT, SKIPPED, CANCELLED, ERROR)
# Most severe first: a group takes the first of these found among its parts.
_PRECEDENCE = (CANCELLED, ERROR, TIMEOUT, FAILED, OK, SKIPPED)
EXIT_CODES = {OK: 0, SKIPPED: 0, FAILED: 1, ERROR: 3, TIMEOUT: 4, CANCELLED: 5}
EXIT_INVALID = 2
# A process killed by SIGINT or SIGTERM (negative: Popen's returncode; 128+n: a shell's).
_SIGNALLED = (-2, -15, 130, 143)


def status_of_exit_code(code: int) -> str:
    """How a build entry's exit code reads as a status: the builder's codes, a process
    stopped by SIGINT/SIGTERM cancelled, anything else failed."""
    if code in _SIGNALLED:
        return CANCELLED
    for status, status_code in EXIT_CODES.items():
        if status_code == code and status != SKIPPED:
            return status
    return FAILED


# Telemetry export tuning.
BATCH_RECORDS = 512  # spans per request, at most
LOG_BATCH_RECORDS = 4096  # log records per request, at most (they are small)
REFILL_RECORDS = 4 * LOG_BATCH_RECORDS  # the memory queue is refilled from the spool to this
BATCH_BYTES = 1 << 20  # request body size, about
QUEUE_RECORDS = 200_000  # queued spans + log records, at most
QUEUE_BYTES = 64 << 20
LINGER_SECONDS = 0.2  # a queued record waits at most this long for a fuller batch
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
FLUSH_SECONDS = 10.0  # at exit, give up after this long without delivering anything
FLUSH_SECONDS_UNREACHED = 1.0  # ... or this long when nothing ever listened
SPOOL_BYTES = 1 << 30  # past the memory queue, records wait in a temporary file up to this
HTTP_TIMEOUT = 10.0
_RETRYABLE = frozenset({429, 502, 503, 504})

# Step execution tuning.
MAX_LINE = 64 * 1024  # a longer line (in characters) is cut into several records
READ_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024  # a step's pipe grows to this once 256 KiB went through it
KILL_GRACE_SECONDS = 3.0  # SIGTERM, then SIGKILL this much later
TICK_SECONDS = 0.1  # how often a running step checks for timeout and cancel
TAIL_LINES = 20  # stderr lines kept for a failing step's status message

_SKIP_STATUS = {"cancelled": CANCELLED, "timeout": TIMEOUT}
_HEX = re.compile(r"[0-9a-f]+")


# ---------------------------------------------------------------------------
# Validation


class PipelineError(ValueError, AssertionError):
    """The pipeline is invalid; `problems` lists every problem, each naming its node."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid pipeline:\n  " + "\n  ".join(self.problems))


_NODE_KEYS = (
    "name",
    "exec",
    "steps",
    "order",
    "setup",
    "teardown",
    "if-changeset-matches",
    "timeout",
    "cwd",
)
_ORDERS = ("ordered", "unordered")


def validate_pipeline(node: Any) -> list[str]:
    """Check a pipeline before anything runs; return its problems (empty when valid).

    Each problem names the node path and the key, e.g.
    ``steps[2].setup: "exec" and "steps" are exclusive``. A problem that quotes the
    pipeline (a key, a regex) has the values of BASS_SECRET_NAMES masked.
    """
    problems: list[str] = []
    _validate_node(node, "", problems)
    if problems:
        mask = _Masker.from_environ(os.environ)
        problems = [mask(problem) for problem in problems]
    return problems


def assert_pipeline(node: Any) -> None:
    """Raise PipelineError (a ValueError and an AssertionError) listing every problem."""
    problems = validate_pipeline(node)
    if problems:
        raise PipelineError(problems)


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _quote(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _validate_node(node: Any, path: str, problems: list[str]) -> None:
    here = path or "pipeline"
    if not isinstance(node, dict):
        problems.append(f"{here}: a node must be an object, not {type(node).__name__}")
        return
    for key in node:
        if key not in _NODE_KEYS:
            problems.append(f"{here}: unknown key {_quote(key)}")
    if "name" not in node:
        problems.append(f'{here}: missing "name"')
    elif not isinstance(node["name"], str) or not node["name"].strip():
        problems.append(f"{_key_path(path, 'name')}: must be a non-empty string")
    has_exec, has_steps = "exec" in node, "steps" in node
    if has_exec and has_steps:
        problems.append(f'{here}: "exec" and "steps" are exclusive')
    elif not has_exec and not has_steps:
        problems.append(f'{here}: needs "exec" or "steps"')
    if has_exec:
        _validate_exec(node["exec"], _key_path(path, "exec"), problems)
    if has_steps:
        where = _key_path(path, "steps")
        steps = node["steps"]
        if not isinstance(steps, list):
            problems.append(f"{where}: must be a list of nodes")
        elif not steps:
            problems.append(f"{where}: must not be empty")
        else:
            for i, step in enumerate(steps):
                _validate_node(step, f"{where}[{i}]", problems)
    if "order" in node and node["order"] not in _ORDERS:
        problems.append(f"{here}: unknown order {_quote(node['order'])}")
    for key in ("setup", "teardown"):
        if key in node:
            _validate_node(node[key], _key_path(path, key), problems)
    if "if-changeset-matches" in node:
        where = _key_path(path, "if-changeset-matches")
        pattern = node["if-changeset-matches"]
        if not isinstance(pattern, str):
            problems.append(f"{where}: must be a string (a regular expression)")
        else:
            try:
                re.compile(pattern)
            except re.error as e:
                problems.append(f"{where}: invalid regex {_quote(pattern)}: {e}")
    if "timeout" in node and parse_duration(node["timeout"]) is None:
        problems.append(f"{_key_path(path, 'timeout')}: must be a positive number")
    if "cwd" in node:
        cwd = node["cwd"]
        if not isinstance(cwd, str) or not cwd.strip() or "\0" in cwd:
            problems.append(f"{_key_path(path, 'cwd')}: must be a non-empty path string")


def _validate_exec(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, str):
        if not value.strip():
            problems.append(f"{where}: must not be empty")
    elif isinstance(value, list):
        if not value:
            problems.append(f"{where}: must not be empty")
        for i, arg in enumerate(value):
            if not isinstance(arg, str):
                problems.append(f"{where}[{i}]: must be a string, not {type(arg).__name__}")
    elif not callable(value):
        problems.append(
            f"{where}: must be a list of strings, a command string or a callable,"
            f" not {type(value).__name__}"
        )


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smhd]?)\s*")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float | None:
    """Seconds as a positive float, from a number, a numeric string or a string with a
    unit ("90s", "30m", "1.5h", "1d"); None when `value` is none of these. bass reads
    the pipelines file's durations with this function too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())  # "1e3" too, as the builder always took it
        except ValueError:
            return None
    else:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds <= 0:
        return None
    return seconds


# ---------------------------------------------------------------------------
# Options and arguments


class Options:
    """How to run a pipeline: the standard arguments, as `run_pipeline` takes them.

    Unset ids are generated (and then the root span is emitted too); unset endpoints
    come from the OTEL_EXPORTER_OTLP_* variables, else a local bass serve.
    `changeset` is the list of changed paths itself (empty or None: run everything).
    `view` is "auto" (live tree on a terminal, plain lines otherwise), "tty", "plain"
    or "quiet". `export=False` sends no telemetry at all. `handle_signals` installs
    SIGINT/SIGTERM handlers that cancel the run (main thread only).
    """

    def __init__(
        self,
        service_name: str | None = None,
        trace_id: str | None = None,
        root_span_id: str | None = None,
        traces_endpoint: str | None = None,
        logs_endpoint: str | None = None,
        changeset: list[str] | None = None,
        root: str | None = None,
        generate_root_span: bool = False,
        max_parallel: int | None = None,
        export: bool = True,
        view: str = "auto",
        output: TextIO | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.service_name = service_name
        self.trace_id = trace_id
        self.root_span_id = root_span_id
        self.traces_endpoint = traces_endpoint
        self.logs_endpoint = logs_endpoint
        self.changeset = changeset
        self.root = root
        self.generate_root_span = generate_root_span
        self.max_parallel = max_parallel
        self.export = export
        self.view = view
        self.output = output
        self.handle_signals = handle_signals

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"Options({fields})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and vars(self) == vars(other)


def _argument_parser(prog: str | None, with_pipeline_file: bool) -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a bass pipeline and report it as OpenTelemetry spans and logs.",
        allow_abbrev=False,
    )
    if with_pipeline_file:
        parser.add_argument("pipeline", help="pipeline JSON file")
    parser.add_argument("-s", "--service-name", help="default bass:pipeline:<name>")
    parser.add_argument("-i", "--trace-id", help="32 hex digits (default: a new trace)")
    parser.add_argument("-d", "--root-span-id", help="16 hex digits, parent of the pipeline span")
    parser.add_argument("-t", "--traces-endpoint", help="OTLP/HTTP traces URL")
    parser.add_argument("-l", "--logs-endpoint", help="OTLP/HTTP logs URL")
    parser.add_argument("-c", "--changeset", help="file listing changed paths, one a line")
    parser.add_argument("-r", "--root", help="directory the steps may not leave (default: .)")
    parser.add_argument(
        "-g", "--generate-root-span", action="store_true", help="emit the root span too"
    )
    parser.add_argument(
        "-j", "--max-parallel", type=int, help="running leaf steps at most (default: CPUs)"
    )
    return parser


# The options `_argument_parser` defines: flag -> (destination, takes a value)
_OPTIONS = {
    flag: (dest, dest != "generate_root_span")
    for dest, flags in (
        ("service_name", ("-s", "--service-name")),
        ("trace_id", ("-i", "--trace-id")),
        ("root_span_id", ("-d", "--root-span-id")),
        ("traces_endpoint", ("-t", "--traces-endpoint")),
        ("logs_endpoint", ("-l", "--logs-endpoint")),
        ("changeset", ("-c", "--changeset")),
        ("root", ("-r", "--root")),
        ("generate_root_span", ("-g", "--generate-root-span")),
        ("max_parallel", ("-j", "--max-parallel")),
    )
    for flag in flags
}


def _parse_plainly(argv: Sequence[str], with_pipeline_file: bool) -> SimpleNamespace | None:
    """The standard arguments as a worker passes them (`--name value`, `--name=value`,
    `-x value`, `-g`), parsed without argparse, whose import (and the terminal-size
    lookup its help formatter makes) costs every build's start more than the rest of
    it. None for anything else (help, an unknown or malformed argument, a value that
    starts with "-", a bad id): argparse parses those, with its messages."""
    from types import SimpleNamespace

    values: dict[str, Any] = {dest: None for dest, _ in _OPTIONS.values()}
    values["generate_root_span"] = False
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") and arg:
            positional.append(arg)
            continue
        flag, equals, value = arg.partition("=")
        if not flag.startswith("--"):
            equals, value = "", ""  # -x=value means "=value" to argparse: leave it to it
            flag = arg
        known = _OPTIONS.get(flag)
        if known is None:
            return None
        dest, takes_value = known
        if not takes_value:
            if equals:
                return None
            values[dest] = True
            continue
        if not equals:
            if i >= len(argv):
                return None
            value = argv[i]
            i += 1
        if value.startswith("-"):
            return None
        values[dest] = value
    if len(positional) != (1 if with_pipeline_file else 0):
        return None
    if values["max_parallel"] is not None:
        if not values["max_parallel"].isdecimal() or int(values["max_parallel"]) < 1:
            return None
        values["max_parallel"] = int(values["max_parallel"])
    for dest, digits in (("trace_id", 32), ("root_span_id", 16)):
        if values[dest] is not None and not _valid_id(values[dest].lower(), digits):
            return None
    if with_pipeline_file:
        values["pipeline"] = positional[0]
    return SimpleNamespace(**values)


def parse_arguments(
    argv: Sequence[str] | None = None, *, with_pipeline_file: bool = False
) -> tuple[Options, SimpleNamespace | argparse.Namespace]:
    """Parse the standard arguments (sys.argv[1:] by default) into Options.

    Unknown arguments are warned about on stderr and ignored. Bad ids or values exit 2.
    """
    plain = _parse_plainly(sys.argv[1:] if argv is None else argv, with_pipeline_file)
    args = plain if plain is not None else _parse_with_argparse(argv, with_pipeline_file)
    options = Options(
        service_name=args.service_name or None,
        trace_id=args.trace_id.lower() if args.trace_id else None,
        root_span_id=args.root_span_id.lower() if args.root_span_id else None,
        traces_endpoint=args.traces_endpoint or None,
        logs_endpoint=args.logs_endpoint or None,
        changeset=_read_changeset(args.changeset) if args.changeset else None,
        root=args.root or None,
        generate_root_span=args.generate_root_span,
        max_parallel=args.max_parallel,
    )
    return options, args


def _parse_with_argparse(
    argv: Sequence[str] | None, with_pipeline_file: bool
) -> argparse.Namespace:
    prog = None if argv is not None else os.path.basename(sys.argv[0] or "build")
    parser = _argument_parser(prog, with_pipeline_file)
    args, unknown = parser.parse_known_args(None if argv is None else list(argv))
    if unknown:
        _warn(_Masker.from_environ(os.environ)(f"ignoring unknown arguments: {' '.join(unknown)}"))
    for value, digits, flag in (
        (args.trace_id, 32, "--trace-id"),
        (args.root_span_id, 16, "--root-span-id"),
    ):
        if value is not None and not _valid_id(value.lower(), digits):
            parser.error(f"{flag} must be {digits} hex digits, not all zero: {value!r}")
    if args.max_parallel is not None and args.max_parallel < 1:
        parser.error("--max-parallel must be at least 1")
    return args


def _read_changeset(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        _warn(f"changeset file not found: {path}; running every step")
        return []
    except OSError as e:
        _warn(f"cannot read changeset file {path}: {e}; running every step")
        return []
    return [line.strip() for line in lines if line.strip()]


def _valid_id(value: str, digits: int) -> bool:
    return len(value) == digits and bool(_HEX.fullmatch(value)) and value.strip("0") != ""


def _new_id(size: int) -> str:
    while True:
        value = os.urandom(size).hex()
        if value.strip("0"):
            return value


def _warn(message: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(f"bass_builder: {message}\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _endpoints(options: Options, environ: Mapping[str, str]) -> tuple[str, str]:
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/")
    traces = (
        options.traces_endpoint
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or (base + "/v1/traces" if base else "http://localhost:8080/v1/traces")
    )
    logs = (
        options.logs_endpoint
        or environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "").strip()
        or (base + "/v1/logs" if base else "http://localhost:8080/v1/logs")
    )
    return traces, logs


def _parse_headers(value: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: k=v,k2=v2 with URL-encoded values."""
    if not value.strip():
        return {}
    from urllib.parse import unquote

    headers = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        key = unquote(key.strip())
        if sep and key:
            headers[key] = unquote(val.strip())
    return headers


_URL = re.compile(r"(?i)(https?)://(\[[^\]]*\]|[^/?#:\[]*)(?::(\d*))?([^#]*)")


def _split_url(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path?query) of an http(s) URL; ValueError otherwise."""
    match = _URL.fullmatch(url.strip().split("#", 1)[0])
    if not match or not match.group(2):
        raise ValueError(f"not an http(s) URL: {url!r}")
    scheme, host, port, target = match.groups()
    if target and target[0] not in "/?":  # user:password@host: credentials are not sent
        raise ValueError(f"not an http(s) URL without credentials: {url!r}")
    if "@" in host:
        raise ValueError(f"not an http(s) URL without credentials: {url!r}")
    if not target.startswith("/"):
        target = "/" + target
    return scheme.lower(), host.strip("[]"), int(port) if port else None, target


def dashboard_url(traces_endpoint: str, trace_id: str) -> str:
    """The dashboard page of a trace: scheme://host:port of the traces endpoint."""
    match = _URL.fullmatch(traces_endpoint.strip().split("#", 1)[0])
    origin = f"{match.group(1)}://{match.group(2)}" if match else traces_endpoint
    if match and match.group(3):
        origin += f":{match.group(3)}"
    return f"{origin}/traces/{trace_id}"


# ---------------------------------------------------------------------------
# Telemetry export


class _ProtocolError(OSError):
    """The endpoint's answer is not HTTP/1.x as expected."""


_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class Endpoint:
    """One OTLP/HTTP URL, POSTed to over one persistent (keep-alive) HTTP/1.1 connection.

    A minimal client on a socket rather than http.client: importing http.client (the
    email package, ssl) costs 20-35 ms, a tenth of a 200-step build's whole overhead
    budget. ssl is imported only for https URLs.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        scheme, self._host, port, target = _split_url(url)
        self.url = url
        self._https = scheme == "https"
        self._port = port or (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {host}" + (f":{port}" if port else ""),
            "Content-Type: application/json",
            f"User-Agent: bass_builder/{__version__}",
        ]
        lines += [
            f"{k}: {v}" for k, v in headers.items() if "\n" not in k + v and "\r" not in k + v
        ]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1", "replace")
        self._sock: Any = None
        self._file: Any = None
        self._answered = False  # a byte of the answer came (then no retry)
        self.given_up: str | None = None  # set at exit once delivery is hopeless

    def post(
        self, body: Sequence[bytes], timeout: float = HTTP_TIMEOUT
    ) -> tuple[int | None, str | None, bytes | BaseException]:
        """POST once (retrying once on a new connection when a kept-alive one went stale).

        Returns (status, Retry-After header, response body) or (None, None, error).
        Only a kept-alive connection that was closed before any answer came is retried
        here: after a timeout or a garbled answer the endpoint may have the request
        already, and whether to send it again is the exporter's decision (after a
        backoff, within its flush budget), not a reflex that doubles the wait.
        """
        for _ in (1, 2):
            reused = self._sock is not None
            self._answered = False
            try:
                if reused:
                    self._sock.settimeout(timeout)
                else:
                    self._connect(timeout)
                # the parts go out one by one: joining them would copy the body again
                length = str(sum(map(len, body))).encode()
                self._sock.sendall(self._head + length + b"\r\n\r\n" + body[0])
                for part in body[1:]:
                    self._sock.sendall(part)
                try:
                    status, headers, data = self._read_response()
                except ValueError as e:  # a malformed number in the answer
                    raise _ProtocolError(f"malformed HTTP response: {e}") from e
            except OSError as e:
                self.close()
                # closed or reset before a byte of the answer: the request went nowhere
                if reused and isinstance(e, ConnectionError) and not self._answered:
                    continue
                return None, None, e
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers.get("retry-after"), data
        return None, None, ConnectionResetError("the connection was closed by the endpoint")

    def _connect(self, timeout: float) -> None:
        import socket

        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._file = sock.makefile("rb")

    def _read_response(self) -> tuple[int, dict[str, str], bytes]:
        f = self._file
        while True:
            line = f.readline(65537)
            if not line:
                if self._answered:
                    raise ConnectionResetError("the endpoint closed the connection mid-answer")
                raise ConnectionResetError("the endpoint closed the connection")
            self._answered = True
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise _ProtocolError(f"not an HTTP response: {line[:80]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            while True:
                line = f.readline(65537)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if status >= 200:  # 1xx answers are interim: the real one follows
                break
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = f.readline(65537)
                if not size_line:
                    raise ConnectionResetError("the endpoint closed the connection mid-answer")
                size_text = size_line.split(b";")[0].strip()
                if not _HEX_SIZE.fullmatch(size_text):
                    raise _ProtocolError(f"malformed HTTP response: chunk size {size_text!r}")
                size = int(size_text, 16)
                if size == 0:
                    while f.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunk = f.read(size)
                if len(chunk) != size or f.readline(65537) not in (b"\r\n", b"\n"):
                    raise ConnectionResetError("the endpoint closed the connection mid-answer")
                chunks.append(chunk)
            data = b"".join(chunks)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            data = f.read(length)
            if len(data) != length:
                raise ConnectionResetError("the endpoint closed the connection mid-answer")
        elif status in (204, 304):
            data = b""
        else:  # the body ends with the connection
            data = f.read()
            headers["connection"] = "close"
        return status, headers, data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Spool:
    """Records that did not fit in the memory queue, in order, in an unlinked temporary
    file: a step printing faster than the endpoint takes its output never waits, and
    nothing is lost while the endpoint catches up (or comes back)."""

    def __init__(self) -> None:
        import tempfile  # only when a build outruns its endpoint

        self._file = tempfile.TemporaryFile()
        self._write_at = self._read_at = 0
        self.records = 0
        self.bytes = 0

    def append(self, tag: str, count: int, *parts: bytes) -> None:
        """`tag`: "s" a span, "l" log records (a JSON fragment), "r" log lines as text
        (see _Telemetry.add_log_text); the entry's data is `parts` joined."""
        size = sum(map(len, parts))
        self._file.seek(self._write_at)
        self._file.write(f"{tag}{count} {size}\n".encode())
        for part in parts:
            self._file.write(part)
        self._write_at = self._file.tell()
        self.records += count
        self.bytes += size

    def pop(self) -> tuple[str, int, bytes]:
        self._file.seek(self._read_at)
        header = self._file.readline().decode()
        count, size = map(int, header[1:].split())
        text = self._file.read(size)
        self._read_at = self._file.tell()
        self.records -= count
        self.bytes -= size
        return header[0], count, text

    def __len__(self) -> int:
        return self.records

    def close(self) -> None:
        self._file.close()


class _Telemetry:
    """The one background exporter: bounded queues of spans and log records, batched POSTs.

    Producers (step threads) never wait on the network: what does not fit in the memory
    queue goes to a spool file (up to SPOOL_BYTES), and only past that are records
    dropped and counted. Spans go before log records. Order is kept within each kind.
    """

    def __init__(
        self, traces_url: str, logs_url: str, service_name: str, environ: Mapping[str, str]
    ) -> None:
        common = _parse_headers(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
        traces_headers = {
            **common,
            **_parse_headers(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")),
        }
        logs_headers = {
            **common,
            **_parse_headers(environ.get("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "")),
        }
        self._traces = Endpoint(traces_url, traces_headers)
        self._logs_endpoint = Endpoint(logs_url, logs_headers)
        service = _json_str(service_name)
        resource = (
            f'{{"attributes":[{{"key":"service.name","value":{{"stringValue":{service}}}}}]}}'
        )
        scope = f'{{"name":"bass_builder","version":"{__version__}"}}'
        self._spans_head = (
            f'{{"resourceSpans":[{{"resource":{resource},"scopeSpans":[{{"scope":{scope},"spans":['
        ).encode()
        self._logs_head = (
            f'{{"resourceLogs":[{{"resource":{resource},'
            f'"scopeLogs":[{{"scope":{scope},"logRecords":['
        ).encode()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        # JSON fragments, encoded when queued (in the producer's thread, not the exporter's)
        self._spans: deque[bytes] = deque()
        self._logs: deque[tuple[int, bytes]] = deque()
        self._queued = 0  # records queued or in flight
        self._queued_bytes = 0
        self._spool: _Spool | None = None  # newer records than the memory queue's
        self._streams: list[_LogStream] = []  # the streams whose text is spooled
        self._stream_ids: dict[_LogStream, int] = {}
        self._closing = False
        self._close_started = 0.0
        self._closed = threading.Event()
        self._dead: str | None = None  # the exporter thread failed: drop everything
        self._healthy = True
        self._progress_at = time.monotonic()
        self._delivered_any = False
        self._last_error: BaseException | None = None
        self._reported: set[str] = set()
        self.dropped: dict[str, int] = {"spans": 0, "log records": 0}
        self.drop_reasons: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="bass-otlp-export", daemon=True)
        self._thread.start()

    # -- producers

    def add_span(self, text: str) -> None:
        data = text.encode()
        self._enqueue(self._spans, data, 1, len(data), "spans")

    def add_log_text(self, stream: _LogStream, now: str, text: str, count: int) -> None:
        """Queue `count` lines of `stream` read at `now`. While the memory queue has room
        they are made into records here; once the exporter is behind they go to the
        spool as text, a third of the size, and are made into records when they come
        back: a step printing faster than its endpoint takes never waits on either."""
        with self._lock:
            if self._refused_locked("log records", count):
                return
            if self._spills_locked(count, 3 * len(text)):  # its JSON: about 3x the text
                if stream not in self._stream_ids:
                    self._stream_ids[stream] = len(self._streams)
                    self._streams.append(stream)
                head = f"{self._stream_ids[stream]} {now}\n".encode()
                data = text.encode()
                self._spill_locked("r", count, len(head) + len(data), head, data)
                return
        for n, data in stream.fragments(now, text):
            self._enqueue(self._logs, (n, data), n, len(data), "log records")

    def _enqueue(self, queue: deque, item: Any, count: int, size: int, kind: str) -> None:
        with self._lock:
            if self._refused_locked(kind, count):
                return
            if self._spills_locked(count, size):
                tag, data = ("s", item) if kind == "spans" else ("l", item[1])
                self._spill_locked(tag, count, size, data)
                return
            was_empty = self._queued == 0
            queue.append(item)
            self._queued += count
            self._queued_bytes += size
            if was_empty or self._queued >= LOG_BATCH_RECORDS or self._queued_bytes >= BATCH_BYTES:
                self._work.notify()

    def _refused_locked(self, kind: str, count: int) -> bool:
        """Drop (and count) records that arrive once the exporter can no longer send."""
        if self._dead is not None:
            reason = self._dead
        elif self._closing and not self._thread.is_alive():
            reason = "written after the exporter stopped"
        else:
            return False
        self._drop_locked(kind, count, reason)
        return True

    def _spills_locked(self, count: int, size: int) -> bool:
        """Whether new records go to the spool: it is in use (order is kept), or they
        would overfill a memory queue that is not empty."""
        return self._spool is not None or (
            self._queued > 0
            and (self._queued + count > QUEUE_RECORDS or self._queued_bytes + size > QUEUE_BYTES)
        )

    def _spill_locked(self, tag: str, count: int, size: int, *parts: bytes) -> None:
        kind = "spans" if tag == "s" else "log records"
        try:
            if self._spool is None:
                self._spool = _Spool()
            if self._spool.bytes + size > SPOOL_BYTES:
                self._drop_locked(kind, count, f"spool full ({self._why_unhealthy()})")
                return
            self._spool.append(tag, count, *parts)
        except OSError as e:
            self._drop_locked(kind, count, f"queue full, spool failed: {e}")
            return
        self._work.notify()

    def _refill_locked(self) -> None:
        """Move spooled records back into the memory queue as it empties, in order."""
        spool = self._spool
        if spool is None:
            return
        # Only a few requests' worth at a time: text is made into records here, under the
        # lock, and a step still printing should not wait on records made long before
        # the endpoint can take them.
        while len(spool) and self._queued < REFILL_RECORDS and self._queued_bytes < BATCH_BYTES * 4:
            tag, count, data = spool.pop()
            if tag == "s":
                fragments = [(1, data)]
                self._spans.append(data)
            elif tag == "l":
                fragments = [(count, data)]
                self._logs.append((count, data))
            else:
                head, _, text = data.decode().partition("\n")
                stream, now = head.split(" ")
                fragments = self._streams[int(stream)].fragments(now, text)
                self._logs.extend(fragments)
            for n, fragment in fragments:
                self._queued += n
                self._queued_bytes += len(fragment)
        if not len(spool):
            spool.close()
            self._spool = None

    def _why_unhealthy(self) -> str:
        if self._last_error is not None and not self._healthy:
            return _describe_error(self._last_error)
        return "endpoint too slow"

    def _drop_locked(self, kind: str, count: int, reason: str) -> None:
        self.dropped[kind] += count
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + count

    # -- the exporter thread

    def _run(self) -> None:
        try:
            self._export_loop()
        except BaseException as e:  # a bug here must never hang or fail the build
            import traceback

            _warn("telemetry exporter failed:\n" + traceback.format_exc())
            with self._lock:
                self._dead = f"exporter failed: {type(e).__name__}: {e}"
                self._drop_queued_locked(self._dead)

    def _drop_queued_locked(self, reason: str) -> None:
        if self._spans:
            self._drop_locked("spans", len(self._spans), reason)
            self._spans.clear()
        if self._logs:
            self._drop_locked("log records", sum(count for count, _ in self._logs), reason)
            self._logs.clear()
        while self._spool is not None and len(self._spool):
            tag, count, _ = self._spool.pop()
            self._drop_locked("spans" if tag == "s" else "log records", count, reason)
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._queued = self._queued_bytes = 0

    def _export_loop(self) -> None:
        while True:
            with self._lock:
                self._refill_locked()
                while not self._queued and not self._closing:
                    self._work.wait()
                    self._refill_locked()
                if not self._queued:
                    return
                full = (
                    len(self._spans) >= BATCH_RECORDS
                    or self._queued >= LOG_BATCH_RECORDS
                    or self._queued_bytes >= BATCH_BYTES
                )
                if not full and not self._closing:
                    self._work.wait(LINGER_SECONDS)
                spans = [self._spans.popleft() for _ in range(min(len(self._spans), BATCH_RECORDS))]
                logs: list[bytes] = []
                log_count = log_bytes = 0
                while self._logs:
                    count, text = self._logs[0]
                    if logs and (
                        log_count + count > LOG_BATCH_RECORDS or log_bytes + len(text) > BATCH_BYTES
                    ):
                        break
                    self._logs.popleft()
                    logs.append(text)
                    log_count += count
                    log_bytes += len(text)
            if spans:
                self._deliver(self._traces, self._spans_head, spans, len(spans), "spans")
            if logs:
                self._deliver(self._logs_endpoint, self._logs_head, logs, log_count, "log records")

    def _deliver(
        self, endpoint: Endpoint, head: bytes, items: list[bytes], count: int, kind: str
    ) -> None:
        size = sum(map(len, items))
        try:
            if endpoint.given_up is None:
                body = (head, b",".join(items), b"]}]}]}")
                self._post_with_retries(endpoint, body, count, kind)
            else:
                with self._lock:
                    self._drop_locked(kind, count, endpoint.given_up)
        finally:
            with self._lock:
                self._queued -= count
                self._queued_bytes -= size

    def _post_with_retries(
        self, endpoint: Endpoint, body: Sequence[bytes], count: int, kind: str
    ) -> None:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        while True:
            timeout = HTTP_TIMEOUT
            if self._closing:  # never wait on a dead endpoint past the flush budget
                timeout = max(0.5, min(timeout, self._give_up_at() - time.monotonic()))
            status, retry_after, answer = endpoint.post(body, timeout)
            if status is not None and 200 <= status < 300:
                with self._lock:
                    self._healthy = True
                    self._delivered_any = True
                    self._progress_at = time.monotonic()
                if isinstance(answer, bytes) and b"rejected" in answer:
                    self._count_rejected(answer, kind)
                return
            if status is not None and status not in _RETRYABLE:
                text = answer.decode("utf-8", "replace")[:300] if isinstance(answer, bytes) else ""
                reason = f"HTTP {status} from {endpoint.url}"
                if reason not in self._reported:
                    self._reported.add(reason)
                    _warn(f"telemetry endpoint answered {reason}: {text.strip()}; dropping")
                with self._lock:
                    self._drop_locked(kind, count, reason)
                return
            if status is None:
                assert isinstance(answer, BaseException)
                error: BaseException = answer
                reason = f"{_describe_error(error)} ({endpoint.url})"
            else:
                error = OSError(f"HTTP {status}")
                reason = f"HTTP {status} from {endpoint.url}"
            with self._lock:
                self._healthy = False
                self._last_error = error
            delay = backoff.delay(retry_after)
            if self._closing:
                remaining = self._give_up_at() - time.monotonic()
                if remaining <= 0:
                    endpoint.given_up = reason
                    with self._lock:
                        self._drop_locked(kind, count, reason)
                    return
                time.sleep(min(delay, remaining))
            else:
                self._closed.wait(delay)

    def _give_up_at(self) -> float:
        unreached = not self._delivered_any and isinstance(self._last_error, ConnectionRefusedError)
        budget = FLUSH_SECONDS_UNREACHED if unreached else FLUSH_SECONDS
        return max(self._close_started, self._progress_at) + budget

    def _count_rejected(self, answer: bytes, kind: str) -> None:
        try:
            partial = json.loads(answer).get("partialSuccess") or {}
            field = "rejectedSpans" if kind == "spans" else "rejectedLogRecords"
            rejected = int(partial.get(field) or 0)
        except (ValueError, TypeError, AttributeError):
            return
        if rejected > 0:
            message = str(partial.get("errorMessage") or "no reason given")[:200]
            with self._lock:
                self._drop_locked(kind, rejected, f"rejected by the receiver: {message}")

    def close(self) -> None:
        """Deliver what is queued (giving up after ~10 s of failures), stop the thread."""
        with self._lock:
            self._closing = True
            self._close_started = time.monotonic()
            self._work.notify_all()
        self._closed.set()
        while self._thread.is_alive():
            self._thread.join(0.5)
            if time.monotonic() > self._give_up_at() + 1:  # stuck: give up on the rest
                with self._lock:
                    self._drop_queued_locked("still queued at exit (endpoint too slow)")
                break
        if not self._thread.is_alive():
            self._traces.close()
            self._logs_endpoint.close()

    def drop_report(self) -> str | None:
        with self._lock:
            if not any(self.dropped.values()):
                return None
            counts = " and ".join(f"{n} {kind}" for kind, n in self.dropped.items() if n)
            reasons = "; ".join(f"{n} {why}" for why, n in self.drop_reasons.items())
        return f"telemetry: dropped {counts}: {reasons}"


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds, kept within 0-60; None when absent or an HTTP date
    (a backoff then decides)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 60.0)


class Backoff:
    """How long to wait before the next retry: what the server asked for in Retry-After
    (never less than `first`: "0" must not make a busy loop), else `first`, twice that,
    and so on up to `most` seconds. bass's forwarders and worker retry with it too."""

    def __init__(self, first: float, most: float) -> None:
        self.first = first
        self.most = most
        self._next = first

    def delay(self, retry_after: str | None = None) -> float:
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            return max(asked, self.first)
        delay, self._next = self._next, min(self._next * 2, self.most)
        return delay

    def reset(self) -> None:
        """A request succeeded: the next failure starts from `first` again."""
        self._next = self.first


def _describe_error(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _attribute_json(key: str, value: Any) -> str:
    """One OTLP/JSON KeyValue, assembled by hand (a dict and json.dumps cost more)."""
    if isinstance(value, bool):
        any_value = '"boolValue":' + ("true" if value else "false")
    elif isinstance(value, int):
        any_value = '"intValue":"' + str(value) + '"'
    elif isinstance(value, float):
        any_value = '"doubleValue":' + repr(value)
    elif isinstance(value, (list, tuple)):
        values = ",".join('{"stringValue":' + _json_str(str(v)) + "}" for v in value)
        any_value = '"arrayValue":{"values":[' + values + "]}"
    else:
        any_value = '"stringValue":' + _json_str(str(value))
    return '{"key":' + _json_str(key) + ',"value":{' + any_value + "}}"


class _Masker:
    """Replaces secret values by ***: each value of 4 characters or more and, as output is
    masked line by line, each line (4 characters or more, not blank) of a value of
    several lines. `values`: longest first, so a secret inside another goes with it.
    """

    __slots__ = ("values",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = set()
        for secret in secrets:
            if len(secret) >= 4:
                values.add(secret)
            if "\n" in secret:
                for line in secret.split("\n"):
                    line = line[:-1] if line.endswith("\r") else line
                    if len(line) >= 4 and line.strip():
                        values.add(line)
        self.values = sorted(values, key=lambda v: (-len(v), v))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> _Masker:
        """The values of the variables named in BASS_SECRET_NAMES (comma-separated)."""
        names = [n.strip() for n in environ.get("BASS_SECRET_NAMES", "").split(",")]
        return cls(environ[n] for n in names if n in environ)

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, "***")
        return text

    def attribute(self, value: Any) -> Any:
        """A span attribute's value, masked: strings and the strings in a list."""
        if isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (list, tuple)):
            return [self(str(v)) for v in value]
        return self(str(value))


class _LogStream:
    """One output stream of one step, turned into log records line by line.

    Bytes are decoded incrementally (UTF-8, errors replaced) and cut at newlines; the
    complete lines of one read go to the exporter as one piece of text, made into JSON
    fragments of many records each (`fragments`): only the bodies go through the JSON
    encoder, and none at all when no line needs escaping.
    """

    def __init__(
        self,
        run: _Run,
        span_id: str,
        stream: str,
        severity: int = 0,
        keep_tail: bool = True,
    ) -> None:
        if not severity:
            severity = 9 if stream == "stdout" else 13
        text = {9: "INFO", 13: "WARN", 17: "ERROR"}[severity]
        attributes = ""
        if stream:
            attributes = (
                f',"attributes":[{{"key":"log.iostream","value":{{"stringValue":"{stream}"}}}}]'
            )
        self._prefix = (
            f'{{"traceId":"{run.trace_id}","spanId":"{span_id}","severityNumber":{severity},'
            f'"severityText":"{text}"{attributes},"timeUnixNano":"'
        )
        self._telemetry = run.telemetry
        self._mask = run.mask if run.mask.values else None
        # A pending (incomplete) line longer than _limit is cut into records of MAX_LINE
        # characters. With secrets, the last _keep characters always stay pending: they
        # may begin a secret that the next read completes, and no cut may split one.
        self._keep = len(run.mask.values[0]) - 1 if self._mask else 0
        self._limit = MAX_LINE + self._keep
        self._checked = 0  # leading characters of _pending in which no secret begins
        self._decoder: Any = None  # created on the first bytes: many steps print nothing
        self._pending = ""
        self.tail: deque[str] | None = deque(maxlen=TAIL_LINES) if keep_tail else None

    def feed(self, data: bytes) -> None:
        if self._decoder is None:
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.feed_text(self._decoder.decode(data))

    def feed_text(self, text: str) -> None:
        if self._pending:
            text = self._pending + text
        cut = text.rfind("\n") + 1
        if cut:
            self._pending = text[cut:]
            complete = text[: cut - 1]
            if self._mask is not None:
                complete = self._mask(complete)
                self._checked = 0
            self._emit(complete)
        else:
            self._pending = text
        if len(self._pending) > self._limit:
            rest = self._pending
            if self._mask is not None:
                # Masked, then cut (no cut splits a secret: one begun stays pending), and
                # only once: a secret not masked yet begins past what was checked before.
                checked = self._checked
                rest = rest[:checked] + self._mask(rest[checked:]) if checked else self._mask(rest)
            # records of MAX_LINE characters while more than _limit remain
            end = max(0, (len(rest) - self._limit - 1) // MAX_LINE + 1) * MAX_LINE
            self._pending = rest[end:]
            if self._mask is not None:
                self._checked = max(0, len(self._pending) - self._keep)
            if end:
                self._emit("\n".join([rest[i : i + MAX_LINE] for i in range(0, end, MAX_LINE)]))

    def close(self) -> None:
        rest = self._pending
        if self._decoder is not None:
            rest += self._decoder.decode(b"", True)
        self._pending = ""
        if rest:
            self.feed_text(rest + "\n")

    def _emit(self, text: str) -> None:
        """Queue complete lines (`text` holds them joined by newlines, masked) as log
        records. Only the line count and the tail are worked out here, in the step's
        thread; the records are made by `fragments`, now or, when the exporter is
        behind, once the text comes back from its spool."""
        if self.tail is not None:
            self.tail.extend(_split_lines(text.rsplit("\n", TAIL_LINES)[-TAIL_LINES:]))
        if self._telemetry is not None:
            self._telemetry.add_log_text(self, str(time.time_ns()), text, text.count("\n") + 1)

    def fragments(self, now: str, text: str) -> list[tuple[int, bytes]]:
        """The log records of `text` (lines read at `now`) as JSON fragments of at most
        LOG_BATCH_RECORDS records and about BATCH_BYTES: (records, fragment). When no
        line needs JSON escaping (printable ASCII without quote or backslash, as most
        build output is) a fragment is assembled with one join."""
        plain = _plain(text)
        lines = _split_lines(text.split("\n"))
        head = self._prefix + now + '","body":{"stringValue":'
        glue = "}}," + head
        n, i = len(lines), 0
        # sized by the average record (one sum, not one per fragment)
        average = (len(text) + 1) / n + len(glue) + 2
        step = max(1, min(LOG_BATCH_RECORDS, int(BATCH_BYTES // average)))
        out = []
        while i < n:
            j = min(i + step, n)
            chunk = lines[i:j]
            if plain:
                fragment = head + '"' + ('"' + glue + '"').join(chunk) + '"}}'
            else:
                fragment = head + glue.join(map(_json_str, chunk)) + "}}"
            out.append((len(chunk), fragment.encode()))
            i = j
        return out


def _split_lines(lines: list[str]) -> list[str]:
    """Lines as records: CRLF line ends dropped (a lone \r inside a line stays), lines
    longer than MAX_LINE characters cut into several."""
    if lines[-1].endswith("\r"):
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if max(map(len, lines)) > MAX_LINE:
        lines = [
            line[i : i + MAX_LINE] for line in lines for i in range(0, len(line) or 1, MAX_LINE)
        ]
    return lines


class _StreamRouter:
    """sys.stdout/sys.stderr while a pipeline runs: a Python step's thread writes to its
    span's log stream, every other thread to the original stream."""

    def __init__(self, original: TextIO, stream: str) -> None:
        self._original = original
        self._stream = stream
        self.routes: dict[int, _LogStream] = {}

    def write(self, text: str) -> int:
        sink = self.routes.get(threading.get_ident())
        if sink is None:
            return self._original.write(text)
        sink.feed_text(str(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if threading.get_ident() not in self.routes:
            self._original.flush()

    def isatty(self) -> bool:
        if threading.get_ident() in self.routes:
            return False
        return self._original.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


# ---------------------------------------------------------------------------
# Spans


class _Span:
    __slots__ = ("run", "name", "span_id", "parent_id", "start_ns", "attributes")

    def __init__(self, run: _Run, name: str, parent_id: str | None, span_id: str | None = None):
        self.run = run
        self.name = name
        self.span_id = span_id or _new_id(8)
        self.parent_id = parent_id
        self.start_ns = 0
        self.attributes: dict[str, Any] = {}

    def start(self) -> None:
        self.start_ns = time.time_ns()
        self._export(0, RUNNING, "")

    def end(self, status: str, message: str = "") -> None:
        end_ns = time.time_ns()
        if not self.start_ns:
            self.start_ns = end_ns
        self._export(end_ns, status, message)

    def _export(self, end_ns: int, status: str, message: str) -> None:
        telemetry = self.run.telemetry
        if telemetry is None:
            return
        self.attributes["bass.status"] = status
        name = self.name
        items: Iterable[tuple[str, Any]] = self.attributes.items()
        if self.run.mask_spans:  # the name and every attribute but the builder's status
            mask = self.run.mask
            name = mask(name)
            items = [(k, v if k == "bass.status" else mask.attribute(v)) for k, v in items]
        if status == OK:
            otlp_status = '{"code":1}'
        elif status in (RUNNING, SKIPPED):
            otlp_status = '{"code":0}'
        else:
            text = self.run.mask(message) if message else status
            otlp_status = '{"code":2,"message":' + _json_str(text) + "}"
        parent = ',"parentSpanId":"' + self.parent_id + '"' if self.parent_id else ""
        attributes = ",".join([_attribute_json(k, v) for k, v in items])
        telemetry.add_span(
            f'{{"traceId":"{self.run.trace_id}","spanId":"{self.span_id}"{parent},'
            f'"name":{_json_str(name)},"kind":1,"startTimeUnixNano":"{self.start_ns}",'
            f'"endTimeUnixNano":"{end_ns}","attributes":[{attributes}],"status":{otlp_status}}}'
        )


class Reporter:
    """Spans and log records of one trace, exported in the background with the
    builder's exporter: for a program that reports into a build without running a
    pipeline (the bass worker reports the build's root span, its checkout and the
    entry's output this way).

    Values in `secrets` (4 characters or more; of a value of several lines, each line
    of 4 or more too) are replaced by *** in log records and status messages. Span names
    and attributes are the caller's own: they are exported as given.
    """

    def __init__(
        self,
        traces_endpoint: str,
        logs_endpoint: str,
        service_name: str,
        trace_id: str,
        secrets: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.telemetry: _Telemetry | None = _Telemetry(
            traces_endpoint, logs_endpoint, service_name, os.environ if environ is None else environ
        )
        self.mask = _Masker(secrets)
        self.mask_spans = False
        self._streams: dict[tuple[str, str], _LogStream] = {}

    def start_span(
        self,
        name: str,
        parent_id: str | None = None,
        span_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> _Span:
        """Export a span as running; returns it for `end_span` and `log`."""
        span = _Span(self, name, parent_id, span_id)  # type: ignore[arg-type]
        span.attributes.update(attributes or {})
        span.start()
        return span

    def end_span(
        self,
        span: _Span,
        status: str,
        message: str = "",
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Flush the span's log lines, then export it as ended with `status`."""
        for key in [k for k in self._streams if k[0] == span.span_id]:
            self._streams.pop(key).close()
        span.attributes.update(attributes or {})
        span.end(status, message)

    def log(self, span: _Span, text: str, stream: str = "stdout") -> None:
        """One line (or several, newline-separated) as log records of `span`."""
        key = (span.span_id, stream)
        sink = self._streams.get(key)
        if sink is None:
            sink = self._streams[key] = _LogStream(self, span.span_id, stream, keep_tail=False)  # type: ignore[arg-type]
        sink.feed_text(text + "\n")

    def close(self) -> str | None:
        """Deliver what is queued; returns the drop report, if anything was dropped."""
        for sink in self._streams.values():
            sink.close()
        self._streams.clear()
        assert self.telemetry is not None
        self.telemetry.close()
        return self.telemetry.drop_report()


# ---------------------------------------------------------------------------
# Terminal views

_SYMBOLS = {
    OK: "✓",
    FAILED: "✗",
    TIMEOUT: "⏱",
    SKIPPED: "⊘",
    CANCELLED: "■",
    ERROR: "!",
    RUNNING: "▶",
    "pending": "·",
}
_ASCII_SYMBOLS = {
    OK: "+",
    FAILED: "x",
    TIMEOUT: "T",
    SKIPPED: "-",
    CANCELLED: "C",
    ERROR: "!",
    RUNNING: ">",
    "pending": ".",
}
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s"


def _walk(node: dict, key: str = "", depth: int = 0) -> Iterator[tuple[str, int, dict]]:
    """Every node of a pipeline in display order: setup, steps, teardown."""
    yield key, depth, node
    if "setup" in node:
        yield from _walk(node["setup"], _key_path(key, "setup"), depth + 1)
    for i, step in enumerate(node.get("steps") or ()):
        yield from _walk(step, _key_path(key, f"steps[{i}]"), depth + 1)
    if "teardown" in node:
        yield from _walk(node["teardown"], _key_path(key, "teardown"), depth + 1)


class _Line:
    """One node's line in the terminal view."""

    __slots__ = ("depth", "name", "path", "leaf", "status", "detail", "started", "elapsed", "tail")

    def __init__(self, depth: int, name: str, leaf: bool) -> None:
        self.depth = depth
        self.name = name
        self.leaf = leaf
        self.path = ""
        self.status = "pending"
        self.detail = ""
        self.started = 0.0
        self.elapsed: float | None = None
        self.tail: list[str] = []


class _View:
    """Terminal output: plain lines (pipes, files) or a live tree (a terminal)."""

    def __init__(
        self, pipeline: dict, stream: TextIO, mode: str, mask: Callable[[str], str] = str
    ) -> None:
        self._stream = stream
        self._mode = mode
        # Names, paths and details are masked as they come, before a line of the tree is
        # cut to the terminal's width (which could cut a secret, and then not mask it).
        self._mask = mask
        self._lock = threading.Lock()
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
        self._symbols = _SYMBOLS if encoding.startswith("utf") else _ASCII_SYMBOLS
        self._lines: dict[str, _Line] = {}
        for key, depth, node in _walk(pipeline):
            self._lines[key] = _Line(depth, mask(node["name"]), leaf="steps" not in node)
        self._drawn = 0
        self._frame = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broken = False

    def begin(self, header: str) -> None:
        self._write(header + "\n")
        if self._mode == "tty":
            self._write("\x1b[?25l")
            self._thread = threading.Thread(target=self._animate, name="bass-view", daemon=True)
            self._thread.start()

    def start(self, key: str, path: str) -> None:
        with self._lock:
            line = self._lines[key]
            line.path, line.status, line.started = self._mask(path), RUNNING, time.monotonic()
            if self._mode == "plain":
                self._write(f"{self._symbols[RUNNING]} {line.path}\n")

    def end(
        self,
        key: str,
        path: str,
        status: str,
        detail: str,
        tail: Sequence[str] = (),
        top: bool = True,
    ) -> None:
        with self._lock:
            line = self._lines[key]
            line.path, line.status, line.detail = self._mask(path), status, self._mask(detail)
            line.tail = list(tail)  # log records: masked already
            line.elapsed = time.monotonic() - line.started if line.started else None
            if self._mode == "plain" and top:
                self._write(self._describe(line) + "\n")

    def _describe(self, line: _Line, name: str | None = None) -> str:
        text = f"{self._symbols.get(line.status, '?')} {name or line.path}"
        status, detail = line.status, line.detail
        if status == SKIPPED:
            return f"{text} skipped ({detail})" if detail else f"{text} skipped"
        if status == ERROR:
            return f"{text} error: {detail}" if detail else f"{text} error"
        if status == TIMEOUT:
            return f"{text} {detail or 'timeout'}"
        if status == FAILED:
            text += f" {detail or 'failed'}"
        elif status == CANCELLED:
            text += " cancelled"
        if line.elapsed is not None:
            text += f" {_seconds(line.elapsed)}"
        return text

    def finish(self, status: str, name: str, elapsed: float, footer: Sequence[str]) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        with self._lock:
            out = []
            prefix = ""
            if self._mode == "tty":
                prefix = self._erase()
                out.extend(self._tree_lines(final=True))
            failing = [
                line
                for line in self._lines.values()
                if line.leaf and line.status in (FAILED, TIMEOUT, ERROR) and line.path
            ]
            for line in failing:
                if line.tail:
                    out.append(f"--- last lines of {line.path} ({line.status}) ---")
                    out.extend(line.tail)
            counts: dict[str, int] = {}
            for line in self._lines.values():
                if line.leaf:
                    shown = line.status if line.status in STATUSES else SKIPPED
                    counts[shown] = counts.get(shown, 0) + 1
            summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
            symbol = self._symbols.get(status, "?")
            out.append(
                f"{symbol} pipeline {self._mask(name)} {status} in {_seconds(elapsed)} ({summary})"
            )
            out.extend(footer)
            self._write(
                prefix + "\n".join(out) + "\n" + ("\x1b[?25h" if self._mode == "tty" else "")
            )

    # -- the live tree

    def _animate(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self._frame += 1
                self._redraw()

    def _erase(self) -> str:
        text = f"\r\x1b[{self._drawn}A\x1b[J" if self._drawn else "\r\x1b[J"
        self._drawn = 0
        return text

    def _redraw(self) -> None:
        try:
            width, height = os.get_terminal_size(self._stream.fileno())
        except (AttributeError, OSError, ValueError):
            width, height = 100, 30
        lines = self._tree_lines(final=False, limit=max(height - 2, 3))
        lines = [line[: max(width - 1, 10)] for line in lines]  # a wrapped line breaks redraws
        text = self._erase() + "".join(line + "\n" for line in lines)
        self._drawn = len(lines)
        self._write(text)

    def _tree_lines(self, final: bool, limit: int = 0) -> list[str]:
        now = time.monotonic()
        out = []
        entries = list(self._lines.values())
        hidden = 0
        if not final and len(entries) > limit:  # keep what matters on a small screen
            entries = [e for e in entries if e.status not in (OK, SKIPPED) or not e.leaf]
            if len(entries) > limit:
                busy = (RUNNING, FAILED, TIMEOUT, ERROR, CANCELLED)
                entries = [e for e in entries if e.status in busy]
            if len(entries) > limit:
                hidden = len(entries) - (limit - 1)
                entries = entries[: limit - 1]
        for line in entries:
            indent = "  " * line.depth
            if line.status == RUNNING:
                spinner = (
                    _SPINNER[self._frame % len(_SPINNER)] if self._symbols is _SYMBOLS else "*"
                )
                out.append(f"{indent}{spinner} {line.name} {_seconds(now - line.started)}")
            else:
                out.append(indent + self._describe(line, name=line.name))
        if hidden:
            out.append(f"  … and {hidden} more")
        return out

    def _write(self, text: str) -> None:
        if self._broken or self._mode == "quiet":
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            self._broken = True  # a closed pipe must not fail the build


# ---------------------------------------------------------------------------
# Running


class _Context:
    """What a node inherits from its parent."""

    __slots__ = ("span_id", "cwd", "path", "deadline", "deadline_owner", "protected")

    def __init__(
        self,
        span_id: str | None,
        cwd: str,
        path: str,
        deadline: float | None = None,
        deadline_owner: tuple[str, str, float] | None = None,  # (span id, path, seconds)
        protected: bool = False,  # a teardown: runs on after the first cancel signal
    ) -> None:
        self.span_id = span_id
        self.cwd = cwd
        self.path = path
        self.deadline = deadline
        self.deadline_owner = deadline_owner
        self.protected = protected


class _Run:
    def __init__(self, pipeline: dict, options: Options) -> None:
        environ = os.environ
        self.pipeline = pipeline
        self.options = options
        self.name = pipeline["name"]
        self.local = options.trace_id is None
        self.trace_id = options.trace_id or _new_id(16)
        self.root_span_id = options.root_span_id
        if self.root_span_id is None and (self.local or options.generate_root_span):
            self.root_span_id = _new_id(8)
        self.generate_root = options.generate_root_span or self.local
        self.mask = _Masker.from_environ(environ)
        self.mask_spans = bool(self.mask.values)  # span names and attributes too
        # an explicit --service-name is the caller's, as given; the pipeline's name is text
        self.service_name = options.service_name or f"bass:pipeline:{self.mask(self.name)}"
        self.traces_url, self.logs_url = _endpoints(options, environ)
        self.root = os.path.realpath(options.root or os.getcwd())
        start_cwd = os.path.realpath(os.getcwd())
        if not _inside(start_cwd, self.root):
            _warn(f"the current directory is outside --root; steps start in {self.root}")
            start_cwd = self.root
        self.start_cwd = start_cwd
        self.changeset = list(options.changeset or ())
        self.cancel = threading.Event()
        self.force = threading.Event()
        parallel = options.max_parallel or os.cpu_count() or 1
        self.slots = threading.BoundedSemaphore(max(1, parallel))
        self.telemetry: _Telemetry | None = None
        # OpenTelemetry's own switch: `bass watch` offline sets it (no server to report to)
        if options.export and environ.get("BASS_NO_TELEMETRY", "") not in ("1", "true"):
            try:
                self.telemetry = _Telemetry(
                    self.traces_url, self.logs_url, self.service_name, environ
                )
            except ValueError as e:
                _warn(f"telemetry disabled: {e}")
        base_env = dict(environ)
        base_env.update(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=self.traces_url,
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=self.logs_url,
            OTEL_SERVICE_NAME=self.service_name,
            # the endpoints are OTLP/HTTP URLs, and an SDK at its defaults speaks gRPC
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/protobuf",
        )
        base_env.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        if self.traces_url.endswith("/v1/traces"):
            metrics_url = self.traces_url[: -len("traces")] + "metrics"
            base_env.setdefault("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics_url)
        # Encoded once: Popen would encode every variable again for every step.
        self.base_env = {os.fsencode(k): os.fsencode(v) for k, v in base_env.items()}
        stream = options.output or sys.stdout
        mode = options.view
        if mode == "auto":
            try:
                mode = "tty" if stream.isatty() and os.environ.get("TERM") != "dumb" else "plain"
            except (AttributeError, ValueError):
                mode = "plain"
        self.view = _View(pipeline, stream, mode, self.mask)
        self.routers: dict[str, _StreamRouter] = {}

    # -- the whole run

    def execute(self) -> str:
        started = time.monotonic()
        self.view.begin(f"bass: pipeline {self.mask(self.name)} (trace {self.trace_id})")
        self._install_routers()
        self.devnull = os.open(os.devnull, os.O_RDONLY)  # every step's stdin
        root_span = None
        status = ERROR  # until the pipeline has a status of its own
        try:
            if self.generate_root:
                root_span = _Span(self, f"build {self.name}", None, self.root_span_id)
                root_span.attributes["bass.cwd"] = "."
                root_span.start()
            context = _Context(self.root_span_id, self.start_cwd, "")
            status, message = self.run_node(self.pipeline, context, "")
            if self.cancel.is_set():
                status = CANCELLED
                message = message or "cancelled"
            if root_span is not None:
                root_span.end(status, message)
        finally:  # even when interrupted: say what happened, deliver what was recorded
            self._remove_routers()
            os.close(self.devnull)
            footer = []
            if self.telemetry is not None:
                footer.append(f"trace: {dashboard_url(self.traces_url, self.trace_id)}")
            self.view.finish(status, self.name, time.monotonic() - started, footer)
            if self.telemetry is not None:
                self.telemetry.close()
                report = self.telemetry.drop_report()
                if report:
                    _warn(report)
        return status

    def _install_routers(self) -> None:
        for attr in ("stdout", "stderr"):
            original = getattr(sys, attr)
            if original is None:
                continue
            router = _StreamRouter(original, attr)
            self.routers[attr] = router
            setattr(sys, attr, router)

    def _remove_routers(self) -> None:
        for attr, router in self.routers.items():
            if getattr(sys, attr) is router:
                setattr(sys, attr, router._original)
        self.routers = {}

    # -- nodes

    def interrupted(self, context: _Context) -> str | None:
        """'cancelled' or 'timeout' when the node under `context` must stop."""
        if self.force.is_set() or (self.cancel.is_set() and not context.protected):
            return "cancelled"
        if context.deadline is not None and time.monotonic() >= context.deadline:
            return "timeout"
        return None

    def run_node(
        self, node: dict, parent: _Context, key: str, role: str | None = None
    ) -> tuple[str, str]:
        """Run one node; return its status (for the parent's aggregation) and message."""
        name = node["name"]
        path = f"{parent.path}/{name}" if parent.path else name
        pattern = node.get("if-changeset-matches")
        if pattern and self.changeset and not any(re.search(pattern, p) for p in self.changeset):
            self.skip_tree(node, parent.span_id, key, path, "changeset", role)
            return SKIPPED, ""
        reason = self.interrupted(parent)
        if reason is not None:
            self.skip_tree(node, parent.span_id, key, path, reason, role)
            return _SKIP_STATUS[reason], ""
        cwd = parent.cwd
        if "cwd" in node:
            cwd, problem = self._resolve_cwd(parent.cwd, node["cwd"])
            if problem:
                return self._node_error(node, parent, key, path, role, problem), problem
        span = _Span(self, name, parent.span_id)
        self._describe_span(span, node, role, key)
        span.attributes["bass.cwd"] = os.path.relpath(cwd, self.root)
        context = _Context(
            span.span_id, cwd, path, parent.deadline, parent.deadline_owner, parent.protected
        )
        try:
            if "steps" in node:
                self._limit(context, node, path)
                span.start()
                self.view.start(key, path)
                status, message = self._run_group(node, context, key)
                self.view.end(key, path, status, message if status == TIMEOUT else "")
                span.end(status, message)
                return status, message
            return self._run_leaf(node, parent, context, key, span)
        except Exception:  # a bug here must not hang or hide the rest of the build
            import traceback

            text = traceback.format_exc()
            _warn(self.mask(f"internal error in {path}:\n{text}"))
            self.view.end(key, path, ERROR, "internal error")
            span.end(ERROR, f"internal error: {text.strip().splitlines()[-1]}")
            return ERROR, "internal error"

    def _limit(self, context: _Context, node: dict, path: str) -> None:
        seconds = parse_duration(node.get("timeout"))
        if seconds is not None:
            deadline = time.monotonic() + seconds
            if context.deadline is None or deadline < context.deadline:
                context.deadline = deadline
                context.deadline_owner = (context.span_id or "", path, seconds)

    def _describe_span(self, span: _Span, node: dict, role: str | None, key: str) -> None:
        attrs = span.attributes
        if key:  # where the node is in the pipeline: steps[2].setup, steps[2].steps[0], …
            attrs["bass.position"] = key
        if role:
            attrs["bass.role"] = role
        seconds = parse_duration(node.get("timeout"))
        if seconds is not None:
            attrs["bass.timeout"] = seconds
        if "steps" in node:
            attrs["bass.order"] = node.get("order", "ordered")
            return
        command = node["exec"]  # masked when exported, as every attribute
        if isinstance(command, str):
            attrs["process.command_args"] = ["sh", "-c", command]
        elif isinstance(command, list):
            attrs["process.command_args"] = list(command)
        else:
            attrs["code.function.name"] = getattr(command, "__qualname__", repr(command))

    def _resolve_cwd(self, base: str, relative: str) -> tuple[str, str]:
        if relative.startswith("/"):  # the build root, as in the prototype: never "/" itself
            base, relative = self.root, relative.lstrip("/") or "."
        target = os.path.realpath(os.path.join(base, relative))
        if not _inside(target, self.root):
            return base, f"cwd escapes root: {relative}"
        if not os.path.isdir(target):
            return base, f"cwd is not a directory: {relative}"
        return target, ""

    def _node_error(
        self, node: dict, parent: _Context, key: str, path: str, role: str | None, problem: str
    ) -> str:
        span = _Span(self, node["name"], parent.span_id)
        self._describe_span(span, node, role, key)
        span.start_ns = time.time_ns()
        self._builder_log(span.span_id, f"bass: {problem}")
        span.end(ERROR, problem)
        self.view.end(key, path, ERROR, problem)
        for child_key, _, _ in list(_walk(node, key))[1:]:
            self.view.end(child_key, "", SKIPPED, "error", top=False)
        return ERROR

    def skip_tree(
        self,
        node: dict,
        parent_id: str | None,
        key: str,
        path: str,
        reason: str,
        role: str | None = None,
        top: bool = True,
    ) -> None:
        """Report a node and everything under it as skipped, one span each."""
        span = _Span(self, node["name"], parent_id)
        self._describe_span(span, node, role, key)
        span.attributes["bass.skip_reason"] = reason
        span.end(SKIPPED)
        self.view.end(key, path, SKIPPED, reason, top=top)
        parts: list[tuple[str, Any, str | None]] = [("setup", node.get("setup"), "setup")]
        parts += [(f"steps[{i}]", s, None) for i, s in enumerate(node.get("steps") or ())]
        parts.append(("teardown", node.get("teardown"), "teardown"))
        for part, child, child_role in parts:
            if child is not None:
                child_path = f"{path}/{child['name']}"
                self.skip_tree(
                    child, span.span_id, _key_path(key, part), child_path, reason, child_role, False
                )

    def _run_group(self, node: dict, context: _Context, key: str) -> tuple[str, str]:
        results: list[tuple[str, str, str]] = []  # (status, path, message)

        def record(child: dict, status_message: tuple[str, str]) -> None:
            results.append(
                (status_message[0], f"{context.path}/{child['name']}", status_message[1])
            )

        setup = node.get("setup")
        setup_ok = True
        if setup is not None:
            outcome = self.run_node(setup, context, _key_path(key, "setup"), "setup")
            record(setup, outcome)
            setup_ok = outcome[0] in (OK, SKIPPED)
        steps = node["steps"]
        if not setup_ok:
            reason = self.interrupted(context) or "setup failed"
            for i, step in enumerate(steps):
                self.skip_tree(
                    step,
                    context.span_id,
                    _key_path(key, f"steps[{i}]"),
                    f"{context.path}/{step['name']}",
                    reason,
                )
        elif node.get("order") == "unordered":
            self._run_unordered(steps, context, key, record)
        else:
            self._run_ordered(steps, context, key, record)
        teardown = node.get("teardown")
        if teardown is not None:
            protected = _Context(context.span_id, context.cwd, context.path, protected=True)
            record(
                teardown, self.run_node(teardown, protected, _key_path(key, "teardown"), "teardown")
            )
        status = _aggregate(s for s, _, _ in results)
        return status, self._group_message(status, results, context)

    def _group_message(
        self, status: str, results: list[tuple[str, str, str]], context: _Context
    ) -> str:
        if status in (OK, SKIPPED):
            return ""
        owner = context.deadline_owner
        if status == TIMEOUT and owner and owner[0] == context.span_id:
            return f"timeout after {owner[2]:g}s"
        culprits = [f"{path}: {s}" for s, path, _ in results if s == status and path]
        return "; ".join(culprits[:3]) or status

    def _run_ordered(self, steps: list, context: _Context, key: str, record: Callable) -> None:
        failed = False
        for i, step in enumerate(steps):
            child_key = _key_path(key, f"steps[{i}]")
            if failed:
                reason = self.interrupted(context) or "earlier step failed"
                self.skip_tree(
                    step, context.span_id, child_key, f"{context.path}/{step['name']}", reason
                )
                record(step, (_SKIP_STATUS.get(reason, SKIPPED), ""))
                continue
            outcome = self.run_node(step, context, child_key)
            record(step, outcome)
            failed = outcome[0] not in (OK, SKIPPED)

    def _run_unordered(self, steps: list, context: _Context, key: str, record: Callable) -> None:
        outcomes: list[tuple[str, str] | None] = [None] * len(steps)

        def run(i: int, step: dict) -> None:
            try:
                outcomes[i] = self.run_node(step, context, _key_path(key, f"steps[{i}]"))
            except BaseException:
                outcomes[i] = (ERROR, "internal error")
                raise

        threads = [
            threading.Thread(target=run, args=(i, step), name=f"bass {step['name']}", daemon=True)
            for i, step in enumerate(steps)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for step, outcome in zip(steps, outcomes):
            record(step, outcome or (ERROR, "internal error"))

    # -- leaves

    def _run_leaf(
        self, node: dict, parent: _Context, context: _Context, key: str, span: _Span
    ) -> tuple[str, str]:
        path = context.path
        while True:
            acquired = self.slots.acquire(timeout=TICK_SECONDS)
            reason = self.interrupted(parent)
            if reason is not None:  # stopped while waiting for a slot: never started
                if acquired:
                    self.slots.release()
                role = span.attributes.get("bass.role")
                self.skip_tree(node, parent.span_id, key, path, reason, role)
                return _SKIP_STATUS[reason], ""
            if acquired:
                break
        try:
            self._limit(context, node, path)
            span.start()
            self.view.start(key, path)
            command = node["exec"]
            if callable(command):
                status, message, code, tail, detail = self._call(command, context, span)
            else:
                status, message, code, tail, detail = self._exec(node, context, span)
            if code is not None:
                span.attributes["process.exit.code"] = code
            self.view.end(key, path, status, detail, tail=tail)
            span.end(status, message)
            return status, message
        finally:
            self.slots.release()

    def _timeout_message(self, context: _Context) -> str:
        owner = context.deadline_owner
        if owner is None:
            return "timeout"
        if owner[0] == context.span_id:
            return f"timeout after {owner[2]:g}s"
        return f"timeout: {owner[1]} exceeded {owner[2]:g}s"

    def _step_env(self, node: dict, span: _Span) -> dict[bytes, bytes]:
        env = self.base_env.copy()
        env[b"TRACEPARENT"] = f"00-{self.trace_id}-{span.span_id}-01".encode()
        env[b"BASS_STEP_NAME"] = os.fsencode(node["name"])
        return env

    def _exec(self, node: dict, context: _Context, span: _Span):
        command = node["exec"]
        if isinstance(command, str):
            argv = ["/bin/sh", "-c", command]
        else:
            argv = [os.path.expandvars(arg) for arg in command]
        out = _LogStream(self, span.span_id, "stdout")
        err = _LogStream(self, span.span_id, "stderr")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=context.cwd,
                env=self._step_env(node, span),
                stdin=self.devnull,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            shown = argv[0] if isinstance(command, str) else command[0]
            message = f"command not found: {self.mask(shown)}"
            self._builder_log(span.span_id, f"bass: {message}")
            return FAILED, message, None, [message], "failed (command not found)"
        except OSError as e:
            shown = argv[0] if isinstance(command, str) else command[0]
            message = f"cannot run {self.mask(shown)}: {e.strerror or e}"
            self._builder_log(span.span_id, f"bass: {message}")
            return FAILED, message, None, [message], f"failed ({e.strerror or e})"
        stop = _pump(proc, out, err, self, context, span)
        code = proc.returncode
        if code < 0:
            code = 128 - code  # killed by a signal, as a shell reports it
        tail = list(err.tail or ()) or list(out.tail or ())
        if stop == "timeout":
            message = self._timeout_message(context)
            return TIMEOUT, message, code, tail, message
        if stop == "cancelled":
            return CANCELLED, "cancelled", code, tail, ""
        if code == 0:
            return OK, "", code, tail, ""
        message = "\n".join(tail) if tail else f"exit code {code}"
        return FAILED, message, code, tail, f"failed (exit {code})"

    def _call(self, func: Callable[[], Any], context: _Context, span: _Span):
        out = _LogStream(self, span.span_id, "stdout")
        err = _LogStream(self, span.span_id, "stderr")
        done = threading.Event()
        result: dict[str, Any] = {}

        def target() -> None:
            ident = threading.get_ident()
            routers = self.routers.copy()
            for name, sink in (("stdout", out), ("stderr", err)):
                if name in routers:
                    routers[name].routes[ident] = sink
            try:
                result["value"] = func()
            except SystemExit as e:  # sys.exit() in a step ends the step, not the build
                if e.code is None or isinstance(e.code, int):
                    result["value"] = e.code or 0
                else:
                    err.feed_text(f"{e.code}\n")
                    result["value"] = 1
            except BaseException as e:
                import traceback

                err.feed_text(traceback.format_exc())
                result["exception"] = e
            finally:
                out.close()
                err.close()
                for router in routers.values():
                    router.routes.pop(ident, None)
                done.set()

        thread = threading.Thread(target=target, name=f"bass {span.name}", daemon=True)
        thread.start()
        while not done.wait(TICK_SECONDS):
            reason = self.interrupted(context)
            if reason is not None:  # a thread cannot be killed: abandon it
                note = "timed out" if reason == "timeout" else "cancelled"
                self._builder_log(
                    span.span_id, f"bass: the Python step {note}; abandoning its thread"
                )
                if reason == "timeout":
                    message = self._timeout_message(context)
                    return TIMEOUT, message, None, list(err.tail or ()), message
                return CANCELLED, "cancelled", None, list(err.tail or ()), ""
        tail = list(err.tail or ()) or list(out.tail or ())
        if "exception" in result:
            e = result["exception"]
            return FAILED, "\n".join(tail), None, tail, f"failed ({type(e).__name__})"
        value = result.get("value")
        if value is None or value is True:
            return OK, "", None, tail, ""
        if value is False:
            return (
                FAILED,
                "\n".join(tail) or "returned False",
                None,
                tail,
                "failed (returned False)",
            )
        if isinstance(value, int):
            if value == 0:
                return OK, "", 0, tail, ""
            return (
                FAILED,
                "\n".join(tail) or f"returned {value}",
                value,
                tail,
                f"failed (exit {value})",
            )
        return OK, "", None, tail, ""

    def _builder_log(self, span_id: str, text: str) -> None:
        """A message from the builder itself, as an ERROR log record on the span."""
        if self.telemetry is not None:
            sink = _LogStream(self, span_id, "", severity=17, keep_tail=False)
            sink.feed_text(text + "\n")


def _pump(
    proc: subprocess.Popen,
    out: _LogStream,
    err: _LogStream,
    run: _Run,
    context: _Context,
    span: _Span,
) -> str | None:
    """Stream a step's output into log records until it ends; kill its process group on
    timeout or cancel. Returns None, "timeout" or "cancelled".

    One poll loop in the step's own thread reads both pipes in large chunks; a pidfd
    (Linux) in the same poll set tells exactly when the process exits.
    """
    assert proc.stdout is not None and proc.stderr is not None
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    quiet = dict.fromkeys(sinks, 256 * 1024)  # bytes to read before a pipe grows
    poller = select.poll()
    for fd in sinks:
        poller.register(fd, select.POLLIN)
    pidfd = _pidfd_open(proc.pid)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    open_fds = len(sinks)
    exited = hard_killed = False
    stop: str | None = None
    killed_at = 0.0
    read = os.read
    try:
        while open_fds or (pidfd >= 0 and not exited):
            now = time.monotonic()
            if stop is None:
                stop = run.interrupted(context)
                if stop is not None:
                    why = run._timeout_message(context) if stop == "timeout" else "cancelled"
                    run._builder_log(span.span_id, f"bass: {why}; stopping the step's processes")
                    signal_process_group(proc.pid, signal.SIGTERM)
                    killed_at = now
            elif not hard_killed and now - killed_at >= KILL_GRACE_SECONDS:
                signal_process_group(proc.pid, signal.SIGKILL)
                hard_killed = True
            elif hard_killed and now - killed_at >= KILL_GRACE_SECONDS + 1:
                break  # something escaped the process group and holds the pipes
            wait = TICK_SECONDS
            if stop is None and context.deadline is not None:
                wait = max(0.0, min(wait, context.deadline - now))
            events = poller.poll(wait * 1000)
            for fd, _ in events:
                if fd == pidfd:
                    exited = True
                    poller.unregister(fd)
                    continue
                data = read(fd, READ_SIZE)
                if data:
                    if fd in quiet:
                        quiet[fd] -= len(data)
                        if quiet[fd] <= 0:  # a chatty step
                            del quiet[fd]
                            _grow_pipe(fd)
                    sinks[fd].feed(data)
                else:
                    poller.unregister(fd)
                    open_fds -= 1
            if not events and open_fds:
                # The step has exited but a background process it started still holds the
                # pipes: what was written before the exit is in (a quiet tick), stop reading.
                if exited:
                    break
                if pidfd < 0 and proc.poll() is not None:
                    exited = True
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        out.close()
        err.close()
        if stop is not None:
            signal_process_group(proc.pid, signal.SIGKILL)
        if exited and pidfd >= 0:
            proc.wait()  # already exited: returns at once
        while proc.returncode is None:
            try:
                proc.wait(timeout=TICK_SECONDS)
            except subprocess.TimeoutExpired:
                if stop is None:
                    stop = run.interrupted(context)
                    if stop is not None:
                        signal_process_group(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    return stop


def _grow_pipe(fd: int) -> None:
    """A larger pipe buffer (Linux): a step printing a lot is read in fewer, larger
    chunks, which halves the cost of turning its output into log records. Only busy
    pipes grow: pipe memory counts against a per-user limit."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over the user's pipe memory limit: keep the default


def _pidfd_open(pid: int) -> int:
    """A file descriptor that polls readable when `pid` exits (Linux 5.3+), else -1."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return -1
    try:
        return opener(pid)
    except OSError:
        return -1


def signal_process_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group (a step, or a build entry, started in a session
    of its own); one that is gone already is no error."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _aggregate(statuses: Any) -> str:
    found = set(statuses)
    for status in _PRECEDENCE:
        if status in found:
            return status
    return SKIPPED


# ---------------------------------------------------------------------------
# Entry points


def run_pipeline(pipeline: dict, options: Options | None = None) -> str:
    """Validate and run a pipeline; return its status (one of STATUSES). Never exits.

    Raises PipelineError when the pipeline is invalid (nothing runs then).
    """
    assert_pipeline(pipeline)
    options = options or Options()
    run = _Run(pipeline, options)
    handlers: dict[signal.Signals, Any] = {}
    if options.handle_signals and threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: Any) -> None:
            if run.cancel.is_set():
                _warn("second signal: killing the teardowns too")
                run.force.set()
            else:
                _warn(f"{signal.Signals(signum).name}: cancelling the build (teardowns still run)")
                run.cancel.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, on_signal)
    try:
        return run.execute()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _run_and_exit(pipeline: Any, options: Options) -> None:
    problems = validate_pipeline(pipeline)
    if problems:
        _warn("invalid pipeline:\n  " + "\n  ".join(problems))
        sys.exit(EXIT_INVALID)
    status = run_pipeline(pipeline, options)
    sys.exit(EXIT_CODES[status])


def build(pipeline: dict, argv: Sequence[str] | None = None) -> None:
    """Run a pipeline with the standard arguments (sys.argv by default) and exit.

    Exit code: 0 ok or skipped, 1 failed, 2 invalid pipeline, 3 error, 4 timeout,
    5 cancelled.
    """
    options, _ = parse_arguments(argv)
    _run_and_exit(pipeline, options)


def main(argv: Sequence[str] | None = None) -> None:
    """`python3 -m bass_builder pipeline.json [standard arguments]`: run a JSON pipeline."""
    options, args = parse_arguments(argv, with_pipeline_file=True)
    try:
        with open(args.pipeline, encoding="utf-8") as f:
            pipeline = json.load(f)
    except OSError as e:
        _warn(f"cannot read {args.pipeline}: {e.strerror or e}")
        sys.exit(EXIT_INVALID)
    except ValueError as e:
        _warn(f"{args.pipeline} is not valid JSON: {e}")
        sys.exit(EXIT_INVALID)
    _run_and_exit(pipeline, options)


if __name__ == "__main__":
    main()
