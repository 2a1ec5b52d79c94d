"""Trends and badges (issue 12, part 5): the duration chart above a pipeline's grid and
its success rate, the figures and flaky marks in the grid's step headers, the home
page's strips of last builds, and `/pipelines/NAME/badge.svg`.

The SVG is read back with ElementTree (well-formed, escaped values intact); the pages
through the app, with builds queued, run and ended through the worker API."""

from __future__ import annotations

import re
import statistics
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bass.auth import Users
from bass.store import trends
from bass.store.builds import Source
from bass.ui import charts
from bass.ui import trends as badge_routes
from tests.unit.conftest import App
from tests.unit.helpers import KEY
from tests.unit.helpers import span as otlp_span

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "\"><script>alert(1)</script><b x='y'>&amp;"
S = 1_000_000_000
PIPELINES = {
    "demo": {"repository": "https://example.com/demo.git", "exec": ["./build.py"]},
    "quiet": {"repository": "https://example.com/quiet.git", "exec": ["./build.py"]},
}


def build(number: int, state: str, seconds: float | None = 10.0, **extra: Any) -> dict:
    started = None if seconds is None else 1000.0
    finished = None if seconds is None or state in ("queued", "running") else 1000.0 + seconds
    return {"pipeline": "demo", "number": number, "state": state, "queued_at": 999.0,
            "started_at": started, "finished_at": finished, **extra}  # fmt: skip


def url_of(b: dict[str, Any]) -> str:
    return f"/pipelines/{b['pipeline']}/{b['number']}"


def parse(svg: str) -> ET.Element:
    """The SVG as XML (inline SVG in a page has no xmlns: given one to parse)."""
    svg = str(svg)
    if "xmlns=" not in svg.split(">", 1)[0]:
        svg = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return ET.fromstring(svg)


def bars(svg: str) -> list[tuple[str, str, str, float]]:
    """(href, title, class, height) of each bar, left to right."""
    out = []
    for link in parse(svg).iter(f"{SVG}a"):
        rects = [r for r in link.iter(f"{SVG}rect") if "hit" not in r.get("class", "")]
        (bar,) = rects
        title = link.find(f"{SVG}title")
        assert title is not None
        out.append((link.get("href", ""), title.text or "", bar.get("class", ""),
                    float(bar.get("height", "0"))))  # fmt: skip
    return out


# -- the duration chart -------------------------------------------------------------------


def test_the_chart_has_a_bar_a_build_oldest_left_coloured_by_state_linked_and_titled() -> None:
    builds = [build(3, "failed", 5), build(2, "ok", 20), build(1, "running", None)]
    svg = charts.duration_chart(builds, url_of, now=1010.0, slots=30)
    got = bars(svg)
    assert [b[0] for b in got] == ["/pipelines/demo/1", "/pipelines/demo/2", "/pipelines/demo/3"]
    assert [b[2] for b in got] == ["bar s-running", "bar s-ok", "bar s-failed"]
    assert got[1][1] == "#2 · ok · 20.0s" and got[2][1] == "#3 · failed · 5.0s"
    assert got[0][1] == "#1 · running"  # not started: no duration
    # the longest fills the height (less a margin); the others in proportion; none vanish
    assert got[1][3] == charts.CHART_HEIGHT - 4
    assert got[2][3] == pytest.approx((charts.CHART_HEIGHT - 4) / 4)
    assert got[0][3] == 2
    # right-aligned in 30 slots: the newest at the right edge
    xs = [float(r.get("x", 0)) for r in parse(svg).iter(f"{SVG}rect") if "hit" in r.get("class")]
    assert xs == [270.0, 280.0, 290.0]


def test_a_running_build_is_as_long_as_it_has_run_so_far() -> None:
    running = dict(build(2, "running", 0), started_at=1000.0, finished_at=None)
    got = bars(charts.duration_chart([running, build(1, "ok", 10)], url_of, 1020.0, 30))
    assert got[1][1] == "#2 · running · 20.0s" and got[1][3] == charts.CHART_HEIGHT - 4


def test_the_chart_shows_at_most_its_slots_and_nothing_for_no_builds() -> None:
    many = [build(n, "ok", n) for n in range(40, 0, -1)]
    assert len(bars(charts.duration_chart(many, url_of, 0, 30))) == 30
    assert bars(charts.duration_chart([], url_of, 0, 30)) == []


def test_the_chart_escapes_what_it_shows() -> None:
    hostile = build(1, "ok", 3, pipeline=NASTY, branch=NASTY)
    svg = charts.duration_chart([hostile], lambda b: f"/pipelines/{b['pipeline']}/1", 0, 30)
    assert "<script>" not in svg and "<b " not in svg
    ((href, title, _, _),) = bars(svg)  # parses: every value escaped
    assert href == f"/pipelines/{NASTY}/1" and title.endswith(NASTY)


def test_the_strip_is_a_square_a_build_newest_last_and_escaped() -> None:
    builds = [build(2, "failed", 5, branch=NASTY), build(1, "ok", 3)]
    html = str(charts.strip(builds, lambda b: f"/p/{NASTY}/{b['number']}", now=0))
    assert "<script>" not in html and "<b " not in html
    found = re.findall(r'<a class="([^"]*)" href="([^"]*)" title="([^"]*)"></a>', html)
    assert [(c, unescape(h), unescape(t)) for c, h, t in found] == [
        ("s-ok", f"/p/{NASTY}/1", "#1 · ok · 3.0s"),
        ("s-failed", f"/p/{NASTY}/2", f"#2 · failed · 5.0s · {NASTY}"),
    ]


def test_the_success_rate_is_ok_builds_of_those_that_ended() -> None:
    builds = [build(5, "running", None), build(4, "ok"), build(3, "failed"),
              build(2, "ok"), build(1, "cancelled"), build(0, "queued", None)]  # fmt: skip
    assert trends.success_rate(builds) == {"ok": 2, "ended": 4, "percent": 50}
    assert trends.success_rate([build(1, "running", None)])["percent"] is None
    assert (
        trends.success_rate([build(2, "ok"), build(1, "ok"), build(0, "failed")])["percent"] == 67
    )


# -- step records and flaky steps ------------------------------------------------------------


def run(status: str, seconds: float = 1.0) -> dict[str, Any]:
    end = 0 if status == "running" else 100 * S + int(seconds * S)
    return {"bass_status": status, "start_ns": 100 * S, "end_ns": end}


def test_a_step_record_counts_the_runs_that_ended_and_their_median() -> None:
    runs = [run("ok", 1), None, run("failed", 3), run("skipped", 0), run("running"),
            run("ok", 2)]  # fmt: skip
    record = trends.step_record(runs, [None] * len(runs))
    assert record == {"ok": 2, "ended": 3, "median_ns": 2 * S, "flaky": None}


def test_a_step_that_passed_and_failed_on_one_commit_is_flaky() -> None:
    runs = [run("ok"), run("failed"), run("ok")]  # newest first
    commits = ["b" * 40, "a" * 40, "a" * 40]  # failed on a, then passed on a (a rerun)
    assert trends.step_record(runs, commits)["flaky"] == f"passed and failed on commit {'a' * 10}"
    # on different commits, one failure in between is no flake: a break and its fix
    assert trends.step_record(runs, ["c" * 40, "b" * 40, "a" * 40])["flaky"] is None
    # a timeout is a failure too; a build that names no commit never matches another
    assert trends.step_record([run("timeout"), run("ok")], ["a" * 40] * 2)["flaky"]
    assert trends.step_record([run("failed"), run("ok")], [None, None])["flaky"] is None


def test_a_step_that_alternated_twice_is_flaky() -> None:
    commits = [f"{n:040x}" for n in range(6)]
    alternating = [run("failed"), run("ok"), run("failed"), run("ok")]  # newest first
    flaky = trends.step_record(alternating, commits[:4])["flaky"]
    assert flaky == "alternated ok, failed, ok, failed"
    # skipped and missing runs are not outcomes: the alternation still shows
    gaps = [run("failed"), None, run("ok"), run("skipped"), run("failed"), run("ok")]
    assert trends.step_record(gaps, commits)["flaky"] == "alternated ok, failed, ok, failed"
    for steady in (
        [run("ok"), run("failed"), run("failed"), run("ok")],  # broke, fixed
        [run("ok"), run("failed"), run("ok")],  # alternated once
        [run("ok")] * 5,
    ):
        assert trends.step_record(steady, commits[: len(steady)])["flaky"] is None


# -- the badge ---------------------------------------------------------------------------------


def badge_text(svg: str) -> list[str]:
    root = parse(svg)
    return [t.text or "" for t in root.iter(f"{SVG}text")][1::2]  # each text has a shadow


@pytest.mark.parametrize(
    ("state", "words", "colour"),
    [("ok", "passing", "#1a7f37"), ("failed", "failing", "#cf222e"),
     ("running", "running", "#0969da"), ("queued", "queued", charts.GREY),
     ("timeout", "timed out", "#9a5700"), ("cancelled", "cancelled", "#57606a"),
     ("error", "error", "#8250df"), (None, "no builds", charts.GREY)],
)  # fmt: skip
def test_a_badge_says_the_state_in_its_colour(state: str | None, words: str, colour: str) -> None:
    svg = charts.status_badge(state)
    root = parse(svg)
    assert badge_text(svg) == ["build", words]
    assert root.find(f"{SVG}title").text == f"build: {words}"  # type: ignore[union-attr]
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    assert charts.LABEL_GREY in fills and colour in fills


def test_a_badge_is_as_wide_as_its_words() -> None:
    short = parse(charts.badge("build", "ok", "#000"))
    long = parse(charts.badge("build", "a" * 30, "#000"))
    assert 50 < int(short.get("width", 0)) < 70 < int(long.get("width", 0))
    assert charts.text_width("iiii") < charts.text_width("mmmm")
    svg = charts.badge(NASTY, NASTY, '"red')
    assert "<script>" not in svg and badge_text(svg) == [NASTY, NASTY]


# -- through the app ---------------------------------------------------------------------------


@pytest.fixture
def app(make_app: Any) -> App:
    app = make_app(PIPELINES)
    add_badge_routes(app)
    return app


def add_badge_routes(app: App) -> None:
    """The badge's route, until create_app lists it (then this adds nothing)."""
    routes = app.client.app.routes  # type: ignore[attr-defined]
    if not any(getattr(r, "name", None) == "badge" for r in routes):
        app.client.app.router.routes.extend(badge_routes.routes)  # type: ignore[attr-defined]


def built(
    app: App,
    state: str,
    steps: dict[str, str] | None = None,
    *,
    pipeline: str = "demo",
    commit: str | None = None,
    branch: str | None = None,
) -> dict[str, Any]:
    """A build queued (of `branch`, `commit`), claimed, its steps' spans sent (each
    name → its status), and ended with `state` (left so when queued or running)."""
    orchestrator = app.client.app_state["orchestrator"]

    async def enqueue() -> dict[str, Any]:
        source = Source(branch=branch, commit=commit)
        return await orchestrator.enqueue(pipeline, trigger="cli", source=source)

    app.client.portal.call(enqueue)  # type: ignore[union-attr]
    if state == "queued":
        return {}
    job = app.dequeue({"tags": [], "worker": "w1"}).json()
    trace, root = job["otel"]["trace-id"], job["otel"]["root-span-id"]
    spans = [
        otlp_span(trace, f"{i + 1:016x}", parent=root, name=name, start=(i + 1) * S,
                  end=(i + 1) * S + (i + 1) * S // 10, bass_status=status)
        for i, (name, status) in enumerate((steps or {}).items())
    ]  # fmt: skip
    if spans:
        app.send_spans(*spans, service=f"bass:pipeline:{pipeline}", scope="bass_builder")
    if state != "running":
        response = app.client.post(
            f"/jobs/{job['id']}/result",
            json={"status": state},
            headers={"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"},
        )
        assert response.status_code == 200, response.text
    return job


def chart_of(page: str) -> str:
    found = re.search(r'<svg class="trend".*?</svg>', page, re.S)
    assert found, page
    return found.group(0)


def header_cells(page: str) -> dict[str, dict[str, str]]:
    """The step headers of the grid: data-step → {title, class, text}."""
    thead = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    out = {}
    for attrs, text in re.findall(r"<th ([^>]*data-step[^>]*)>(.*?)</th>", thead, re.S):
        values = {k: unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', attrs)}
        values["text"] = " ".join(unescape(re.sub(r"<[^>]+>", " ", text)).split())
        out[values["data-step"]] = values
    return out


def test_the_pipeline_page_charts_its_last_builds_with_the_success_rate(app: App) -> None:
    for state in ("ok", "failed", "ok", "ok", "running"):
        built(app, state, {"test": "ok" if state != "failed" else "failed"})
    page = app.client.get("/pipelines/demo").text
    got = bars(chart_of(page))
    assert [b[0] for b in got] == [f"/pipelines/demo/{n}" for n in range(1, 6)]
    assert [b[2] for b in got] == ["bar s-ok", "bar s-failed", "bar s-ok", "bar s-ok",
                                   "bar s-running"]  # fmt: skip
    assert [b[1].split(" · ")[:2] for b in got][:2] == [["#1", "ok"], ["#2", "failed"]]
    caption = " ".join(re.sub(r"<[^>]+>", "", page.split("<figcaption", 1)[1]).split())
    assert "Last 5 builds: 75% ok (3 of 4 that ended)" in caption
    # the chart is in the part of the page that refreshes itself
    fragment = app.client.get("/pipelines/demo", headers={"X-Bass-Fragment": "1"}).text
    assert len(bars(chart_of(fragment))) == 5


def test_the_chart_follows_the_branch_and_not_the_status_filter(app: App) -> None:
    built(app, "ok", branch="main")
    built(app, "failed", branch="dev")
    built(app, "failed", branch="main")
    page = app.client.get("/pipelines/demo?branch=main&status=ok").text
    assert [b[0] for b in bars(chart_of(page))] == ["/pipelines/demo/1", "/pipelines/demo/3"]
    assert "Last 2 builds of main: 50% ok (1 of 2 that ended)" in " ".join(
        re.sub(r"<[^>]+>", "", page).split()
    )
    assert len(bars(chart_of(app.client.get("/pipelines/demo?before=2").text))) == 3


def test_a_pipeline_never_built_has_no_chart(app: App) -> None:
    page = app.client.get("/pipelines/quiet").text
    assert "No builds yet" in page and 'class="trend"' not in page


def test_step_headers_show_their_record_and_mark_a_step_flaky_on_one_commit(app: App) -> None:
    one = "a" * 40
    built(app, "failed", {"lint": "ok", "test": "failed"}, commit=one)
    built(app, "ok", {"lint": "ok", "test": "ok"}, commit=one)  # the rerun passed
    built(app, "ok", {"lint": "ok", "test": "ok"}, commit="b" * 40)
    headers = header_cells(app.client.get("/pipelines/demo").text)
    assert headers["lint"]["text"] == "lint 3/3 ok · 100ms"
    assert "class" not in headers["lint"] and "flaky" not in headers["lint"]["title"]
    assert headers["test"]["class"] == "flaky"
    assert headers["test"]["text"] == "test ⚠ flaky 2/3 ok · 200ms"
    tip = headers["test"]["title"]
    assert tip.startswith("test: 2 of 3 runs ok, median 200ms, over the builds shown")
    assert f"passed and failed on commit {one[:10]}" in tip and trends.FLAKY_RULE in tip


def test_a_step_alternating_across_commits_is_flaky_and_the_checkout_names_commits(
    app: App,
) -> None:
    for n, status in enumerate(("ok", "failed", "ok", "failed")):
        built(app, status, {"test": status}, commit=f"{n:040x}")
    tip = header_cells(app.client.get("/pipelines/demo").text)["test"]["title"]
    assert "alternated ok, failed, ok, failed" in tip
    # builds that name no commit: the commit their checkout step checked out counts
    for status in ("failed", "ok"):
        job = built(app, status, {"test": status}, pipeline="quiet")
        trace, root = job["otel"]["trace-id"], job["otel"]["root-span-id"]
        checkout = otlp_span(trace, "c" * 16, parent=root, name="checkout", end=S,
                             bass_status="ok",
                             attributes=[{"key": "vcs.ref.head.revision",
                                          "value": {"stringValue": "f" * 40}}])  # fmt: skip
        app.send_spans(checkout, service="bass:pipeline:quiet", scope="bass_builder")
    headers = header_cells(app.client.get("/pipelines/quiet").text)
    assert headers["test"].get("class") == "flaky", headers
    assert f"passed and failed on commit {'f' * 10}" in headers["test"]["title"]


def test_the_home_page_shows_each_pipelines_last_builds_as_squares(app: App) -> None:
    states = ["ok", "failed"] * 6 + ["running"]
    for state in states:
        built(app, state)
    page = app.client.get("/").text
    row = page.split('data-pipeline="demo"', 1)[1].split("</tr>", 1)[0]
    strip = re.search(r'<span class="strip"[^>]*>(.*?)</span>', row, re.S)
    assert strip, row
    links = [
        {k: unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', a)}
        for a in re.findall(r"<a ([^>]*)></a>", strip.group(1))
    ]
    assert [a["href"] for a in links] == [f"/pipelines/demo/{n}" for n in range(4, 14)]
    assert [a["class"] for a in links] == [f"s-{s}" for s in states[3:]]
    assert links[0]["title"].startswith("#4 · failed · ")
    assert links[-1]["title"].startswith("#13 · running")
    quiet = page.split('data-pipeline="quiet"', 1)[1].split("</tr>", 1)[0]
    assert "never built" in quiet and "strip" not in quiet


def badge_of(app: App, path: str, **headers: str) -> tuple[Any, list[str]]:
    response = app.client.get(path, headers=headers)
    words = badge_text(response.text) if response.status_code != 304 else []
    return response, words


def test_the_badge_says_the_newest_builds_state(app: App) -> None:
    response, words = badge_of(app, "/pipelines/demo/badge.svg")
    assert response.status_code == 200 and words == ["build", "no builds"]
    built(app, "ok", branch="main")
    assert badge_of(app, "/pipelines/demo/badge.svg")[1] == ["build", "passing"]
    built(app, "failed", branch="dev")
    assert badge_of(app, "/pipelines/demo/badge.svg")[1] == ["build", "failing"]
    assert badge_of(app, "/pipelines/demo/badge.svg?branch=main")[1] == ["build", "passing"]
    assert badge_of(app, "/pipelines/demo/badge.svg?branch=nope")[1] == ["build", "no builds"]
    built(app, "running", branch="main")
    assert badge_of(app, "/pipelines/demo/badge.svg?branch=main")[1] == ["build", "running"]
    built(app, "queued")
    assert badge_of(app, "/pipelines/demo/badge.svg")[1] == ["build", "queued"]


def test_the_badge_is_svg_fetched_anew_and_answered_304_when_unchanged(app: App) -> None:
    built(app, "ok")
    response = app.client.get("/pipelines/demo/badge.svg")
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["cache-control"] == "no-cache"
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{20}"', etag)
    again, _ = badge_of(app, "/pipelines/demo/badge.svg", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    built(app, "failed")
    changed, words = badge_of(app, "/pipelines/demo/badge.svg", **{"If-None-Match": etag})
    assert changed.status_code == 200 and words == ["build", "failing"]
    assert changed.headers["etag"] != etag
    assert app.client.head("/pipelines/demo/badge.svg").status_code == 200


@pytest.mark.parametrize("name", ["nope", "x%3Cscript%3E", "a.b"])
def test_an_unknown_pipelines_badge_is_grey_unknown_and_404(app: App, name: str) -> None:
    response, words = badge_of(app, f"/pipelines/{name}/badge.svg")
    assert response.status_code == 404 and words == ["build", "unknown"]
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert "<script>" not in response.text


@pytest.mark.parametrize(
    "query",
    ["branch=%00", "branch=" + "x" * 5000, "branch=%ff%fe", "branch=%3Cscript%3E",
     "branch=a&branch=b", "branch=%F0%9F%92%A9"],
)  # fmt: skip
def test_hostile_query_parameters_never_break_the_badge_or_the_page(app: App, query: str) -> None:
    built(app, "ok")
    response = app.client.get(f"/pipelines/demo/badge.svg?{query}")
    assert response.status_code == 200 and badge_text(response.text)[0] == "build"
    page = app.client.get(f"/pipelines/demo?{query}&status=%00&before=-1")
    assert page.status_code == 200 and "<script>" not in page.text.split("<main>", 1)[1]


def test_on_a_server_with_users_the_badge_needs_a_person(make_app: Any, tmp_path: Path) -> None:
    users = tmp_path / "people.json"
    Users(users).add("alice", "correct horse battery")
    locked = make_app(PIPELINES, users_file=str(users))
    add_badge_routes(locked)
    response = locked.client.get("/pipelines/demo/badge.svg", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


@given(st.lists(st.integers(min_value=-(10**18), max_value=10**18), min_size=1, max_size=50))
def test_median_of_is_statistics_median(values: list[int]) -> None:
    assert trends.median_of(values) == statistics.median(values)
