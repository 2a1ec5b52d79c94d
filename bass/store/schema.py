"""The schema, as named migrations of literal DDL: the one place the schema is written.

Each migration runs once, in order, inside one transaction, and is recorded in the
`migrations` table; after its DDL, a migration may name Python functions that move data
(called with the connection, in the same transaction). A new schema change is a new
entry at the end of MIGRATIONS; an entry that has shipped is never edited.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from bass import ansi
from bass.store import logs

log = logging.getLogger("bass.store")


def logs_into_blocks(conn: sqlite3.Connection) -> None:
    """Migration 0011: every row of `logs` into blocks, then `logs` and its search index
    dropped. Rows are taken in id order, REQUEST rows at a time as if they had come in
    one request (bass.store.logs.insert_logs), each span's rows of them a block, unless
    its line numbers have a gap. Progress goes to bass's log every few seconds."""
    plain = conn.cursor()  # rows as tuples, whatever the connection's row factory
    plain.row_factory = None
    total = plain.execute("SELECT COUNT(*) FROM logs").fetchone()[0]
    if total:
        log.info("migrating %s log records into blocks (once; this can take a while)", f"{total:,}")
    next_id, done, shown = 1, 0, time.monotonic()
    cursor = plain.execute(
        "SELECT trace_id, span_id, line, time_ns, severity_number, severity_text, body, "
        "attributes, resource_id FROM logs ORDER BY id"
    )
    while rows := cursor.fetchmany(REQUEST):
        spans: dict[tuple[str, str], list[list]] = {}  # each span's runs of lines
        for row in rows:
            runs = spans.setdefault(row[:2], [])
            if runs and runs[-1][-1][2] + 1 == row[2]:
                runs[-1].append(row)
            else:
                runs.append([row])
        for (trace_id, span_id), runs in spans.items():
            for run in runs:
                columns = list(zip(*run, strict=True))[3:]
                next_id = logs.write_blocks(conn, next_id, trace_id, span_id, run[0][2], columns)
        done += len(rows)
        if time.monotonic() - shown > 2:
            log.info("migrated %s of %s log records (%d%%)", f"{done:,}", f"{total:,}",
                     done * 100 // total)  # fmt: skip
            shown = time.monotonic()
    conn.execute("DROP TABLE logs_fts")
    conn.execute("DROP TABLE logs")
    if total:
        log.info("migrated %s log records into blocks", f"{total:,}")


REQUEST = 4096  # rows of `logs` that 0011 makes blocks of together


MIGRATIONS: list[tuple] = [
    (
        "0001_initial",
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            pipeline TEXT NOT NULL,
            number INTEGER NOT NULL,
            state TEXT NOT NULL,            -- queued | running | ok | failed | timeout | ...
            trigger TEXT NOT NULL,          -- webhook | dashboard | cli | poll | local
            changed_refs TEXT NOT NULL DEFAULT '[]',
            tags TEXT NOT NULL DEFAULT '[]',
            worker_tags TEXT NOT NULL DEFAULT '[]',
            config TEXT NOT NULL DEFAULT '{}',   -- the pipeline's config when it was queued
            trace_id TEXT NOT NULL UNIQUE,
            root_span_id TEXT NOT NULL,
            queued_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            worker TEXT,
            lease_expires REAL,             -- NULL: the worker does not heartbeat
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            UNIQUE (pipeline, number)
        );
        CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
        CREATE INDEX jobs_running ON jobs (lease_expires) WHERE state = 'running';

        CREATE TABLE spans (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            parent_span_id TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            kind INTEGER NOT NULL DEFAULT 0,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,        -- 0 while the span is running
            status_code INTEGER NOT NULL DEFAULT 0,
            status_message TEXT NOT NULL DEFAULT '',
            bass_status TEXT,
            service_name TEXT NOT NULL DEFAULT '',
            attributes TEXT NOT NULL DEFAULT '{}',
            events TEXT NOT NULL DEFAULT '[]',
            links TEXT NOT NULL DEFAULT '[]',
            resource TEXT NOT NULL DEFAULT '{}',
            scope TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (trace_id, span_id)
        ) WITHOUT ROWID;

        CREATE TABLE logs (
            id INTEGER PRIMARY KEY,
            trace_id TEXT NOT NULL DEFAULT '',
            span_id TEXT NOT NULL DEFAULT '',
            time_ns INTEGER NOT NULL,
            severity_number INTEGER NOT NULL DEFAULT 0,
            severity_text TEXT NOT NULL DEFAULT '',
            body TEXT NOT NULL DEFAULT '',
            attributes TEXT NOT NULL DEFAULT '{}',
            service_name TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX logs_trace ON logs (trace_id, span_id, id);
        """,
    ),
    (
        "0002_resources_search_retention",
        """
        -- One row per distinct resource (canonical JSON of its attributes) instead of a
        -- copy on every span and log record.
        CREATE TABLE resources (
            id INTEGER PRIMARY KEY,
            attributes TEXT NOT NULL UNIQUE,
            service_name TEXT NOT NULL DEFAULT ''
        );
        INSERT OR IGNORE INTO resources (attributes, service_name)
            SELECT DISTINCT resource, service_name FROM spans;
        INSERT OR IGNORE INTO resources (attributes, service_name)
            SELECT DISTINCT json_object('service.name', service_name), service_name FROM logs;
        ALTER TABLE spans ADD COLUMN resource_id INTEGER NOT NULL DEFAULT 0;
        UPDATE spans SET resource_id = (SELECT id FROM resources r WHERE r.attributes = resource);
        ALTER TABLE spans DROP COLUMN resource;
        ALTER TABLE logs ADD COLUMN resource_id INTEGER NOT NULL DEFAULT 0;
        UPDATE logs SET resource_id = (
            SELECT id FROM resources r
            WHERE r.attributes = json_object('service.name', logs.service_name));
        ALTER TABLE logs DROP COLUMN service_name;

        -- A build's logs in arrival order, and severity filters within a build.
        CREATE INDEX logs_trace_id ON logs (trace_id, id);

        -- Full-text search over log bodies. trace_id is indexed too, so a search within
        -- one build intersects two term lists instead of filtering every match.
        -- Rows are added by logs.insert_logs and removed by retention, not by
        -- triggers: a per-row trigger made every insert three times slower.
        CREATE VIRTUAL TABLE logs_fts USING fts5 (
            body, trace_id, content = 'logs', content_rowid = 'id'
        );
        INSERT INTO logs_fts (logs_fts) VALUES ('rebuild');

        -- Retention walks finished builds oldest first, and traces by age.
        CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
        CREATE INDEX spans_start ON spans (start_ns) WHERE parent_span_id = '';
        """,
    ),
    (
        "0003_polls",
        """
        -- What the git poller last saw of each polled pipeline's ref.
        CREATE TABLE polls (
            pipeline TEXT PRIMARY KEY,
            ref TEXT NOT NULL,
            commit_id TEXT NOT NULL,
            checked_at REAL NOT NULL
        );
        """,
    ),
    (
        "0004_log_counts",
        """
        -- How many log records each span has, kept by insert_logs and retention: a build
        -- page counts its steps' lines without reading a million-line build's index.
        CREATE TABLE log_counts (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        ) WITHOUT ROWID;
        INSERT INTO log_counts (trace_id, span_id, n)
            SELECT trace_id, span_id, COUNT(*) FROM logs GROUP BY trace_id, span_id;
        """,
    ),
    (
        "0005_builds",
        """
        -- The row a user sees is a build: `jobs` becomes `builds`, and its state is checked
        -- against the words bass uses (bass.states.STATES): queued, running, or the
        -- status the build ended with. SQLite cannot add a CHECK to a table, so the
        -- table is made anew and the rows copied, ids included.
        CREATE TABLE builds (
            id INTEGER PRIMARY KEY,
            pipeline TEXT NOT NULL,
            number INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ok', 'failed',
                                                 'timeout', 'skipped', 'cancelled', 'error')),
            trigger TEXT NOT NULL,          -- webhook | dashboard | cli | poll | local
            changed_refs TEXT NOT NULL DEFAULT '[]',
            tags TEXT NOT NULL DEFAULT '[]',
            worker_tags TEXT NOT NULL DEFAULT '[]',
            config TEXT NOT NULL DEFAULT '{}',   -- the pipeline's config when it was queued
            trace_id TEXT NOT NULL UNIQUE,
            root_span_id TEXT NOT NULL,
            queued_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            worker TEXT,
            lease_expires REAL,             -- NULL: the worker does not heartbeat
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            UNIQUE (pipeline, number)
        );
        INSERT INTO builds (id, pipeline, number, state, trigger, changed_refs, tags,
                            worker_tags, config, trace_id, root_span_id, queued_at,
                            started_at, finished_at, worker, lease_expires,
                            cancel_requested, message)
            SELECT id, pipeline, number, state, trigger, changed_refs, tags,
                   worker_tags, config, trace_id, root_span_id, queued_at,
                   started_at, finished_at, worker, lease_expires,
                   cancel_requested, message
            FROM jobs;
        DROP TABLE jobs;
        CREATE INDEX builds_queued ON builds (id) WHERE state = 'queued';
        CREATE INDEX builds_running ON builds (lease_expires) WHERE state = 'running';
        CREATE INDEX builds_finished ON builds (finished_at) WHERE finished_at IS NOT NULL;
        """,
    ),
    (
        "0006_job_tokens",
        """
        -- Who holds a running build: the name of the worker key that claimed it, and the
        -- SHA-256 of the job token it was handed (its heartbeats, result and telemetry
        -- must carry the token; the token itself is never stored).
        ALTER TABLE builds ADD COLUMN worker_key TEXT;
        ALTER TABLE builds ADD COLUMN job_token TEXT;
        """,
    ),
    (
        "0007_forward_queue",
        """
        -- What bass forwards (bass.store.forward_queue): each request offered, as it
        -- came, kept until every destination of its kind has passed it. AUTOINCREMENT:
        -- an id is never given twice, so a cursor cannot skip new entries once the queue
        -- has been emptied.
        CREATE TABLE forward_queue (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('traces', 'logs')),
            encoding TEXT NOT NULL,         -- the Content-Type it came with
            records INTEGER NOT NULL,       -- spans or log records stored of it
            size INTEGER NOT NULL,          -- length(body), counted against the cap
            body BLOB NOT NULL              -- last: reading the others skips it
        );
        CREATE INDEX forward_queue_kind ON forward_queue (kind, id);
        -- Each destination's place: the id of the last entry it sent or gave up on.
        CREATE TABLE forward_cursors (
            kind TEXT NOT NULL,
            url TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (kind, url)
        ) WITHOUT ROWID;
        """,
    ),
    (
        "0008_sources",
        """
        -- What a build builds (bass.store.builds.Source): the pushed branch or tag, the
        -- commit asked for (or a ref to resolve), the commit before the push and the
        -- files the forge listed (for the changeset), what the forge says of the head
        -- commit, and the build a rerun repeats.
        ALTER TABLE builds ADD COLUMN branch TEXT;
        ALTER TABLE builds ADD COLUMN tag TEXT;
        ALTER TABLE builds ADD COLUMN commit_sha TEXT;
        ALTER TABLE builds ADD COLUMN ref TEXT;
        ALTER TABLE builds ADD COLUMN before_sha TEXT;
        ALTER TABLE builds ADD COLUMN changed_files TEXT;  -- JSON list, NULL: none listed
        ALTER TABLE builds ADD COLUMN commit_message TEXT;
        ALTER TABLE builds ADD COLUMN author TEXT;
        ALTER TABLE builds ADD COLUMN compare_url TEXT;
        ALTER TABLE builds ADD COLUMN rerun_of INTEGER;
        CREATE INDEX builds_branch ON builds (pipeline, branch, number);

        -- Forge deliveries already seen (their ids), so a replay queues nothing.
        CREATE TABLE deliveries (
            id TEXT PRIMARY KEY,
            received_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX deliveries_age ON deliveries (received_at);

        -- A paused pipeline's builds are queued but not handed to workers.
        CREATE TABLE pipeline_flags (
            pipeline TEXT PRIMARY KEY,
            paused INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """,
    ),
    (
        "0009_log_lines",
        """
        -- Each log record's line number in its span (1, 2, … in arrival order): what the
        -- log viewer asks for (a window of lines, a link to a line). Within a span, line
        -- order is id order, so the index serves both.
        ALTER TABLE logs ADD COLUMN line INTEGER NOT NULL DEFAULT 0;
        UPDATE logs SET line = numbered.n
            FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY trace_id, span_id ORDER BY id)
                         AS n FROM logs) AS numbered
            WHERE logs.id = numbered.id;
        DROP INDEX logs_trace;
        CREATE INDEX logs_line ON logs (trace_id, span_id, line);
        -- The last line number given in a span: retention lowers `n`, never this.
        ALTER TABLE log_counts ADD COLUMN last_line INTEGER NOT NULL DEFAULT 0;
        UPDATE log_counts SET last_line = (
            SELECT COALESCE(MAX(line), 0) FROM logs
            WHERE logs.trace_id = log_counts.trace_id AND logs.span_id = log_counts.span_id);

        -- Search sees lines as a reader does: without colour codes and other escapes,
        -- carriage-return progress collapsed (bass.ansi.plain); lines are stored as sent.
        INSERT INTO logs_fts (logs_fts, rowid, body, trace_id)
            SELECT 'delete', id, body, trace_id FROM logs WHERE bass_plain(body) != body;
        INSERT INTO logs_fts (rowid, body, trace_id)
            SELECT id, bass_plain(body), trace_id FROM logs WHERE bass_plain(body) != body;
        """,
    ),
    (
        "0010_traces",
        """
        -- The Traces and Services pages (bass.store.traces) read root spans newest first
        -- with what their filters look at from this index alone; it replaces
        -- spans_start, whose queries (retention's) it serves too. parent_span_id is one
        -- of its columns: else SQLite reads the table to check the index's WHERE.
        DROP INDEX spans_start;
        CREATE INDEX spans_roots ON spans (start_ns, trace_id, parent_span_id, service_name,
                                           end_ns, status_code, bass_status)
            WHERE parent_span_id = '';
        """,
    ),
    (
        "0011_log_blocks",
        """
        -- Log records as blocks (bass.store.logs): the records of one span that came
        -- together, compressed in one row, `id` the id of the first. The span index
        -- serves the log viewer (lines by number) and covers what paging reads; the
        -- trace index a whole build's records in arrival (id) order.
        CREATE TABLE log_blocks (
            id INTEGER PRIMARY KEY,
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            first_line INTEGER NOT NULL,
            n INTEGER NOT NULL,
            max_severity INTEGER NOT NULL,
            data BLOB NOT NULL              -- last: reading the others skips it
        );
        CREATE INDEX log_blocks_span ON log_blocks (trace_id, span_id, first_line, n);
        CREATE INDEX log_blocks_trace ON log_blocks (trace_id);
        -- Which blocks hold which words: no copy of the text (content=''), no positions
        -- (detail=none), no sizes (columnsize=0). Rows are added and deleted (with the
        -- text as indexed) by bass.store.logs. A change to bass.ansi.plain that changes
        -- what is indexed needs a migration that indexes every block anew.
        CREATE VIRTUAL TABLE log_text USING fts5 (
            body, content = '', detail = none, columnsize = 0
        );
        """,
        logs_into_blocks,
    ),
    (
        "0012_pruned_builds",
        """
        -- Builds retention removed: what their pages say then, and the trace id to look
        -- them up by where the telemetry was forwarded (bass.store.retention). The
        -- newest PRUNED_KEPT are kept.
        CREATE TABLE pruned_builds (
            pipeline TEXT NOT NULL,
            number INTEGER NOT NULL,
            trace_id TEXT NOT NULL,
            state TEXT NOT NULL,
            finished_at REAL,
            pruned_at REAL NOT NULL,
            PRIMARY KEY (pipeline, number)
        ) WITHOUT ROWID;
        CREATE INDEX pruned_builds_trace ON pruned_builds (trace_id);
        CREATE INDEX pruned_builds_at ON pruned_builds (pruned_at);
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database has not seen; returns their names."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    conn.create_function("bass_plain", 1, ansi.plain, deterministic=True)
    # A plain cursor: the connection may hand rows out as dicts (bass.store.db does).
    cursor = conn.cursor()
    cursor.row_factory = None
    done = {row[0] for row in cursor.execute("SELECT name FROM migrations")}
    applied = []
    for name, ddl, *steps in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(ddl):
                conn.execute(statement)
            for step in steps:  # what SQL alone cannot do, in the same transaction
                step(conn)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def statements(ddl: str) -> list[str]:
    """Split a migration into its statements, each ending at a `;` that SQLite's own
    tokenizer says completes it: a `;` or `--` inside a string literal, a comment or a
    trigger body does not end a statement. (executescript() would commit on its own;
    splitting keeps the migration one transaction.) Text after the last `;` is a last
    statement; when it is only comments, executing it does nothing."""
    found, start = [], 0
    for end, char in enumerate(ddl):
        if char == ";" and sqlite3.complete_statement(ddl[start : end + 1]):
            found.append(ddl[start : end + 1].strip())
            start = end + 1
    if ddl[start:].strip():
        found.append(ddl[start:].strip())
    return found
