"""Should bass's store use sqlite-utils, or stay on plain sqlite3? Measured, not argued.

    /tmp/su-venv/bin/python -m bench.sqlite_utils_bench [--quick] [--records N]
                                                        [--requests N] [--repeat N]

Run from the repository root with a Python that has sqlite-utils installed (a throwaway
venv: ``python3 -m venv /tmp/su-venv && /tmp/su-venv/bin/pip install sqlite-utils``).
A record of the decision not to use sqlite-utils, against the log store as it was then
(a row per record; since issue 13, bass keeps blocks: bench/logs_bench.py).
Self-contained: stdlib plus sqlite_utils, it never imports bass. It builds, on temp SQLite
files in WAL mode (synchronous=NORMAL, as bass's writer), the shape bass's migrations
0001-0004 leave (bass/store/schema.py): ``resources``, ``logs`` with its two indexes, the
external-content FTS5 table ``logs_fts`` (body, trace_id; content='logs',
content_rowid='id') and ``log_counts``; and prints Markdown:

(a) inserting ``--records`` log records (default 200,000; --quick 50,000; 40-byte bodies,
    ~20 spans of one trace, batches of 4,096 as the builder sends them, one BEGIN
    IMMEDIATE transaction per batch): bass's way then (a copy of the row-per-record
    telemetry.insert_logs bass had until log blocks, issue 13:
    executemany of tuples into logs, executemany into logs_fts, upsert of log_counts) vs
    sqlite-utils ``table.insert_all(..., batch_size=4096)`` (dict records, and its list
    mode: a header row then tuples) followed by the same FTS insert and count upsert.
    Also the logs INSERT alone, without FTS and counts. records/s, median [min-max] of
    ``--repeat`` (3) runs, each on a fresh file; ratio = sqlite-utils time / bass time.
(b) the same for small requests: ``--requests`` (5,000; --quick 1,000) batches of 10
    records, each its own transaction: microseconds per request.
(c) ``table.transform()`` for real on a small ``jobs`` table: can it add a CHECK
    constraint (state IN (...)); does it keep an existing CHECK, a UNIQUE constraint, a
    comment, and partial indexes (CREATE INDEX ... WHERE state = 'queued') when it
    changes a default, drops or renames a column, or runs inside BEGIN IMMEDIATE with
    foreign_keys=ON (as bass's migrate does)? sqlite_master.sql before and after.
(d) what ``enable_fts`` creates (tables, triggers) for the external-content logs table,
    next to bass's hand-written FTS5 table, and insert throughput when its triggers keep
    the index instead of bass's explicit FTS insert.

Every part checks its result (row counts, FTS matches, log_counts sums) before printing.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import inspect
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.common import cpu_model  # standard library only, like this file

try:
    import sqlite_utils
except ImportError:  # checked in main(): the benchmark needs it
    sqlite_utils = None

BATCH = 4096  # LOG_BATCH_RECORDS in builder/bass_builder.py
SMALL_BATCH = 10
SPANS = 20
BODY_BYTES = 40
RESOURCE = '{"service.name":"bass-builder"}'

# -- bass's schema: the shape migrations 0001-0004 leave (bass/store/schema.py) ---------

SCHEMA_TABLES = """
CREATE TABLE resources (
    id INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL UNIQUE,
    service_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL DEFAULT '',
    span_id TEXT NOT NULL DEFAULT '',
    time_ns INTEGER NOT NULL,
    severity_number INTEGER NOT NULL DEFAULT 0,
    severity_text TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}',
    resource_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX logs_trace ON logs (trace_id, span_id, id);
CREATE INDEX logs_trace_id ON logs (trace_id, id);
CREATE TABLE log_counts (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
"""
SCHEMA_FTS = """
CREATE VIRTUAL TABLE logs_fts USING fts5 (
    body, trace_id, content = 'logs', content_rowid = 'id'
);
"""
LOG_TABLE_COLUMNS = (
    "id",
    "trace_id",
    "span_id",
    "time_ns",
    "severity_number",
    "severity_text",
    "body",
    "attributes",
    "resource_id",
)

# -- bass's insert_logs (bass/store/telemetry.py), copied --------------------------------

_INSERT_LOG = """
INSERT INTO logs (id, trace_id, span_id, time_ns, severity_number, severity_text, body,
                  attributes, resource_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INDEX_LOG = "INSERT INTO logs_fts (rowid, trace_id, body) VALUES (?, ?, ?)"
_COUNT_LOGS = """
INSERT INTO log_counts (trace_id, span_id, n) VALUES (?, ?, ?)
ON CONFLICT (trace_id, span_id) DO UPDATE SET n = n + excluded.n
"""

Record = tuple[str, str, int, int, str, str, str, str]  # LOG_COLUMNS order, as decoded
Row = tuple[int, str, str, int, int, str, str, str, int]  # LOG_TABLE_COLUMNS order


def resource_ids(conn: sqlite3.Connection, resources: Iterable[str]) -> dict[str, int]:
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
        ).fetchone()[0]
    return ids


def rows_of(conn: sqlite3.Connection, records: list[Record]) -> list[Row]:
    """Ids given here, one more than the largest, as bass does; resources resolved."""
    resources = resource_ids(conn, (record[7] for record in records))
    first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM logs").fetchone()[0]
    return [(first + n, *record[:7], resources[record[7]]) for n, record in enumerate(records)]


def index_and_count(conn: sqlite3.Connection, rows: list[Row], fts: bool = True) -> None:
    if fts:
        conn.executemany(_INDEX_LOG, ((row[0], row[1], row[6]) for row in rows))
    spans = Counter(row[1:3] for row in rows)
    conn.executemany(_COUNT_LOGS, ((t, s, n) for (t, s), n in spans.items()))


def bass_full(conn: sqlite3.Connection, db: Any, records: list[Record]) -> None:
    rows = rows_of(conn, records)
    conn.executemany(_INSERT_LOG, rows)
    index_and_count(conn, rows)


def su_dicts_full(conn: sqlite3.Connection, db: Any, records: list[Record]) -> None:
    rows = rows_of(conn, records)
    db["logs"].insert_all(
        [dict(zip(LOG_TABLE_COLUMNS, row, strict=True)) for row in rows], batch_size=BATCH
    )
    index_and_count(conn, rows)


def su_list_full(conn: sqlite3.Connection, db: Any, records: list[Record]) -> None:
    rows = rows_of(conn, records)
    db["logs"].insert_all(itertools.chain([LOG_TABLE_COLUMNS], rows), batch_size=BATCH)
    index_and_count(conn, rows)


def bass_trigger_fts(conn: sqlite3.Connection, db: Any, records: list[Record]) -> None:
    """bass's insert_logs minus the explicit FTS insert: enable_fts's trigger does it."""
    rows = rows_of(conn, records)
    conn.executemany(_INSERT_LOG, rows)
    index_and_count(conn, rows, fts=False)


# The logs INSERT alone: the only statement the two ways write differently.
def bass_logs_only(conn: sqlite3.Connection, db: Any, rows: list[Row]) -> None:
    conn.executemany(_INSERT_LOG, rows)


def su_dicts_logs_only(conn: sqlite3.Connection, db: Any, rows: list[Row]) -> None:
    db["logs"].insert_all(
        [dict(zip(LOG_TABLE_COLUMNS, row, strict=True)) for row in rows], batch_size=BATCH
    )


def su_list_logs_only(conn: sqlite3.Connection, db: Any, rows: list[Row]) -> None:
    db["logs"].insert_all(itertools.chain([LOG_TABLE_COLUMNS], rows), batch_size=BATCH)


# -- data and files -----------------------------------------------------------------------

WORDS = (
    "building compiling linking testing passed failed warning error cache hit miss "
    "download upload artifact step checkout install resolve package module target "
    "release debug docker image layer pushed pulled retry timeout ok done started "
    "finished worker queue lease heartbeat commit branch merge tag version"
).split()


def make_records(n: int, seed: int = 1) -> list[Record]:
    """n records of one build: ~20 spans in sequence, 40-byte bodies of varied words."""
    rng = random.Random(seed)
    trace_id = f"{rng.getrandbits(128):032x}"
    spans = [f"{rng.getrandbits(64):016x}" for _ in range(SPANS)]
    start = 1_700_000_000_000_000_000
    records: list[Record] = []
    for i in range(n):
        body = ""
        while len(body) < BODY_BYTES:
            body += rng.choice(WORDS) + " "
        body = f"{i:07d} {body}"[:BODY_BYTES]
        span = spans[i * SPANS // n]
        records.append((trace_id, span, start + i * 1000, 9, "INFO", body, "{}", RESOURCE))
    return records


def connect(path: Path) -> sqlite3.Connection:
    """bass's writer connection (bass/store/db.py), with plain tuple rows."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def fresh_db(
    tmp: Path, name: str, fts: str = "bass", wrap: bool = True
) -> tuple[sqlite3.Connection, Any]:
    """A new file with bass's tables; fts: 'bass' (hand-written), 'triggers'
    (enable_fts with create_triggers=True) or 'none'. wrap: also a sqlite_utils.Database
    on the connection (else None: bass's own runs never touch sqlite-utils)."""
    path = tmp / f"{name}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = connect(path)
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA_TABLES + (SCHEMA_FTS if fts == "bass" else ""))
    db = sqlite_utils.Database(conn) if wrap or fts == "triggers" else None
    if fts == "triggers":
        db["logs"].enable_fts(["body", "trace_id"], create_triggers=True)
    return conn, db


def close(conn: sqlite3.Connection, tmp: Path, name: str) -> None:
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp / f"{name}.sqlite") + suffix).unlink(missing_ok=True)


def check_store(conn: sqlite3.Connection, n: int, fts: bool) -> None:
    """The run stored what it should: n rows, counts summing to n, every body indexed."""
    (stored,) = conn.execute("SELECT COUNT(*) FROM logs").fetchone()
    assert stored == n, (stored, n)
    (counted,) = conn.execute("SELECT COALESCE(SUM(n), 0) FROM log_counts").fetchone()
    assert counted == n, (counted, n)
    if fts:
        (indexed,) = conn.execute("SELECT COUNT(*) FROM logs_fts_docsize").fetchone()
        assert indexed == n, (indexed, n)
        for k in (0, n // 2, n - 1):  # every body starts with its record's 7-digit number
            hits = conn.execute(
                "SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?", (f'body:"{k:07d}"',)
            ).fetchall()
            assert hits == [(k + 1,)], (k, hits)


# -- timing --------------------------------------------------------------------------------

Insert = Callable[[sqlite3.Connection, Any, list[Any]], None]


def timed_run(
    tmp: Path, insert: Insert, batches: list[list[Any]], fts: str, pre_rows: bool
) -> float:
    """Seconds to commit every batch, one BEGIN IMMEDIATE transaction each."""
    conn, db = fresh_db(tmp, "run", fts, wrap=not insert.__name__.startswith("bass_"))
    if pre_rows:  # logs-only runs: ids and resource ids resolved before the clock starts
        conn.execute("BEGIN IMMEDIATE")
        first_ids = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM logs").fetchone()[0]
        rid = resource_ids(conn, [RESOURCE])[RESOURCE]
        conn.execute("ROLLBACK")
        n, prepared = first_ids, []
        for batch in batches:
            prepared.append([(n + i, *record[:7], rid) for i, record in enumerate(batch)])
            n += len(batch)
        batches = prepared
    gc.collect()
    start = time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN IMMEDIATE")
        try:
            insert(conn, db, batch)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    total = sum(len(b) for b in batches)
    if pre_rows:
        (stored,) = conn.execute("SELECT COUNT(*) FROM logs").fetchone()
        assert stored == total, (stored, total)
    else:
        check_store(conn, total, fts != "none")
    close(conn, tmp, "run")
    return elapsed


def compare(
    tmp: Path,
    ways: dict[str, tuple[Insert, str]],
    batches: list[list[Any]],
    repeat: int,
    pre_rows: bool = False,
) -> dict[str, list[float]]:
    """Seconds of each way, `repeat` times, the ways interleaved."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, (insert, fts) in ways.items():
            times[name].append(timed_run(tmp, insert, batches, fts, pre_rows))
    return times


def show(values: list[float], fmt: Callable[[float], str], per_second: bool = False) -> str:
    """`median [min–max]` of seconds, formatted; per_second: a rate, the slowest run is
    its min."""
    if len(values) == 1:
        return fmt(values[0])
    ordered = sorted(values, reverse=per_second)
    return f"{fmt(statistics.median(values))} [{fmt(ordered[0])}–{fmt(ordered[-1])}]"


def rate(n: int) -> Callable[[float], str]:
    return lambda seconds: f"{n / seconds / 1000:,.1f} k/s"


def per_request(requests: int) -> Callable[[float], str]:
    return lambda seconds: f"{seconds / requests * 1e6:,.1f} µs"


def ratio(su: list[float], bass: list[float]) -> str:
    return f"{statistics.median(su) / statistics.median(bass):.2f}×"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


HEADER = ("measurement", "bass/sqlite3", "sqlite-utils", "ratio (sqlite-utils time ÷ bass time)")


# -- (a) and (b) -------------------------------------------------------------------------


def bench_inserts(tmp: Path, args: argparse.Namespace) -> None:
    n, requests = args.records, args.requests
    records = make_records(n)
    big = [records[i : i + BATCH] for i in range(0, n, BATCH)]
    small_records = make_records(requests * SMALL_BATCH, seed=2)
    small = [small_records[i : i + SMALL_BATCH] for i in range(0, len(small_records), 10)]
    full = {
        "bass": (bass_full, "bass"),
        "dicts": (su_dicts_full, "bass"),
        "list": (su_list_full, "bass"),
    }
    logs_only = {
        "bass": (bass_logs_only, "none"),
        "dicts": (su_dicts_logs_only, "none"),
        "list": (su_list_logs_only, "none"),
    }
    columns = len(LOG_TABLE_COLUMNS)
    effective = max(1, min(BATCH, 999 // columns))  # sqlite_utils.db.SQLITE_MAX_VARS // columns
    print(f"## (a) {n:,} records in batches of {BATCH:,}, one transaction each\n")
    print(
        f"{len(big)} batches; {args.repeat} runs each, interleaved, each on a fresh file; "
        "median [min–max]. sqlite-utils `insert_all(batch_size=4096)` caps a statement "
        f"at SQLITE_MAX_VARS (999) // {columns} columns = {effective} rows: it sends "
        f"multi-row `INSERT ... VALUES (...), (...)` statements of {effective} rows "
        "inside a SAVEPOINT per chunk, where bass sends one prepared single-row INSERT "
        "through executemany. Both ways then run the same FTS insert and count upsert.\n"
    )
    t_full = compare(tmp, full, big, args.repeat)
    t_only = compare(tmp, logs_only, big, args.repeat, pre_rows=True)
    fmt, per_second = rate(n), True
    rows = []
    for label, times in (
        ("insert_logs, records/s: logs + logs_fts + log_counts", t_full),
        ("logs INSERT alone, records/s", t_only),
    ):
        for way, name in (("dicts", "dict records"), ("list", "list mode: header + tuples")):
            rows.append(
                (
                    f"{label} — sqlite-utils {name}",
                    show(times["bass"], fmt, per_second),
                    show(times[way], fmt, per_second),
                    ratio(times[way], times["bass"]),
                )
            )
    table(rows, HEADER)

    print(f"## (b) {requests:,} small requests of {SMALL_BATCH} records, one transaction each\n")
    print("Time per request (BEGIN IMMEDIATE … COMMIT included); median [min–max].\n")
    s_full = compare(tmp, full, small, args.repeat)
    s_only = compare(tmp, logs_only, small, args.repeat, pre_rows=True)
    fmt, per_second = per_request(requests), False
    rows = []
    for label, times in (
        ("insert_logs per request: logs + logs_fts + log_counts", s_full),
        ("logs INSERT alone per request", s_only),
    ):
        for way, name in (("dicts", "dict records"), ("list", "list mode")):
            rows.append(
                (
                    f"{label} — sqlite-utils {name}",
                    show(times["bass"], fmt, per_second),
                    show(times[way], fmt, per_second),
                    ratio(times[way], times["bass"]),
                )
            )
    extra = [
        statistics.median(s_only[w]) / requests * 1e6
        - statistics.median(s_only["bass"]) / requests * 1e6
        for w in ("dicts", "list")
    ]
    table(rows, HEADER)
    print(
        f"sqlite-utils adds {extra[0]:,.1f} µs (dicts) / {extra[1]:,.1f} µs (list mode) "
        "to every request's logs INSERT.\n"
    )


# -- (c) transform -------------------------------------------------------------------------

JOBS_PLAIN = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,            -- queued | running | ok | failed | timeout | ...
    lease_expires REAL,
    finished_at REAL,
    message TEXT,
    UNIQUE (pipeline, number)
)"""
JOBS_CHECKED = JOBS_PLAIN.replace(
    "state TEXT NOT NULL,",
    "state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ok', 'failed', 'timeout')),",
)
JOBS_INDEXES = """
CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
"""
STATES = ("queued", "running", "ok", "failed", "timeout")


def jobs_db(tmp: Path, ddl: str) -> tuple[sqlite3.Connection, Any]:
    path = tmp / "jobs.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(ddl + ";\n" + JOBS_INDEXES)
    conn.executemany(
        "INSERT INTO jobs (pipeline, number, state, lease_expires, finished_at, message)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [("p", i, STATES[i % 5], 1.0 * i, 2.0 * i if i % 5 > 1 else None, None) for i in range(50)],
    )
    return conn, sqlite_utils.Database(conn)


def master(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    return conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'jobs'"
        " ORDER BY type = 'index', name"
    ).fetchall()


def print_master(title: str, entries: list[tuple[str, str, str | None]]) -> None:
    print(f"{title}:\n\n```sql")
    for kind, name, sql in entries:
        print(sql + ";" if sql else f"-- {kind} {name}: no SQL (automatic, from UNIQUE)")
    print("```\n")


def enforcement(conn: sqlite3.Connection) -> str:
    """Whether the table refuses a bad state and a duplicate (pipeline, number)."""
    out = []
    for label, values in (
        ("state='bogus'", ("p", 1000, "bogus")),
        ("duplicate (pipeline, number)", ("p", 1, "queued")),
    ):
        try:
            conn.execute("SAVEPOINT probe")
            conn.execute("INSERT INTO jobs (pipeline, number, state) VALUES (?, ?, ?)", values)
            out.append(f"{label} ACCEPTED")
        except sqlite3.IntegrityError as e:
            out.append(f"{label} refused ({e})")
        finally:
            conn.execute("ROLLBACK TO probe")
            conn.execute("RELEASE probe")
    return "; ".join(out)


PLANNED = (
    "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id",
    "SELECT id FROM jobs WHERE state = 'running' ORDER BY lease_expires",
    "SELECT id FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at",
)


def plans(conn: sqlite3.Connection) -> list[str]:
    """The query plan of a query each partial index serves."""
    return [
        "; ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)) for sql in PLANNED
    ]


def try_transform(
    tmp: Path,
    title: str,
    ddl: str,
    call: Callable[[Any], Any],
    in_transaction: bool = False,
    show_before: bool = True,
) -> None:
    conn, db = jobs_db(tmp, ddl)
    before = master(conn)
    plans_before = plans(conn)
    (rows_before,) = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()
    print(f"### {title}\n")
    if show_before:
        print_master("before", before)
        print(f"enforced before: {enforcement(conn)}\n")
    else:
        print("before: the table and indexes of c2's before.\n")
    try:
        if in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        call(db)
        if in_transaction:
            conn.execute("COMMIT")
    except Exception as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        print(f"**raised** `{type(e).__name__}: {e}`\n")
        print(f"schema unchanged after the error: {master(conn) == before}\n")
        conn.close()
        return
    after = master(conn)
    (rows_after,) = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()
    print_master("after", after)
    before_sql = {name: sql for _, name, sql in before}
    after_sql = {name: sql for _, name, sql in after}
    lost = sorted(set(before_sql) - set(after_sql))
    changed = sorted(n for n in before_sql if n in after_sql and before_sql[n] != after_sql[n])
    print(
        f"- objects lost: {lost or 'none'}; index SQL changed: "
        f"{[n for n in changed if n != 'jobs'] or 'none'}; rows {rows_before} → {rows_after}"
    )
    print(f"- CHECK in the new table's SQL: {'CHECK' in (after_sql.get('jobs') or '')}")
    print(f"- enforced after: {enforcement(conn)}")
    plans_after = plans(conn)
    print(f"- partial-index query plans unchanged: {plans_after == plans_before}")
    for sql, plan in zip(PLANNED, plans_after, strict=True):
        print(f"  - `{sql}` → {plan}")
    print()
    conn.close()


def bench_transform(tmp: Path) -> None:
    print("## (c) table.transform() on a small jobs table (50 rows)\n")
    params = list(inspect.signature(sqlite_utils.db.Table.transform).parameters)
    print(
        f"`Table.transform` parameters: {', '.join(params[1:])}. None of them takes a "
        "CHECK constraint. The connection is bass's (isolation_level=None, "
        "foreign_keys=ON, WAL).\n"
    )
    check = "TEXT CHECK (state IN ('queued', 'running', 'ok', 'failed', 'timeout'))"
    try_transform(
        tmp,
        "c1. add a CHECK: transform(types={'state': \"TEXT CHECK (state IN (...))\"})",
        JOBS_PLAIN,
        lambda db: db["jobs"].transform(types={"state": check}),
    )
    try_transform(
        tmp,
        "c2. keep an existing CHECK and partial indexes: transform(defaults={'message': ''})",
        JOBS_CHECKED,
        lambda db: db["jobs"].transform(defaults={"message": ""}),
    )
    try_transform(
        tmp,
        "c3. drop a column no index or CHECK uses: transform(drop={'message'})",
        JOBS_CHECKED,
        lambda db: db["jobs"].transform(drop={"message"}),
        show_before=False,
    )
    try_transform(
        tmp,
        "c4. rename a column no index or CHECK uses: transform(rename={'message': 'note'})",
        JOBS_CHECKED,
        lambda db: db["jobs"].transform(rename={"message": "note"}),
        show_before=False,
    )
    try_transform(
        tmp,
        "c5. as c2, inside BEGIN IMMEDIATE with foreign_keys=ON (as bass's migrate runs)",
        JOBS_CHECKED,
        lambda db: db["jobs"].transform(defaults={"message": ""}),
        in_transaction=True,
        show_before=False,
    )


# -- (d) enable_fts ------------------------------------------------------------------------


def objects(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY rowid").fetchall()


def bench_fts(tmp: Path, args: argparse.Namespace) -> None:
    print("## (d) enable_fts vs bass's hand-written FTS5 table\n")
    results = {}
    for label in ("bass", "enable_fts", "triggers"):
        conn, db = fresh_db(tmp, "fts", "none")
        conn.executemany(
            "INSERT INTO logs (trace_id, span_id, time_ns, body) VALUES (?, ?, ?, ?)",
            [("t1", "s1", 1, "compiling module alpha"), ("t2", "s2", 2, "linking beta")],
        )
        before = objects(conn)
        if label == "bass":
            conn.executescript(SCHEMA_FTS + "INSERT INTO logs_fts (logs_fts) VALUES ('rebuild');")
        else:
            db["logs"].enable_fts(["body", "trace_id"], create_triggers=label == "triggers")
        new = [o for o in objects(conn) if o not in before]
        hits = conn.execute(
            "SELECT logs.id, logs.body FROM logs_fts JOIN logs ON logs.id = logs_fts.rowid"
            " WHERE logs_fts MATCH 'linking'"
        ).fetchall()
        detected = db["logs"].detect_fts()
        try:
            found: Any = [row["id"] for row in db["logs"].search("linking")]
        except Exception as e:
            found = f"{type(e).__name__}: {e}"
        results[label] = (new, hits, detected, found)
        close(conn, tmp, "fts")
    for label, title in (
        ("bass", "bass (schema.py 0002): CREATE VIRTUAL TABLE + 'rebuild'"),
        ("enable_fts", "db['logs'].enable_fts(['body', 'trace_id'])"),
        ("triggers", "db['logs'].enable_fts(['body', 'trace_id'], create_triggers=True)"),
    ):
        new, hits, detected, found = results[label]
        print(f"### {title}\n")
        print("| type | name | sql |\n|---|---|---|")
        for kind, name, sql in new:
            one_line = " ".join((sql or "").split()).replace("|", "\\|")
            print(f"| {kind} | {name} | `{one_line}` |" if sql else f"| {kind} | {name} | |")
        print(
            f"\nexisting rows indexed: MATCH 'linking' joined on logs.id = logs_fts.rowid → "
            f"{hits}; sqlite-utils `detect_fts()` → {detected!r}; "
            f"`db['logs'].search('linking')` → ids {found}\n"
        )

    n = args.records
    records = make_records(n)
    big = [records[i : i + BATCH] for i in range(0, n, BATCH)]
    ways = {"bass": (bass_full, "bass"), "triggers": (bass_trigger_fts, "triggers")}
    times = compare(tmp, ways, big, args.repeat)
    fmt = rate(n)
    print(f"Insert {n:,} records in batches of {BATCH:,} (logs by bass's executemany):\n")
    table(
        [
            (
                "records/s, FTS kept by explicit insert (bass) vs enable_fts triggers",
                show(times["bass"], fmt, True),
                show(times["triggers"], fmt, True),
                ratio(times["triggers"], times["bass"]),
            )
        ],
        HEADER,
    )


# -- connection sharing ------------------------------------------------------------------


def bench_sharing(tmp: Path) -> None:
    """Whether sqlite-utils can work on bass's writer connection as bass configures it."""
    print("## notes: sharing bass's writer connection\n")
    conn, _ = fresh_db(tmp, "share", "bass", wrap=False)
    conn.row_factory = lambda cursor, row: {
        c[0]: v for c, v in zip(cursor.description, row, strict=True)
    }
    (before,) = conn.execute("PRAGMA recursive_triggers").fetchone().values()
    db = sqlite_utils.Database(conn)
    (after,) = conn.execute("PRAGMA recursive_triggers").fetchone().values()
    print(f"- `sqlite_utils.Database(conn)` sets PRAGMA recursive_triggers {before} → {after}.")
    row: dict[str, Any] = dict(
        zip(LOG_TABLE_COLUMNS, (1, "t", "s", 1, 9, "INFO", "b", "{}", 1), strict=True)
    )
    try:
        db["logs"].insert_all([row])
        outcome = "works"
    except Exception as e:
        outcome = f"fails: `{type(e).__name__}: {e}`"
    print(f"- `insert_all` on a connection with bass's dict row_factory {outcome}.\n")
    close(conn, tmp, "share")


# -- main -----------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="50,000 records, 1,000 requests")
    p.add_argument("--records", type=int, help="records for (a) and (d) (200,000)")
    p.add_argument("--requests", type=int, help="requests of 10 records for (b) (5,000)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement (3)")
    args = p.parse_args(argv)
    args.records = args.records or (50_000 if args.quick else 200_000)
    args.requests = args.requests or (1_000 if args.quick else 5_000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    if sqlite_utils is None:
        print(
            "sqlite_utils is not installed. In a throwaway venv, not bass's:\n"
            "    python3 -m venv /tmp/su-venv && /tmp/su-venv/bin/pip install sqlite-utils\n"
            "then, from the repository root:\n"
            "    /tmp/su-venv/bin/python -m bench.sqlite_utils_bench",
            file=sys.stderr,
        )
        return 2
    version = importlib.metadata.version("sqlite-utils")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}; sqlite-utils {version}"
    )
    print()
    print("# sqlite-utils vs plain sqlite3 for bass's store\n")
    with tempfile.TemporaryDirectory(prefix="su-bench-") as d:
        tmp = Path(d)
        bench_inserts(tmp, args)
        bench_transform(tmp)
        bench_fts(tmp, args)
        bench_sharing(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
