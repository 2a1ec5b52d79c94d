"""`bass watch` end to end: a real git working copy, real edits, a real `bass serve`.

Each edit reruns the build entry with exactly the paths changed since the previous run,
so the steps guarded by `if-changeset-matches` run only when their paths changed; an
edit during a run stops it (teardowns run, nothing it started is left); Ctrl-C exits 0
with nothing left; each run is a local build linked to the previous one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo, http
from tests.e2e.waiting import wait_until

JOB = """\
from bass import build

build({"name": "app", "steps": [
    {"name": "tests", "exec": "echo testing", "if-changeset-matches": "^src/"},
    {"name": "docs", "exec": "echo docs", "if-changeset-matches": "^docs/"},
    {"name": "slow", "if-changeset-matches": "^slow/", "steps": [
        {"name": "sleep",
         "exec": "echo $$ $BASS_RUN_ID >> $MARKS/sleepers; exec sleep 300"}],
     "teardown": {"name": "tidy", "exec": "echo $BASS_RUN_ID >> $MARKS/teardowns"}},
]})
"""


class Watch:
    """A `bass watch` process in the working copy; its output in a file beside it."""

    def __init__(self, repo: Repo, marks: Path, *flags: str) -> None:
        self.out = marks / "watch.out"
        self.log = open(self.out, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bass", "watch", "--pipeline", "app", "--debounce", "100",
             *flags],
            cwd=repo.path, env={**os.environ, "MARKS": str(marks)},
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def run(self, number: int) -> str:
        """Run `number`'s output, from its header to its summary, once it has ended."""
        header, end = f"── run {number} ·", f"\n── run {number} "

        def ended() -> str | None:
            text = self.output()
            if header not in text or end not in text.split(header, 1)[1]:
                return None
            body, after = text.split(header, 1)[1].split(end, 1)
            return body + end + after.split("\n", 1)[0]

        return wait_until(ended, f"run {number} to end", context=self.output)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def working_copy(repo: Repo, tmp_path: Path) -> tuple[Repo, Path]:
    repo.commit({"job.py": JOB, "docs/guide.md": "guide\n", "src/app.py": "x = 1\n",
                 "slow/input": "1\n", ".gitignore": "build/\n"})  # fmt: skip
    marks = tmp_path / "marks"
    marks.mkdir()
    return repo, marks


@pytest.fixture
def watching(working_copy: tuple[Repo, Path]) -> Any:
    started: list[Watch] = []

    def start(*flags: str) -> Watch:
        watch = Watch(*working_copy, *flags)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _carrying(marker: str) -> list[int]:
    """Processes whose environment holds BASS_RUN_ID=marker (a run's mark)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"BASS_RUN_ID={marker}".encode() in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def test_each_edit_reruns_only_the_steps_its_paths_concern_as_linked_local_builds(
    working_copy: tuple[Repo, Path], watching: Any, serve: Any
) -> None:
    repo, _ = working_copy
    server = serve({})
    (repo.path / "docs" / "guide.md").write_text("guide, edited\n")  # not committed
    watch = watching("--server", server.url, "--since", "HEAD")

    first = watch.run(1)  # --since HEAD: what the working tree changed
    assert "changed: docs/guide.md\n" in first
    assert "✓ app/docs" in first
    assert "⊘ app/tests skipped (changeset)" in first

    (repo.path / "src" / "app.py").write_text("x = 2\n")
    tests = watch.run(2)
    assert "changed: src/app.py\n" in tests
    assert "✓ app/tests" in tests
    assert "⊘ app/docs skipped (changeset)" in tests
    assert "ok in" in tests and "1 ran, 3 skipped, 0 failed" in tests

    (repo.path / "docs" / "guide.md").write_text("guide, edited again\n")
    (repo.path / "build").mkdir()
    (repo.path / "build" / "out.txt").write_text("ignored by git\n")
    docs = watch.run(3)
    assert "changed: docs/guide.md\n" in docs  # not build/out.txt: git ignores it
    assert "✓ app/docs" in docs
    assert "⊘ app/tests skipped (changeset)" in docs
    assert watch.interrupt() == 0

    def ended() -> list[dict]:
        status, body = http("GET", f"{server.url}/api/pipelines/app/builds")
        assert status == 200, body
        builds = sorted(body["builds"], key=lambda b: b["number"])
        return builds if len(builds) == 3 and all(b["state"] == "ok" for b in builds) else []

    builds = wait_until(ended, "three local builds, ended ok", context=server.output)
    assert {b["trigger"] for b in builds} == {"local"}
    roots = []
    for build in builds:
        tree = server.build("app", build["number"])
        spans = {s["span_id"]: s for s in _spans(tree)}
        root = spans[build["root_span_id"]]
        roots.append(root["attributes"])
        steps = {s["name"]: s["bass_status"] for s in spans.values()}
        expected = ("skipped", "ok") if build["number"] == 2 else ("ok", "skipped")
        assert (steps["docs"], steps["tests"]) == expected
    assert [r["bass.changeset"] for r in roots] == [["docs/guide.md"], ["src/app.py"],
                                                     ["docs/guide.md"]]  # fmt: skip
    assert "bass.previous_trace_id" not in roots[0]
    assert roots[1]["bass.previous_trace_id"] == builds[0]["trace_id"]
    assert roots[2]["bass.previous_trace_id"] == builds[1]["trace_id"]
    status, page = http("GET", f"{server.url}/pipelines/app/3")
    assert status == 200
    assert f'/traces/{builds[1]["trace_id"]}" rel="prev">previous run' in page
    assert "changed docs/guide.md" in page  # its changeset, on the page
    assert ">Rerun<" not in page  # the server has no pipeline "app" to run it again with


def _spans(tree: dict) -> list[dict]:
    """Every span of a build's tree (the API nests children under their parents)."""
    found, todo = [], list(tree["spans"])
    while todo:
        span = todo.pop()
        found.append(span)
        todo += span.get("children") or []
    return found


def test_an_edit_during_a_run_stops_it_and_ctrl_c_leaves_nothing_running(
    working_copy: tuple[Repo, Path], watching: Any
) -> None:
    repo, marks = working_copy
    watch = watching("--offline")
    sleepers = marks / "sleepers"
    wait_until(sleepers.exists, "the first run's sleeper", context=watch.output)
    pid, marker = sleepers.read_text().split()
    (repo.path / "docs" / "guide.md").write_text("guide, edited\n")

    first = watch.run(1)
    assert "cancelled in" in first
    assert "■ pipeline app cancelled" in first
    assert not _alive(int(pid))
    assert _carrying(marker) == []
    assert (marks / "teardowns").read_text().split() == [marker]  # its teardown ran

    # the stopped run had everything to do: so has the next, and its sleeper starts
    lines = wait_until(
        lambda: len(sleepers.read_text().splitlines()) == 2 and sleepers.read_text(),
        "the second run's sleeper",
        context=watch.output,
    )
    pid2, marker2 = lines.splitlines()[1].split()
    assert "── run 2 · changed: everything" in watch.output()
    assert watch.interrupt() == 0
    assert "bass watch: stopped" in watch.output()
    assert not _alive(int(pid2))
    assert _carrying(marker2) == []
    assert (marks / "teardowns").read_text().split() == [marker, marker2]
    assert json.dumps(watch.output()).count("trace:") == 0  # offline: no dashboard link


WRITER = """\
from bass import build

build({"name": "app", "steps": [
    {"name": "report", "exec": "echo made > report.txt; mkdir -p out; echo o > out/x; sleep 0.3"},
]})
"""


def test_what_a_run_writes_that_git_does_not_track_neither_stops_nor_starts_runs(
    repo: Repo, tmp_path: Path
) -> None:
    """A build that writes files git neither tracks nor ignores (a report, an output
    directory): its runs end, and only an edit starts the next — else it would stop and
    start itself for ever."""
    repo.commit({"job.py": WRITER, "src/app.py": "x = 1\n"})
    marks = tmp_path / "marks"
    marks.mkdir()
    watch = Watch(repo, marks, "--offline")
    try:
        first = watch.run(1)
        assert "── run 1 ok" in first, watch.output()
        (repo.path / "src" / "app.py").write_text("x = 2\n")
        second = watch.run(2)
        assert second.startswith(" changed: src/app.py\n"), watch.output()  # not report.txt
        assert "── run 2 ok" in second
        assert "── run 3" not in watch.output()
    finally:
        watch.kill()
