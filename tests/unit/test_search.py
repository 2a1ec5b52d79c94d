"""Reading logs back: the logs API of a build and of a trace (paging, filters, full-text
search), cross-build search (/api/search) and the dashboard's /search page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.conftest import App
from tests.unit.helpers import (
    finish_build,
    post_logs,
    post_spans,
    record,
    span,
    start_build,
    trace_of,
)

STRAY = "0af7651916cd43dd8448eb211c80319c"  # a trace of another service, no build
STEP_A = "a1a1a1a1a1a1a1a1"
STEP_B = "b2b2b2b2b2b2b2b2"
PIPELINES = {
    "demo": {"repository": "https://example.com/demo.git", "exec": ["./build.py"]},
    "other": {"repository": "https://example.com/other.git", "exec": ["./build.py"]},
}


def logs_url(job: dict[str, Any]) -> str:
    return f"/api/pipelines/{job['name']}/builds/{job['number']}/logs"


def get_logs(app: App, url: str, **params: Any) -> list[dict[str, Any]]:
    response = app.client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()["logs"]


def bodies(records: list[dict[str, Any]]) -> list[str]:
    return [r["body"] for r in records]


@pytest.fixture
def paged(app: App) -> tuple[App, dict[str, Any], list[int]]:
    """A build with 25 lines ("line 0" …), sent in five requests interleaved with the lines
    of another trace (so the build's ids are not one run); returns the build's ids."""
    job = start_build(app)
    trace = trace_of(job)
    for batch in range(5):
        post_logs(app, *(record(trace, STEP_A, f"line {batch * 5 + n}") for n in range(5)))
        post_logs(app, record(STRAY, STEP_B, f"noise {batch}"), service="other-service")
    ids = [r["id"] for r in app.rows("SELECT id FROM logs WHERE trace_id = ? ORDER BY id", trace)]
    assert len(ids) == 25
    return app, job, ids


# -- paging -----------------------------------------------------------------------------


def test_logs_page_forwards_with_after(paged: tuple[App, dict[str, Any], list[int]]) -> None:
    app, job, ids = paged
    pages, after = [], 0
    while page := get_logs(app, logs_url(job), after=after, limit=10):
        pages.append(page)
        after = page[-1]["id"]
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = [r["id"] for p in pages for r in p]
    assert seen == ids  # in order, nothing missing, nothing twice
    assert bodies([r for p in pages for r in p]) == [f"line {n}" for n in range(25)]


def test_logs_page_backwards_with_tail_and_before(
    paged: tuple[App, dict[str, Any], list[int]],
) -> None:
    app, job, ids = paged
    last = get_logs(app, logs_url(job), tail=1, limit=10)
    assert [r["id"] for r in last] == ids[-10:]  # the newest ten, oldest first
    pages = [last]
    while page := get_logs(app, logs_url(job), before=pages[-1][0]["id"], limit=10):
        assert [r["id"] for r in page] == sorted(r["id"] for r in page)
        pages.append(page)
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = [r["id"] for p in reversed(pages) for r in p]
    assert seen == ids


def test_tail_and_after_meet_in_the_middle(paged: tuple[App, dict[str, Any], list[int]]) -> None:
    """Follow mode: the tail first, then only what came after it."""
    app, job, ids = paged
    tail = get_logs(app, logs_url(job), tail="true", limit=3)
    assert bodies(tail) == ["line 22", "line 23", "line 24"]
    assert get_logs(app, logs_url(job), after=tail[-1]["id"]) == []
    assert bodies(get_logs(app, logs_url(job), after=ids[20], before=ids[23])) == [
        "line 21",
        "line 22",
    ]


def test_trace_logs_page_like_build_logs(paged: tuple[App, dict[str, Any], list[int]]) -> None:
    app, job, ids = paged
    url = f"/api/traces/{trace_of(job).upper()}/logs"  # any case
    assert [r["id"] for r in get_logs(app, url, limit=7)] == ids[:7]
    assert [r["id"] for r in get_logs(app, url, tail=1, limit=7)] == ids[-7:]
    assert bodies(get_logs(app, f"/api/traces/{STRAY}/logs")) == [f"noise {n}" for n in range(5)]


# -- filters ----------------------------------------------------------------------------


def test_span_filter(app: App) -> None:
    job = start_build(app)
    trace = trace_of(job)
    post_logs(app, record(trace, STEP_A, "a1"), record(trace, STEP_B, "b1"))
    post_logs(app, record(trace, STEP_A, "a2"))
    assert bodies(get_logs(app, logs_url(job), span=STEP_A)) == ["a1", "a2"]
    assert bodies(get_logs(app, logs_url(job), span=STEP_B)) == ["b1"]
    assert bodies(get_logs(app, logs_url(job))) == ["a1", "b1", "a2"]


def test_severity_keeps_that_level_and_above(app: App) -> None:
    job = start_build(app)
    trace = trace_of(job)
    post_logs(app, *(record(trace, STEP_A, f"sev {n}", severity=n) for n in (1, 5, 9, 13, 17, 21)))
    assert bodies(get_logs(app, logs_url(job), severity=13)) == ["sev 13", "sev 17", "sev 21"]
    assert bodies(get_logs(app, logs_url(job), severity=9)) == [
        "sev 9",
        "sev 13",
        "sev 17",
        "sev 21",
    ]
    assert len(get_logs(app, logs_url(job), severity=0)) == 6
    # paging and filters together: a page is counted after filtering
    page = get_logs(app, logs_url(job), severity=5, limit=2)
    assert bodies(page) == ["sev 5", "sev 9"]
    assert bodies(get_logs(app, logs_url(job), severity=5, after=page[-1]["id"], limit=2)) == [
        "sev 13",
        "sev 17",
    ]


# -- full-text search within a build ---------------------------------------------------


LINES = [
    "alpha beta",
    "alpha gamma",
    "beta gamma delta",
    'the "quoted" word',
    "x AND y",
    "NEAR(one two)",
    "key:value pairs",
    "glob* star",
    "a - b",
    "Unicode straße",
]


@pytest.fixture
def searchable(app: App) -> tuple[App, dict[str, Any]]:
    job = start_build(app)
    post_logs(app, *(record(trace_of(job), STEP_A, line) for line in LINES))
    return app, job


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("alpha", ["alpha beta", "alpha gamma"]),
        ("alpha beta", ["alpha beta"]),  # every word must match ...
        ("beta alpha", ["alpha beta"]),  # ... in any order
        ("alpha delta", []),
        ("ALPHA", ["alpha beta", "alpha gamma"]),  # case does not matter
        ("gam*", ["alpha gamma", "beta gamma delta"]),  # a prefix
        ("gam", []),  # a word is a whole word
        ("del* bet*", ["beta gamma delta"]),
        ("  delta  ", ["beta gamma delta"]),
        ("straße", ["Unicode straße"]),
    ],
)
def test_search_within_a_build(searchable: tuple[App, dict[str, Any]], q: str, found: list) -> None:
    app, job = searchable
    assert bodies(get_logs(app, logs_url(job), q=q)) == found


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ('"quoted"', ['the "quoted" word']),
        ('"quoted', ['the "quoted" word']),
        ('quoted"', ['the "quoted" word']),
        ("AND", ["x AND y"]),  # an FTS5 operator is a word like any other
        ("x AND", ["x AND y"]),
        ("OR", []),
        ("NOT alpha", []),
        ("NEAR(", ["NEAR(one two)"]),
        ("NEAR(one", ["NEAR(one two)"]),
        ("key:value", ["key:value pairs"]),
        ("body:alpha", []),  # no column filter smuggled in: "body alpha" is no phrase here
        ("trace_id:x", []),
        ("glob*", ["glob* star"]),
        ("alpha -", ["alpha beta", "alpha gamma"]),  # a word without letters constrains nothing
        ("a - b", ["a - b"]),
        ('alpha "', ["alpha beta", "alpha gamma"]),
        ("beta *", ["alpha beta", "beta gamma delta"]),
    ],
)
def test_search_syntax_characters_are_text(
    searchable: tuple[App, dict[str, Any]], q: str, found: list
) -> None:
    app, job = searchable
    assert bodies(get_logs(app, logs_url(job), q=q)) == found


@pytest.mark.parametrize(
    "q",
    ['"', '""', "*", "**", ":", "(", ")", "^", "-", '"*', "*\"", "{a}", "\\", "'", "NEAR(x y",
     "a\x00b", "\x00", "alpha\x00", "AND OR NOT", "col:", "+", "a OR b", '"""'],
)  # fmt: skip
def test_search_never_fails(searchable: tuple[App, dict[str, Any]], q: str) -> None:
    app, job = searchable
    for url in (logs_url(job), f"/api/traces/{trace_of(job)}/logs"):
        response = app.client.get(url, params={"q": q})
        assert response.status_code == 200, (q, response.text)
    response = app.client.get("/api/search", params={"q": q})
    assert response.status_code == 200, (q, response.text)
    response = app.client.get("/search", params={"q": q})
    assert response.status_code == 200, q


def test_search_is_confined_to_the_build(app: App) -> None:
    first, second = start_build(app), start_build(app)
    post_logs(app, record(trace_of(first), STEP_A, "compiling widget"))
    post_logs(app, record(trace_of(second), STEP_A, "compiling widget"))
    post_logs(app, record(STRAY, STEP_A, "compiling widget"), service="other-service")
    (found,) = get_logs(app, logs_url(first), q="widget")
    assert found["trace_id"] == trace_of(first)
    (found,) = get_logs(app, logs_url(second), q="compiling widget")
    assert found["trace_id"] == trace_of(second)
    (found,) = get_logs(app, f"/api/traces/{STRAY}/logs", q="widget")
    assert found["trace_id"] == STRAY


def test_search_with_span_severity_and_paging(app: App) -> None:
    job = start_build(app)
    trace = trace_of(job)
    post_logs(app, record(trace, STEP_A, "warning one", severity=13))
    post_logs(app, record(trace, STEP_B, "warning two", severity=13))
    post_logs(
        app,
        record(trace, STEP_A, "warning three", severity=5),
        record(trace, STEP_A, "warning four", severity=17),
        record(trace, STEP_A, "warning five", severity=17),
    )
    assert bodies(get_logs(app, logs_url(job), q="warning", span=STEP_A, severity=13)) == [
        "warning one",
        "warning four",
        "warning five",
    ]
    (last,) = get_logs(app, logs_url(job), q="warning", tail=1, limit=1)
    assert last["body"] == "warning five"
    assert bodies(get_logs(app, logs_url(job), q="warning", before=last["id"], limit=2)) == [
        "warning three",
        "warning four",
    ]


def test_a_requests_records_come_together_by_span(app: App) -> None:
    """Records arrive request by request; of one request, each span's records come
    together in the order sent, spans in the order they first appear."""
    job = start_build(app)
    trace = trace_of(job)
    post_logs(app, record(trace, STEP_B, "first request"))
    post_logs(
        app,
        record(trace, STEP_A, "a1"),
        record(trace, STEP_B, "b1"),
        record(trace, STEP_A, "a2"),
        record(trace, STEP_B, "b2"),
    )
    assert bodies(get_logs(app, logs_url(job))) == ["first request", "a1", "a2", "b1", "b2"]
    assert bodies(get_logs(app, logs_url(job), span=STEP_B)) == ["first request", "b1", "b2"]
    assert [r["line"] for r in get_logs(app, logs_url(job), span=STEP_B)] == [1, 2, 3]


# -- bad parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"after": "-1"},
        {"after": "x"},
        {"after": "1.5"},
        {"before": "-3"},
        {"before": "soon"},
        {"before": "²"},  # str.isdigit() says yes, int() says no
        {"after": "٣"},
        {"limit": "many"},
        {"limit": "-1"},
        {"severity": "WARN"},
        {"severity": "-9"},
    ],
)
def test_bad_log_parameters_are_400(app: App, params: dict[str, str]) -> None:
    job = start_build(app)
    for url in (logs_url(job), f"/api/traces/{trace_of(job)}/logs"):
        response = app.client.get(url, params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]


def test_huge_positions_are_no_error(app: App) -> None:
    """Ids past SQLite's 64-bit integers page like any large id, not a 500."""
    job = start_build(app)
    post_logs(app, record(trace_of(job), STEP_A, "only"))
    huge = "9" * 40
    assert bodies(get_logs(app, logs_url(job), before=huge)) == ["only"]
    assert get_logs(app, logs_url(job), after=huge) == []
    response = app.client.get("/api/search", params={"q": "only", "before": huge})
    assert response.status_code == 200
    assert bodies(response.json()["logs"]) == ["only"]


def test_logs_of_an_unknown_build_are_404(app: App) -> None:
    assert app.client.get("/api/pipelines/demo/builds/7/logs").status_code == 404
    assert app.client.get("/api/pipelines/nope/builds/1/logs").status_code == 404


# -- search across builds ---------------------------------------------------------------


@pytest.fixture
def builds(make_app: Any) -> tuple[App, list[dict[str, Any]]]:
    """demo #1, other #1, demo #2, each with matching lines, and a stray trace."""
    app = make_app(PIPELINES)
    made = [start_build(app, "demo"), start_build(app, "other"), start_build(app, "demo")]
    for n, job in enumerate(made):
        post_logs(
            app,
            record(trace_of(job), STEP_A, f"error: disk full {n}"),
            record(trace_of(job), STEP_B, f"all fine {n}"),
            service=f"bass:pipeline:{job['name']}",
        )
    post_logs(app, record(STRAY, STEP_A, "error: disk full stray"), service="other-service")
    finish_build(app, made[0], "failed")
    return app, made


def search(app: App, **params: Any) -> list[dict[str, Any]]:
    response = app.client.get("/api/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()["logs"]


def test_search_across_builds_is_newest_first(builds: tuple[App, list[dict[str, Any]]]) -> None:
    app, _ = builds
    found = search(app, q="disk full")
    assert bodies(found) == [
        "error: disk full stray",
        "error: disk full 2",
        "error: disk full 1",
        "error: disk full 0",
    ]
    assert [r["id"] for r in found] == sorted((r["id"] for r in found), reverse=True)
    assert [(r["pipeline"], r["number"]) for r in found] == [
        (None, None),  # a trace that is no build
        ("demo", 2),
        ("other", 1),
        ("demo", 1),
    ]
    assert {r["span_id"] for r in found} == {STEP_A}


def test_search_across_builds_by_pipeline(builds: tuple[App, list[dict[str, Any]]]) -> None:
    app, _ = builds
    found = search(app, q="disk", pipeline="demo")
    assert [(r["pipeline"], r["number"]) for r in found] == [("demo", 2), ("demo", 1)]
    assert search(app, q="disk", pipeline="nope") == []
    assert bodies(search(app, q="fine", pipeline="other")) == ["all fine 1"]


def test_search_across_builds_pages_with_before(builds: tuple[App, list[dict[str, Any]]]) -> None:
    app, _ = builds
    everything = search(app, q="full")
    first = search(app, q="full", limit=3)
    rest = search(app, q="full", limit=3, before=first[-1]["id"])
    assert first + rest == everything and len(rest) == 1
    assert search(app, q="full", limit=3, before=rest[-1]["id"]) == []


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "   "}, {"q": "x", "before": "y"}, {"q": "x", "limit": "-2"},
     {"q": "x", "before": "²"}],
)  # fmt: skip
def test_bad_search_is_400(app: App, params: dict[str, str]) -> None:
    response = app.client.get("/api/search", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


# -- the /search page -------------------------------------------------------------------


def test_search_page_escapes_and_links_to_the_step(app: App) -> None:
    job = start_build(app)
    post_spans(app, span(trace_of(job), STEP_A, parent=job["otel"]["root-span-id"], name="compile"))
    evil = "<script>alert('boom')</script> & found"
    post_logs(app, record(trace_of(job), STEP_A, evil))
    response = app.client.get("/search", params={"q": "boom"})
    assert response.status_code == 200
    assert response.template.name == "search.html"  # type: ignore[attr-defined]
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(" in response.text and "&amp; found" in response.text
    assert f'href="http://testserver/pipelines/demo/1#step-{STEP_A}-L1"' in response.text
    assert [line["body"] for line in response.context["lines"]] == [evil]  # type: ignore[attr-defined]


def test_search_page_within_one_build(make_app: Any) -> None:
    app = make_app(PIPELINES)
    first, second = start_build(app, "demo"), start_build(app, "demo")
    root = first["otel"]["root-span-id"]
    post_spans(app, span(trace_of(first), STEP_A, parent=root, name="unit tests"))
    post_logs(app, record(trace_of(first), STEP_A, "needle one"),
              record(trace_of(first), STEP_A, "needle two"))  # fmt: skip
    post_logs(app, record(trace_of(second), STEP_A, "needle elsewhere"))
    response = app.client.get("/search", params={"q": "needle", "pipeline": "demo", "number": 1})
    assert response.status_code == 200
    context = response.context  # type: ignore[attr-defined]
    assert context["build"]["trace_id"] == trace_of(first)
    assert [(line["body"], line["step"]) for line in context["lines"]] == [
        ("needle one", "unit tests"),
        ("needle two", "unit tests"),
    ]  # oldest first within a build
    assert "needle elsewhere" not in response.text
    assert "unit tests" in response.text
    assert f"/pipelines/demo/1#step-{STEP_A}-L1" in response.text  # each at its line
    assert f"/pipelines/demo/1#step-{STEP_A}-L2" in response.text
    # across the pipeline: both builds, newest first
    response = app.client.get("/search", params={"q": "needle", "pipeline": "demo"})
    assert [line["body"] for line in response.context["lines"]] == [  # type: ignore[attr-defined]
        "needle elsewhere",
        "needle two",
        "needle one",
    ]


def test_search_page_shows_lines_of_no_build(app: App) -> None:
    post_logs(app, record(STRAY, STEP_A, "stray needle"), service="other-service")
    post_logs(app, record("", "", "needle without a trace"), service="other-service")
    response = app.client.get("/search", params={"q": "needle"})
    assert response.status_code == 200
    assert "stray needle" in response.text and "needle without a trace" in response.text
    assert f'href="http://testserver/traces/{STRAY}"' in response.text


def test_search_page_without_matches_or_words(app: App) -> None:
    response = app.client.get("/search", params={"q": "<b>nothing</b>"})
    assert response.status_code == 200
    assert "No log line matches" in response.text
    assert "<b>nothing</b>" not in response.text
    assert re.search(r"&lt;b&gt;nothing&lt;/b&gt;", response.text)
    response = app.client.get("/search")
    assert response.status_code == 200
    assert response.context["lines"] == []  # type: ignore[attr-defined]
    for number in ("²", "x", "9" * 40):
        response = app.client.get(
            "/search", params={"q": "a", "pipeline": "demo", "number": number}
        )
        assert response.status_code == 200, number


def test_build_list_with_a_huge_or_odd_before(app: App) -> None:
    start_build(app)
    for before in ("9" * 40, "²", "x"):
        response = app.client.get("/api/pipelines/demo/builds", params={"before": before})
        assert response.status_code == 200, (before, response.text)
        assert [b["number"] for b in response.json()["builds"]] == [1]
