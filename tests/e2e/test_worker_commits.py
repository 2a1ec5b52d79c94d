"""A worker's build of a job that names a commit, ref, branch or tag, from the checkout
to the build entry's environment and changeset file, without a server: the worker's
own build path (`Worker._build`) on a hand-made job, its telemetry caught in memory."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import bass_builder
from bass.worker import api
from bass.worker.runner import Worker
from tests.conftest import Repo

# the entry: what the build sees, written where the test reads it ("$@": the arguments)
ENTRY = (
    'env | grep -E "^BASS_(COMMIT|REF|BRANCH|TAG)=" | sort > "$OUT/env"; '
    'cp "$BASS_CHANGESET" "$OUT/changeset"; git rev-parse HEAD > "$OUT/head"; true'
)


class Span:
    ids = itertools.count(1)

    def __init__(self, name: str, attributes: dict[str, Any] | None, span_id: str | None):
        self.name = name
        self.span_id = span_id or f"{next(self.ids):016x}"
        self.attributes = dict(attributes or {})
        self.status: str | None = None
        self.message = ""
        self.lines: list[str] = []


class Telemetry:
    """What the worker reports of a build, kept in memory (bass_builder.Reporter's
    methods that a build uses)."""

    def __init__(self) -> None:
        self.spans: dict[str, Span] = {}
        self.mask = bass_builder._Masker([])

    def start_span(self, name, parent_id=None, span_id=None, attributes=None) -> Span:
        self.spans[name] = Span(name, attributes, span_id)
        return self.spans[name]

    def end_span(self, span: Span, status: str, message: str = "", attributes=None) -> None:
        span.status, span.message = status, message
        span.attributes.update(attributes or {})

    def log(self, span: Span, text: str, stream: str = "stdout") -> None:
        span.lines.append(text)


class Built:
    def __init__(self, out: Path, telemetry: Telemetry, status: str, message: str | None):
        self.out, self.telemetry, self.status, self.message = out, telemetry, status, message

    @property
    def checkout(self) -> Span:
        return self.telemetry.spans["checkout"]

    def env(self) -> dict[str, str]:
        lines = (self.out / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def changeset(self) -> list[str]:
        return (self.out / "changeset").read_text().splitlines()

    def head(self) -> str:
        return (self.out / "head").read_text().strip()


@pytest.fixture
def build(tmp_path: Path):
    """build(repo, **job fields) runs one job of pipeline `p` (ref main) in one worker
    workspace, as the worker would, and returns what it did and what the entry saw."""
    worker = Worker(
        dequeue_endpoint="http://127.0.0.1:9/dequeue",
        api_key=None,
        tags=[],
        workspace_root=str(tmp_path / "workspace"),
    )
    numbers = itertools.count(1)

    def run(repo: Repo, **fields: Any) -> Built:
        number = next(numbers)
        out = tmp_path / f"out{number}"
        out.mkdir()
        job = {
            "name": "p",
            "id": number,
            "number": number,
            "env": {"OUT": str(out)},
            "pipeline": {"repository": str(repo.path), "ref": "main", "exec": ENTRY},
            "changed-refs": [],
            "otel": {
                "traces-endpoint": "http://127.0.0.1:9/v1/traces",
                "logs-endpoint": "http://127.0.0.1:9/v1/logs",
                "service-name": "bass:pipeline:p",
                "trace-id": "1" * 32,
                "root-span-id": "2" * 16,
            },
            **fields,
        }
        telemetry = Telemetry()
        root = telemetry.start_span("p", span_id=job["otel"]["root-span-id"])
        heartbeat = api.Heartbeat(lambda url, body, timeout: (200, b"{}"), job)  # no lease
        status, message = worker._build(job, telemetry, root, heartbeat)
        return Built(out, telemetry, status, message)

    return run


@pytest.fixture
def upstream(repo: Repo) -> Repo:
    """main: base, main-only; feature (from base): feature/x.txt; annotated tag v1 on
    main's head."""
    repo.base = repo.commit({"README": "r\n"}, "base")
    repo.git("checkout", "--quiet", "-b", "feature")
    repo.feature = repo.commit({"feature/x.txt": "x\n"}, "feature")
    repo.git("checkout", "--quiet", "main")
    repo.main = repo.commit({"main-only.txt": "m\n"}, "main only")
    repo.git("tag", "-a", "v1", "-m", "one")
    return repo


def test_a_pushed_branchs_commit_is_what_the_entry_builds(build, upstream) -> None:
    built = build(upstream, commit=upstream.feature, branch="feature", before=upstream.base)
    assert (built.status, built.message) == ("ok", None)
    assert built.head() == upstream.feature
    assert built.env() == {
        "BASS_BRANCH": "feature",
        "BASS_COMMIT": upstream.feature,
        "BASS_REF": "main",  # the job asked no ref: the pipeline's
        "BASS_TAG": "",
    }
    assert built.changeset() == ["feature/x.txt"]
    assert built.checkout.status == "ok"
    assert built.checkout.attributes == {
        "bass.ref": "main",
        "vcs.ref.head.revision": upstream.feature,
        "vcs.ref.head.name": "feature",
        "vcs.ref.head.type": "branch",
    }


def test_a_pushed_annotated_tag_builds_its_commit(build, upstream) -> None:
    tag_object = upstream.git("rev-parse", "v1")
    built = build(upstream, commit=tag_object, tag="v1")
    assert built.status == "ok"
    assert built.head() == upstream.main
    assert built.env()["BASS_TAG"] == "v1" and built.env()["BASS_BRANCH"] == ""
    assert built.env()["BASS_COMMIT"] == upstream.main
    assert built.checkout.attributes["vcs.ref.head.name"] == "v1"
    assert built.checkout.attributes["vcs.ref.head.type"] == "tag"
    assert built.changeset() == []  # a new tag on main's head: everything changed


def test_a_ref_asked_for_is_built_and_is_bass_ref(build, upstream) -> None:
    built = build(upstream, ref="feature")
    assert built.status == "ok"
    assert built.head() == upstream.feature
    assert built.env()["BASS_REF"] == "feature"
    assert built.checkout.attributes["bass.ref"] == "feature"


def test_an_unknown_commit_ends_the_build_in_error(build, upstream) -> None:
    unknown = "fe" * 20
    built = build(upstream, commit=unknown, branch="feature")
    assert built.status == "error"
    assert built.message.startswith(f"checkout failed: commit {unknown} not found in ")
    assert built.checkout.status == "error"
    assert not (built.out / "env").exists()  # the entry never ran


def test_a_job_of_today_is_built_as_today(build, upstream) -> None:
    built = build(upstream, **{"changed-refs": [upstream.main]})
    assert (built.status, built.head()) == ("ok", upstream.main)
    assert built.env() == {
        "BASS_BRANCH": "",
        "BASS_COMMIT": upstream.main,
        "BASS_REF": "main",
        "BASS_TAG": "",
    }
    assert built.changeset() == ["main-only.txt"]
    assert built.checkout.attributes == {"bass.ref": "main", "vcs.ref.head.revision": upstream.main}


def test_the_next_push_diffs_against_before_in_the_same_workspace(build, upstream) -> None:
    first = build(upstream, commit=upstream.feature, branch="feature")
    assert sorted(first.changeset()) == ["feature/x.txt"]  # new branch: since the merge base
    upstream.git("checkout", "--quiet", "feature")
    for i in range(25):  # more commits than GitLab lists
        head = upstream.commit({f"many/{i}.txt": str(i)}, f"commit {i}")
    second = build(upstream, commit=head, branch="feature", before=upstream.feature)
    assert second.status == "ok" and second.head() == head
    assert sorted(second.changeset()) == sorted(f"many/{i}.txt" for i in range(25))
    assert any("25 file(s) changed between" in line for line in second.checkout.lines)
