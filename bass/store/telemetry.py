"""Spans and log records received over OTLP, and the queries the dashboard runs on them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "bass_status",
    "service_name",
    "attributes",
    "events",
    "links",
    "resource",
    "scope",
)
LOG_COLUMNS = (
    "trace_id",
    "span_id",
    "time_ns",
    "severity_number",
    "severity_text",
    "body",
    "attributes",
    "service_name",
)

_UPSERT_SPAN = f"""
INSERT INTO spans ({", ".join(SPAN_COLUMNS)})
VALUES ({", ".join(":" + c for c in SPAN_COLUMNS)})
ON CONFLICT (trace_id, span_id) DO UPDATE SET
  {", ".join(f"{c} = excluded.{c}" for c in SPAN_COLUMNS[2:])}
WHERE excluded.end_ns != 0 OR spans.end_ns = 0
"""
_INSERT_LOG = f"""
INSERT INTO logs ({", ".join(LOG_COLUMNS)}) VALUES ({", ".join("?" for _ in LOG_COLUMNS)})
"""


def insert_spans(conn: sqlite3.Connection, spans: Iterable[dict[str, Any]]) -> None:
    """Upsert spans on (trace id, span id).

    A span exported at start (end 0, running) and again at end is one row; a re-sent
    batch changes nothing; a late start export never turns an ended span back to running.
    """
    conn.executemany(_UPSERT_SPAN, spans)


def insert_logs(conn: sqlite3.Connection, records: Iterable[tuple]) -> None:
    """Append log records, each a tuple in LOG_COLUMNS order."""
    conn.executemany(_INSERT_LOG, records)


def close_open_spans(conn: sqlite3.Connection, trace_id: str, *, end_ns: int, status: str) -> int:
    """End the spans of a finished build that never reported their end (worker lost,
    build killed): they get `status` instead of staying "running" forever."""
    cur = conn.execute(
        """
        UPDATE spans SET end_ns = :end_ns, bass_status = :status,
                         status_code = CASE WHEN :status = 'ok' THEN 1 ELSE 2 END,
                         status_message = CASE WHEN status_message = ''
                                          THEN 'never ended: build ' || :status
                                          ELSE status_message END
        WHERE trace_id = :trace_id AND end_ns = 0
        """,
        {"trace_id": trace_id, "end_ns": end_ns, "status": status},
    )
    return cur.rowcount


def spans_of(conn: sqlite3.Connection, trace_id: str) -> list[dict[str, Any]]:
    """Every span of a trace, oldest first, attributes decoded."""
    rows = conn.execute(
        "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
    ).fetchall()
    for row in rows:
        for column in ("attributes", "events", "links", "resource"):
            row[column] = json.loads(row[column])
    return rows


def spans_of_traces(conn: sqlite3.Connection, trace_ids: list[str]) -> list[dict[str, Any]]:
    """The spans of several traces (for the pipeline grid), without the bulky columns."""
    if not trace_ids:
        return []
    marks = ",".join("?" for _ in trace_ids)
    return conn.execute(
        f"""
        SELECT trace_id, span_id, parent_span_id, name, start_ns, end_ns, status_code,
               bass_status
        FROM spans WHERE trace_id IN ({marks}) ORDER BY start_ns, span_id
        """,
        trace_ids,
    ).fetchall()


def logs_of(
    conn: sqlite3.Connection,
    trace_id: str,
    *,
    span_id: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
    tail: bool = False,
) -> list[dict[str, Any]]:
    """Log records of a trace (or of one span), in arrival order.

    `after_id` pages forwards; `tail=True` returns the last `limit` records instead.
    """
    where = "trace_id = :trace_id AND id > :after_id"
    if span_id is not None:
        where += " AND span_id = :span_id"
    params = {"trace_id": trace_id, "span_id": span_id, "after_id": after_id, "limit": limit}
    if tail:
        rows = conn.execute(
            f"SELECT * FROM logs WHERE {where} ORDER BY id DESC LIMIT :limit", params
        ).fetchall()
        rows.reverse()
    else:
        rows = conn.execute(
            f"SELECT * FROM logs WHERE {where} ORDER BY id LIMIT :limit", params
        ).fetchall()
    for row in rows:
        row["attributes"] = json.loads(row["attributes"])
    return rows


def log_counts(conn: sqlite3.Connection, trace_id: str) -> dict[str, int]:
    """How many log records each span of a trace has."""
    rows = conn.execute(
        "SELECT span_id, COUNT(*) AS n FROM logs WHERE trace_id = ? GROUP BY span_id",
        (trace_id,),
    ).fetchall()
    return {r["span_id"]: r["n"] for r in rows}
