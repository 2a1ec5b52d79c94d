"""What the log viewer reads: a step's lines by number (windows, the tail, the numbers
of lines that match), rendered without escapes leaking; and the build page's failure
banner: the failing step, its exit code and the line most worth reading."""

from __future__ import annotations

from typing import Any

from tests.unit.conftest import App
from tests.unit.helpers import (
    attr,
    finish_build,
    post_logs,
    post_spans,
    record,
    span,
    start_build,
    trace_of,
)

STEP = "5" * 16
OTHER = "6" * 16
LINES = "/api/pipelines/demo/builds/1/lines"


def stream(name: str) -> list[dict[str, Any]]:
    return [attr("log.iostream", name)]


def build_with_lines(app: App, n: int = 1200) -> dict[str, Any]:
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    post_spans(app, span(trace, STEP, parent=root, name="big"))
    # two spans interleaved in arrival order: each numbers its own lines
    for first in range(1, n + 1, 300):
        post_logs(app, *(record(trace, STEP, f"line {i}") for i in range(first, first + 300)),
                  record(trace, OTHER, f"other {first}"))  # fmt: skip
    return job


def test_windows_and_the_tail_of_a_steps_lines(app: App) -> None:
    build_with_lines(app)
    answer = app.client.get(LINES, params={"span": STEP, "from": 599, "to": 601}).json()
    assert answer["last"] == 1200 and answer["state"] == "running"
    assert [(line["n"], line["body"]) for line in answer["lines"]] == [
        (599, "line 599"), (600, "line 600"), (601, "line 601")]  # fmt: skip
    tail = app.client.get(LINES, params={"span": STEP, "tail": 2}).json()["lines"]
    assert [line["n"] for line in tail] == [1199, 1200]
    other = app.client.get(LINES, params={"span": OTHER, "from": 1, "to": 9}).json()
    assert [line["body"] for line in other["lines"]] == [f"other {i}" for i in (1, 301, 601, 901)]
    # past the end: nothing, and the answer says where the end is
    past = app.client.get(LINES, params={"span": STEP, "from": 1201, "to": 1300}).json()
    assert (past["lines"], past["last"]) == ([], 1200)
    # one request returns at most WINDOW lines
    big = app.client.get(LINES, params={"span": STEP, "from": 1, "to": 10**9}).json()
    assert len(big["lines"]) == 1200


def test_matching_lines_by_number(app: App) -> None:
    build_with_lines(app)
    answer = app.client.get(LINES, params={"span": STEP, "q": "line 77*"}).json()
    assert answer["hits"] == [77, *range(770, 780)]
    assert app.client.get(LINES, params={"span": OTHER, "q": "line"}).json()["hits"] == []


def test_a_line_is_rendered_with_its_colours_and_found_without_them(app: App) -> None:
    job = start_build(app)
    post_logs(app, record(trace_of(job), STEP, "x.py:1:1: \x1b[1;31mE501\x1b[0m <too> long",
                          attributes=stream("stderr"), severity=13))  # fmt: skip
    line = app.client.get(LINES, params={"span": STEP}).json()["lines"][0]
    assert line["body"] == "x.py:1:1: \x1b[1;31mE501\x1b[0m <too> long"  # as sent
    assert "\x1b" not in line["html"] and "&lt;too&gt;" in line["html"]
    assert "E501</span>" in line["html"]
    assert (line["stream"], line["severity"]) == ("stderr", 13)
    assert app.client.get(LINES, params={"span": STEP, "q": "E501"}).json()["hits"] == [1]
    found = app.client.get("/search", params={"q": "E501"})
    assert "\x1b" not in found.text and "E501" in found.text


def test_bad_parameters_and_unknown_builds(app: App) -> None:
    build_with_lines(app, 300)
    for params in ({"from": "x"}, {"to": "-1"}, {"tail": "1e3"}):
        response = app.client.get(LINES, params={"span": STEP, **params})
        assert response.status_code == 400 and "error" in response.json()
    assert app.client.get("/api/pipelines/demo/builds/9/lines").status_code == 404
    assert app.client.get(LINES, params={"span": "nope"}).json()["lines"] == []


PYTEST_TAIL = [
    "tests/test_a.py::test_ok PASSED",
    "tests/test_a.py::test_bad FAILED",
    "=================================== FAILURES ===================================",
    "___________________________________ test_bad ___________________________________",
    "E       assert 1 == 2",
    "=========================== short test summary info ============================",
    "FAILED tests/test_a.py::test_bad - assert 1 == 2",
    "========================= 1 failed, 1 passed in 0.03s ==========================",
]


def test_a_failed_build_names_its_failing_step_and_line(app: App) -> None:
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    group, leaf = "7" * 16, "8" * 16
    post_spans(
        app,
        span(trace, group, parent=root, name="tests", end=2, bass_status="failed"),
        span(trace, leaf, parent=group, name="unit", end=2, bass_status="failed",
             attributes=[attr("bass.status", "failed"),
                         {"key": "process.exit.code", "value": {"intValue": "1"}}]),
    )  # fmt: skip
    post_logs(app, *(record(trace, leaf, f"noise {i}") for i in range(100)),
              *(record(trace, leaf, text) for text in PYTEST_TAIL))  # fmt: skip
    finish_build(app, job, "failed")
    page = app.client.get("/pipelines/demo/1")
    failure = page.context["failure"]  # type: ignore[attr-defined]
    assert failure["path"] == "tests / unit" and failure["exit_code"] == 1
    assert failure["text"] == "FAILED tests/test_a.py::test_bad - assert 1 == 2"
    # the log opens where the failure begins: the FAILURES heading, line 103
    assert failure["line"] == 103
    assert f'href="#step-{leaf}-L103"' in page.text
    assert 'data-at="103"' in page.text


def test_groups_marked_in_a_steps_output(app: App) -> None:
    """`::group::title` … `::endgroup::` (and Azure's `##[group]`), coloured or not, nested
    or still open, as the viewer folds them; a line merely mentioning a group is none."""
    job = start_build(app)
    texts = ["before", "::group::Install deps", "pip install", "\x1b[36m##[group]inner\x1b[0m",
             "x", "##[endgroup]", "::endgroup::", "the group said", "::group::Run tests",
             "running"]  # fmt: skip
    post_logs(app, *(record(trace_of(job), STEP, text) for text in texts))
    answer = app.client.get(LINES, params={"span": STEP, "groups": 1}).json()
    assert answer["groups"] == [[2, 7, "Install deps"], [4, 6, "inner"], [9, 0, "Run tests"]]
