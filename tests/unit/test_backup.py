"""`bass backup`, `bass restore` and `bass db check` on real SQLite files made by bass's
store: copies that open and pass the checks, damage found and named, usage errors that
name the file and write nothing. (Under a running server's load, and restore refused
while one runs: tests/e2e/test_backup_under_load.py.)"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bass import cli
from bass.store import backup as backups
from bass.store import logs, schema
from bass.store.db import Database

TRACE = "a" * 32
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def fill(path: Path, requests: int = 60) -> None:
    """A database as bass serve leaves it: log records of several steps in blocks, with
    their search index, each request's records written as the receiver writes them."""
    db = Database(path)
    try:
        for r in range(requests):
            records = [
                (TRACE, f"{i % 5 + 1:016x}", r * 100 + i, 9, "INFO",
                 f"line {r}.{i} {WORDS[(r + i) % 8]}{r * i} {WORDS[i % 8]}", "{}",
                 '{"service.name": "bass:pipeline:demo"}')
                for i in range(30)
            ]  # fmt: skip
            db.write(logs.insert_logs, records)
    finally:
        db.close()


def fill_older(path: Path, monkeypatch: Any) -> None:
    """A database of the bass before log blocks (migration 0011): a row per record."""
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:10])
    Database(path).close()
    monkeypatch.undo()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO logs (trace_id, span_id, time_ns, body, line) VALUES (?, ?, ?, ?, ?)",
            [(TRACE, "1" * 16, n, f"old line {n}", n) for n in range(1, 101)],
        )


def execute(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def bass(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def lines_of(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        logs.attach_view(conn)
        return [r[0] for r in conn.execute("SELECT body FROM logs ORDER BY id")]
    finally:
        conn.close()


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "bass.db"
    fill(path)
    return path


def test_a_backup_is_a_checked_copy_of_its_own(db: Path, tmp_path: Path, capsys: Any) -> None:
    dest = tmp_path / "copies" / "monday.db"
    dest.parent.mkdir()
    code, out, err = bass(capsys, "backup", str(dest), "--db", str(db))
    assert code == 0, err
    assert out.startswith(f"{db} → {dest}: ") and "checked ok" in out
    assert err == ""  # not a terminal: no progress
    assert files(dest.parent) == ["monday.db"]  # no temporary file left, no -wal beside it
    assert lines_of(dest) == lines_of(db) and len(lines_of(db)) == 60 * 30
    conn = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    try:  # a file of its own: rollback journal mode, opened read-only without a -wal
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        found = conn.execute("SELECT count(*) FROM log_text WHERE log_text MATCH 'zeta*'")
        assert found.fetchone()[0] > 0
    finally:
        conn.close()
    assert files(dest.parent) == ["monday.db"]
    assert backups.check(dest).healthy


def test_a_backup_never_replaces_a_file_unless_forced(db: Path, tmp_path: Path, capsys) -> None:
    dest = tmp_path / "taken.db"
    dest.write_text("precious")
    code, out, err = bass(capsys, "backup", str(dest), "--db", str(db))
    assert (code, out) == (2, "")
    assert err == f"bass backup: {dest}: exists (--force replaces it)\n"
    assert dest.read_text() == "precious"
    code, _, err = bass(capsys, "backup", str(dest), "--db", str(db), "--force")
    assert code == 0, err
    assert lines_of(dest) == lines_of(db)


def test_progress_is_the_copy_growing_to_the_source_size(db: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    report = backups.backup(db, tmp_path / "b.db", progress=lambda *p: seen.append(p))
    expected = report.page_count * report.page_size
    assert seen[-1] == (expected, expected) == ((tmp_path / "b.db").stat().st_size,) * 2
    assert all(done <= total == expected for done, total in seen)


def test_an_interrupted_backup_leaves_nothing(db: Path, tmp_path: Path, monkeypatch) -> None:
    dest_dir = tmp_path / "out"
    dest_dir.mkdir()

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the copy, before it was put in place

    monkeypatch.setattr(backups, "check", interrupted)
    with pytest.raises(KeyboardInterrupt):
        backups.backup(db, dest_dir / "b.db")
    assert files(dest_dir) == []


def test_a_killed_backup_leaves_no_file_at_path(tmp_path: Path) -> None:
    """SIGKILL while copying: at worst a hidden temporary file, never a half PATH."""
    db = tmp_path / "bass.db"
    fill(db, requests=400)
    dest = tmp_path / "out" / "b.db"
    dest.parent.mkdir()
    code = (
        "import os, sys; from pathlib import Path; from bass.store import backup as b\n"
        "b.check = lambda path: os.kill(os.getpid(), 9)\n"  # killed once the copy is made
        f"b.backup(Path({str(db)!r}), Path({str(dest)!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr
    left = files(dest.parent)
    assert "b.db" not in left and all(n.startswith(".b.db.") for n in left)


def test_the_index_is_checked_beside_the_database_not_in_tmpdir(
    db: Path, capsys: Any, monkeypatch: Any
) -> None:
    """$TMPDIR is often small (in memory): the index's scratch copy goes beside the
    database, and none is left there."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(db.parent / "no-such-tmpdir"))
    before = sorted(p.name for p in db.parent.iterdir())
    code, out, err = bass(capsys, "db", "check", "--db", str(db))
    assert (code, err) == (0, ""), out
    assert "fts5 integrity-check log_text" in out
    assert sorted(p.name for p in db.parent.iterdir()) == before


def test_db_check_reports_a_healthy_database(db: Path, capsys: Any) -> None:
    code, out, err = bass(capsys, "db", "check", "--db", str(db))
    assert (code, err) == (0, "")
    assert (
        f"{db}: " in out
        and f"schema: {len(schema.MIGRATIONS)} of {len(schema.MIGRATIONS)} migrations" in out
    )
    for check in ("integrity_check", "foreign_key_check", "fts5 integrity-check log_text"):
        assert any(line.split() == [*check.split(), "ok"] for line in out.splitlines()), out
    rows = [line.split() for line in out.splitlines()[5:]]
    sizes = {row[0]: row[1] for row in rows if len(row) == 6 and row[2].replace(",", "").isdigit()}
    assert sizes["log_blocks"] == "table" and sizes["log_blocks_trace"] == "index"
    assert sizes["log_text_data"] == "table"
    assert out.rstrip().endswith("healthy")


def test_db_check_names_a_damaged_index(db: Path, capsys: Any) -> None:
    conn = sqlite3.connect(db)  # bass closed it: no -wal, every page in the file
    pages = [
        r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'log_blocks_trace'")
    ]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    assert len(pages) > 1
    with open(db, "r+b") as f:
        for page in pages[1:]:  # its pages below the root
            f.seek((page - 1) * size)
            f.write(b"\xff" * size)
    code, out, err = bass(capsys, "db", "check", "--db", str(db))
    assert code == 1, out + err
    assert "integrity_check                FAILED:" in out
    assert "is log_blocks_trace's)" in out
    assert "fts5 integrity-check log_text  ok" in out
    assert out.rstrip().splitlines()[-1].startswith("NOT healthy")


def test_db_check_finds_a_damaged_search_index(db: Path, capsys: Any) -> None:
    conn = sqlite3.connect(db)
    # a leaf page of the index's segments (rows 1 and 10 are its averages and structure)
    conn.execute(
        "DELETE FROM log_text_data WHERE id = "
        "(SELECT id FROM log_text_data WHERE id > 10 ORDER BY id LIMIT 1 OFFSET 3)"
    )
    conn.commit()
    conn.close()
    code, out, err = bass(capsys, "db", "check", "--db", str(db))
    assert code == 1, out + err
    assert "fts5 integrity-check log_text  FAILED:" in out
    assert "database disk image is malformed" in out
    assert "integrity_check                ok" in out  # SQLite's own check sees no damage


@pytest.mark.parametrize("command", [["backup", "{out}"], ["restore", "{other}"], ["db", "check"]])
@pytest.mark.parametrize("kind", ["missing", "not a database", "not bass's", "newer"])
def test_unusable_files_are_named_in_one_line_and_nothing_is_written(
    command: list[str], kind: str, tmp_path: Path, capsys: Any
) -> None:
    bad = tmp_path / "bad.db"
    if kind == "not a database":
        bad.write_bytes(b"this is no database\n" * 100)
    elif kind == "not bass's":
        execute(bad, "CREATE TABLE t (x)")
    elif kind == "newer":
        fill(bad, requests=1)
        execute(bad, "INSERT INTO migrations VALUES ('0099_from_the_future', 0)")
    other = tmp_path / "other.db"
    fill(other, requests=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    args = [a.format(out=tmp_path / "out.db", other=bad) for a in command]
    # restore reads the backup; the others read --db
    args += ["--db", str(other if command[0] == "restore" else bad)]

    code, out, err = bass(capsys, *args)

    name = "db check" if command[0] == "db" else command[0]
    assert (code, out) == (2, ""), err
    assert err.startswith(f"bass {name}: {bad}: ") and err.count("\n") == 1
    expected = {"missing": "no such file", "not a database": "not an SQLite database",
                "not bass's": "not a bass database", "newer": "made by a newer bass"}  # fmt: skip
    assert expected[kind] in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_restore_keeps_the_replaced_database_with_its_log(tmp_path: Path, capsys: Any) -> None:
    backup = tmp_path / "backup.db"
    fill(backup, requests=2)
    target = tmp_path / "live" / "bass.db"
    target.parent.mkdir()
    # a server killed with records only in its write-ahead log (never checkpointed)
    killed = (
        f"import os, sqlite3; c = sqlite3.connect({str(target)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute('CREATE TABLE before_the_restore (x)')\n"
        "c.execute(\"INSERT INTO before_the_restore VALUES ('only in the log')\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", killed], check=True, timeout=60)
    assert {"bass.db-wal", "bass.db-shm"} <= set(files(target.parent))

    code, out, err = bass(capsys, "restore", str(backup), "--db", str(target))

    assert code == 0, err
    (kept,) = target.parent.glob("bass.db.before-restore-*[0-9]")
    assert out == f"{backup} → {target}: checked ok; the replaced database is kept as {kept}\n"
    assert files(target.parent) == sorted(["bass.db", kept.name, f"{kept.name}-wal"])
    assert lines_of(target) == lines_of(backup)
    with contextlib.closing(sqlite3.connect(kept)) as conn:  # complete: its log came with it
        assert conn.execute("SELECT x FROM before_the_restore").fetchall() == [("only in the log",)]


def test_restore_without_keeping(tmp_path: Path, capsys: Any) -> None:
    backup, target = tmp_path / "backup.db", tmp_path / "live" / "bass.db"
    fill(backup, requests=2)
    target.parent.mkdir()
    fill(target, requests=5)
    (target.parent / "bass.db-shm").write_bytes(b"stale")
    code, out, err = bass(capsys, "restore", str(backup), "--db", str(target), "--no-keep")
    assert code == 0, err
    assert "kept" not in out
    assert files(target.parent) == ["bass.db"]
    assert lines_of(target) == lines_of(backup)


def test_a_damaged_backup_is_not_restored(tmp_path: Path, capsys: Any) -> None:
    backup, target = tmp_path / "backup.db", tmp_path / "live" / "bass.db"
    fill(backup, requests=20)
    execute(backup, "DELETE FROM log_text_data WHERE id > 10")
    target.parent.mkdir()
    fill(target, requests=3)
    before = target.read_bytes()
    code, out, err = bass(capsys, "restore", str(backup), "--db", str(target))
    assert (code, out) == (1, "")
    assert err.startswith(f"bass restore: {backup} failed its check, {target} left as it was:")
    assert "fts5 integrity-check log_text: " in err
    assert files(target.parent) == ["bass.db"] and target.read_bytes() == before


def test_an_older_backup_is_migrated_by_the_next_start(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    backup, target = tmp_path / "old.db", tmp_path / "bass.db"
    fill_older(backup, monkeypatch)
    code, out, err = bass(capsys, "db", "check", "--db", str(backup))
    assert (
        code == 0
        and f"schema: 10 of {len(schema.MIGRATIONS)} migrations (bass serve migrates it" in out
    )
    code, out, err = bass(capsys, "restore", str(backup), "--db", str(target))
    assert code == 0, err
    assert "bass serve migrates it to this schema when it starts" in out
    Database(target).close()  # what bass serve does first
    with contextlib.closing(sqlite3.connect(target)) as conn:
        assert conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(
            schema.MIGRATIONS
        )
    assert lines_of(target) == [f"old line {n}" for n in range(1, 101)]
    assert backups.check(target).healthy
