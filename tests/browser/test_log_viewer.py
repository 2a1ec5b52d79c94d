"""The build page's log viewer in real headless Chromium, against a real `bass serve` with
a real local worker running real build scripts: colours, a million lines, a step that
prints while the page is open, and a failed build opening at its failing line.

Screenshots of what the reader sees land in /tmp/shots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.pages import (
    DESKTOP,
    PHONE,
    assert_no_horizontal_overflow,
    line_count,
    rect,
    rgb,
    serve_scripts,
    shown_lines,
    shown_numbers,
)
from tests.conftest import Server
from tests.e2e.waiting import wait_until

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
MAX_LINES_IN_DOM = 3000


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def span_of(page: Any, step: str) -> str:
    """The span id of the step named `step` on the build page open in `page`."""
    return page.locator(f'li.step[data-step="{step}"]').get_attribute("id").removeprefix("step-")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


# ---- colours ----------------------------------------------------------------------------

COLOURS = r"""#!/usr/bin/env python3
from bass import build

build({"name": "colours", "steps": [
    {"name": "lint", "exec": "echo 'checking x.py'; "
                             "printf 'x.py:1:1: \\033[1;31mE501\\033[0m line too long\\n'; "
                             "echo 'Found 1 error (not failing the build)'"},
    {"name": "other", "exec": "echo 'nothing to see'"},
]})
"""


def test_a_coloured_line_shows_its_colour_and_is_found_without_its_escapes(tmp_path, page):
    server = serve_scripts(tmp_path, {"colours": COLOURS})
    try:
        assert server.wait_for(server.webhook("colours")["id"])["state"] == "ok"
        page.goto(f"{server.url}/pipelines/colours/1")
        lint = page.locator('li.step[data-step="lint"]')
        span = span_of(page, "lint")
        lint.locator("summary").first.click()
        viewer = page.locator(f"#log-{span}")
        line = viewer.locator('.lv-line[data-n="2"]')
        line.locator(".lv-x").wait_for(timeout=10000)

        # the text as a terminal shows it: no escape sequence, no leftover of one
        text = line.locator(".lv-x").text_content()
        assert text == "x.py:1:1: E501 line too long", repr(text)
        assert "\x1b" not in (line.text_content() or "")
        # E501 in red (and bold), the rest of the line in the log's own colour
        code = line.locator(".lv-x span", has_text="E501")
        assert code.count() == 1 and code.text_content() == "E501"
        red = rgb(code.evaluate("e => getComputedStyle(e).color"))
        plain = rgb(line.locator(".lv-x").evaluate("e => getComputedStyle(e).color"))
        first = rgb(viewer.locator('.lv-line[data-n="1"] .lv-x').evaluate(
            "e => getComputedStyle(e).color"))  # fmt: skip
        assert plain == first, "text outside the escapes keeps the log's colour"
        assert red != plain
        assert red[0] >= 150 and red[1] <= 100 and red[2] <= 100, f"not red: {red}"
        assert int(code.evaluate("e => getComputedStyle(e).fontWeight")) >= 600

        # the step's own find: one match, that line highlighted
        viewer.locator(".lv-find").fill("E501")
        viewer.locator(".lv-hits", has_text="1 of 1").wait_for(timeout=10000)
        classes = (line.get_attribute("class") or "").split()
        assert "lv-hit" in classes and "lv-target" in classes, classes
        others = viewer.locator(".lv-line.lv-hit")
        assert others.count() == 1

        # the build's search box: found in this build, shown without escapes, linked
        search = page.locator("form.search input[name=q]")
        search.fill("E501")
        search.press("Enter")
        page.wait_for_url("**/search?*")
        assert "pipeline=colours" in page.url and "number=1" in page.url
        rows = page.locator("table.results tbody tr")
        assert rows.count() == 1
        cells = rows.first.locator("td")
        assert cells.nth(1).inner_text() == "lint"
        assert cells.nth(2).text_content() == "x.py:1:1: E501 line too long"
        found = rgb(cells.nth(2).locator("span", has_text="E501").evaluate(
            "e => getComputedStyle(e).color"))  # fmt: skip
        assert found[0] >= 150 and found[1] <= 100 and found[2] <= 100, found
        link = cells.first.locator("a")
        assert (link.get_attribute("href") or "").endswith(f"/pipelines/colours/1#step-{span}-L2")
        link.click()
        page.wait_for_url(f"**/pipelines/colours/1#step-{span}-L2")
        target = page.locator(f'#log-{span} .lv-line.lv-target[data-n="2"] .lv-x')
        target.wait_for(timeout=10000)
        assert 2 in shown_numbers(page.locator(f"#log-{span}"))
    finally:
        server.stop()


# ---- a million lines --------------------------------------------------------------------

MILLION = r"""#!/usr/bin/env python3
from bass import build

build({"name": "big", "steps": [
    {"name": "million", "exec": "seq 1 1000000 | sed 's/^/line /'"},
]})
"""


@pytest.fixture(scope="module")
def million(tmp_path_factory) -> Iterator[tuple[Server, str]]:
    """A build whose one step printed 1,000,000 lines, all stored; and that step's span."""
    server = serve_scripts(tmp_path_factory.mktemp("million"), {"big": MILLION})
    try:
        job = server.wait_for(server.webhook("big")["id"], timeout=600)
        assert job["state"] == "ok", server.output()
        spans = {s["name"]: s for s in _walk(server.build("big", 1)["spans"])}
        span = spans["million"]["span_id"]
        last = server.query(
            "SELECT last_line FROM log_counts WHERE span_id = ?", span
        )  # the build ends once its lines are stored
        assert last == [(1_000_000,)], last
        yield server, span
    finally:
        server.stop()


def _walk(spans: list[dict]) -> Iterator[dict]:
    for s in spans:
        yield s
        yield from _walk(s["children"])


def _settled(viewer: Any, holding: int | None = None) -> list[dict[str, Any]]:
    """The viewer's shown lines once every one of them has its text (and line `holding`
    is among them)."""

    def arrived() -> list[dict[str, Any]] | None:
        lines = shown_lines(viewer)
        if not lines or any(x["text"] is None for x in lines):
            return None
        if holding is not None and holding not in [x["n"] for x in lines]:
            return None
        return lines

    found = wait_until(arrived, f"the viewer's lines to arrive (holding {holding})", timeout=30)
    assert found is not None
    return found


def _assert_consecutive_and_true(lines: list[dict[str, Any]]) -> None:
    numbers = [x["n"] for x in lines]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert all(x["text"] == f"line {x['n']}" for x in lines), lines


def test_a_million_line_step_opens_at_its_tail_and_goes_anywhere_by_number(million, browser):
    server, span = million
    url = f"{server.url}/pipelines/big/1"
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/lines?" in r.url else None)
    page.goto(url)
    step = page.locator('li.step[data-step="million"]')
    viewer = page.locator(f"#log-{span}")
    assert step.locator(":scope > details").get_attribute("open") is None  # it passed
    assert line_count(page) == 0 and not asked, "a closed step loads none of its lines"

    # opened: the tail first
    step.locator("summary").first.click()
    viewer.locator('.lv-line[data-n="1000000"] .lv-x').wait_for(timeout=15000)
    viewer.scroll_into_view_if_needed()
    tail = _settled(viewer)
    assert tail[-1]["n"] == 1_000_000, tail[-3:]
    _assert_consecutive_and_true(tail)
    assert len(tail) >= 20
    assert "on" in (viewer.locator(".lv-follow").get_attribute("class") or "").split()
    assert viewer.locator(".lv-count").inner_text() == "1,000,000 lines"
    assert line_count(page) <= MAX_LINES_IN_DOM
    shot(page, "million-desktop-tail.png")

    # scrolled to the middle: the lines around 500,000, fetched by number
    scroller = viewer.locator(".lv-scroll")
    scroller.evaluate("e => e.scrollTop = (e.scrollHeight - e.clientHeight) / 2")
    middle = _settled(viewer)
    assert all(abs(x["n"] - 500_000) <= 100 for x in middle), [x["n"] for x in middle]
    assert viewer.locator('.lv-line[data-n="1000000"]').count() == 0, "the tail left the DOM"
    _assert_consecutive_and_true(middle)
    assert "on" not in (viewer.locator(".lv-follow").get_attribute("class") or "").split()
    assert line_count(page) <= MAX_LINES_IN_DOM
    # and to the top: line 1
    scroller.evaluate("e => e.scrollTop = 0")
    top = _settled(viewer)
    assert top[0]["n"] == 1, top[:3]
    assert viewer.locator('.lv-line[data-n="500000"]').count() == 0, "the middle left the DOM"
    _assert_consecutive_and_true(top)
    assert line_count(page) <= MAX_LINES_IN_DOM
    # nothing fetched the whole step: a few windows of lines, by number
    windows = [parse_qs(urlsplit(u).query) for u in asked]
    windows = [w for w in windows if "from" in w or "tail" in w]
    assert windows and all("tail" not in w for w in windows), asked
    assert all(int(w["to"][0]) - int(w["from"][0]) < 1000 for w in windows), asked
    assert len(windows) < 20, asked

    # the step's find: a line in the middle, highlighted and in view
    viewer.locator(".lv-find").fill("777777")
    viewer.locator(".lv-hits", has_text="1 of 1").wait_for(timeout=15000)
    viewer.locator('.lv-line.lv-target.lv-hit[data-n="777777"] .lv-x').wait_for(timeout=15000)
    assert 777_777 in shown_numbers(viewer)
    assert line_count(page) <= MAX_LINES_IN_DOM
    context.close()

    # a link to line 1, opened in a new page: the step opens at line 1, highlighted
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{url}#step-{span}-L1")
    viewer = page.locator(f"#log-{span}")
    viewer.locator('.lv-line.lv-target[data-n="1"] .lv-x').wait_for(timeout=15000)
    lines = _settled(viewer)
    assert lines[0]["n"] == 1 and "lv-target" in lines[0]["classes"], lines[:2]
    _assert_consecutive_and_true(lines)
    assert [x["n"] for x in lines if "lv-target" in x["classes"]] == [1]
    assert line_count(page) <= MAX_LINES_IN_DOM
    # a line's number is its link
    number = viewer.locator('.lv-line[data-n="5"] a.lv-n')
    assert number.get_attribute("href") == f"#step-{span}-L5"
    number.click()
    page.wait_for_url(f"**#step-{span}-L5")
    viewer.locator('.lv-line.lv-target[data-n="5"]').wait_for(timeout=5000)
    assert [x["n"] for x in shown_lines(viewer) if "lv-target" in x["classes"]] == [5]

    # a search result's link to line 500,000 of the million
    page.goto(f"{server.url}/search?pipeline=big&number=1&q=500000")
    results = page.locator("table.results tbody tr")
    assert results.count() == 1
    assert results.first.locator("code.line").text_content() == "line 500000"
    results.first.locator("a").click()
    page.wait_for_url(f"**/pipelines/big/1#step-{span}-L500000")
    viewer = page.locator(f"#log-{span}")
    viewer.locator('.lv-line.lv-target[data-n="500000"] .lv-x').wait_for(timeout=15000)
    lines = _settled(viewer)
    assert [x["n"] for x in lines if "lv-target" in x["classes"]] == [500_000], lines
    _assert_consecutive_and_true(lines)
    assert line_count(page) <= MAX_LINES_IN_DOM
    context.close()

    # on a phone: the same line, the page no wider than the phone
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{url}#step-{span}-L500000")
    viewer = page.locator(f"#log-{span}")
    viewer.locator('.lv-line.lv-target[data-n="500000"] .lv-x').wait_for(timeout=15000)
    lines = _settled(viewer)
    assert [x["n"] for x in lines if "lv-target" in x["classes"]] == [500_000], lines
    assert_no_horizontal_overflow(page, "the build page of a million lines")
    assert line_count(page) <= MAX_LINES_IN_DOM
    shot(page, "million-phone-L500000.png")
    context.close()


# ---- a running build ----------------------------------------------------------------------

LIVE = r"""#!/usr/bin/env python3
from bass import build

# ticker prints "line N" once the test has written the file go.N; both run until "stop"
TICKER = ('seq 1 40 | sed "s/^/early /"; i=1; '
          'while [ ! -f "$GATE/stop" ]; do '
          'if [ -f "$GATE/go.$i" ]; then echo "line $i"; i=$((i+1)); fi; sleep 0.05; done')
SIDECAR = 'echo "sidecar waiting"; while [ ! -f "$GATE/stop" ]; do sleep 0.05; done'
build({"name": "live", "steps": [
    *[{"name": f"prep{n}", "exec": f"echo prepared {n}"} for n in range(1, 9)],
    {"name": "both", "order": "unordered", "steps": [
        {"name": "ticker", "exec": TICKER},
        {"name": "sidecar", "exec": SIDECAR},
    ]},
]})
"""

_READER = """() => ({
  scrollY: scrollY,
  selection: getSelection().toString(),
  selectionKept: window.__selected ? window.__selected.isConnected
    && getSelection().anchorNode === window.__selected : false,
  focusKept: document.activeElement === window.__focused,
  focused: document.activeElement ? document.activeElement.outerHTML.slice(0, 80) : null,
})"""


def test_a_running_step_grows_without_moving_what_the_reader_did(tmp_path, browser):
    gate = tmp_path / "gate"
    gate.mkdir()
    server = serve_scripts(tmp_path, {"live": LIVE}, env=f"GATE={gate}\n")
    context = browser.new_context(viewport={"width": 1280, "height": 700})
    page = context.new_page()
    try:
        server.webhook("live")
        page.goto(f"{server.url}/pipelines/live/1")
        page.evaluate("window.__noReload = true")
        ticker = page.locator('li.step[data-step="ticker"]')
        sidecar = page.locator('li.step[data-step="sidecar"]')
        page.locator('li.step[data-step="ticker"][data-status="running"]').wait_for(timeout=30000)
        page.locator('li.step[data-step="sidecar"][data-status="running"]').wait_for()
        ticker.locator(".lv-line", has_text="early 40").wait_for(timeout=30000)
        sidecar.locator(".lv-line", has_text="sidecar waiting").wait_for(timeout=30000)
        viewer = ticker.locator(".logview")
        assert sidecar.locator(":scope > details").get_attribute("open") is not None
        page.evaluate(
            """() => document.addEventListener("bass:refreshed",
                 () => { document.body.dataset.refreshes =
                           String(Number(document.body.dataset.refreshes || 0) + 1); })"""
        )

        # the reader: types into the step's find and the build's search box, closes the
        # running sidecar (its summary keeps the focus), selects the ticker's name, scrolls
        find = viewer.locator(".lv-find")
        find.press_sequentially("zebra")
        viewer.locator(".lv-hits", has_text="no match").wait_for(timeout=10000)
        search = page.locator("form.search input[name=q]")
        search.press_sequentially("needle haystack")
        sidecar.locator("summary").first.click()
        assert sidecar.locator(":scope > details").get_attribute("open") is None
        selected = page.evaluate(
            """() => {
                const name = document.querySelector('li.step[data-step="ticker"] summary .name');
                const range = document.createRange();
                range.selectNodeContents(name.firstChild);
                getSelection().removeAllRanges();
                getSelection().addRange(range);
                window.__selected = name.firstChild;
                window.__focused = document.activeElement;
                return [getSelection().toString(), document.activeElement.tagName];
            }"""
        )
        assert selected == ["ticker", "SUMMARY"], selected
        room = page.evaluate("document.documentElement.scrollHeight - innerHeight")
        assert room >= 150, f"the page must be taller than the window: {room}"
        page.evaluate(f"scrollTo(0, {room // 2})")
        before = page.evaluate(_READER)
        assert before["scrollY"] == room // 2 and before["selectionKept"], before

        for n in (1, 2):
            (gate / f"go.{n}").write_text("")
            viewer.locator(f'.lv-line[data-n="{40 + n}"] .lv-x', has_text=f"line {n}").wait_for(
                timeout=15000
            )
            # and a refresh of the page after it: the morph that brings the step's growth
            page.evaluate("delete document.body.dataset.refreshes")
            page.locator("body[data-refreshes]").wait_for(timeout=15000)
            after = page.evaluate(_READER)
            assert abs(after["scrollY"] - before["scrollY"]) <= 2, (before, after)
            assert after["selection"] == "ticker" and after["selectionKept"], after
            assert after["focusKept"], after
            assert find.input_value() == "zebra"
            assert search.input_value() == "needle haystack"
            assert sidecar.locator(":scope > details").get_attribute("open") is None
            # the new line is shown at the bottom of the step's box, as it follows the tail
            lines = shown_lines(viewer, in_viewport=False)
            assert lines[-1] == {"n": 40 + n, "text": f"line {n}", "classes": ["lv-line"]}, lines

        (gate / "stop").write_text("")
        page.locator("h1 .s-ok").wait_for(timeout=30000)
        assert page.evaluate("window.__noReload") is True, "the page must update in place"
        assert find.input_value() == "zebra" and search.input_value() == "needle haystack"
        assert sidecar.get_attribute("data-status") == "ok"
        assert sidecar.locator(":scope > details").get_attribute("open") is None
    finally:
        context.close()
        server.stop()


# ---- a failed build -----------------------------------------------------------------------

FAILING = r"""#!/usr/bin/env python3
from bass import build

build({"name": "failing", "steps": [
    {"name": "long", "exec": "seq 1 3000 | sed 's/^/passing line /'"},
    *[{"name": f"quick{n}", "exec": f"echo quick {n}"} for n in range(1, 13)],
    {"name": "tests", "steps": [{"name": "pytest", "exec": ["sh", "fake_pytest.sh"]}]},
]})
"""
# 400 lines of a pytest run that failed: its FAILURES section starts at line 120
FAKE_PYTEST = r"""#!/bin/sh
echo '============================= test session starts =============================='
for i in $(seq 2 119); do echo "tests/test_app.py::test_ok_$i PASSED"; done
echo '=================================== FAILURES ==================================='
echo '_________________________________ test_answer __________________________________'
echo ''
echo '    def test_answer():'
echo '>       assert answer() == 42'
echo 'E       assert 41 == 42'
echo 'E        +  where 41 = answer()'
echo ''
echo 'tests/test_app.py:7: AssertionError'
for i in $(seq 129 397); do echo "captured log line $i"; done
echo '=========================== short test summary info ============================'
echo 'FAILED tests/test_app.py::test_answer - AssertionError: assert 41 == 42'
echo '========================= 1 failed, 118 passed in 0.52s ========================='
exit 1
"""
FAILING_LINE = 120


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_failed_build_opens_scrolled_to_its_failing_lines(tmp_path, browser, size):
    server = serve_scripts(tmp_path, {"failing": FAILING}, files={"fake_pytest.sh": FAKE_PYTEST})
    viewport = DESKTOP if size == "desktop" else PHONE
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        assert server.wait_for(server.webhook("failing")["id"])["state"] == "failed"
        page.goto(f"{server.url}/pipelines/failing/1")
        span = span_of(page, "pytest")
        step = page.locator('li.step[data-step="pytest"]')
        viewer = page.locator(f"#log-{span}")
        target = viewer.locator(f'.lv-line.lv-target[data-n="{FAILING_LINE}"] .lv-x')
        target.wait_for(timeout=15000)
        shot(page, f"failed-{size}.png")

        # opened at the failing line, in view, and the test scrolled nothing
        assert step.locator(":scope > details").get_attribute("open") is not None
        assert page.locator('li.step[data-step="long"] > details').get_attribute("open") is None
        assert viewer.get_attribute("data-at") == str(FAILING_LINE)
        assert target.text_content() == "=" * 35 + " FAILURES " + "=" * 35
        lines = _settled(viewer)
        shown = [x["n"] for x in lines]
        assert [x["n"] for x in lines if "lv-target" in x["classes"]] == [FAILING_LINE], shown
        assert FAILING_LINE + 5 in shown, f"the assertion (line 125) is shown too: {shown}"
        box = rect(viewer.locator(".lv-scroll"))
        height = page.evaluate("innerHeight")
        assert box["top"] >= 0 and box["bottom"] <= height, (box, height)
        page_top = page.evaluate("scrollY")
        assert page_top > 0 and page_top + box["bottom"] > height, (
            "the box is below the fold of the page: the page itself scrolled to it",
            page_top,
            box,
        )
        assert page.locator('li.step[data-step="long"] .lv-line').count() == 0
        if size == "phone":
            assert_no_horizontal_overflow(page, "a failed build's page")

        # the banner names the step and its exit code, and links to the line
        banner = page.locator(".failure")
        heading = banner.inner_text().splitlines()[0]
        assert heading == "Failed at failing / tests / pytest (exit code 1)", heading
        assert banner.locator(".failure-line").inner_text() == (
            "FAILED tests/test_app.py::test_answer - AssertionError: assert 41 == 42"
        )
        link = banner.locator("a")
        assert link.inner_text() == "failing / tests / pytest"
        assert link.get_attribute("href") == f"#step-{span}-L{FAILING_LINE}"
        # the reader wanders off (the log to its top, the page to its top), then follows it
        viewer.locator(".lv-scroll").evaluate("e => e.scrollTop = 0")
        _settled(viewer)
        page.evaluate("scrollTo(0, 0)")
        assert FAILING_LINE not in shown_numbers(viewer)
        link.click()
        page.wait_for_url(f"**#step-{span}-L{FAILING_LINE}")
        target.wait_for(timeout=5000)
        lines = _settled(viewer, holding=FAILING_LINE)
        assert [x["n"] for x in lines if "lv-target" in x["classes"]] == [FAILING_LINE]
    finally:
        context.close()
        server.stop()
