"""Log records, kept as blocks: the consecutive records of one span that arrived in one
request (up to BLOCK_BYTES of text, BLOCK_LINES records), compressed in one row.

A row per record cost ~45 µs and 8 bytes on disk per byte of text (the row, two
indexes over text ids, a full-text entry per line); a block costs one row, two small
index entries and one full-text document, whatever its size, and its text compressed.

Each record keeps everything OTLP gave it: time, severity number and text, body,
attributes (canonical JSON), resource. Records have ids, as rows had: a block's id is
the id of its first record, the others follow (id + 1, …), and a newer block's ids are
larger; each record also has its line number in its span (1, 2, … in arrival order).
Id order is arrival order, request by request; within one request, a span's records
come together (in the order the request gives them), spans in the order they first
appear in it.
The full-text index (`log_text`, FTS5 without positions) holds each block's text as a
reader sees it (bass.ansi.plain); a search finds blocks there, and bass.store.logmatch
picks out the lines.

A block's `data` is zstd-compressed (`encode`): JSON of its columns (a column whose
values are all alike is one value), then its bodies as text.
"""

from __future__ import annotations

import json
import operator
import sqlite3
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, groupby, islice
from typing import Any

import orjson
import zstandard

from bass import ansi
from bass.store.logmatch import GROUP_MARKERS, SPECIAL, Query, is_marker
from bass.store.telemetry import resource_ids

BLOCK_BYTES = 64 * 1024  # body text in one block, about (a longer record is a block)
BLOCK_LINES = 4096  # records in one block, at most
SEARCH_BLOCKS = 2000  # blocks a search reads at most before it answers with what it has

_INSERT_BLOCK = """
INSERT INTO log_blocks (id, trace_id, span_id, first_line, n, max_severity, data)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_INDEX_BLOCK = "INSERT INTO log_text (rowid, body) VALUES (?, ?)"
_COUNT_LOGS = """
INSERT INTO log_counts (trace_id, span_id, n, last_line) VALUES (?, ?, ?, ?)
ON CONFLICT (trace_id, span_id) DO UPDATE SET n = n + excluded.n, last_line = excluded.last_line
"""


def insert_logs(conn: sqlite3.Connection, records: list[tuple]) -> None:
    """Append log records (tuples in bass.store.telemetry.LOG_COLUMNS order: trace id,
    span id, time, severity number and text, body, attributes JSON, resource JSON): each
    span's records of the request become one or more blocks, spans in the order they
    first appear (a request's records arrived together; within a span, their order is
    kept)."""
    if not records:
        return
    resources = resource_ids(conn, {record[7] for record in records})
    spans: dict[tuple[str, str], list[tuple]] = {}
    for key, group in groupby(records, key=_SPAN):  # runs: the builder sends long ones
        run = spans.get(key)
        if run is None:
            spans[key] = list(group)
        else:
            run += group
    next_id = _next_id(conn)
    counts = []
    for (trace_id, span_id), rows in spans.items():
        columns = list(zip(*rows, strict=True))[2:]
        column = columns[5]
        if column.count(column[0]) == len(column):
            columns[5] = (resources[column[0]],) * len(column)
        else:
            columns[5] = tuple(resources[r] for r in column)
        first = last_line(conn, trace_id, span_id) + 1
        next_id = write_blocks(conn, next_id, trace_id, span_id, first, columns)
        counts.append((trace_id, span_id, len(rows), first + len(rows) - 1))
    conn.executemany(_COUNT_LOGS, counts)


_SPAN = operator.itemgetter(0, 1)


def _next_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT id + n AS next FROM log_blocks ORDER BY id DESC LIMIT 1").fetchone()
    return row["next"] if row else 1


def write_blocks(
    conn: sqlite3.Connection,
    next_id: int,
    trace_id: str,
    span_id: str,
    first_line: int,
    columns: Sequence[Sequence[Any]],
) -> int:
    """Store consecutive records of one span, from line `first_line`, as blocks with ids
    from `next_id`; returns the id after the last one given. `columns`: the records'
    times, severity numbers, severity texts, bodies, attributes JSON and resource ids."""
    bodies = columns[3]
    ends = list(accumulate(map(len, bodies)))  # text up to and with each record
    start, before = 0, 0
    while start < len(bodies):
        end = bisect_right(ends, before + BLOCK_BYTES, lo=start)
        end = min(max(end, start + 1), start + BLOCK_LINES)
        part = [column[start:end] for column in columns]
        data, text = encode(part)
        conn.execute(
            _INSERT_BLOCK,
            (next_id, trace_id, span_id, first_line + start, end - start, max(part[1]), data),
        )
        conn.execute(_INDEX_BLOCK, (next_id, text))
        next_id += end - start
        start, before = end, ends[end - 1]
    return next_id


def encode(columns: Sequence[Sequence[Any]]) -> tuple[bytes, str]:
    """A block's data and the text the index holds of it (`searchable`). The data, zstd
    compressed: a byte saying how the bodies are kept (`p`: as text, needing no
    bass.ansi.plain to be read; `e`: as text with escapes; `j`: in the JSON, a body
    holding a newline), the JSON of the other columns, a NUL, the bodies joined by
    newlines."""
    times, numbers, texts, bodies, attributes, resources = columns
    base = times[0]
    out: dict[str, Any] = {"t": base}
    if times.count(base) != len(times):
        out["d"] = [t - base for t in times]
    for key, values in (("v", numbers), ("x", texts), ("a", attributes), ("r", resources)):
        out[key] = values[0] if values.count(values[0]) == len(values) else values
    text = "\n".join(bodies)
    if text.count("\n") != len(bodies) - 1:
        out["b"] = bodies
        return _compress(b"j" + orjson.dumps(out) + b"\0"), searchable(bodies)
    if SPECIAL.search(text) is None:
        kind, index_text = b"p", text
    else:
        kind, index_text = b"e", "\n".join(map(ansi.plain, bodies))
    raw = kind + orjson.dumps(out) + b"\0" + text.encode("utf-8", "surrogatepass")
    return _compress(raw), index_text


_codecs = threading.local()


def _compress(raw: bytes) -> bytes:
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        compressor = _codecs.compressor = zstandard.ZstdCompressor(level=1)
    return compressor.compress(raw)


def _decompress(data: bytes) -> bytes:
    decompressor = getattr(_codecs, "decompressor", None)
    if decompressor is None:
        decompressor = _codecs.decompressor = zstandard.ZstdDecompressor()
    return decompressor.decompress(data)


def decode(data: bytes) -> dict[str, list[Any]]:
    """A block's columns, each a list of its records' values: t (time), v (severity
    number), x (severity text), b (body), a (attributes JSON), r (resource id)."""
    return _columns(_decompress(data))


def _columns(raw: bytes) -> dict[str, list[Any]]:
    head, _, text = raw.partition(b"\0")  # JSON never holds a raw NUL
    columns = orjson.loads(head[1:])
    if head[:1] != b"j":
        columns["b"] = text.decode("utf-8", "surrogatepass").split("\n")
    n = len(columns["b"])
    base = columns["t"]
    deltas = columns.get("d")
    columns["t"] = [base + d for d in deltas] if deltas else [base] * n
    for key in ("v", "x", "a", "r"):
        if not isinstance(columns[key], list):
            columns[key] = [columns[key]] * n
    return columns


def _lines_text(raw: bytes) -> tuple[str, bool]:
    """A block's bodies as one text, a line each (the search's reading of a block), and
    whether that text is as a reader sees it already (no escapes to take out)."""
    if raw[:1] == b"j":
        return "\n".join(map(ansi.plain, _columns(raw)["b"])), True
    text = raw[raw.index(b"\0") + 1 :].decode("utf-8", "surrogatepass")
    return text, raw[:1] == b"p"


def searchable(bodies: Sequence[str]) -> str:
    """A block's text as the index holds it: its lines as a reader sees them."""
    text = "\n".join(bodies)
    if SPECIAL.search(text) is None:
        return text
    return "\n".join(map(ansi.plain, bodies))


def last_line(conn: sqlite3.Connection, trace_id: str, span_id: str) -> int:
    row = conn.execute(
        "SELECT last_line FROM log_counts WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
    ).fetchone()
    return row["last_line"] if row else 0


# -- reading


def _records(
    block: dict[str, Any], indexes: Iterable[int] | None = None, columns: dict | None = None
) -> list[dict[str, Any]]:
    """Records of a block row (all, or those at `indexes`), as dicts with the columns the
    `logs` table had."""
    c = decode(block["data"]) if columns is None else columns
    times, numbers, texts, bodies, attrs, resources = c["t"], c["v"], c["x"], c["b"], c["a"], c["r"]
    first_id, first_line = block["id"], block["first_line"]
    trace_id, span_id = block["trace_id"], block["span_id"]
    parsed: dict[str, Any] = {}
    out = []
    for i in range(len(bodies)) if indexes is None else indexes:
        attributes = parsed.get(attrs[i])
        if attributes is None:
            attributes = parsed[attrs[i]] = json.loads(attrs[i])
        out.append({
            "id": first_id + i, "trace_id": trace_id, "span_id": span_id, "line": first_line + i,
            "time_ns": times[i], "severity_number": numbers[i], "severity_text": texts[i],
            "body": bodies[i], "attributes": attributes, "resource_id": resources[i],
        })  # fmt: skip
    return out


def _matching(block: dict[str, Any], query: Query | None) -> list[dict[str, Any]]:
    """A block's records, or (with a query) those that match it."""
    if query is None:
        return _records(block)
    raw = _decompress(block["data"])  # once: for the text, and the columns of what matched
    found = query.lines(*_lines_text(raw))
    return _records(block, found, _columns(raw)) if found else []


def _bounds(conn: sqlite3.Connection, trace_id: str, span_id: str | None) -> tuple[int, int]:
    """The first and last block ids of a trace (or of one of its spans): a search of the
    index is kept between them (FTS5 seeks to them), not run over every trace."""
    if span_id is None:
        row = conn.execute(
            "SELECT MIN(id) AS lo, MAX(id) AS hi FROM log_blocks WHERE trace_id = ?", (trace_id,)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT (SELECT id FROM log_blocks WHERE trace_id = :t AND span_id = :s"
            " ORDER BY first_line LIMIT 1) AS lo, (SELECT id FROM log_blocks WHERE trace_id = :t"
            " AND span_id = :s ORDER BY first_line DESC LIMIT 1) AS hi",
            {"t": trace_id, "s": span_id},
        ).fetchone()
    return (row["lo"], row["hi"]) if row["lo"] is not None else (1, 0)


_BLOCK = "id, trace_id, span_id, first_line, n, data"


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
    backwards = tail or before_id is not None
    where = ["trace_id = :trace_id", "id > :after_id - :block"]
    params: dict[str, Any] = {"trace_id": trace_id, "after_id": after_id, "block": BLOCK_LINES}
    if span_id is not None:
        where.append("span_id = :span_id")
        params["span_id"] = span_id
    if before_id is not None:
        where.append("id < :before_id")
        params["before_id"] = before_id
    if min_severity:
        where.append("max_severity >= :severity")
        params["severity"] = min_severity
    query = Query(search) if search.strip() else None
    if query is not None:
        if query.fts is None:
            return []
        where.append(
            "id IN (SELECT rowid FROM log_text WHERE log_text MATCH :match"
            " AND rowid BETWEEN :lo AND :hi)"
        )
        params["match"] = query.fts
        params["lo"], params["hi"] = _bounds(conn, trace_id, span_id)
    # In a span, id order is line order: its index gives the blocks in order.
    order = ("first_line" if span_id is not None else "id") + (" DESC" if backwards else "")
    blocks = conn.execute(
        f"SELECT {_BLOCK} FROM log_blocks WHERE {' AND '.join(where)} ORDER BY {order}", params
    )

    def wanted(record: dict[str, Any]) -> bool:
        return (
            after_id < record["id"] < (before_id if before_id is not None else 2**63)
            and record["severity_number"] >= min_severity
        )

    found: list[dict[str, Any]] = []
    for block in islice(blocks, SEARCH_BLOCKS if query is not None else None):
        records = [r for r in _matching(block, query) if wanted(r)]
        found += reversed(records) if backwards else records
        if len(found) >= limit:
            break
    found = found[:limit]
    if backwards:
        found.reverse()
    return found


def log_lines(
    conn: sqlite3.Connection, trace_id: str, span_id: str, first: int, last: int
) -> list[dict[str, Any]]:
    """Lines `first` to `last` (numbers, inclusive) of one span: what the log viewer
    shows of each (number, time, severity, body, and its stream when the builder says
    which one it is)."""
    blocks = conn.execute(
        f"""
        SELECT {_BLOCK} FROM log_blocks
        WHERE trace_id = ? AND span_id = ? AND first_line <= ? ORDER BY first_line DESC
        """,
        (trace_id, span_id, last),
    )
    found: list[list[dict[str, Any]]] = []
    for block in blocks:
        if block["first_line"] + block["n"] <= first:
            break
        lo = max(first - block["first_line"], 0)
        hi = min(last - block["first_line"] + 1, block["n"])
        found.append(_records(block, range(lo, hi)))
    out = []
    for records in reversed(found):
        for r in records:
            stream = r["attributes"].get("log.iostream")
            out.append({
                "line": r["line"], "time_ns": r["time_ns"], "severity_number": r["severity_number"],
                "body": r["body"], "stream": stream,
            })  # fmt: skip
    return out


def _span_blocks(
    conn: sqlite3.Connection, trace_id: str, span_id: str, match: str
) -> Iterator[dict[str, Any]]:
    """One span's blocks that the index says hold every term of `match`, in order."""
    lo, hi = _bounds(conn, trace_id, span_id)
    return iter(
        conn.execute(
            f"""
            SELECT {_BLOCK} FROM log_blocks
            WHERE trace_id = ? AND span_id = ?
              AND id IN (SELECT rowid FROM log_text WHERE log_text MATCH ?
                         AND rowid BETWEEN ? AND ?)
            ORDER BY first_line
            """,
            (trace_id, span_id, match, lo, hi),
        )
    )


def line_hits(
    conn: sqlite3.Connection, trace_id: str, span_id: str, text: str, limit: int = 1000
) -> list[int]:
    """The numbers of one span's lines that hold every word of `text`, in order."""
    query = Query(text)
    if query.fts is None:
        return []
    hits: list[int] = []
    for block in islice(_span_blocks(conn, trace_id, span_id, query.fts), SEARCH_BLOCKS):
        hits += (
            block["first_line"] + i for i in query.lines(*_lines_text(_decompress(block["data"])))
        )
        if len(hits) >= limit:
            break
    return hits[:limit]


def marker_lines(
    conn: sqlite3.Connection, trace_id: str, span_id: str, limit: int = 20_000
) -> list[dict[str, Any]]:
    """One span's lines holding the word `group` or `endgroup` (where the group markers
    of its output are), in order: number and body."""
    found: list[dict[str, Any]] = []
    for block in _span_blocks(conn, trace_id, span_id, GROUP_MARKERS):
        bodies = decode(block["data"])["b"]
        found += (
            {"line": block["first_line"] + i, "body": body}
            for i, body in enumerate(bodies)
            if is_marker(body)
        )
        if len(found) >= limit:
            break
    return found[:limit]


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
    query = Query(text)
    if query.fts is None:
        return []
    params: dict[str, Any] = {"match": query.fts}
    where = ["log_text MATCH :match"]
    if pipeline:
        where.append("builds.pipeline = :pipeline")
        params["pipeline"] = pipeline
    if before_id is not None:
        where.append("log_text.rowid < :before_id")
        params["before_id"] = before_id
    blocks = conn.execute(
        f"""
        SELECT b.id, b.trace_id, b.span_id, b.first_line, b.n, b.data, builds.pipeline,
               builds.number
        FROM log_text JOIN log_blocks b ON b.id = log_text.rowid
        LEFT JOIN builds ON builds.trace_id = b.trace_id
        WHERE {" AND ".join(where)}
        ORDER BY log_text.rowid DESC
        """,
        params,
    )
    found: list[dict[str, Any]] = []
    for block in islice(blocks, SEARCH_BLOCKS):
        for record in reversed(_matching(block, query)):
            if before_id is None or record["id"] < before_id:
                record.update(pipeline=block["pipeline"], number=block["number"])
                found.append(record)
        if len(found) >= limit:
            break
    found = found[:limit]
    names = _service_names(conn, {r["resource_id"] for r in found})
    for record in found:
        record["service_name"] = names.get(record["resource_id"])
    return found


def _service_names(conn: sqlite3.Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ",".join("?" for _ in ids)
    rows = conn.execute(f"SELECT id, service_name FROM resources WHERE id IN ({marks})", list(ids))
    return {r["id"]: r["service_name"] for r in rows}


def last_lines(conn: sqlite3.Connection, trace_id: str) -> dict[str, int]:
    """The number of the last line of each span of a trace that has lines."""
    rows = conn.execute(
        "SELECT span_id, last_line FROM log_counts WHERE trace_id = ? AND last_line > 0",
        (trace_id,),
    ).fetchall()
    return {r["span_id"]: r["last_line"] for r in rows}


# -- deleting


def delete_blocks(conn: sqlite3.Connection, blocks: list[dict[str, Any]]) -> int:
    """Delete blocks (rows with id, trace_id, span_id, n, data) with their index entries
    and their share of the per-span counts; returns the records deleted."""
    for block in blocks:
        text = searchable(decode(block["data"])["b"])  # as indexed
        conn.execute(
            "INSERT INTO log_text (log_text, rowid, body) VALUES ('delete', ?, ?)",
            (block["id"], text),
        )
        conn.execute("DELETE FROM log_blocks WHERE id = ?", (block["id"],))
        conn.execute(
            "UPDATE log_counts SET n = n - ? WHERE trace_id = ? AND span_id = ?",
            (block["n"], block["trace_id"], block["span_id"]),
        )
    return sum(block["n"] for block in blocks)


# -- a view of records, for tests and for looking into a database by hand

_FIELDS = {"time_ns": "t", "severity_number": "v", "severity_text": "x", "body": "b",
           "attributes": "a", "resource_id": "r"}  # fmt: skip


def attach_view(conn: sqlite3.Connection) -> None:
    """Give `conn` a temporary view `logs` with a row per record, the columns the `logs`
    table had (id, trace_id, span_id, line, time_ns, severity_number, severity_text,
    body, attributes, resource_id). Slow: it decodes blocks; not for bass's own queries."""
    last: list[Any] = [None, None]  # the block decoded last: a row's fields come together

    def field(block_id: int, data: bytes, i: int, name: str) -> Any:
        if last[0] != block_id:
            last[:] = [block_id, decode(data)]
        return last[1][name][i]

    conn.create_function("bass_log_field", 4, field, deterministic=True)
    columns = ", ".join(f"bass_log_field(b.id, b.data, k.i, '{c}') AS {name}"
                        for name, c in _FIELDS.items())  # fmt: skip
    conn.execute(
        f"""
        CREATE TEMP VIEW IF NOT EXISTS logs AS
        WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < {BLOCK_LINES - 1})
        SELECT b.id + k.i AS id, b.trace_id, b.span_id, b.first_line + k.i AS line, {columns}
        FROM log_blocks AS b JOIN k ON k.i < b.n
        """
    )
