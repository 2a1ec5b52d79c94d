"""Pruning old builds with their spans and logs, in small transactions, and giving
the space back to the file system."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from bass.store import logs

CHUNK = 2000  # log records deleted per transaction (whole blocks): ingest waits at most one chunk
BLOCKS = 20  # log blocks read per transaction, at most
MERGE_PAGES = 256  # search index pages merged per transaction


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
    """Delete up to CHUNK log records of a trace (whole blocks, with their search
    entries); returns how many."""
    rows = conn.execute(
        "SELECT id, trace_id, span_id, n, data FROM log_blocks WHERE trace_id = ? LIMIT ?",
        (trace_id, BLOCKS),
    ).fetchall()
    return _delete_upto(conn, rows)


def delete_untraced_logs_chunk(conn: sqlite3.Connection, before_ns: int) -> int:
    """Delete up to CHUNK of the oldest log records that belong to no trace (sent
    without trace context, by another service), stopping at the first block with a
    record not older than `before_ns`: records arrive roughly in time order, and a pass
    must never read all of another service's logs inside a write transaction."""
    rows = conn.execute(
        "SELECT id, trace_id, span_id, n, data FROM log_blocks WHERE trace_id = '' "
        "ORDER BY id LIMIT ?",
        (BLOCKS,),
    ).fetchall()
    expired = itertools.takewhile(
        lambda block: max(logs.decode(block["data"])["t"]) < before_ns, rows
    )
    return _delete_upto(conn, expired)


def _delete_upto(conn: sqlite3.Connection, blocks: Iterable[dict[str, Any]]) -> int:
    """Delete blocks, in order, until CHUNK records are gone."""
    chosen, records = [], 0
    for block in blocks:
        chosen.append(block)
        records += block["n"]
        if records >= CHUNK:
            break
    return logs.delete_blocks(conn, chosen)


PRUNED_KEPT = 100_000  # pruned builds remembered (~100 bytes each), the newest


def delete_trace_rest(conn: sqlite3.Connection, trace_id: str) -> None:
    """Delete a trace's spans and its build row (after its logs are gone); the build
    is remembered in `pruned_builds` (its pages say it was pruned, and its trace id)."""
    conn.execute("DELETE FROM spans WHERE trace_id = ?", (trace_id,))
    conn.execute("DELETE FROM log_counts WHERE trace_id = ?", (trace_id,))
    conn.execute(
        "INSERT OR REPLACE INTO pruned_builds "
        "SELECT pipeline, number, trace_id, state, finished_at, ? FROM builds WHERE trace_id = ?",
        (time.time(), trace_id),
    )
    conn.execute("DELETE FROM builds WHERE trace_id = ?", (trace_id,))


def forget_pruned(conn: sqlite3.Connection) -> None:
    """Keep the PRUNED_KEPT builds pruned last (once a pass: the cut walks the index)."""
    conn.execute(
        "DELETE FROM pruned_builds WHERE pruned_at < (SELECT pruned_at FROM pruned_builds "
        "ORDER BY pruned_at DESC LIMIT 1 OFFSET ?)",
        (PRUNED_KEPT - 1,),
    )


def stored_records(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(SUM(n), 0) AS n FROM log_counts").fetchone()["n"]


def merge_index(conn: sqlite3.Connection, pages: int = MERGE_PAGES) -> bool:
    """Merge up to about `pages` pages of the search index's segments, whatever their
    level; False once all are one. Deleting a block adds delete markers to the index,
    which take space until the segments holding them are merged: this is how that space
    comes back, at the cost of writing the whole index anew."""
    before = conn.total_changes
    conn.execute("INSERT INTO log_text (log_text, rank) VALUES ('merge', ?)", (-pages,))
    return conn.total_changes - before > 1


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
