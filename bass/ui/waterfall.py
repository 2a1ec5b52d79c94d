"""A trace as a waterfall: its spans depth first, each a bar placed in the trace's time,
the critical path and errors marked, crowded parents folded, a window of rows at a time
(a trace of 10,000 spans renders as fast as one of 100), zoomed on a time range; and one
span's details as the panel beside it shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bass import ansi, states
from bass.ui.steps import duration, span_tree

ROWS = 500  # rows a page shows; the next ones are a link away
CHILDREN = 50  # children a parent shows before "N more"
DEPTH = 12  # levels shown before a parent's children fold behind "N more"
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class View:
    """What of a waterfall the reader asked for (query parameters)."""

    offset: int = 0  # the first row shown
    start_ms: float | None = None  # zoom: from and to, in ms since the trace began
    end_ms: float | None = None
    expanded: frozenset[str] = frozenset()  # parents shown with all their children


def is_error(span: dict[str, Any]) -> bool:
    return span.get("status_code") == 2 or span.get("bass_status") in states.FAILURES


def critical_path(roots: list[dict[str, Any]]) -> set[str]:
    """Span ids on the critical path: from each root, the child that ended last, then
    its child that ended last, and so on (what the trace's end waited for)."""
    found: set[str] = set()
    for node in roots:
        while True:
            found.add(node["span_id"])
            if not node["children"]:
                break
            node = max(node["children"], key=lambda c: (c["end_ns"] or 2**63, c["start_ns"]))
    return found


def waterfall(spans: list[dict[str, Any]], now_ns: int, view: View = View()) -> dict[str, Any]:
    """Rows (span, depth, left and width in percent of the shown time, duration,
    critical, error; or a `more` row standing for a parent's folded children), ticks,
    the total duration, the number of rows in all and the offsets of the pages."""
    timed = [s for s in spans if s["start_ns"]]
    if not timed:
        return {"rows": [], "ticks": [], "total": "", "count": 0, "next": None, "zoomed": False}
    first = min(s["start_ns"] for s in timed)
    last = max(max(s["end_ns"] or now_ns, s["start_ns"]) for s in timed)
    lo = first + int(view.start_ms * 1e6) if view.start_ms is not None else first
    hi = first + int(view.end_ms * 1e6) if view.end_ms is not None else last
    lo, hi = max(min(lo, last), first), min(max(hi, lo + 1), last)
    window = max(hi - lo, 1)
    roots = span_tree(timed)
    critical = critical_path(roots)
    page: list[dict[str, Any]] = []
    count = 0
    wanted = range(view.offset, view.offset + ROWS)

    def row(node: dict[str, Any], depth: int) -> dict[str, Any]:
        start, end = node["start_ns"], max(node["end_ns"] or now_ns, node["start_ns"])
        left = (max(start, lo) - lo) * 100 / window
        right = (min(end, hi) - lo) * 100 / window
        return {
            "span": node,
            "depth": depth,
            "left": round(min(max(left, 0), 100), 3),
            "width": round(max(right - left, 0.2), 3) if end >= lo and start <= hi else 0,
            "duration": duration(start, node["end_ns"], now_ns),
            "critical": node["span_id"] in critical,
            "error": is_error(node),
        }

    def walk(nodes: list[dict[str, Any]], depth: int, parent: str) -> None:
        # every row is counted, only the page's are made (10,000 spans: one window)
        nonlocal count
        limit = CHILDREN if depth <= DEPTH else 0  # past DEPTH levels, folded
        shown = nodes if parent in view.expanded else nodes[:limit]
        for node in shown:
            if count in wanted:
                page.append(row(node, depth))
            count += 1
            walk(node["children"], depth + 1, node["span_id"])
        if len(shown) < len(nodes):
            if count in wanted:
                page.append({"more": len(nodes) - len(shown), "parent": parent, "depth": depth})
            count += 1

    walk(roots, 0, "")
    start = duration(first, lo, lo) if lo > first else "0"  # where a zoomed window starts
    ticks = [(p, duration(lo, lo + window * p // 100, now_ns) if p else start)
             for p in (0, 25, 50, 75, 100)]  # fmt: skip
    return {
        "rows": page,
        "ticks": ticks,
        "total": duration(first, last, now_ns),
        "count": count,
        "next": view.offset + ROWS if view.offset + ROWS < count else None,
        "zoomed": view.start_ms is not None or view.end_ms is not None,
        "first_ns": first,
    }


def details(span: dict[str, Any], first_ns: int, now_ns: int) -> dict[str, Any]:
    """One span as its panel shows it: attributes sorted, events with an exception's
    type, message and stack trace set apart, links, resource and scope."""
    events = []
    for event in span.get("events") or []:
        attrs = dict(event.get("attributes") or {})
        events.append(
            {
                "name": event.get("name", ""),
                "at": duration(first_ns, event.get("time_ns") or first_ns, now_ns),
                "type": attrs.pop("exception.type", None),
                "message": attrs.pop("exception.message", None),
                "stacktrace": _text(attrs.pop("exception.stacktrace", None)),
                "attributes": sorted(attrs.items()),
            }
        )
    return {
        "span": span,
        "kind": KINDS.get(span.get("kind") or 0, str(span.get("kind"))),
        "start": duration(first_ns, span["start_ns"], now_ns) if span["start_ns"] else "",
        "duration": duration(span["start_ns"], span["end_ns"], now_ns),
        "attributes": sorted((span.get("attributes") or {}).items()),
        "resource": sorted((span.get("resource") or {}).items()),
        "events": events,
        "links": span.get("links") or [],
    }


def _text(value: Any) -> str | None:
    """Multi-line text (a stack trace) as it reads, escapes gone, lines kept."""
    return ansi.plain_lines(value) if isinstance(value, str) else None


def view_of(params: Any) -> View:
    """The View a request's query asks for (?offset=, ?from=, ?to= in ms since the
    trace began, ?expand= a parent's span id, repeatable); what is not a number is
    ignored."""

    def number(name: str) -> float | None:
        try:
            value = float(params.get(name, ""))
        except ValueError:
            return None
        return value if 0 <= value < 1e12 else None

    offset = number("offset")
    return View(
        offset=int(offset) if offset else 0,
        start_ms=number("from"),
        end_ms=number("to"),
        expanded=frozenset(params.getlist("expand")[:100]),
    )
