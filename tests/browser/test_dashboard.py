"""The dashboard in real headless Chromium against a real `bass serve --local-worker`."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

GATED = r"""#!/usr/bin/env python3
from bass import build

build({"name": "gated", "steps": [
    {"name": "prepare", "exec": ["echo", "prepared <i>not italic</i>"]},
    {"name": "wait",
     "exec": "echo waiting; while [ ! -f \"$GATE\" ]; do sleep 0.1; done; echo released"},
    {"name": "finish", "steps": [{"name": "done", "exec": ["echo", "all done"]}]},
]})
"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        yield b
        b.close()


def test_build_started_from_the_dashboard_updates_live(repo, serve, tmp_path, browser):
    gate = tmp_path / "gate"
    repo.commit({"job.py": GATED})
    server = serve(
        {"gated": {"repository": str(repo.path), "ref": "main",
                   "exec": [sys.executable, "job.py"], "description": "waits for a file"}},
        env_file=f"GATE={gate}\n",
        extra=["--local-worker", "--workspace-root", str(tmp_path / "ws")],
    )  # fmt: skip
    page = browser.new_page()
    page.goto(server.url + "/")
    row = page.locator('tr.pipeline[data-pipeline="gated"]')
    assert "never built" in row.inner_text()
    row.get_by_role("button", name="Build now").click()
    page.wait_for_url("**/pipelines/gated/1")

    # running: the build, the waiting step, and its first log line, without a reload
    page.evaluate("window.__noReload = true")
    page.locator('li.step[data-step="wait"][data-status="running"]').wait_for(timeout=30000)
    assert page.locator("h1 .badge").inner_text() == "running"
    page.locator('pre.log:has-text("waiting")').wait_for(timeout=10000)

    gate.write_text("go")
    page.locator("h1 .s-ok").wait_for(timeout=30000)
    assert page.evaluate("window.__noReload") is True, "the page must update in place"
    statuses = dict(
        page.locator("li.step").evaluate_all(
            "els => els.map(e => [e.dataset.step, e.dataset.status])"
        )
    )
    assert statuses == {
        "checkout": "ok",
        "gated": "ok",
        "prepare": "ok",
        "wait": "ok",
        "finish": "ok",
        "done": "ok",
    }
    prepare_log = page.locator('li.step[data-step="prepare"] pre.log')
    prepare_log.evaluate("el => el.closest('details').open = true")
    assert "prepared <i>not italic</i>" in prepare_log.inner_text()
    assert page.locator("li.step i").count() == 0, "log output must be escaped"

    page.goto(server.url + "/pipelines/gated")
    cells = page.locator("tr[data-build='1'] td.cell")
    assert cells.count() == 4  # checkout, then gated/prepare, gated/wait, gated/finish/done
    steps = cells.evaluate_all("els => els.map(e => [e.dataset.step, e.dataset.status])")
    assert ["gated/wait", "ok"] in steps and ["gated/finish/done", "ok"] in steps
    header = page.locator("table.grid thead").inner_text()
    assert "finish" in header and "done" in header
    page.close()
