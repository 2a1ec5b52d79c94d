"""The dashboard in real headless Chromium against a real `bass serve --local-worker`."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.browser


GATED = r"""#!/usr/bin/env python3
from bass import build

build({"name": "gated", "steps": [
    {"name": "prepare", "exec": ["echo", "prepared <i>not italic</i>"]},
    {"name": "wait",
     "exec": "echo waiting; while [ ! -f \"$GATE\" ]; do sleep 0.1; done; echo released"},
    {"name": "finish", "steps": [{"name": "done", "exec": ["echo", "all done"]}]},
]})
"""


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
    page.locator('li.step[data-step="wait"] .lv-line:has-text("waiting")').wait_for(timeout=10000)
    # a step the reader opens stays open across the live refreshes of the page
    prepare = page.locator('li.step[data-step="prepare"] > details')
    assert prepare.get_attribute("open") is None
    prepare.locator("summary").click()
    page.evaluate("""document.addEventListener('bass:refreshed',
                     () => document.body.dataset.refreshed = '1')""")
    page.locator("body[data-refreshed]").wait_for(timeout=10000)  # refreshed
    assert prepare.get_attribute("open") is not None
    assert "prepared <i>not italic</i>" in prepare.locator(".lv-window").inner_text()

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
    prepare_log = page.locator('li.step[data-step="prepare"] .lv-window')
    assert "prepared <i>not italic</i>" in prepare_log.inner_text()
    assert page.locator("li.step i").count() == 0, "log output must be escaped"

    page.goto(server.url + "/pipelines/gated")
    cells = page.locator("tr[data-build='1'] td.cell")
    assert cells.count() == 4  # checkout, then gated/prepare, gated/wait, gated/finish/done
    steps = cells.evaluate_all("els => els.map(e => [e.dataset.step, e.dataset.status])")
    assert ["gated/wait", "ok"] in steps and ["gated/finish/done", "ok"] in steps
    header = page.locator("table.grid thead").inner_text()
    assert "finish" in header and "done" in header

    # a cell leads to its step, opened, on the build's page
    page.locator("tr[data-build='1'] td.cell[data-step='gated/wait'] a").click()
    page.wait_for_url("**/pipelines/gated/1#step-*")
    wait = page.locator('li.step[data-step="wait"]')
    assert "target" in (wait.get_attribute("class") or "")
    assert wait.locator(":scope > details").get_attribute("open") is not None
    wait.locator(".lv-line", has_text="released").wait_for(timeout=10000)
    page.close()


VERBOSE = r"""#!/usr/bin/env python3
from bass import build

def chatty(name, lines):
    line = f'echo "{name} line $i <b>x</b>"'
    return {"name": name, "exec": f"for i in $(seq 1 {lines}); do {line}; done"}

build({"name": "verbose", "steps": [
    *[chatty(f"s{n}", 250) for n in range(1, 8)],
    {"name": "broken", "exec": "echo 'it broke <b>here</b>'; exit 3"},
]})
"""


def test_a_failed_build_opens_at_its_failure_and_other_steps_load_when_opened(
    repo, serve, tmp_path, browser
):
    repo.commit({"job.py": VERBOSE})
    server = serve(
        {"verbose": {"repository": str(repo.path), "exec": [sys.executable, "job.py"]}},
        extra=["--local-worker", "--workspace-root", str(tmp_path / "ws")],
    )  # fmt: skip
    job = server.wait_for(server.webhook("verbose")["id"])
    assert job["state"] == "failed"

    page = browser.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/lines?" in r.url else None)
    page.goto(server.url + "/pipelines/verbose/1")
    # The failing step is open, named in the banner, whatever its place in the build.
    broken = page.locator('li.step[data-step="broken"]')
    assert broken.locator("details").get_attribute("open") is not None
    banner = page.locator(".failure")
    assert "verbose / broken" in banner.inner_text() and "exit code 3" in banner.inner_text()
    broken.locator(".lv-line", has_text="it broke <b>here</b>").wait_for(timeout=10000)
    assert page.locator(".lv-window b").count() == 0, "log output must be escaped"
    # the steps that passed are closed, and none of their lines was fetched
    spans = {name: page.locator(f'li.step[data-step="{name}"]').get_attribute("id")[5:]
             for name in ("s1", "s6", "broken")}  # fmt: skip
    assert not any(spans["s6"] in url or spans["s1"] in url for url in asked)
    step = page.locator('li.step[data-step="s6"]')
    assert step.locator(".lv-line").count() == 0
    assert "250 lines" in (step.text_content() or "")
    step.locator("summary").first.click()
    step.locator(".lv-line[data-n='250']", has_text="s6 line 250 <b>x</b>").wait_for(timeout=10000)
    assert "250 lines" in step.locator(".lv-count").inner_text()
    # its first line is one scroll away
    step.locator(".lv-scroll").evaluate("e => e.scrollTop = 0")
    step.locator(".lv-line[data-n='1']", has_text="s6 line 1 <b>x</b>").wait_for(timeout=10000)
    assert page.locator(".lv-window b").count() == 0, "log output must be escaped"
    page.close()


TIMED = r"""#!/usr/bin/env python3
from bass import build

# p1 and p2 each wait until the other has started: they run side by side on any machine.
both = ('touch "$MARK.$BASS_STEP_NAME"; '
        'until [ -f "$MARK.p1" ] && [ -f "$MARK.p2" ]; do sleep 0.05; done; sleep 0.3')
build({"name": "timed", "steps": [
    {"name": "short", "exec": "sleep 0.2"},
    {"name": "long", "exec": "sleep 1.2"},
    {"name": "par", "order": "unordered", "steps": [
        {"name": "p1", "exec": both},
        {"name": "p2", "exec": both},
    ]},
]})
"""


def test_the_timeline_shows_each_span_where_and_as_long_as_it_ran(repo, serve, tmp_path, browser):
    """Each bar's left edge and width are its span's start and duration on the build's
    time axis: checked against the span times the API gives, not against the sleeps (a
    busy machine stretches those)."""
    repo.commit({"job.py": TIMED})
    server = serve(
        {"timed": {"repository": str(repo.path), "exec": [sys.executable, "job.py"]}},
        env_file=f"MARK={tmp_path / 'mark'}\n",
        extra=["--local-worker", "--workspace-root", str(tmp_path / "ws")],
    )  # fmt: skip
    assert server.wait_for(server.webhook("timed")["id"])["state"] == "ok"

    page = browser.new_page()
    page.goto(server.url + "/pipelines/timed/1")
    page.get_by_role("link", name="timeline").click()
    page.wait_for_url("**/pipelines/timed/1/timeline")
    rows = page.locator(".tl-row[data-step]")
    names = rows.evaluate_all("els => els.map(e => e.dataset.step)")
    # depth first, siblings in start order; p1 and p2 start together, in either order
    assert names[-5:-2] == ["short", "long", "par"] and "checkout" in names
    assert sorted(names[-2:]) == ["p1", "p2"]
    assert set(rows.evaluate_all("els => els.map(e => e.dataset.status)")) == {"ok"}

    def box(name: str) -> dict:
        bar = page.locator(f'.tl-row[data-step="{name}"] .tl-bar')
        return bar.evaluate("e => { const r = e.getBoundingClientRect(); "
                            "return {left: r.left, right: r.right, width: r.width}; }")  # fmt: skip

    spans = {}

    def collect(nodes: list) -> None:
        for node in nodes:
            spans[node["name"]] = node
            collect(node["children"])

    collect(server.build("timed", 1)["spans"])
    first = min(s["start_ns"] for s in spans.values())
    last = max(s["end_ns"] for s in spans.values())
    axis = page.locator('.tl-row[data-step="short"] .tl-track').evaluate(
        "e => { const r = e.getBoundingClientRect(); return {left: r.left, width: r.width}; }"
    )
    px_per_ns = axis["width"] / (last - first)
    for name in ("short", "long", "par", "p1", "p2"):
        bar, span = box(name), spans[name]
        expected_left = axis["left"] + (span["start_ns"] - first) * px_per_ns
        expected_width = (span["end_ns"] - span["start_ns"]) * px_per_ns
        assert abs(bar["left"] - expected_left) <= 2, (name, bar, expected_left)
        assert abs(bar["width"] - expected_width) <= 2, (name, bar, expected_width)

    short, long_, p1, p2, par = (box(n) for n in ("short", "long", "p1", "p2", "par"))
    assert long_["width"] > short["width"]  # 1.2 s against 0.2 s, whatever the overhead
    assert long_["left"] >= short["right"] - 1  # one after the other
    assert par["left"] >= long_["right"] - 1
    assert p1["left"] < p2["right"] and p2["left"] < p1["right"]  # side by side in time
    assert p1["left"] >= par["left"] - 1 and p2["right"] <= par["right"] + 1
    assert page.locator(".tl-axis .tl-tick").count() == 5
    page.close()


def test_a_group_of_columns_folds_into_one_and_stays_folded(repo, serve, tmp_path, browser):
    """The grid's ▾ on a group's header folds its steps into one column showing each
    build's worst status there; the fold survives the live refresh and a reload, and
    unfolds again."""
    repo.commit({"job.py": TIMED})
    server = serve(
        {"timed": {"repository": str(repo.path), "exec": [sys.executable, "job.py"]}},
        env_file=f"MARK={tmp_path / 'mark'}\n",
        extra=["--local-worker", "--workspace-root", str(tmp_path / "ws")],
    )  # fmt: skip
    assert server.wait_for(server.webhook("timed")["id"])["state"] == "ok"
    page = browser.new_page()
    page.goto(server.url + "/pipelines/timed")
    row = page.locator("tr[data-build='1']")

    def shown() -> list[str]:
        return row.locator("td.cell:visible").evaluate_all(
            "els => els.map((e) => (e.classList.contains('fold-sum') ? 'folded ' : '')"
            " + (e.dataset.path || e.dataset.step))"
        )

    assert shown() == ["checkout", "timed/short", "timed/long", "timed/par/p1", "timed/par/p2"]
    page.locator('th[data-group="timed/par"] button.fold').click()
    assert shown() == ["checkout", "timed/short", "timed/long", "folded timed/par"]
    assert row.locator("td.fold-sum a").inner_text() == "ok"
    assert page.locator('th[data-path="timed/par/p1"]').is_hidden()
    page.evaluate("""document.addEventListener('bass:refreshed',
                     () => document.body.dataset.refreshed = '1')""")
    page.locator("body[data-refreshed]").wait_for(timeout=15000)  # a live refresh
    assert shown() == ["checkout", "timed/short", "timed/long", "folded timed/par"]
    page.reload()
    assert shown() == ["checkout", "timed/short", "timed/long", "folded timed/par"]
    page.locator('th[data-group="timed/par"] button.fold').click()
    assert shown() == ["checkout", "timed/short", "timed/long", "timed/par/p1", "timed/par/p2"]
    page.close()
