"""Spans received over OTLP, and the queries the dashboard runs on them (log records:
bass.store.logs)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

BUILDER_SCOPE = "bass_builder"  # the instrumentation scope of the builder's own spans
# A decoded span: a dict with these keys plus "resource" (canonical JSON).
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
    "resource_id",
    "scope",
)
# A decoded log record (bass.store.logs): a tuple in this order (the resource as
# canonical JSON).
LOG_COLUMNS = (
    "trace_id",
    "span_id",
    "time_ns",
    "severity_number",
    "severity_text",
    "body",
    "attributes",
    "resource",
)

_UPSERT_SPAN = f"""
INSERT INTO spans ({", ".join(SPAN_COLUMNS)})
VALUES ({", ".join(":" + c for c in SPAN_COLUMNS)})
ON CONFLICT (trace_id, span_id) DO UPDATE SET
  {", ".join(f"{c} = excluded.{c}" for c in SPAN_COLUMNS[2:])}
WHERE spans.end_ns = 0
"""


def resource_ids(conn: sqlite3.Connection, resources: Iterable[str]) -> dict[str, int]:
    """The row id of each resource (canonical attribute JSON), adding new ones."""
    ids = {}
    for attributes in set(resources):
        conn.execute(
            """
            INSERT OR IGNORE INTO resources (attributes, service_name)
            VALUES (:a, COALESCE(json_extract(:a, '$."service.name"'), ''))
            """,
            {"a": attributes},
        )
        ids[attributes] = conn.execute(
            "SELECT id FROM resources WHERE attributes = ?", (attributes,)
        ).fetchone()["id"]
    return ids


def insert_spans(conn: sqlite3.Connection, spans: list[dict[str, Any]]) -> None:
    """Upsert spans on (trace id, span id).

    A span exported at start (end 0, running) and again at end is one row. A span that
    has ended is never changed again: a re-sent batch changes nothing, a late start
    export does not reopen it, and nobody can re-send a failed step as ok.
    """
    ids = resource_ids(conn, (span["resource"] for span in spans))
    for span in spans:
        span["resource_id"] = ids[span["resource"]]
    conn.executemany(_UPSERT_SPAN, spans)


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
        """
        SELECT spans.*, resources.attributes AS resource FROM spans
        LEFT JOIN resources ON resources.id = spans.resource_id
        WHERE trace_id = ? ORDER BY start_ns, span_id
        """,
        (trace_id,),
    ).fetchall()
    for row in rows:
        for column in ("attributes", "events", "links", "resource"):
            row[column] = json.loads(row[column] or "{}")
    return rows


def span(conn: sqlite3.Connection, trace_id: str, span_id: str) -> dict[str, Any] | None:
    """One span, whole (attributes, events, links and resource decoded), or None."""
    row = conn.execute(
        """
        SELECT spans.*, resources.attributes AS resource FROM spans
        LEFT JOIN resources ON resources.id = spans.resource_id
        WHERE trace_id = ? AND span_id = ?
        """,
        (trace_id, span_id),
    ).fetchone()
    if row is not None:
        for column in ("attributes", "events", "links", "resource"):
            row[column] = json.loads(row[column] or "{}")
    return row


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


def steps_of_traces(conn: sqlite3.Connection, trace_ids: list[str]) -> list[dict[str, Any]]:
    """The spans the builder (and worker) made in several traces: a pipeline's steps, for
    its grid; each with its `position` in the pipeline when the builder gave one. Spans
    of other tools (a test runner's, an instrumented program's) are not steps."""
    if not trace_ids:
        return []
    marks = ",".join("?" for _ in trace_ids)
    return conn.execute(
        f"""
        SELECT trace_id, span_id, parent_span_id, name, start_ns, end_ns, status_code,
               bass_status,
               CASE WHEN attributes LIKE '%bass.position%'
                    THEN json_extract(attributes, '$."bass.position"') END AS position
        FROM spans WHERE trace_id IN ({marks})
          AND substr(scope, 1, {len(BUILDER_SCOPE)}) = '{BUILDER_SCOPE}'
        ORDER BY start_ns, span_id
        """,
        trace_ids,
    ).fetchall()


def checked_out_commit(conn: sqlite3.Connection, trace_id: str) -> str | None:
    """The commit a build's checkout step ran on (its span's vcs.ref.head.revision)."""
    row = conn.execute(
        "SELECT json_extract(attributes, '$.\"vcs.ref.head.revision\"') AS sha FROM spans "
        "WHERE trace_id = ? AND name = 'checkout' AND json_valid(attributes)",
        (trace_id,),
    ).fetchone()
    return row["sha"] if row and isinstance(row["sha"], str) else None
