"""bass's own log: one line a record on stderr, as text for people or as JSON for log
shippers (`--log-format`), each line about a build carrying that build.

Which build a line is about is not written into each message: where a build is handled
(the orchestrator's verbs, the worker's run of a job) the code enters `about(build)` or
`about_job(job)`, which sets a context variable; the handler stamps every record made
inside with that build. A context variable follows the event loop's tasks (each task
has its own) and stays in its thread; a thread started for a build (the heartbeat) is
started with `start_in_context`. Only the build's pipeline, number, id and trace id are
added, never a token, key or variable value.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("text", "json")
DEFAULT_FORMAT = "text"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class Build:
    """The build a log line is about."""

    pipeline: str
    number: int | None = None
    id: int | None = None
    trace_id: str | None = None

    def fields(self) -> dict[str, Any]:
        """The JSON fields (those known)."""
        fields = {
            "pipeline": self.pipeline,
            "build_number": self.number,
            "build_id": self.id,
            "trace_id": self.trace_id,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def suffix(self) -> str:
        """The text format's suffix: `[smoke #12 build=40 trace=4bf9…]`."""
        words = [self.pipeline if self.number is None else f"{self.pipeline} #{self.number}"]
        if self.id is not None:
            words.append(f"build={self.id}")
        if self.trace_id:
            words.append(f"trace={self.trace_id}")
        return "[" + " ".join(words) + "]"


_current: contextvars.ContextVar[Build | None] = contextvars.ContextVar(
    "bass_log_build", default=None
)


def current() -> Build | None:
    """The build the lines logged here are about, if any."""
    return _current.get()


@contextmanager
def context(build: Build | None) -> Iterator[None]:
    """Lines logged inside are about `build` (None: about no build)."""
    token = _current.set(build)
    try:
        yield
    finally:
        _current.reset(token)


def about(build: Mapping[str, Any]) -> Any:
    """`context` of a build as the store returns it (`pipeline`, `number`, `id`,
    `trace_id`)."""
    return context(
        Build(build["pipeline"], build.get("number"), build.get("id"), build.get("trace_id"))
    )


def about_job(job: Mapping[str, Any]) -> Any:
    """`context` of a job as a worker receives it (docs/contracts.md, "Job JSON")."""
    otel = job.get("otel") or {}
    return context(Build(job["name"], job.get("number"), job.get("id"), otel.get("trace-id")))


def start_in_context(thread: threading.Thread) -> None:
    """Start `thread` in a copy of this context, so that its lines are about the build
    this one's are (a thread otherwise starts in an empty context)."""
    copied = contextvars.copy_context()
    run = thread.run
    thread.run = lambda: copied.run(run)  # type: ignore[method-assign]
    thread.start()


class _Stamp(logging.Filter):
    """Stamps a record with the build of the context it is made in (the handler's
    filters run in the thread, and the task, that logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "bass_build", None) is None:
            record.bass_build = _current.get()
        return True


def _build_of(record: logging.LogRecord) -> Build | None:
    build = getattr(record, "bass_build", None)
    return build if isinstance(build, Build) else None


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: MESSAGE [pipeline #N build=ID trace=TRACE]`, a traceback
    after it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        build = _build_of(record)
        return f"{line} {build.suffix()}" if build else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (ISO 8601, UTC), `level`, `logger`, `message`,
    `exception` (the traceback, when there is one), and the build's `pipeline`,
    `build_number`, `build_id`, `trace_id`."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # exc_text first: a filter may have set it already (the worker's hides URLs'
        # passwords in tracebacks)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        build = _build_of(record)
        if build:
            line.update(build.fields())
        return json.dumps(line, ensure_ascii=False, default=str)


class _Handler(logging.StreamHandler):
    """bass's handler on the root logger (setup replaces it, never another's)."""


def setup(level: str = "info", fmt: str = DEFAULT_FORMAT, stream: IO[str] | None = None) -> None:
    """Every logger's lines, from `level` up, to `stream` (stderr) in format `fmt`
    (`text` or `json`). Replaces what an earlier call set up."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if isinstance(handler, _Handler):
            root.removeHandler(handler)
    handler = _Handler(stream or sys.stderr)
    handler.addFilter(_Stamp())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
