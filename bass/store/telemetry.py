"""Spans and log records received over OTLP, and the queries the dashboard runs on them."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import Any

from bass import ansi

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
# A decoded log record: a tuple in this order (the resource as canonical JSON).
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
_INSERT_LOG = """
INSERT INTO logs (id, trace_id, span_id, time_ns, severity_number, severity_text, body,
                  attributes, resource_id, line)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INDEX_LOG = "INSERT INTO logs_fts (rowid, trace_id, body) VALUES (?, ?, ?)"
_COUNT_LOGS = """
INSERT INTO log_counts (trace_id, span_id, n, last_line) VALUES (?, ?, ?, ?)
ON CONFLICT (trace_id, span_id) DO UPDATE SET n = n + excluded.n, last_line = excluded.last_line
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


def insert_logs(conn: sqlite3.Connection, records: list[tuple]) -> None:
    """Append log records (tuples in LOG_COLUMNS order) and index their bodies for
    search. Ids are given here (one more than the largest, as SQLite would) so the
    search index gets the same ids without reading them back."""
    if not records:
        return
    resources = resource_ids(conn, (record[7] for record in records))
    first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 AS id FROM logs").fetchone()["id"]
    spans = Counter(record[:2] for record in records)
    last = {span: _last_line(conn, *span) for span in spans}
    rows = []
    for n, record in enumerate(records):
        last[record[:2]] += 1
        rows.append((first + n, *record[:7], resources[record[7]], last[record[:2]]))
    conn.executemany(_INSERT_LOG, rows)
    plain = ansi.plain
    conn.executemany(_INDEX_LOG, ((row[0], row[1], plain(row[6])) for row in rows))
    conn.executemany(_COUNT_LOGS, ((t, s, n, last[t, s]) for (t, s), n in spans.items()))


def _last_line(conn: sqlite3.Connection, trace_id: str, span_id: str) -> int:
    row = conn.execute(
        "SELECT last_line FROM log_counts WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
    ).fetchone()
    return row["last_line"] if row else 0


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


def fts_query(text: str, *, trace_id: str | None = None) -> str:
    """An FTS5 query where every word of `text` must appear in the body (a word ending
    in * matches as a prefix), optionally within one trace. User text never reaches
    FTS5's query syntax unquoted."""
    terms = []
    # FTS5 ends a query at a NUL ("unterminated string"); and a word without letters or
    # digits ("-", "*", '"') becomes an empty phrase that matches no line at all, so it
    # is left out unless there is nothing else to search for.
    words = [word.replace("\x00", "") for word in text.split()]
    words = [word for word in words if any(c.isalnum() for c in word)] or words
    for word in words:
        prefix = word.endswith("*") and len(word) > 1
        word = word.rstrip("*") if prefix else word
        terms.append('body:"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    if trace_id:
        terms.append('trace_id:"' + trace_id.replace('"', "") + '"')
    return " AND ".join(terms)


def logs_of(
    conn: sqlite3.Connection,
    trace_id: str,
    *,
    span_id: str | None = None,
    after_id: int = 0,
    before_id: int | None = None,
    limit: int = 1000,
    tail: bool = False,
    min_severity: int = 0,
    search: str = "",
) -> list[dict[str, Any]]:
    """Log records of a trace (or of one span), in arrival order (by id).

    Pages forwards from `after_id`, or backwards from `before_id` (`tail=True`: from the
    end); `min_severity` and `search` (every word, full-text) filter.
    """
    where = ["trace_id = :trace_id", "id > :after_id"]
    params: dict[str, Any] = {"trace_id": trace_id, "after_id": after_id, "limit": limit}
    if span_id is not None:
        where.append("span_id = :span_id")
        params["span_id"] = span_id
    if before_id is not None:
        where.append("id < :before_id")
        params["before_id"] = before_id
    if min_severity:
        where.append("severity_number >= :severity")
        params["severity"] = min_severity
    if search.strip():
        where.append("id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH :match)")
        params["match"] = fts_query(search, trace_id=trace_id)
    backwards = tail or before_id is not None
    order = "line" if span_id is not None else "id"  # the same order, in the span's index
    rows = conn.execute(
        f"SELECT * FROM logs WHERE {' AND '.join(where)} "
        f"ORDER BY {order} {'DESC' if backwards else 'ASC'} LIMIT :limit",
        params,
    ).fetchall()
    if backwards:
        rows.reverse()
    for row in rows:
        row["attributes"] = json.loads(row["attributes"])
    return rows


def search_logs(
    conn: sqlite3.Connection,
    text: str,
    *,
    pipeline: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Log records matching every word of `text` across builds, newest first, each with
    the pipeline and build number it belongs to (None for a trace that is no build)."""
    if not text.strip():
        return []
    params: dict[str, Any] = {"match": fts_query(text), "limit": limit}
    where = ["logs_fts MATCH :match"]
    if pipeline:
        where.append("builds.pipeline = :pipeline")
        params["pipeline"] = pipeline
    if before_id is not None:
        where.append("logs_fts.rowid < :before_id")
        params["before_id"] = before_id
    rows = conn.execute(
        f"""
        SELECT logs.*, builds.pipeline, builds.number, resources.service_name FROM logs_fts
        JOIN logs ON logs.id = logs_fts.rowid
        LEFT JOIN builds ON builds.trace_id = logs.trace_id
        LEFT JOIN resources ON resources.id = logs.resource_id
        WHERE {" AND ".join(where)}
        ORDER BY logs_fts.rowid DESC LIMIT :limit
        """,
        params,
    ).fetchall()
    for row in rows:
        row["attributes"] = json.loads(row["attributes"])
    return rows


def log_lines(
    conn: sqlite3.Connection, trace_id: str, span_id: str, first: int, last: int
) -> list[dict[str, Any]]:
    """Lines `first` to `last` (numbers, inclusive) of one span: what the log viewer
    shows of each (number, time, severity, body, and its stream when the builder says
    which one it is)."""
    return conn.execute(
        """
        SELECT line, time_ns, severity_number, body,
               CASE WHEN attributes LIKE '%log.iostream%'
                    THEN json_extract(attributes, '$."log.iostream"') END AS stream
        FROM logs WHERE trace_id = ? AND span_id = ? AND line BETWEEN ? AND ?
        ORDER BY line
        """,
        (trace_id, span_id, first, last),
    ).fetchall()


def line_hits(
    conn: sqlite3.Connection, trace_id: str, span_id: str, text: str, limit: int = 1000
) -> list[int]:
    """The numbers of one span's lines that hold every word of `text`, in order."""
    if not text.strip():
        return []
    return _span_matches(conn, trace_id, span_id, fts_query(text), limit, "line")


def _span_matches(
    conn: sqlite3.Connection, trace_id: str, span_id: str, match: str, limit: int, columns: str
) -> list[Any]:
    """Lines of one span matching an FTS5 query. The search is bounded by the span's
    first and last record ids (a span's lines are consecutive in id order), which FTS5
    seeks to: a `trace_id` term would read an entry for every line of the trace."""
    bounds = conn.execute(
        "SELECT (SELECT id FROM logs WHERE trace_id = :t AND span_id = :s ORDER BY line LIMIT 1)"
        " AS lo, (SELECT id FROM logs WHERE trace_id = :t AND span_id = :s"
        " ORDER BY line DESC LIMIT 1) AS hi",
        {"t": trace_id, "s": span_id},
    ).fetchone()
    if bounds["lo"] is None:
        return []
    rows = conn.execute(
        f"""
        SELECT {columns} FROM logs
        WHERE id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH :match
                     AND rowid BETWEEN :lo AND :hi)
          AND +trace_id = :trace_id AND +span_id = :span_id  -- (+: from the matches)
        ORDER BY line LIMIT :limit
        """,
        {"match": match, "lo": bounds["lo"], "hi": bounds["hi"], "trace_id": trace_id,
         "span_id": span_id, "limit": limit},
    ).fetchall()  # fmt: skip
    return [row["line"] for row in rows] if columns == "line" else rows


def marker_lines(
    conn: sqlite3.Connection, trace_id: str, span_id: str, limit: int = 20_000
) -> list[dict[str, Any]]:
    """One span's lines holding the word `group` or `endgroup` (where the group markers
    of its output are), in order: number and body."""
    match = 'body:"group" OR body:"endgroup"'
    return _span_matches(conn, trace_id, span_id, match, limit, "line, body")


def last_lines(conn: sqlite3.Connection, trace_id: str) -> dict[str, int]:
    """The number of the last line of each span of a trace that has lines."""
    rows = conn.execute(
        "SELECT span_id, last_line FROM log_counts WHERE trace_id = ? AND last_line > 0",
        (trace_id,),
    ).fetchall()
    return {r["span_id"]: r["last_line"] for r in rows}


def log_counts(conn: sqlite3.Connection, trace_id: str) -> dict[str, int]:
    """How many log records each span of a trace has."""
    rows = conn.execute(
        "SELECT span_id, n FROM log_counts WHERE trace_id = ? AND n > 0",
        (trace_id,),
    ).fetchall()
    return {r["span_id"]: r["n"] for r in rows}


def checked_out_commit(conn: sqlite3.Connection, trace_id: str) -> str | None:
    """The commit a build's checkout step ran on (its span's vcs.ref.head.revision)."""
    row = conn.execute(
        "SELECT json_extract(attributes, '$.\"vcs.ref.head.revision\"') AS sha FROM spans "
        "WHERE trace_id = ? AND name = 'checkout' AND json_valid(attributes)",
        (trace_id,),
    ).fetchone()
    return row["sha"] if row and isinstance(row["sha"], str) else None
