"""/traces, /services, /traces/ID : the traces of every service (builds included),
filtered and paged; each service's rates and durations; one trace's waterfall and logs."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bass import ansi, states
from bass.store import builds, logs, telemetry, traces
from bass.ui import pruned_text, render, steps, waterfall

RANGES = {"15m": 900, "1h": 3_600, "24h": 86_400, "7d": 604_800}  # seconds
STATUSES = (states.OK, states.ERROR, states.RUNNING)  # a trace's, as bass.store.traces says
UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
         "h": 3_600 * 10**9}  # fmt: skip
DURATION = re.compile(r"\s*(\d{1,9}(?:\.\d{1,9})?)\s*(ns|us|µs|ms|s|m|h)\s*")
ATTR_KEY = re.compile(r"[A-Za-z0-9_.:/@-]{1,128}")
TRACE_ID = re.compile(r"[0-9a-f]{32}")
CURSOR = re.compile(r"(\d{1,19})-([0-9a-f]{0,32})")
MAX_SPANS = 20_000  # spans of a trace read at most (the waterfall pages through them)
LOG_PAGE = 200
SPAN_LINES = 200  # a span's first log lines its details panel shows
BUILD_PAGE = "build"  # where a build's trace leads: its page ("timeline": its waterfall)


def duration_ns(text: str) -> int | None:
    """`100ms`, `2s`, `1.5m`… as nanoseconds; None for anything else."""
    found = DURATION.fullmatch(text)
    if found is None:
        return None
    return min(round(float(found.group(1)) * UNITS[found.group(2)]), traces.MAX_NS)


def read_filters(query: Any, now_ns: int) -> tuple[traces.Filters, dict[str, str], list[str]]:
    """The filters of the Traces page's form: (filters, the values shown back, what was
    ignored and why). A value that is no valid filter is ignored, never an error."""
    raw = {k: query.get(k, "")[:300].strip() for k in ("service", "status", "min", "max",
                                                         "range", "attr")}  # fmt: skip
    problems = []
    lengths: dict[str, int | None] = {}
    for name in ("min", "max"):
        lengths[name] = duration_ns(raw[name]) if raw[name] else None
        if raw[name] and lengths[name] is None:
            problems.append(f"{name} duration {raw[name]!r} is no duration (100ms, 2s, 5m)")
    if raw["status"] not in ("", *STATUSES):
        problems.append(f"status {raw['status']!r} is none of {', '.join(STATUSES)}")
        raw["status"] = ""
    if raw["range"] not in ("", *RANGES):
        problems.append(f"time range {raw['range']!r} is none of {', '.join(RANGES)}")
        raw["range"] = ""
    attr = None
    if raw["attr"]:
        key, equals, value = raw["attr"].partition("=")
        if equals and ATTR_KEY.fullmatch(key.strip()):
            attr = (key.strip(), value.strip())
        else:
            problems.append(f"attribute {raw['attr']!r} is not key=value (http.route=/api)")
    since = now_ns - RANGES[raw["range"]] * 10**9 if raw["range"] else 0
    found = traces.Filters(service=raw["service"], status=raw["status"], min_ns=lengths["min"],
                           max_ns=lengths["max"], since_ns=max(since, 0), attr=attr)  # fmt: skip
    return found, raw, problems


def read_cursor(text: str | None) -> traces.Cursor | None:
    found = CURSOR.fullmatch(text or "")
    if found is None or int(found.group(1)) > traces.MAX_NS:
        return None
    return int(found.group(1)), found.group(2)


async def trace_list(request: Request) -> Response:
    now_ns = time.time_ns()
    filters, raw, problems = read_filters(request.query_params, now_ns)
    before = read_cursor(request.query_params.get("before"))
    if request.query_params.get("before") and before is None:
        problems.append("the page asked for is no page; the newest traces are shown")

    def load(conn):
        page = traces.recent(conn, filters, now_ns=now_ns, before=before)
        return page, traces.services(conn)

    page, services = await request.state.db.aread(load)
    shown = {k: v for k, v in raw.items() if v}
    older = None
    if page.older:
        older = "?" + urlencode({**shown, "before": f"{page.older[0]}-{page.older[1]}"})
    context = {
        "now_ns": now_ns,
        "page": page,
        "older": older,
        "filters": raw,
        "filtered": bool(shown),
        "services": services,
        "problems": problems,
        "ranges": RANGES,
        "statuses": STATUSES,
        "first": before is None,
    }
    return render(request, "traces.html", "_traces.html", context)


async def service_list(request: Request) -> Response:
    """Each service's traces of the last hour and day: how many (a minute), the share
    that failed, the 50th and 95th percentile of the durations of those that ended."""
    now_ns = time.time_ns()
    hour_ago = now_ns - 3_600 * 10**9
    by_service, capped = await request.state.db.aread(
        traces.recent_roots, since_ns=now_ns - 86_400 * 10**9
    )
    stats = [{"service": name, "last_ns": roots[0][1] if roots else None,
              "hour": _summary([r for r in roots if r[1] >= hour_ago], 60),
              "day": _summary(roots, 1_440)}
             for name, roots in sorted(by_service.items())]  # fmt: skip
    context = {"stats": stats, "capped": capped, "now_ns": now_ns}
    return render(request, "services.html", "services.html", context)


def _summary(roots: list[tuple], minutes: int) -> dict[str, Any]:
    lengths = sorted(end - start for _, start, end, _ in roots if end)
    errors = sum(root[3] for root in roots)
    p50, p95 = (lengths[max(0, -(-len(lengths) * p // 100) - 1)] if lengths else None
                for p in (50, 95))  # the nearest rank  # fmt: skip
    rate = len(roots) / minutes
    return {"traces": len(roots), "per_minute": rate, "errors": errors,
            "rate_text": f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}",
            "error_rate": errors / len(roots) if roots else None, "p50": p50, "p95": p95,
            "p50_text": _length(p50), "p95_text": _length(p95)}  # fmt: skip


def _length(ns: int | None) -> str:
    return steps.duration(1, 1 + ns, 1) if ns is not None else "—"


async def trace(request: Request) -> Response:
    """/traces/ID: a build's trace leads to its build; any other trace is shown here,
    its spans as a waterfall (bass.ui.waterfall: ?span=ID opens one's details), then
    its log lines (LOG_PAGE at a time, ?after=)."""
    trace_id = request.path_params["trace_id"].lower()
    if not TRACE_ID.fullmatch(trace_id):
        raise HTTPException(404, "not a trace id: a trace id is 32 hexadecimal digits")
    after = request.query_params.get("after", "")
    after_id = int(after) if after.isascii() and after.isdigit() and len(after) < 19 else 0
    chosen = request.query_params.get("span", "")[:64]

    def load(conn):
        build = builds.by_trace(conn, trace_id)
        if build is not None:
            return build, [], [], None, []
        spans = traces.spans(conn, trace_id, MAX_SPANS)
        lines = logs.logs_of(conn, trace_id, after_id=after_id, limit=LOG_PAGE + 1)
        span = telemetry.span(conn, trace_id, chosen) if chosen else None
        span_lines = logs.log_lines(conn, trace_id, chosen, 1, SPAN_LINES) if span else []
        return None, spans, lines, span, span_lines

    build, spans, lines, span, span_lines = await request.state.db.aread(load)
    if build is not None:
        url = request.url_for(BUILD_PAGE, name=build["pipeline"], number=build["number"])
        return RedirectResponse(str(url), status_code=302)
    if not spans and not lines and not after_id:
        gone = await request.state.db.aread(lambda conn: builds.pruned(conn, trace_id=trace_id))
        if gone is not None:
            raise HTTPException(404, pruned_text(gone))
        raise HTTPException(404, f"no span or log line of trace {trace_id} has arrived (yet)")
    now_ns = time.time_ns()
    names = {s["span_id"]: s["name"] for s in spans}
    for line in lines:
        line["span_name"] = names.get(line["span_id"], line["span_id"][:8])
        ms = line["time_ns"] // 1_000_000
        line["clock"] = time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"
    root = next((s for s in spans if not s["parent_span_id"]), spans[0] if spans else None)
    statuses = {traces.status_of(s) for s in spans}
    status = traces.status_of(root) if root and not root["parent_span_id"] else None
    if root and status is None:  # no root span: error if one failed, running if one runs
        status = next(s for s in (states.ERROR, states.RUNNING, states.OK) if s in statuses)
    shown = waterfall.waterfall(spans, now_ns, waterfall.view_of(request.query_params))
    context = {
        "now_ns": now_ns,
        "trace_id": trace_id,
        "root": root,
        "status": status,
        "spans": len(spans),
        "errors": sum(1 for s in spans if waterfall.is_error(s)),
        "timeline": shown,
        "selected": waterfall.details(span, shown.get("first_ns", 0), now_ns) if span else None,
        "span_lines": [(r["line"], ansi.to_html(r["body"])) for r in span_lines],
        "lines": lines[:LOG_PAGE],
        "after": after_id,
        "next_after": lines[LOG_PAGE - 1]["id"] if len(lines) > LOG_PAGE else None,
        "active": any(not s["end_ns"] for s in spans),
    }
    return render(request, "trace.html", "_trace.html", context)


routes = [
    Route("/traces", trace_list, methods=["GET"], name="trace_list"),
    Route("/services", service_list, methods=["GET"], name="service_list"),
    Route("/traces/{trace_id}", trace, methods=["GET"], name="trace"),
]
