"""The Traces and Services pages' queries, over the traces of every service, builds
included; each reads a bounded part of the store, however much it holds.

A trace is listed by its root span (no parent), read from the index `spans_roots` alone:
its name, service, start, duration and status are the root's. A trace whose root span
has not arrived is not listed until it does (an SDK exports a root when it ends, after
its children); its page (/traces/ID) shows it meanwhile. Listing it by its earliest
span would take an index of every span by start, which slows span ingest down.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from bass_builder import ERROR, FAILED, OK, RUNNING, TIMEOUT

IS_ERROR = f"(status_code = 2 OR bass_status IN ('{FAILED}', '{TIMEOUT}', '{ERROR}'))"
PAGE = 50
SCAN = 20_000  # roots a page looks through at most when a filter reads each root
ATTR_SCAN = 1_000  # ... when an attribute filter reads every span of each trace
STATS_ROOTS = 100_000  # roots of the last 24 hours the Services page reads at most
MAX_NS = 2**63 - 1
ROOT = "trace_id, span_id, service_name, start_ns, end_ns, status_code, bass_status"
COLUMNS = f"{ROOT}, name"
SPAN_NAME = "SELECT name FROM spans WHERE trace_id = ? AND span_id = ?"
COUNT_SPANS = 1_000  # spans of each listed trace counted at most
COUNT = f"""SELECT COUNT(*) AS n, SUM({IS_ERROR}) AS errors
            FROM (SELECT status_code, bass_status FROM spans WHERE trace_id = ? LIMIT ?)"""
Cursor = tuple[int, str]  # (start_ns, trace_id): a page holds the traces before it


@dataclass(frozen=True)
class Filters:
    service: str = ""
    status: str = ""  # ok | error | running
    min_ns: int | None = None  # duration
    max_ns: int | None = None
    since_ns: int = 0  # started at or after
    attr: tuple[str, str] | None = None  # (key, value): a span of the trace has it


@dataclass
class Page:
    traces: list[dict[str, Any]]
    older: Cursor | None  # where the next page starts, None at the end
    looked_to: int | None  # the page is not full: it looked through traces to here


def status_of(span: dict[str, Any]) -> str:
    if span["status_code"] == 2 or span["bass_status"] in (FAILED, TIMEOUT, ERROR):
        return ERROR
    return OK if span["end_ns"] else RUNNING


def _attr_match(column: str) -> str:
    """SQL: the span's attributes hold the key with the value (a string's text, or the
    JSON of a number or boolean); JSON is parsed only where both texts appear."""
    return (
        f"CASE WHEN instr({column}, :attr_key) AND instr({column}, :attr_text) "
        f"AND json_valid({column}) THEN ({column} ->> :attr_path = :attr_value "
        f"OR {column} -> :attr_path = :attr_value) END"
    )


def _params(f: Filters, now_ns: int, upper: Cursor) -> dict[str, Any]:
    params: dict[str, Any] = {"service": f.service, "since": f.since_ns, "now": now_ns,
                              "ns": upper[0], "tid": upper[1], "min_ns": f.min_ns,
                              "max_ns": f.max_ns}  # fmt: skip
    if f.attr:
        key, value = f.attr
        if '"' in key or "\\" in key:
            raise ValueError("an attribute key may not hold a quote or a backslash")
        # the value's text is in the stored JSON as it is, unless JSON escapes it
        plain = not any(c in '"\\' or c < " " for c in value)
        params.update(attr_key=f'"{key}"', attr_path=f'$."{key}"', attr_value=value,
                      attr_text=value if plain else "")  # fmt: skip
    return params


def recent(
    conn: sqlite3.Connection, f: Filters, *, now_ns: int, before: Cursor | None = None,
    limit: int = PAGE,
) -> Page:  # fmt: skip
    """The traces that started before `before` (newest first) that pass the filters,
    with their span and error counts and their build (pipeline, number) if any."""
    upper = before or (MAX_NS, "")
    if f.service and f.service not in services(conn):
        return Page([], None, None)
    params = _params(f, now_ns, upper)
    where = ["parent_span_id = ''", "start_ns >= :since", "start_ns <= :ns",
             "(start_ns, trace_id) < (:ns, :tid)"]  # fmt: skip
    checks = ["service_name = :service"] if f.service else []
    if f.status:
        checks.append({ERROR: IS_ERROR, OK: f"end_ns != 0 AND NOT {IS_ERROR}",
                       RUNNING: f"end_ns = 0 AND NOT {IS_ERROR}"}[f.status])  # fmt: skip
    length = "(CASE WHEN end_ns = 0 THEN :now ELSE end_ns END) - start_ns"
    if f.min_ns is not None:
        checks.append(f"{length} >= :min_ns")
    if f.max_ns is not None:
        checks.append(f"{length} <= :max_ns")
    if f.attr:
        checks.append("EXISTS (SELECT 1 FROM spans a WHERE a.trace_id = spans.trace_id "
                      f"AND {_attr_match('a.attributes')})")  # fmt: skip
    floor: Cursor | None = None
    if checks:  # a filter may pass few roots: look through SCAN of them at most
        params["scan"] = ATTR_SCAN if f.attr else SCAN
        row = conn.execute(f"SELECT start_ns, trace_id FROM spans WHERE {' AND '.join(where)} "
                           "ORDER BY start_ns DESC, trace_id DESC LIMIT 1 OFFSET :scan",
                           params).fetchone()  # fmt: skip
        if row is not None:
            floor = (row["start_ns"], row["trace_id"])
            params.update(fns=floor[0], ftid=floor[1])
            where.append("(start_ns, trace_id) >= (:fns, :ftid)")
    roots = conn.execute(  # from the index alone (spans_roots), but for an attribute
        f"SELECT {ROOT} FROM spans WHERE {' AND '.join(where + checks)} "
        "ORDER BY start_ns DESC, trace_id DESC LIMIT :limit",
        {**params, "limit": limit + 1},
    ).fetchall()
    shown = roots[:limit]
    for root in shown:
        root["status"] = status_of(root)
    _complete(conn, shown)
    if len(roots) > limit:
        return Page(shown, (shown[-1]["start_ns"], shown[-1]["trace_id"]), None)
    return Page(shown, floor, floor[0] if floor else None)


def _complete(conn: sqlite3.Connection, traces: list[dict[str, Any]]) -> None:
    """Give each trace its root's name, its span and error counts (among its first
    COUNT_SPANS spans: `more` when it has more) and its build, if it is one."""
    for t in traces:
        t["name"] = conn.execute(SPAN_NAME, (t["trace_id"], t["span_id"])).fetchone()["name"]
        row = conn.execute(COUNT, (t["trace_id"], COUNT_SPANS)).fetchone()
        t.update(spans=row["n"], errors=row["errors"] or 0, more=row["n"] == COUNT_SPANS)
    ids = json.dumps([t["trace_id"] for t in traces])
    found = conn.execute(
        "SELECT trace_id, pipeline, number FROM builds "
        "WHERE trace_id IN (SELECT value FROM json_each(?))",
        (ids,),
    )
    builds = {r["trace_id"]: r for r in found}
    for t in traces:
        build = builds.get(t["trace_id"])
        t.update(pipeline=build and build["pipeline"], number=build and build["number"])


def services(conn: sqlite3.Connection, limit: int = 1000) -> list[str]:
    """The names of the services that sent spans or logs (one row per resource)."""
    rows = conn.execute(
        "SELECT DISTINCT service_name FROM resources WHERE service_name != '' "
        "ORDER BY service_name LIMIT ?",
        (limit,),
    ).fetchall()
    return [r["service_name"] for r in rows]


def recent_roots(conn: sqlite3.Connection, *, since_ns: int) -> tuple[dict[str, list], bool]:
    """The root spans (service, start, end, failed) that started since `since_ns`,
    newest first, by service (every service named, even without any); and whether
    there were more than STATS_ROOTS, the most read."""
    cursor = conn.cursor()
    cursor.row_factory = None  # tuples: a dict for each of many rows costs
    rows = cursor.execute(  # the index alone (spans_roots)
        f"SELECT service_name, start_ns, end_ns, {IS_ERROR} FROM spans "
        "WHERE parent_span_id = '' AND start_ns >= ? ORDER BY start_ns DESC LIMIT ?",
        (since_ns, STATS_ROOTS),
    ).fetchall()
    found: dict[str, list] = {name: [] for name in services(conn)}
    for row in rows:
        found.setdefault(row[0], []).append(row)
    return found, len(rows) == STATS_ROOTS


def spans(conn: sqlite3.Connection, trace_id: str, limit: int) -> list[dict[str, Any]]:
    """The first `limit` spans of a trace by start, as its waterfall draws them."""
    return conn.execute(
        f"SELECT {COLUMNS}, parent_span_id FROM spans WHERE trace_id = ? "
        "ORDER BY start_ns, span_id LIMIT ?",
        (trace_id, limit),
    ).fetchall()
