"""Trends and badges in real headless Chromium against a real `bass serve --local-worker`:
the duration chart above a pipeline's grid (a bar a build, in its status's colour, a
link to the build), the flaky step marked in its header, the home page's strip, and the
status badge shown as an image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.pages import (
    DESKTOP,
    PHONE,
    assert_no_horizontal_overflow,
    rgb,
    serve_scripts,
)
from tests.conftest import Server, http

pytestmark = pytest.mark.browser

# `test` fails while the file $FAIL exists: the same commit passes and fails (flaky)
FLAKY = r"""#!/usr/bin/env python3
from bass import build

build({"name": "flaky", "steps": [
    {"name": "compile", "exec": "echo compiling"},
    {"name": "test", "exec": 'echo testing; test ! -f "$FAIL"'},
]})
"""
OK, FAILED = (26, 127, 55), (207, 34, 46)  # bass.css --ok and --failed
STATES = ["ok", "failed", "ok", "failed", "ok"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose pipeline `flaky` has built STATES, in that order, on one commit."""
    root = tmp_path_factory.mktemp("trends")
    fail = root / "fail"
    server = serve_scripts(root, {"flaky": FLAKY}, env=f"FAIL={fail}\n")
    try:
        for state in STATES:
            fail.unlink(missing_ok=True)
            if state == "failed":
                fail.write_text("fail")
            job = server.wait_for(server.webhook("flaky")["id"])
            assert job["state"] == state, server.output()
        yield server
    finally:
        server.stop()


def test_the_chart_shows_a_coloured_bar_a_build_and_a_bar_opens_its_build(server, browser):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(server.url + "/pipelines/flaky")
    chart = page.locator("figure.trend svg.trend")
    assert chart.is_visible()
    bars = chart.locator("rect.bar")
    assert bars.count() == len(STATES)
    fills = bars.evaluate_all("els => els.map(e => getComputedStyle(e).fill)")
    assert [rgb(f) for f in fills] == [OK if s == "ok" else FAILED for s in STATES]
    heights = bars.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert all(h >= 1 for h in heights), heights
    assert "60% ok (3 of 5 that ended)" in page.locator("figure.trend figcaption").inner_text()
    # the flaky step is marked in its header, and says why on hover
    test = page.locator('table.grid thead th[data-step="flaky/test"]')
    assert "flaky" in (test.get_attribute("class") or "")
    assert test.locator(".flaky-mark").is_visible()
    assert "passed and failed on commit" in (test.get_attribute("title") or "")
    compile_ = page.locator('table.grid thead th[data-step="flaky/compile"]')
    assert compile_.locator(".col-stats").inner_text().startswith("5/5 ok")
    # a bar is a link to its build, titled with its number and state
    second = chart.locator("a").nth(1)
    assert second.locator("title").text_content().startswith("#2 · failed")
    second.locator("rect.bar").click()
    page.wait_for_url("**/pipelines/flaky/2")
    assert page.locator("h1 .badge").inner_text() == "failed"
    page.screenshot(path=_shot("build-from-bar"), full_page=True)
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_pages_fit_and_the_home_page_has_a_strip(server, browser, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    size = "1280" if viewport is DESKTOP else "390"
    page.goto(server.url + "/pipelines/flaky")
    page.locator("svg.trend").wait_for()
    assert_no_horizontal_overflow(page, "the pipeline page")
    page.screenshot(path=_shot(f"pipeline-{size}"), full_page=True)
    page.goto(server.url + "/")
    squares = page.locator('tr[data-pipeline="flaky"] .strip a')
    assert squares.count() == len(STATES)
    assert squares.first.bounding_box()["width"] >= 8  # type: ignore[index]
    colours = squares.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert [rgb(c) for c in colours] == [OK if s == "ok" else FAILED for s in STATES]
    assert_no_horizontal_overflow(page, "the home page")
    page.screenshot(path=_shot(f"home-{size}"), full_page=True)
    squares.last.click()
    page.wait_for_url(f"**/pipelines/flaky/{len(STATES)}")
    context.close()


def test_the_badge_renders_as_an_image(server, browser):
    status, _ = http("GET", server.url + "/pipelines/flaky/badge.svg")
    if status == 404:
        pytest.skip("the badge's route is not registered in create_app yet")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    response = page.goto(server.url + "/pipelines/flaky/badge.svg")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert page.evaluate("document.documentElement.tagName") == "svg"
    assert page.locator("text").all_text_contents()[-1] == "passing"
    # as an <img>, the way a README shows it (on a page of the dashboard: its CSP lets
    # images of its own origin in)
    page.goto(server.url + "/")
    size = page.evaluate(
        """async (src) => {
             const img = new Image(); img.src = src; document.body.append(img);
             await img.decode();
             return [img.naturalWidth, img.naturalHeight];
           }""",
        server.url + "/pipelines/flaky/badge.svg",
    )
    assert size[1] == 20 and 60 < size[0] < 160, size
    unknown = page.request.get(server.url + "/pipelines/nope/badge.svg")
    assert unknown.status == 404 and b"unknown" in unknown.body()
    context.close()


def _shot(name: str) -> str:
    folder = Path("/tmp/shots")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"trends-{name}.png")
