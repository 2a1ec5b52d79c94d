"""The migration runner: statements split where SQLite says they end, each migration
applied once, in one transaction, and recorded only when every statement ran."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bass.store import schema


def _migrate(path: Path, migrations: list[tuple[str, str]], monkeypatch) -> list[str]:
    monkeypatch.setattr(schema, "MIGRATIONS", migrations)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return schema.migrate(conn)
    finally:
        conn.close()


def test_dashes_and_semicolons_inside_strings_and_comments_are_kept(tmp_path, monkeypatch):
    migrations = [
        (
            "0001_t",
            """
            CREATE TABLE t (v TEXT NOT NULL);  -- a comment; with a semicolon
            INSERT INTO t (v) VALUES ('a--b');
            /* a block comment; also with one */
            INSERT INTO t (v) VALUES ('c;d');
            INSERT INTO t (v) VALUES ('e'' -- f')  -- the last one has no ';'
            """,
        )
    ]
    assert _migrate(tmp_path / "a.db", migrations, monkeypatch) == ["0001_t"]
    conn = sqlite3.connect(tmp_path / "a.db")
    values = [r[0] for r in conn.execute("SELECT v FROM t ORDER BY rowid")]
    conn.close()
    assert values == ["a--b", "c;d", "e' -- f"]


def test_a_trigger_body_is_one_statement():
    ddl = """
    CREATE TABLE t (v INTEGER);
    CREATE TRIGGER t_double AFTER INSERT ON t BEGIN
        UPDATE t SET v = v * 2 WHERE rowid = new.rowid;
        SELECT 1;
    END;
    -- nothing after this but a comment
    """
    found = schema.statements(ddl)
    assert len(found) == 3
    assert found[1].startswith("CREATE TRIGGER") and found[1].endswith("END;")


def test_a_failing_migration_is_not_recorded_and_changes_nothing(tmp_path, monkeypatch):
    migrations = [
        ("0001_ok", "CREATE TABLE t (v TEXT);"),
        ("0002_bad", "INSERT INTO t VALUES ('x'); INSERT INTO missing VALUES (1);"),
    ]
    with pytest.raises(sqlite3.OperationalError, match="missing"):
        _migrate(tmp_path / "b.db", migrations, monkeypatch)
    conn = sqlite3.connect(tmp_path / "b.db")
    assert [r[0] for r in conn.execute("SELECT name FROM migrations")] == ["0001_ok"]
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    conn.close()
    # fixed, it applies on the next start; what was applied is not applied again
    migrations[1] = ("0002_bad", "INSERT INTO t VALUES ('x');")
    assert _migrate(tmp_path / "b.db", migrations, monkeypatch) == ["0002_bad"]
    assert _migrate(tmp_path / "b.db", migrations, monkeypatch) == []


def test_every_shipped_migration_applies_to_a_new_file(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    applied = schema.migrate(conn)
    conn.close()
    assert applied == [name for name, *_ in schema.MIGRATIONS]


def _store_before(path, migration, monkeypatch):
    """A database file as bass left it before `migration`."""
    names = [name for name, *_ in schema.MIGRATIONS]
    conn = sqlite3.connect(path, isolation_level=None)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[: names.index(migration)])
    schema.migrate(conn)
    return conn


def _old_logs(conn, rows):
    """Log rows as bass stored them before 0011: a row each, indexed, counted."""
    for n, (trace, span, body, *more) in enumerate(rows, 1):
        attributes = more[0] if more else "{}"
        conn.execute(
            "INSERT INTO logs (id, trace_id, span_id, time_ns, severity_number, body, "
            "attributes) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (n, trace, span, 1000 + n, 9 + n % 2 * 8, body, attributes),
        )
        conn.execute("INSERT INTO logs_fts (rowid, trace_id, body) VALUES (?, ?, ?)",
                     (n, trace, body))  # fmt: skip
        conn.execute(
            "INSERT INTO log_counts (trace_id, span_id, n) VALUES (?, ?, 1) "
            "ON CONFLICT DO UPDATE SET n = n + 1",
            (trace, span),
        )


def test_0009_numbers_each_spans_lines_and_indexes_them_without_escapes(tmp_path, monkeypatch):
    """A database from before 0009 gets line numbers per span in arrival order, a last
    line per span, and a search index that finds coloured words as a reader reads them."""
    names = [name for name, *_ in schema.MIGRATIONS]
    before_blocks = schema.MIGRATIONS[: names.index("0011_log_blocks")]
    conn = _store_before(tmp_path / "old.db", "0009_log_lines", monkeypatch)
    rows = [("t1", "a", "one"), ("t1", "b", "\x1b[31mE501\x1b[0m line too long"),
            ("t1", "a", "two"), ("t2", "a", "other"), ("t1", "a", "10%\r100% done")]  # fmt: skip
    _old_logs(conn, rows)
    monkeypatch.setattr(schema, "MIGRATIONS", before_blocks)
    assert schema.migrate(conn)[0] == "0009_log_lines"
    lines = conn.execute("SELECT line FROM logs ORDER BY id").fetchall()
    assert [line for (line,) in lines] == [1, 1, 2, 1, 3]
    assert conn.execute("SELECT span_id, last_line FROM log_counts WHERE trace_id = 't1' "
                        "ORDER BY 1").fetchall() == [("a", 3), ("b", 1)]  # fmt: skip
    found = conn.execute("SELECT rowid FROM logs_fts WHERE logs_fts MATCH 'E501'").fetchall()
    assert found == [(2,)]
    assert conn.execute("INSERT INTO logs_fts (logs_fts) VALUES ('integrity-check')")


def test_0011_moves_every_record_into_blocks_that_read_and_search_alike(
    tmp_path, monkeypatch, caplog
):
    """A database from before 0011 keeps every record (time, severity, body, attributes,
    line number) in blocks; searches find what they found; the `logs` table and its
    index are gone; the next lines continue the numbering."""
    from bass.store import logs
    from bass.store.db import _dict_factory

    conn = _store_before(tmp_path / "old.db", "0011_log_blocks", monkeypatch)
    rows = [("t1", "a", "one"), ("t1", "b", "\x1b[31mE501\x1b[0m line too long"),
            ("t1", "a", "two", '{"log.iostream":"stderr"}'), ("t2", "a", "other"),
            ("t1", "a", "10%\r100% done")]  # fmt: skip
    rows += [("t3", "s", f"line {n} of many") for n in range(logs.BLOCK_LINES + 10)]
    _old_logs(conn, rows)
    conn.execute(
        "UPDATE logs SET line = numbered.n FROM (SELECT id, ROW_NUMBER() OVER "
        "(PARTITION BY trace_id, span_id ORDER BY id) AS n FROM logs) AS numbered "
        "WHERE logs.id = numbered.id"
    )
    conn.execute("UPDATE log_counts SET last_line = n")
    conn.row_factory = _dict_factory
    before = {t: conn.execute("SELECT * FROM logs WHERE trace_id = ? ORDER BY id", (t,)).fetchall()
              for t in ("t1", "t2", "t3")}  # fmt: skip
    monkeypatch.undo()

    with caplog.at_level("INFO", logger="bass.store"):
        assert schema.migrate(conn)[0] == "0011_log_blocks"  # and those after it
    said = [r.getMessage() for r in caplog.records]
    total = f"{len(rows):,}"
    assert said[0] == f"migrating {total} log records into blocks (once; this can take a while)"
    assert said[-1] == f"migrated {total} log records into blocks"

    tables = {r["name"] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "logs" not in tables and "logs_fts" not in tables
    for trace_id, old in before.items():
        new = logs.logs_of(conn, trace_id, limit=100_000)
        assert len(new) == len(old)
        # each span's in order (rows taken as requests: a span's rows of one together)
        old.sort(key=lambda r: (r["span_id"], r["line"]))
        new.sort(key=lambda r: (r["span_id"], r["line"]))
        for was, now in zip(old, new, strict=True):
            was["attributes"] = json.loads(was["attributes"])
            assert {k: now[k] for k in was if k != "id"} == {k: was[k] for k in was if k != "id"}
    ids = [r["id"] for r in logs.logs_of(conn, "t3", limit=100_000)]
    assert ids == sorted(set(ids))  # ids are given anew, in arrival order
    assert logs.line_hits(conn, "t1", "b", "E501") == [1]
    assert logs.line_hits(conn, "t1", "a", "100%") == [3]
    assert logs.line_hits(conn, "t1", "a", "10%") == []
    assert logs.line_hits(conn, "t3", "s", f"{logs.BLOCK_LINES + 5}") == [logs.BLOCK_LINES + 6]
    assert logs.log_lines(conn, "t1", "a", 2, 2)[0]["stream"] == "stderr"
    blocks = conn.execute("SELECT COUNT(*) AS blocks, SUM(n) AS n, MAX(n) AS most FROM "
                          "log_blocks WHERE trace_id = 't3'").fetchone()  # fmt: skip
    assert blocks["n"] == logs.BLOCK_LINES + 10 and blocks["blocks"] > 1
    assert blocks["most"] <= logs.BLOCK_LINES
    logs.insert_logs(conn, [("t1", "a", 2, 9, "INFO", "three", "{}", "{}")])
    assert logs.log_lines(conn, "t1", "a", 3, 4)[-1]["body"] == "three"
    assert logs.last_lines(conn, "t1")["a"] == 4
    conn.close()
