"""Every example in testpipelines/ runs with the outcome its README promises."""

from __future__ import annotations

import shutil

import pytest
from builder_testing import TESTPIPELINES


@pytest.fixture
def examples(tmp_path):
    """A copy of testpipelines/, so runs never leave files in the repository."""
    path = tmp_path / "testpipelines"
    shutil.copytree(TESTPIPELINES, path, symlinks=True)
    return path


def statuses(receiver):
    return {span["name"]: span["attrs"]["bass.status"] for span in receiver.spans().values()}


def test_job_simple(builder, receiver, examples):
    result = builder.run([str(examples / "job-simple.py")], cwd=examples)
    assert result.returncode == 0, result
    assert statuses(receiver) == {"simple": "ok", "hello": "ok", "done": "ok"}
    assert receiver.bodies("hello", "stdout") == ["hello, world"]
    assert receiver.bodies("hello", "stderr") == ["(a note on stderr)"]


def test_job_complex(builder, receiver, examples):
    result = builder.run(["job-complex.py"], cwd=examples)
    assert result.returncode == 0, result
    assert set(statuses(receiver).values()) == {"ok"}
    assert len(receiver.spans()) == 11
    assert receiver.bodies("greet", "stdout") == ["hello, hello from the environment"]
    assert receiver.span("greet")["attrs"]["process.command_args"] == [
        "./scripts/hello.sh",
        "$GREETING",
    ]
    assert receiver.bodies("count-scripts") == ["3 helper scripts: fail.sh, hello.sh, work.sh"]
    # three levels: complex > checks > compile > targets > linux
    spans = receiver.spans()
    chain, span = [], receiver.span("linux")
    while span.get("parentSpanId") in spans:
        span = spans[span["parentSpanId"]]
        chain.append(span["name"])
    assert chain == ["targets", "compile", "checks", "complex"]


def test_job_setup_teardown(builder, receiver, examples):
    result = builder.run(["job-setup-teardown.py"], cwd=examples)
    assert result.returncode == 1, result
    assert statuses(receiver) == {
        "setup-teardown": "failed",
        "make-scratch": "ok",
        "use-scratch": "ok",
        "test": "failed",
        "never": "skipped",
        "remove-scratch": "ok",
    }
    assert receiver.span("test")["status"]["message"] == "FAILED: 2 tests failed"
    assert not (examples / ".scratch").exists()


def test_job_changeset_without_and_with_a_changeset(builder, receiver, examples):
    result = builder.run(["job-changeset.py"], cwd=examples)
    assert result.returncode == 0, result
    assert set(statuses(receiver).values()) == {"ok"}
    receiver.requests.clear()
    result = builder.run(["job-changeset.py", "-c", "changeset-docs.txt"], cwd=examples)
    assert result.returncode == 0, result
    assert statuses(receiver) == {
        "changeset": "ok",
        "backend": "skipped",
        "frontend": "skipped",
        "docs": "ok",
        "render-docs": "ok",
        "always": "ok",
    }


def test_job_cwd(builder, receiver, examples):
    result = builder.run(["job-cwd.py"], cwd=examples)
    assert result.returncode == 0, result
    assert set(statuses(receiver).values()) == {"ok"}
    assert receiver.bodies("build") == ["building subproject", "build.sh"]
    assert receiver.span("build")["attrs"]["bass.cwd"] == "subproject"


def test_pipeline_json(builder, receiver, examples):
    result = builder.run(["-m", "bass_builder", "pipeline.json"], cwd=examples)
    assert result.returncode == 0, result
    assert set(statuses(receiver).values()) == {"ok"}
    assert set(statuses(receiver)) == {
        "json-pipeline",
        "prepare",
        "tests",
        "unit",
        "integration",
        "subproject",
        "cleanup",
    }


@pytest.mark.skipif(shutil.which("curl") is None, reason="job-shell.sh needs curl")
def test_job_shell(builder, receiver, examples):
    result = builder.run(
        ["sh", "job-shell.sh"], ["-g", "--future-flag"], cwd=examples, python=False
    )
    assert result.returncode == 0, result
    assert "ignoring unknown argument --future-flag" in result.stderr
    assert statuses(receiver) == {"build shell": "ok", "shell": "ok", "compile": "ok", "test": "ok"}
    root, pipeline = receiver.span("build shell"), receiver.span("shell")
    assert root["spanId"] == result.root_span_id and root["traceId"] == result.trace_id
    assert pipeline["parentSpanId"] == result.root_span_id
    assert receiver.span("compile")["parentSpanId"] == pipeline["spanId"]
    assert receiver.bodies("compile") == ["compiling 3 files"]
    assert receiver.bodies("test") == ["tests passed"]
    assert [s["endTimeUnixNano"] for s in receiver.span_exports() if s["name"] == "test"][0] == "0"


# The examples the tests above run (and the scripts they call): the glob below must find at
# least these, or the loop would check nothing and pass.
KNOWN_EXAMPLES = {
    "job-changeset.py",
    "job-complex.py",
    "job-cwd.py",
    "job-setup-teardown.py",
    "job-shell.sh",
    "job-simple.py",
    "scripts/fail.sh",
    "scripts/hello.sh",
    "scripts/work.sh",
    "subproject/build.sh",
}


def test_examples_are_executable():
    paths = [*TESTPIPELINES.glob("job-*"), *TESTPIPELINES.glob("*/*.sh")]
    assert paths, f"no examples found in {TESTPIPELINES}"
    found = {path.relative_to(TESTPIPELINES).as_posix() for path in paths}
    assert not KNOWN_EXAMPLES - found, f"missing from {TESTPIPELINES}: {KNOWN_EXAMPLES - found}"
    for path in paths:
        assert path.stat().st_mode & 0o111, f"{path} is not executable"
