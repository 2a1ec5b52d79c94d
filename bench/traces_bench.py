"""The Traces pages over a full store: server time and first render in Chromium.

    python -m bench.traces_bench [--runs 5] [--spans 10000] [--traces 10000] [--keep]

Run from the repository root with the test environment's Python (Playwright, Chromium).
A real ``bass serve --local-worker`` in a temp dir gets over OTLP/HTTP (JSON, 500 spans a
request) ``--traces`` traces of five services in the last hour (a root and 1–6 children,
5 % failed) and one trace of ``--spans`` spans (a 20-ary tree, no parent folded; every
10th span with an event, every 97th failed with an exception event); then a build of 50
steps runs on the local worker. Each page is measured ``--runs`` times (p50 and max):
on the server, a plain GET (http.client, a fresh connection, no compression, the body
read; a first untimed "cold" GET); in Chromium, a fresh context each run, from just
before ``page.goto`` to the first animation frame with the main content in the DOM with
a box (an init script watches: the pages' CSP forbids eval), and the rows in the DOM.

Correctness checks (exit code 1): answers 200; every span stored; filtered lists show
only their service / status; the big trace shows ROWS rows and a link to the next; the
panel shows the exception; the build ends ok, its steps on its page; no JavaScript error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, sync_playwright

from bass.ui.waterfall import ROWS
from bench.common import Failures, Serve, bass_serve_on, print_grid, proc_memory
from bench.otlp_client import Connection, post_request
from bench.ui_bench import CHROMIUM, LAUNCH_ARGS, api, git, machine

SERVICES = ("frontend", "checkout", "payments", "inventory", "auth")
ROUTES = ("/", "/cart", "/checkout", "/api/items/{id}", "/api/pay", "/login", "/search")
FANOUT = 20  # children per parent in the big trace
PIPELINE = "fifty"
WAIT_SECONDS = 60.0

JOB = r"""#!/usr/bin/env python3
from bass import build

build({"name": "fifty", "steps": [
    {"name": f"stage-{g}", "steps": [
        {"name": f"step-{g}-{i}", "exec": f"for n in 1 2 3; do echo step {g}.{i} line $n; done"}
        for i in range(10)]}
    for g in range(5)]})
"""

# An init script (the page's CSP does not apply): window.__tb.frame is when, in an
# animation frame, every selector first matches an element with a box.
RECORDER = r"""(() => {
  const b = (window.__tb = { frame: null });
  const shown = (s) => {
    const r = document.querySelector(s)?.getBoundingClientRect();
    return r && r.width > 0 && r.height > 0;
  };
  const frame = () => {
    if (SELECTORS.every(shown)) b.frame = performance.timeOrigin + performance.now();
    else requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();
"""
DCL = """() => { const nav = performance.getEntriesByType("navigation")[0];
    return nav.domContentLoadedEventEnd ? performance.timeOrigin + nav.domContentLoadedEventEnd
        : null; }"""


def attr(key: str, value: Any) -> dict:
    kind = "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: str(value)}}


def span(trace: str, sid: str, parent: str, name: str, start: int, end: int, **extra: Any) -> dict:
    s = {"traceId": trace, "spanId": sid, "parentSpanId": parent, "name": name,
         "kind": extra.get("kind", 1), "startTimeUnixNano": str(start),
         "endTimeUnixNano": str(end), "attributes": extra.get("attributes", []),
         "events": extra.get("events", [])}  # fmt: skip
    if extra.get("error"):
        s["status"] = {"code": 2, "message": extra["error"]}
    return s


def bodies_of(spans: list[tuple[str, dict]]) -> list[bytes]:
    """(service, span) pairs as OTLP/JSON bodies of 500 spans, a resource per service."""
    bodies = []
    for first in range(0, len(spans), 500):
        by_service: dict[str, list[dict]] = defaultdict(list)
        for service, one in spans[first : first + 500]:
            by_service[service].append(one)
        resources = [
            {"resource": {"attributes": [attr("service.name", name), attr("host.name", "b1")]},
             "scopeSpans": [{"scope": {"name": "bench.traces"}, "spans": group}]}
            for name, group in by_service.items()
        ]  # fmt: skip
        bodies.append(json.dumps({"resourceSpans": resources}, separators=(",", ":")).encode())
    return bodies


def hex_id(rng: random.Random, size: int) -> str:
    return (rng.getrandbits(size * 8) | 1).to_bytes(size, "big").hex()


def store_spans(rng: random.Random, traces: int, now_ns: int) -> list[tuple[str, dict]]:
    """`traces` small traces in the last hour: a root, 1–6 children, 5 % failed."""
    spans = []
    for _ in range(traces):
        trace, root, route = hex_id(rng, 16), hex_id(rng, 8), rng.choice(ROUTES)
        start = now_ns - rng.randrange(3_600 * 10**9)
        length = int(rng.lognormvariate(18, 1.2))  # ~65 ms median
        failed = "upstream answered 503" if rng.random() < 0.05 else None
        spans.append((rng.choice(SERVICES), span(trace, root, "", f"GET {route}", start,
                      start + length, kind=2, error=failed,
                      attributes=[attr("http.route", route)])))  # fmt: skip
        children = rng.randint(1, 6)
        part = length // (children + 1)
        for k in range(children):
            other, s = rng.choice(SERVICES), start + part * k
            spans.append((other, span(trace, hex_id(rng, 8), root, f"{other} call", s, s + part,
                                      kind=3, error=k == 0 and failed)))  # fmt: skip
    return spans


EXCEPTION = [
    attr("exception.type", "PaymentDeclined"),
    attr("exception.message", "card_expired: the card expired in 2024-11"),
    attr("exception.stacktrace", "Traceback (most recent call last):\n"
         '  File "payments/charge.py", line 88, in charge\n    raise PaymentDeclined(code)\n'
         "PaymentDeclined: card_expired"),
]  # fmt: skip


def big_trace(rng: random.Random, n: int, now_ns: int) -> tuple[str, str, list[tuple[str, dict]]]:
    """One trace of n spans (a FANOUT-ary tree, breadth first): its id, a span with an
    exception, its (service, span) pairs."""
    trace, ids = hex_id(rng, 16), [hex_id(rng, 8) for _ in range(n)]
    bounds, depth = [(now_ns - 120 * 10**9, now_ns - 60 * 10**9)], [0]
    spans, failing = [], ""
    for i in range(n):
        parent = ""
        if i:
            p, j = (i - 1) // FANOUT, (i - 1) % FANOUT
            slot = (bounds[p][1] - bounds[p][0]) // FANOUT
            s = bounds[p][0] + j * slot + rng.randrange(max(1, slot // 10))
            bounds.append((s, s + max(1_000, int(slot * rng.uniform(0.3, 0.85)))))
            depth.append(depth[p] + 1)
            parent = ids[p]
        service = SERVICES[min(depth[i], len(SERVICES) - 1)]
        events, error = [], None
        if i % 10 == 3:
            events.append({"timeUnixNano": str(bounds[i][0] + 1_000), "name": "cache.miss",
                           "attributes": [attr("cache.key", f"item:{i}")]})  # fmt: skip
        if i % 97 == 5:
            error = "card_expired"
            events.append({"timeUnixNano": str(bounds[i][1] - 1_000), "name": "exception",
                           "attributes": EXCEPTION})  # fmt: skip
            failing = failing or (ids[i] if depth[i] >= 2 else "")
        attributes = [attr("span.index", i), attr("db.system.name", "postgresql")]
        spans.append((service, span(trace, ids[i], parent, f"{service} op {i}", *bounds[i],
                      events=events, error=error, attributes=attributes)))  # fmt: skip
    return trace, failing or ids[min(5, n - 1)], spans


def send(serve: Serve, bodies: list[bytes], failures: Failures) -> None:
    port = int(serve.url.rsplit(":", 1)[1])
    conn = Connection(port)
    for body in bodies:
        request = post_request(port, "/v1/traces", "application/json", body)
        while (answer := conn.exchange(request))[0] == 503:
            time.sleep(float(answer[1].get(b"retry-after", b"1")))
        status, _, text = answer
        rejected = json.loads(text or b"{}").get("partialSuccess", {}).get("rejectedSpans")
        failures.check(status == 200 and not rejected, f"OTLP POST: {status} {text[:200]!r}")


def stored_spans(serve: Serve, trace: str) -> tuple[int, int]:
    """(spans of `trace`, spans in all) as stored."""
    conn = sqlite3.connect(f"file:{serve.db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT SUM(trace_id = ?), COUNT(*) FROM spans", (trace,)).fetchone()
    finally:
        conn.close()


def run_build(serve: Serve, failures: Failures) -> int:
    """Queue the pipeline, wait for its end; its number."""
    queued = api("POST", f"{serve.url}/webhook?pipeline={PIPELINE}")
    deadline = time.monotonic() + WAIT_SECONDS
    state = "queued"
    while state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        state = api("GET", f"{serve.url}/api/jobs/{queued['id']}")["state"]
    failures.check(state == "ok", f"the build ended {state}, not ok")
    return queued["number"]


@dataclass
class Target:
    name: str
    path: str
    ready: list[str]  # every selector must match for the main content to be shown
    rows: str  # what the DOM rows column counts
    check: str = ""  # JS function(arg) → error text or "" (run once, loaded)
    arg: Any = None
    server: list[float] = field(default_factory=list)
    cold: float = 0.0
    size: int = 0
    browser: list[float] = field(default_factory=list)
    dcl: list[float] = field(default_factory=list)
    dom_rows: set[int] = field(default_factory=set)


def server_get(url: str, path: str) -> tuple[float, int, bytes]:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=WAIT_SECONDS)
    try:
        started = time.perf_counter()
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
        return time.perf_counter() - started, answer.status, body
    finally:
        conn.close()


def measure_server(serve: Serve, target: Target, runs: int, failures: Failures) -> None:
    for run in range(runs + 1):  # the first one cold, not in the series
        seconds, status, body = server_get(serve.url, target.path)
        failures.check(status == 200, f"GET {target.path}: {status} {body[:200]!r}")
        if run:
            target.server.append(seconds)
        else:
            target.cold, target.size = seconds, len(body)


def measure_browser(
    browser: Browser, serve: Serve, target: Target, runs: int, failures: Failures
) -> None:
    errors: list[str] = []
    for run in range(runs):
        with ExitStack() as stack:
            context = browser.new_context()
            stack.callback(context.close)
            page = context.new_page()
            page.add_init_script(script=RECORDER.replace("SELECTORS", json.dumps(target.ready)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            started = time.time() * 1000
            page.goto(serve.url + target.path, wait_until="load")  # no polling while it loads
            shown: float | None = None
            deadline = time.monotonic() + WAIT_SECONDS
            while shown is None and time.monotonic() < deadline:
                shown = page.evaluate("() => window.__tb && window.__tb.frame")
                time.sleep(0.005)
            if shown is None:
                failures.check(False, f"{target.name}: not shown in {WAIT_SECONDS} s")
                continue
            target.browser.append((shown - started) / 1000)
            dcl = page.evaluate(DCL)
            if dcl:
                target.dcl.append((float(dcl) - started) / 1000)
            target.dom_rows.add(page.locator(target.rows).count())
            if run == 0 and target.check:
                problem = page.evaluate(target.check, target.arg)
                failures.check(not problem, f"{target.name}: {problem}")
    for error in errors[:5]:
        failures.check(False, f"{target.name}: JavaScript error: {error}")


def targets(trace: str, spans: int, failing: str, build: int, service: str) -> list[Target]:
    rows, more = min(spans, ROWS), "true" if spans > ROWS else "false"
    waterfall = f"""() => {{ const n = document.querySelectorAll(".tl-row[data-span]").length;
        if (n !== {rows}) return `${{n}} span rows, not {rows}`;
        const next = !!document.querySelector(".tl a[href*='offset={ROWS}']");
        return next === {more} ? "" : "a link to the next rows: " + next; }}"""
    listed = """([column, want]) => {
        const cells = [...document.querySelectorAll("table.traces tbody tr")]
            .map((tr) => column === "status" ? tr.dataset.status : tr.cells[1].textContent);
        const bad = cells.filter((c) => c.trim() !== want);
        if (cells.length === 0) return "no rows";
        return bad.length ? `${bad.length} of ${cells.length} rows: ${bad[0]}` : ""; }"""
    panel = """() => document.querySelector(".span-panel .span-event.exception .stacktrace")
        ? "" : "the panel shows no exception stack trace" """
    build_path = f"/pipelines/{PIPELINE}/{build}"
    steps = """() => { const n = document.querySelectorAll("li.step").length;
        return n >= 55 ? "" : `${n} li.step, not 55 (5 groups, 50 steps)`; }"""
    tr, tl = "table.traces tbody tr", ".tl-row[data-span]"
    # fmt: off
    return [
        Target("/traces", "/traces", [tr], tr),
        Target(f"/traces?service={service}", f"/traces?service={quote(service)}", [tr], tr,
               listed, ["service", service]),
        Target("/traces?status=error", "/traces?status=error", [tr], tr, listed,
               ["status", "error"]),
        Target("/services", "/services", ["table.services tbody tr"], "table.services tbody tr"),
        Target("/traces/ID (big trace)", f"/traces/{trace}", [tl], ".tl-row", waterfall),
        Target("/traces/ID?span=S (panel)", f"/traces/{trace}?span={failing}",
               [tl, ".span-panel"], ".tl-row", panel),
        Target("/pipelines/N/B (build)", build_path, ["li.step"], "li.step", steps),
        Target("/pipelines/N/B/timeline", f"{build_path}/timeline", [tl], ".tl-row"),
    ]
    # fmt: on


def ms(v: list[float]) -> str:
    return f"{statistics.median(v) * 1000:,.1f} / {max(v) * 1000:,.1f} ms" if v else "—"


def report(found: list[Target], runs: int, notes: list[str]) -> None:
    header = ("page", "server p50 / max", "cold GET", "bytes", "browser first render p50 / max",
              "DOMContentLoaded p50", "DOM rows")  # fmt: skip
    rows = [
        [t.name, ms(t.server), f"{t.cold * 1000:,.1f} ms", f"{t.size:,}", ms(t.browser),
         f"{statistics.median(t.dcl) * 1000:,.0f} ms" if t.dcl else "—",
         ", ".join(f"{n:,}" for n in sorted(t.dom_rows)) or "—"]
        for t in found
    ]  # fmt: skip
    print_grid(f"the Traces pages ({runs} runs each; p50 = median)", header, rows, notes)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.traces_bench",
        description="The Traces, Services, trace and build pages over a store of many "
        "traces and one big trace: server time and first render in Chromium.",
    )
    p.add_argument("--runs", type=int, default=5, help="measurements of each (default 5)")
    p.add_argument("--spans", type=int, default=10_000, help="spans of the big trace")
    p.add_argument("--traces", type=int, default=10_000, help="small traces in the store")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (its path printed)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.spans < 10 or args.traces < 1:
        p.error("--runs must be at least 1, --spans 10, --traces 1")
    return args


def prepare(serve: Serve, args: argparse.Namespace, failures: Failures) -> list[Target]:
    """Fill the store, run the build; the pages to measure (and the notes, in one)."""
    print("  preparing the store, the big trace and the build", file=sys.stderr, flush=True)
    rng, now_ns, t0 = random.Random(12), time.time_ns(), time.monotonic()
    pairs = store_spans(rng, args.traces, now_ns)
    trace, failing, big_pairs = big_trace(rng, args.spans, now_ns)
    small, bodies, big = len(pairs), bodies_of(pairs), bodies_of(big_pairs)
    took = [time.monotonic() - t0]
    for step in (lambda: send(serve, bodies, failures), lambda: send(serve, big, failures)):
        t0 = time.monotonic()
        step()
        took.append(time.monotonic() - t0)
    t0 = time.monotonic()
    build = run_build(serve, failures)
    took.append(time.monotonic() - t0)
    held, total = stored_spans(serve, trace)
    failures.check(held == args.spans, f"the big trace: {held:,} spans stored")
    failures.check(total >= small + args.spans, f"{total:,} spans stored in all")
    args.notes = [
        f"store: {args.traces:,} traces ({small:,} spans) of {len(SERVICES)} services in the"
        f" last hour, sent in {took[1]:.1f} s; the big trace: {args.spans:,} spans ({FANOUT}-ary"
        f" tree), sent in {took[2]:.1f} s (generating both: {took[0]:.1f} s); the build"
        f" ({PIPELINE} #{build}, 50 steps) queued → ended in {took[3]:.1f} s; {total:,} spans"
        " stored.",
        "server: http.client GET, a fresh connection, the body read in full; cold = the first"
        " GET of the page (not in p50 / max).",
        "browser: a fresh context each run; from just before page.goto to the first animation"
        " frame with the main content in the DOM with a box. DOM rows: counted at load.",
        f"the waterfall shows {ROWS:,} rows a page (+1: its time axis); lists count their table"
        " rows; the build page its li.step.",
    ]
    return targets(trace, args.spans, failing, build, "payments")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started, failures = time.monotonic(), Failures()
    tmp = Path(tempfile.mkdtemp(prefix="bass-traces-bench-"))
    try:
        repo = tmp / "repo"
        repo.mkdir()
        git(repo, "init", "--quiet")
        (repo / "job.py").write_text(JOB)
        git(repo, "add", "--all")
        git(repo, "commit", "--quiet", "-m", "fifty steps")
        job = {"repository": str(repo), "ref": "main", "exec": [sys.executable, "job.py"]}
        extra = ["--local-worker", "--workspace-root", str(tmp / "ws"), "--grpc-port", "0"]
        with (
            bass_serve_on(tmp / "serve", pipelines={PIPELINE: job}, extra_args=extra) as serve,
            sync_playwright() as playwright,
        ):  # fmt: skip
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                print("## machine\n")
                print("\n".join(f"- {line}" for line in machine(browser)), end="\n\n", flush=True)
                found = prepare(serve, args, failures)
                print("  measuring: server, then browser", file=sys.stderr, flush=True)
                for target in found:
                    measure_server(serve, target, args.runs, failures)
                for target in found:
                    measure_browser(browser, serve, target, args.runs, failures)
            finally:
                browser.close()
            memory = proc_memory(serve.proc.pid)
            args.notes.append(
                f"bass serve: peak RSS {memory.get('VmHWM', 0) / 2**20:.0f} MiB, SQLite"
                f" {os.path.getsize(serve.db) / 2**20:.0f} MiB; load average at the end:"
                f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}."
            )
        report(found, args.runs, args.notes)
    except Exception:
        log = tmp / "serve" / "serve.log"
        if log.exists():
            print(f"bass serve's log ends:\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return failures.report(started)


if __name__ == "__main__":
    sys.exit(main())
