"""What the browser tests share: launching Debian's Chromium, a `bass serve` with a local
worker that outlives one test, and reading what the log viewer shows.

Everything here measures the page as the reader sees it (bounding boxes, computed styles)
rather than trusting the classes bass.js sets."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium(*args: str) -> Iterator[Any]:
    """A headless Chromium (skips the test when Playwright is not installed); `args`
    are added to its command line."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", *args],
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()


def serve_scripts(
    root: Path, scripts: dict[str, str], *, files: dict[str, str] | None = None, env: str = ""
) -> Server:
    """A started `bass serve --local-worker` with a pipeline per build script: `NAME`
    runs `NAME.py` of one real git repository (holding `files` too). Stop it yourself."""
    repo = Repo(root / "repo")
    repo.commit({**{f"{name}.py": text for name, text in scripts.items()}, **(files or {})})
    pipelines = {
        name: {"repository": str(repo.path), "exec": [sys.executable, f"{name}.py"]}
        for name in scripts
    }
    return Server(
        root / "serve",
        pipelines,
        env_file=env,
        extra=["--local-worker", "--workspace-root", str(root / "ws")],
    ).start()


# The lines a log viewer shows: wholly inside its scroll box's client area (its scroll
# bars excluded) and, unless told otherwise, inside the browser's viewport. `text` is
# null for a line whose text has not arrived yet.
_SHOWN = """(scroller, inViewport) => {
  const box = scroller.getBoundingClientRect();
  let top = box.top + scroller.clientTop;
  let bottom = top + scroller.clientHeight;
  if (inViewport) { top = Math.max(top, 0); bottom = Math.min(bottom, innerHeight); }
  return [...scroller.querySelectorAll(".lv-line")].filter((line) => {
    const r = line.getBoundingClientRect();
    return r.height > 0 && r.top >= top - 1 && r.bottom <= bottom + 1;
  }).map((line) => ({
    n: Number(line.dataset.n),
    text: line.querySelector(".lv-x") ? line.querySelector(".lv-x").textContent : null,
    classes: line.className.split(" "),
  }));
}"""


def shown_lines(viewer: Any, *, in_viewport: bool = True) -> list[dict[str, Any]]:
    """What the log viewer `viewer` (a locator of a div.logview) shows, top to bottom:
    in its box and the window (`in_viewport`), or in its box, however the page scrolled."""
    return viewer.locator(".lv-scroll").evaluate(_SHOWN, in_viewport)


def shown_numbers(viewer: Any) -> list[int]:
    return [line["n"] for line in shown_lines(viewer)]


def rect(locator: Any) -> dict[str, float]:
    return locator.evaluate(
        "e => { const r = e.getBoundingClientRect(); "
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height}; }"
    )


def line_count(page: Any) -> int:
    """How many log lines the whole document holds."""
    return page.locator(".lv-line").count()


def overflow(page: Any) -> dict[str, float]:
    """The document's width against the viewport's: equal when nothing sticks out."""
    return page.evaluate(
        "() => ({scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth})"
    )


def assert_no_horizontal_overflow(page: Any, what: str) -> None:
    sizes = overflow(page)
    if sizes["scrollWidth"] > sizes["innerWidth"] + 1:
        widest = page.evaluate(
            """() => [...document.querySelectorAll("body *")]
                 .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
                 .slice(0, 5).map((e) => e.tagName.toLowerCase() + "." + e.className
                   + " right=" + Math.round(e.getBoundingClientRect().right))"""
        )
        raise AssertionError(f"{what} overflows the phone's width: {sizes}, widest: {widest}")


def rgb(css_colour: str) -> tuple[int, int, int]:
    """(r, g, b) of a computed colour such as `rgb(207, 34, 46)`."""
    inside = css_colour[css_colour.index("(") + 1 : css_colour.index(")")]
    r, g, b = (int(float(part)) for part in inside.replace(",", " ").split()[:3])
    return r, g, b
