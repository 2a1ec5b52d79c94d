"""Pruning old builds with their spans and logs, in small transactions, and giving
the space back to the file system."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from bass import ansi

CHUNK = 2000  # rows deleted per transaction: ingest waits at most one chunk


def expired_builds(
    conn: sqlite3.Connection,
    *,
    finished_before: float | None,
    keep: dict[str, int],
    keep_default: int | None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Ended builds to prune: finished before `finished_before`, or older than the
    newest `keep[pipeline]` (else `keep_default`) builds of their pipeline. Queued and
    running builds are never pruned."""
    rows = conn.execute(
        """
        SELECT id, pipeline, number, trace_id, finished_at,
               ROW_NUMBER() OVER (PARTITION BY pipeline ORDER BY number DESC) AS age
        FROM builds WHERE finished_at IS NOT NULL  -- set when, and only when, a build ends
        """
    ).fetchall()
    out = []
    for row in rows:
        keep_n = keep.get(row["pipeline"], keep_default)
        too_old = finished_before is not None and row["finished_at"] < finished_before
        too_many = keep_n is not None and row["age"] > keep_n
        if too_old or too_many:
            out.append(row)
            if len(out) >= limit:
                break
    return out


def stray_traces(
    conn: sqlite3.Connection, *, started_before_ns: int, limit: int = 100
) -> list[str]:
    """Traces that are no build (other services' telemetry) whose root started before."""
    rows = conn.execute(
        """
        SELECT DISTINCT trace_id FROM spans
        WHERE parent_span_id = '' AND start_ns < ?
          AND NOT EXISTS (SELECT 1 FROM builds WHERE builds.trace_id = spans.trace_id)
        LIMIT ?
        """,
        (started_before_ns, limit),
    ).fetchall()
    return [r["trace_id"] for r in rows]


def delete_logs_chunk(conn: sqlite3.Connection, trace_id: str) -> int:
    """Delete up to CHUNK log records of a trace (and their search entries)."""
    rows = conn.execute(
        "SELECT id, body, trace_id, span_id FROM logs WHERE trace_id = ? LIMIT ?",
        (trace_id, CHUNK),
    ).fetchall()
    return _delete_logs(conn, rows)


def delete_untraced_logs_chunk(conn: sqlite3.Connection, before_ns: int) -> int:
    """Delete up to CHUNK of the oldest log records that belong to no trace (sent
    without trace context, by another service), stopping at the first one not older
    than `before_ns`: records arrive roughly in time order, and a pass must never scan
    all of another service's logs inside a write transaction."""
    rows = conn.execute(
        "SELECT id, body, trace_id, span_id, time_ns FROM logs WHERE trace_id = '' "
        "ORDER BY id LIMIT ?",
        (CHUNK,),
    ).fetchall()
    expired = []
    for row in rows:
        if row["time_ns"] >= before_ns:
            break
        expired.append(row)
    return _delete_logs(conn, expired)


def _delete_logs(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> int:
    """Delete log records (id, body, trace_id, span_id) with their search entries and
    their share of the per-span counts."""
    conn.executemany(
        "INSERT INTO logs_fts (logs_fts, rowid, body, trace_id) VALUES ('delete', ?, ?, ?)",
        ((r["id"], ansi.plain(r["body"]), r["trace_id"]) for r in rows),  # as indexed
    )
    conn.executemany("DELETE FROM logs WHERE id = ?", ((r["id"],) for r in rows))
    spans = Counter((r["trace_id"], r["span_id"]) for r in rows)
    conn.executemany(
        "UPDATE log_counts SET n = n - ? WHERE trace_id = ? AND span_id = ?",
        ((n, t, s) for (t, s), n in spans.items()),
    )
    return len(rows)


def delete_trace_rest(conn: sqlite3.Connection, trace_id: str) -> None:
    """Delete a trace's spans and its build row (after its logs are gone)."""
    conn.execute("DELETE FROM spans WHERE trace_id = ?", (trace_id,))
    conn.execute("DELETE FROM log_counts WHERE trace_id = ?", (trace_id,))
    conn.execute("DELETE FROM builds WHERE trace_id = ?", (trace_id,))


def free_pages(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA freelist_count").fetchone()["freelist_count"]


def incremental_vacuum(conn: sqlite3.Connection, pages: int = 2048) -> None:
    """Give up to `pages` free pages back to the file system (auto_vacuum=INCREMENTAL)."""
    # The pragma frees one page per step of its statement, and Python's sqlite3 steps a
    # statement without result columns once: `incremental_vacuum(N)` frees one page
    # however large N is. So it runs once per page, all in the caller's transaction.
    for _ in range(min(int(pages), free_pages(conn))):
        conn.execute("PRAGMA incremental_vacuum(1)")


def auto_vacuum_mode(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA auto_vacuum").fetchone()["auto_vacuum"]
