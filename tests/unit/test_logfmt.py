"""bass's own log lines (bass.logfmt): text and JSON, and the build each line is about,
set where a build is handled — the orchestrator's verbs on a real SQLite file, their
subscribers (a notification to a mail server that is down), the worker's heartbeat
thread — never written into the messages by hand."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bass import cli, logfmt
from bass.config import Config, check_pipeline
from bass.notify import Mailer
from bass.orchestrator import Orchestrator
from bass.store.db import Database
from bass.worker import api
from tests.e2e.waiting import wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Lines:
    """What bass's handler wrote, set up as `bass serve` sets it up."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def setup(self, fmt: str, level: str = "info") -> None:
        logfmt.setup(level, fmt, self.stream)

    def text(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text()]


@pytest.fixture
def lines() -> Iterator[Lines]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield Lines()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_the_build(lines: Lines) -> None:
    lines.setup("json")
    log = logging.getLogger("bass.test")
    before = datetime.now(UTC)
    log.info("outside any build: %d", 1)
    with logfmt.context(logfmt.Build("smoke", 12, 40, TRACE)):
        log.warning('inside "quoted"\nand on two lines')
    outside, inside = lines.json()
    assert outside == {
        "time": outside["time"],
        "level": "info",
        "logger": "bass.test",
        "message": "outside any build: 1",
    }
    assert outside["time"].endswith("Z")
    logged = datetime.fromisoformat(outside["time"].replace("Z", "+00:00"))
    assert logged.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= logged <= datetime.now(UTC) + timedelta(seconds=1)
    assert inside["message"] == 'inside "quoted"\nand on two lines'
    assert inside["level"] == "warning"
    assert (inside["pipeline"], inside["build_number"], inside["build_id"]) == ("smoke", 12, 40)
    assert inside["trace_id"] == TRACE
    assert len(lines.text()) == 2, "a message with a line break is still one line"


def test_json_lines_carry_the_exception(lines: Lines) -> None:
    lines.setup("json")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("bass.test").exception("it failed")
    (line,) = lines.json()
    assert line["message"] == "it failed"
    assert line["exception"].startswith("Traceback")
    assert "ZeroDivisionError" in line["exception"]


def test_text_lines_end_with_the_build(lines: Lines) -> None:
    lines.setup("text")
    log = logging.getLogger("bass.test")
    log.info("no build")
    with logfmt.about({"pipeline": "smoke", "number": 12, "id": 40, "trace_id": TRACE}):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("smoke #12: failed")
    text = lines.text()
    assert text[0].endswith(" INFO bass.test: no build"), text
    assert text[1].endswith(
        f" ERROR bass.test: smoke #12: failed [smoke #12 build=40 trace={TRACE}]"
    )
    assert text[2] == "Traceback (most recent call last):", "the traceback follows the line"


def test_a_job_is_named_by_its_job_json() -> None:
    job = {"name": "smoke", "number": 3, "id": 9, "otel": {"trace-id": TRACE},
           "job-token": "never-logged", "env": {"KEY": "secret-value"}}  # fmt: skip
    with logfmt.about_job(job):
        assert logfmt.current() == logfmt.Build("smoke", 3, 9, TRACE)
    assert logfmt.current() is None
    assert "never-logged" not in repr(logfmt.Build("smoke", 3, 9, TRACE).fields())


def test_setup_replaces_its_own_handler_only(lines: Lines) -> None:
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    try:
        lines.setup("text")
        lines.setup("json", "warning")
        logging.getLogger("bass.test").warning("once")
        logging.getLogger("bass.test").info("below the level")
        assert len(lines.json()) == 1, "one handler of bass's, not two"
        assert other in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(other)
    with pytest.raises(ValueError, match="log format"):
        logfmt.setup("info", "xml")


def test_the_flag_is_serves_and_the_workers() -> None:
    for command in ("serve", "worker"):
        with pytest.raises(SystemExit):
            cli.main([command, "--log-format", "xml"])
    with pytest.raises(SystemExit):
        cli.main(["serve", "--log-format", "json", "--help"])


def test_the_worker_hides_url_passwords_in_json_tracebacks_too(lines: Lines) -> None:
    import bass.worker.runner  # noqa: F401 (its filter on the "bass.worker" logger)

    lines.setup("json")
    try:
        raise OSError("cannot fetch https://alice:hunter22@git.example.com/app.git")
    except OSError:
        logging.getLogger("bass.worker").exception("fetch of https://bob:tiger33@x/y failed")
    (line,) = lines.json()
    assert "hunter22" not in json.dumps(line) and "tiger33" not in json.dumps(line), line
    assert "git.example.com" in line["exception"]


# -- where a build is handled ----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when this returns: connections are refused


def test_the_orchestrators_lines_and_its_subscribers_carry_their_build(
    lines: Lines, tmp_path: Path
) -> None:
    """Two builds end at once on one event loop: each task's lines, a notification that
    cannot be sent among them, carry their own build, and none leaks into the loop."""
    lines.setup("json")
    mail = {"onFailure": {"email": {"to": "team@example.com"}}}
    pipelines = {
        name: check_pipeline({"repository": "/r", "exec": ["x"], "notifications": mail}, "test")
        for name in ("alpha", "beta")
    }
    heard = logging.getLogger("bass.test")

    async def scenario() -> list[dict[str, Any]]:
        db = Database(tmp_path / "o.db")
        orchestrator = Orchestrator(db, Config(pipelines=pipelines))
        mailer = Mailer(host="127.0.0.1", port=_closed_port(), sender="bass@localhost", timeout=5)

        async def listener(build: dict[str, Any]) -> None:
            for step in range(3):  # the other build's task runs between these lines
                await asyncio.sleep(0)
                heard.info("heard %s #%d, %d", build["pipeline"], build["number"], step)

        orchestrator.on_finished += [listener, mailer.on_finished]
        try:
            queued = [await orchestrator.enqueue(name, trigger="cli") for name in ("alpha", "beta")]
            claimed = [
                await orchestrator.claim(worker="w", tags=[], worker_key="k", heartbeats=True)
                for _ in queued
            ]
            await asyncio.gather(
                *(
                    orchestrator.report(b["id"], "failed", None, "k", b["job-token"])
                    for b in claimed
                    if b is not None
                )
            )
            logging.getLogger("bass.test").info("after")
            return queued
        finally:
            db.close()

    queued = asyncio.run(scenario())
    by_name = {b["pipeline"]: b for b in queued}
    about = [x for x in lines.json() if x["logger"] != "bass.test" or "heard" in x["message"]]
    for line in about:
        name = line["message"].removeprefix("heard ").split(" ")[0]
        build = by_name[name]
        assert (line.get("pipeline"), line.get("build_number")) == (name, build["number"]), line
        assert (line.get("build_id"), line.get("trace_id")) == (build["id"], build["trace_id"])
    said = [line["message"] for line in about]
    for name in by_name:
        for what in ("queued (cli)", "claimed by w", "failed", "heard"):
            assert any(f"{name} #1" in m and what in m for m in said), (name, what, said)
        assert any(m.startswith(f"{name} #1: notification") for m in said), said
    (after,) = [line for line in lines.json() if line["message"] == "after"]
    assert "pipeline" not in after, "the build's context leaked out of its task"


def test_the_heartbeat_threads_lines_carry_its_build(lines: Lines) -> None:
    lines.setup("json")

    def refused(url: str, body: dict[str, Any], timeout: float) -> tuple[int, bytes]:
        raise ConnectionRefusedError("the server is down")

    job = {"name": "smoke", "number": 7, "id": 21, "otel": {"trace-id": TRACE},
           "lease-seconds": 4, "heartbeat-url": "http://127.0.0.1:9/jobs/21/heartbeat"}  # fmt: skip
    heartbeat = api.Heartbeat(refused, job)
    with logfmt.about_job(job):
        logfmt.start_in_context(heartbeat)
    try:
        failed = wait_until(
            lambda: [x for x in lines.json() if x["message"].startswith("heartbeat failed")],
            "the heartbeat to fail once",
        )
    finally:
        heartbeat.stop()
        heartbeat.join()
    assert failed[0]["pipeline"] == "smoke" and failed[0]["build_number"] == 7
    assert failed[0]["build_id"] == 21 and failed[0]["trace_id"] == TRACE
    assert threading.current_thread() is threading.main_thread()
