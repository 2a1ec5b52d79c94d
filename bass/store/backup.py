"""Backups, restores and checks of the SQLite file, while `bass serve` may be using it.

A backup is one step of SQLite's online backup: one read transaction on the source, so
it is consistent and never restarts, however much the server writes meanwhile (a
paged backup starts again whenever another connection writes between its steps, and
under a steady ingest may never finish). It is written to a temporary file beside its
destination, checked, synced and only then renamed: a killed backup leaves no half file.

Whether a process has the database open is asked of SQLite's own locks: a connection to
a database in WAL mode (bass's) holds a read lock on SQLite's lock bytes for as long as
it is open, so a write lock there is refused while a `bass serve` runs (see `locked`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bass.store import schema

Progress = Callable[[int, int], None]  # (bytes written, bytes expected)

# SQLite's lock bytes (the pending, reserved and shared ones) start at 1 GiB in every
# database file, whatever its size; a process with the database open holds a read lock
# in that range.
LOCK_START, LOCK_LENGTH = 0x40000000, 512
FTS_SHADOWS = ("_data", "_idx", "_config", "_docsize", "_content")


class Unusable(Exception):
    """The file cannot be used as asked (missing, not a bass database, made by a newer
    bass, in use, in the way): a usage error, nothing was written. The message names
    the file."""


@dataclass
class Report:
    """What `check` found: problems (empty when healthy), each check's outcome, the
    schema's state and the space each table and index takes."""

    path: Path
    problems: list[str] = field(default_factory=list)
    checks: list[tuple[str, list[str]]] = field(default_factory=list)  # (what, its problems)
    migrations: tuple[int, int] = (0, 0)  # (applied, known to this bass)
    page_size: int = 0
    page_count: int = 0
    free_pages: int = 0
    sizes: list[dict] | None = None  # None: this SQLite has no dbstat

    @property
    def healthy(self) -> bool:
        return not self.problems


def open_database(path: Path) -> sqlite3.Connection:
    """A connection to an existing bass database this bass can read, that creates
    nothing: raises Unusable when the file is missing, not a database, not bass's, or
    of a newer schema. Read-write when it may be (so that closing the last connection
    folds the write-ahead log in and removes it, as bass does), else read-only."""
    if not path.exists():
        raise Unusable(f"{path}: no such file")
    if not path.is_file():
        raise Unusable(f"{path}: not a file")
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    uri = f"{path.resolve().as_uri()}?mode={'rw' if writable else 'ro'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "migrations" not in names:
            raise Unusable(f"{path}: not a bass database (it has no migrations table)")
        migrations_of(conn, path)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise Unusable(f"{path}: not an SQLite database ({e})") from e
    except Unusable:
        conn.close()
        raise
    return conn


def migrations_of(conn: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """(migrations applied, migrations this bass knows); Unusable if the database has
    one this bass does not know: a newer bass made it."""
    known = [m[0] for m in schema.MIGRATIONS]
    applied = {r[0] for r in conn.execute("SELECT name FROM migrations")}
    newer = sorted(applied - set(known))
    if newer:
        raise Unusable(
            f"{path}: made by a newer bass (schema {', '.join(newer)}, which this bass "
            "does not know): use that bass or a newer one"
        )
    return len(applied), len(known)


def check(path: Path) -> Report:
    """PRAGMA integrity_check, FTS5's integrity-check of every FTS5 table, PRAGMA
    foreign_key_check and the space per table and index (dbstat). Changes nothing: the
    database may be in use."""
    report = Report(path)
    conn = open_database(path)
    try:
        report.migrations = migrations_of(conn, path)
        _outcome(report, "integrity_check", _integrity(conn))
        try:
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            orphans = [f"{t} row {row}: no such {parent} row" for t, row, parent, _ in broken]
        except sqlite3.DatabaseError as e:
            orphans = [str(e)]
        _outcome(report, "foreign_key_check", orphans)
        report.page_size, report.page_count, report.free_pages = (
            conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_size", "page_count", "freelist_count")
        )
        report.sizes, unreadable = _sizes(conn)
        if unreadable:
            _outcome(report, "dbstat", unreadable)
        fts = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
            "AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%' ORDER BY name"
        ).fetchall()
        # while `conn` is open: the last connection to close tidies the -wal and -shm
        for name, problem in _fts_check(path, fts):
            _outcome(report, f"fts5 integrity-check {name}", [problem] if problem else [])
    finally:
        conn.close()
    return report


def _outcome(report: Report, what: str, problems: list[str]) -> None:
    report.checks.append((what, problems))
    report.problems += [f"{what}: {p}" for p in problems]


def _integrity(conn: sqlite3.Connection) -> list[str]:
    """integrity_check's findings. It gives up at a page it cannot read (an error, no
    findings): then each table is checked on its own, to name it, and quick_check says
    which pages. A `Tree N` or `Page N` is named with its table or index."""
    try:
        found = [r[0] for r in conn.execute("PRAGMA integrity_check(100)")]
        return [] if found == ["ok"] else _named(conn, found)
    except sqlite3.DatabaseError as e:
        problems = [str(e)]
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        try:
            found = [r[0] for r in conn.execute(f"PRAGMA integrity_check({_quoted(table)})")]
        except sqlite3.DatabaseError as e:
            found = [str(e)]
        if found != ["ok"]:
            problems.append(f"table {table} or an index of it: {'; '.join(found)}")
    with contextlib.suppress(sqlite3.DatabaseError):  # what it adds, if it can
        found = "\n".join(r[0] for r in conn.execute("PRAGMA quick_check(100)")).splitlines()
        problems += _named(conn, [f for f in found if f and f != "ok" and f[0] != "*"])
    return problems


def _named(conn: sqlite3.Connection, found: list[str]) -> list[str]:
    """The lines, each `Tree N` (a root page) or `Page N` with whose page it is."""
    pages = {}
    for line in found:
        words = line.replace(":", " ").split()
        if len(words) > 1 and words[0] in ("Tree", "Page") and words[1].isdigit():
            pages[line] = int(words[1])
    owners = dict(conn.execute("SELECT rootpage, name FROM sqlite_master WHERE rootpage > 0"))
    if any(line.startswith("Page") for line in pages):  # one walk of the file
        marks = ", ".join("?" * len(pages))
        query = f"SELECT pageno, name FROM dbstat WHERE pageno IN ({marks})"
        with contextlib.suppress(sqlite3.DatabaseError):
            owners |= dict(conn.execute(query, list(pages.values())))
    return [
        f"{line} (page {pages[line]} is {owners.get(pages[line], 'unknown')}'s)"
        if line in pages else line
        for line in found
    ]  # fmt: skip


def _quoted(name: str) -> str:
    """An identifier as SQL: the names come from the file, which may be anyone's."""
    return '"' + name.replace('"', '""') + '"'


def _sizes(conn: sqlite3.Connection) -> tuple[list[dict] | None, list[str]]:
    """Each table's and index's pages and bytes, largest first (None without dbstat),
    and the tables and indexes whose pages could not be read."""
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master"))
    found, unreadable = [], []
    for name, kind in [("sqlite_schema", "schema"), *kinds.items()]:
        try:
            row = conn.execute(
                "SELECT pageno, pgsize FROM dbstat WHERE name = ? AND aggregate = TRUE", (name,)
            ).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # built without SQLITE_ENABLE_DBSTAT_VTAB
                return None, []
            unreadable.append(f"{kind} {name}: {e}")
        except sqlite3.DatabaseError as e:
            unreadable.append(f"{kind} {name}: its pages cannot be read ({e})")
        else:
            if row is not None and row[0]:  # a view, a virtual table: no pages
                found.append({"name": name, "kind": kind, "pages": row[0], "bytes": row[1]})
    return sorted(found, key=lambda r: (-r["bytes"], r["name"])), unreadable


def _scratch_dir(path: Path) -> tempfile.TemporaryDirectory[str]:
    """Where the index's copy goes: beside the database, where there is room for one
    (a `$TMPDIR` in memory may have none); `$TMPDIR` where that directory is not ours."""
    try:
        return tempfile.TemporaryDirectory(prefix=".bass-check-", dir=path.resolve().parent)
    except OSError:
        return tempfile.TemporaryDirectory(prefix="bass-check-")


def _fts_check(path: Path, tables: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """(table, problem or "") for each FTS5 table. FTS5's integrity-check is an INSERT,
    which would hold the database's write lock (and stop a running server's writes) for
    as long as it reads the index: it runs instead on a copy of the table's shadow
    tables, taken in one read transaction, in a scratch file. For a contentless table
    (bass's `log_text`) it checks the index's own structure: its segments, their pages
    and the doclist indexes; there is no content to compare it with. The scratch file
    sits beside the database (see `_scratch_dir`)."""
    if not tables:
        return
    with _scratch_dir(path) as scratch_dir:
        scratch = Path(scratch_dir, "fts.db").as_uri()  # a URI connection: ATTACH takes one
        unreadable = {}
        with contextlib.closing(sqlite3.connect(scratch, uri=True, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("ATTACH ? AS source", (f"{path.resolve().as_uri()}?mode=ro",))
            shadows = {r[0] for r in conn.execute("SELECT name FROM source.sqlite_master")}
            conn.execute("BEGIN")  # one snapshot of the source for every table
            for name, sql in tables:
                conn.execute(sql)
                try:
                    for shadow in (_quoted(name + s) for s in FTS_SHADOWS if name + s in shadows):
                        conn.execute(f"DELETE FROM main.{shadow}")
                        conn.execute(f"INSERT INTO main.{shadow} SELECT * FROM source.{shadow}")
                except sqlite3.DatabaseError as e:
                    unreadable[name] = f"its tables cannot be read ({e})"
            conn.execute("COMMIT")
        # a new connection: the one that made the tables may hold their old structure
        with contextlib.closing(sqlite3.connect(scratch, uri=True, isolation_level=None)) as conn:
            for name, _ in tables:
                if name in unreadable:
                    yield name, unreadable[name]
                    continue
                try:
                    table = _quoted(name)
                    conn.execute(f"INSERT INTO {table} ({table}) VALUES ('integrity-check')")
                    yield name, ""
                except sqlite3.DatabaseError as e:
                    yield name, str(e)


def backup(
    source: Path, dest: Path, *, force: bool = False, progress: Progress | None = None
) -> Report:
    """Copy the database at `source` to `dest`, consistent as of one moment, while it
    may be in use; returns the check of the copy. Raises Unusable (nothing written) when
    the source cannot be read or `dest` exists (unless `force`); a copy that fails its
    check is removed and its report returned, `dest` untouched."""
    _writable_beside(dest)
    if dest.exists() and not force:
        raise Unusable(f"{dest}: exists (--force replaces it)")
    conn = open_database(source)
    try:
        if dest.exists() and os.path.samefile(source, dest):
            raise Unusable(f"{dest}: is the database itself")
        with _staged(dest) as staged:
            copy(conn, staged, progress)
            report = check(staged)
            if report.healthy:
                _publish(staged, dest, force)
            report.path = dest
            return report
    finally:
        conn.close()


def copy(conn: sqlite3.Connection, path: Path, progress: Progress | None = None) -> None:
    """The database of `conn` into the empty file `path`, in one step of SQLite's backup
    (one read transaction: consistent, never restarted by other writers), then made an
    ordinary file of its own (rollback journal mode: nothing beside it) and synced.
    `progress(written, expected)` is called from a thread watching the file grow."""
    expected = (
        conn.execute("PRAGMA page_count").fetchone()[0]
        * conn.execute("PRAGMA page_size").fetchone()[0]
    )
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(path, expected, progress, done), name="bass-backup-progress"
    )
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as dest:
        # a scratch file until renamed: no journal, synced once at the end
        dest.execute("PRAGMA journal_mode=OFF")
        dest.execute("PRAGMA synchronous=OFF")
        if progress is not None:
            watcher.start()
        try:
            conn.backup(dest, pages=-1)  # -1: every page in one step
        finally:
            done.set()
            if progress is not None:
                watcher.join()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as dest:
        dest.execute("PRAGMA journal_mode=DELETE")  # the source's header said WAL
    _fsync(path)


def _watch(path: Path, expected: int, progress: Progress, done: threading.Event) -> None:
    while not done.wait(0.2):
        with contextlib.suppress(OSError):
            progress(min(path.stat().st_size, expected), expected)
    progress(expected, expected)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold a write lock on SQLite's lock bytes of `path`, as SQLite's own EXCLUSIVE
    lock does: refused (Unusable) while any process has the database open. Works on a
    file SQLite cannot read. Closing any other descriptor of the file in this process
    would drop the lock: do not open the file while holding it."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, LOCK_LENGTH, LOCK_START)
        except OSError as e:
            raise Unusable(
                f"{path}: in use (a bass serve, or another program, has it open): stop it first"
            ) from e
        yield
    finally:
        os.close(fd)


@dataclass
class Restored:
    report: Report  # the check of the backup as restored
    kept: Path | None  # where the replaced database went, if it was kept


def restore(
    backup_file: Path, target: Path, *, keep: bool = True, progress: Progress | None = None
) -> Restored:
    """Put a copy of `backup_file` at `target`, once it passed `check`, while no process
    has `target` open. The replaced database (with its write-ahead log) is kept as
    TARGET.before-restore-TIMESTAMP unless not `keep`; stale -wal, -shm and -journal
    files of `target` go. An older schema is migrated by the next bass serve. Raises
    Unusable (nothing changed); a backup that fails its check is reported, unused."""
    _writable_beside(target)
    conn = open_database(backup_file)
    try:
        if target.exists():
            if os.path.samefile(backup_file, target):
                raise Unusable(f"{target}: is the backup itself")
            with locked(target):  # refused at once, before the copy, while one has it open
                pass
        with _staged(target) as staged:
            copy(conn, staged, progress)
            report = check(staged)
            if not report.healthy:
                report.path = backup_file
                return Restored(report, None)
            if target.exists():  # the restored file is the replaced one's, as bass serve's
                st = target.stat()
                os.chmod(staged, stat.S_IMODE(st.st_mode))
                with contextlib.suppress(PermissionError):  # not root: the file is ours
                    os.chown(staged, st.st_uid, st.st_gid)
            # Locked only for the renames (a server opening the file meanwhile would hold
            # the one renamed away): refused if one opened it while the copy was made.
            with locked(target) if target.exists() else contextlib.nullcontext():
                kept = _set_aside(target, keep)
                _publish(staged, target, force=True)
            report.path = target
            return Restored(report, kept)
    finally:
        conn.close()


def _set_aside(target: Path, keep: bool) -> Path | None:
    """Move the database at `target` and its -wal and -journal to a kept name (or
    remove them), and remove its -shm: they would be read as the restored file's."""
    kept = None
    if keep and target.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = target.with_name(f"{target.name}.before-restore-{stamp}")
        n = 1
        while any(Path(f"{kept}{s}").exists() for s in ("", "-wal", "-journal")):
            n += 1
            kept = target.with_name(f"{target.name}.before-restore-{stamp}-{n}")
    for suffix in ("", "-wal", "-journal"):
        old = Path(f"{target}{suffix}")
        if kept is not None and old.exists():
            old.rename(f"{kept}{suffix}")
        else:
            old.unlink(missing_ok=True)
    Path(f"{target}-shm").unlink(missing_ok=True)
    return kept


def _writable_beside(dest: Path) -> None:
    if dest.is_dir():
        raise Unusable(f"{dest}: is a directory")
    if not dest.parent.is_dir():
        raise Unusable(f"{dest.parent}: no such directory")
    if not os.access(dest.parent, os.W_OK | os.X_OK):
        raise Unusable(f"{dest.parent}: not writable (the file is made beside its place)")


@contextlib.contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """An empty temporary file beside `dest`, removed (with any journal of it) unless
    it was renamed into place."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


def _publish(staged: Path, dest: Path, force: bool) -> None:
    if force:
        os.replace(staged, dest)
    else:
        os.link(staged, dest)  # fails if dest appeared meanwhile: never overwritten
        staged.unlink()
    _fsync(dest.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
