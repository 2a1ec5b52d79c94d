"""The migration runner: statements split where SQLite says they end, each migration
applied once, in one transaction, and recorded only when every statement ran."""

from __future__ import annotations

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
    assert applied == [name for name, _ in schema.MIGRATIONS]


def test_0009_numbers_each_spans_lines_and_indexes_them_without_escapes(tmp_path, monkeypatch):
    """A database from before 0009 gets line numbers per span in arrival order, a last
    line per span, and a search index that finds coloured words as a reader reads them;
    the next lines continue the numbering."""
    from bass.store import telemetry

    names = [name for name, _ in schema.MIGRATIONS]
    before = schema.MIGRATIONS[: names.index("0009_log_lines")]
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    monkeypatch.setattr(schema, "MIGRATIONS", before)
    schema.migrate(conn)
    rows = [("t1", "a", "one"), ("t1", "b", "\x1b[31mE501\x1b[0m line too long"),
            ("t1", "a", "two"), ("t2", "a", "other"), ("t1", "a", "10%\r100% done")]  # fmt: skip
    for n, (trace, span, body) in enumerate(rows, 1):
        conn.execute(
            "INSERT INTO logs (id, trace_id, span_id, time_ns, body) VALUES (?, ?, ?, 1, ?)",
            (n, trace, span, body),
        )
        conn.execute("INSERT INTO logs_fts (rowid, trace_id, body) VALUES (?, ?, ?)",
                     (n, trace, body))  # fmt: skip
        conn.execute(
            "INSERT INTO log_counts (trace_id, span_id, n) VALUES (?, ?, 1) "
            "ON CONFLICT DO UPDATE SET n = n + 1",
            (trace, span),
        )
    monkeypatch.undo()
    assert schema.migrate(conn)[0] == "0009_log_lines"
    conn.row_factory = sqlite3.Row
    lines = conn.execute("SELECT id, line FROM logs ORDER BY id").fetchall()
    assert [r["line"] for r in lines] == [1, 1, 2, 1, 3]
    assert telemetry.last_lines(conn, "t1") == {"a": 3, "b": 1}
    assert telemetry.line_hits(conn, "t1", "b", "E501") == [1]
    assert telemetry.line_hits(conn, "t1", "a", "100%") == [3]
    assert telemetry.line_hits(conn, "t1", "a", "10%") == []
    assert conn.execute("INSERT INTO logs_fts (logs_fts) VALUES ('integrity-check')")
    telemetry.insert_logs(conn, [("t1", "a", 2, 9, "INFO", "three", "{}", "{}")])
    assert telemetry.log_lines(conn, "t1", "a", 3, 4)[-1]["body"] == "three"
    assert telemetry.last_lines(conn, "t1")["a"] == 4
