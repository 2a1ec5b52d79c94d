"""`bass backup`, `bass restore`, `bass db check`: the SQLite file, while bass serve runs.

Exit codes: 0 done (healthy), 1 a check failed (the database, the copy or the backup is
damaged: the problems are named), 2 a usage error (a missing or unusable file, a file in
the way, a database in use): one line naming the file, and nothing written.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

from bass.config import Settings
from bass.store import backup as backups


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, argparse.ArgumentParser]:
    """Add `backup`, `restore` and `db` (with `db check`); returns them by command."""
    db_help = "the SQLite file of bass serve (default %(default)s)"
    p_backup = sub.add_parser(
        "backup", help="copy the database, consistent, while bass serve keeps running"
    )
    p_backup.add_argument("path", help="where the copy goes (a new file)")
    p_backup.add_argument("--db", default=Settings.db, help=db_help)
    p_backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    p_restore = sub.add_parser(
        "restore", help="put a backup in place of the database (bass serve stopped)"
    )
    p_restore.add_argument("backup", help="a file made by bass backup")
    p_restore.add_argument("--db", default=Settings.db, help=db_help)
    p_restore.add_argument(
        "--no-keep",
        action="store_true",
        help="delete the replaced database instead of keeping it as DB.before-restore-TIME",
    )
    p_db = sub.add_parser("db", help="look after the database")
    verbs = p_db.add_subparsers(dest="verb", required=True)
    p_check = verbs.add_parser(
        "check", help="integrity, search index and foreign keys; the space each table takes"
    )
    p_check.add_argument("--db", default=Settings.db, help=db_help)
    return {"backup": p_backup, "restore": p_restore, "db check": p_check}


def main(args: argparse.Namespace) -> int:
    name = "db check" if args.command == "db" else args.command
    try:
        if args.command == "backup":
            return _backup(args)
        if args.command == "restore":
            return _restore(args)
        return _check(args)
    except backups.Unusable as e:
        print(f"bass {name}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (`| head`): not a failure of ours
        raise
    except (OSError, sqlite3.Error) as e:  # a full disk, say: nothing was put in place
        print(f"bass {name}: failed: {e}", file=sys.stderr)
        return 1


def _backup(args: argparse.Namespace) -> int:
    source, dest = Path(args.db), Path(args.path)
    started = time.monotonic()
    report = backups.backup(source, dest, force=args.force, progress=_progress("backup"))
    if not report.healthy:
        _problems("backup", f"the copy of {source} failed its check, {dest} not written", report)
        return 1
    size = report.page_count * report.page_size
    print(
        f"{source} → {dest}: {_size(size)} ({report.page_count:,} pages), "
        f"checked ok, in {time.monotonic() - started:.1f} s"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    source, target = Path(args.backup), Path(args.db)
    done = backups.restore(source, target, keep=not args.no_keep, progress=_progress("restore"))
    if not done.report.healthy:
        _problems("restore", f"{source} failed its check, {target} left as it was", done.report)
        return 1
    applied, known = done.report.migrations
    schema = "" if applied == known else "; bass serve migrates it to this schema when it starts"
    kept = f"; the replaced database is kept as {done.kept}" if done.kept else ""
    print(f"{source} → {target}: checked ok{schema}{kept}")
    return 0


def _check(args: argparse.Namespace) -> int:
    report = backups.check(Path(args.db))
    applied, known = report.migrations
    size = report.page_count * report.page_size
    print(
        f"{report.path}: {_size(size)}, {report.page_count:,} pages of {report.page_size:,} "
        f"bytes ({report.free_pages:,} free); schema: {applied} of {known} migrations"
        + ("" if applied == known else " (bass serve migrates it when it starts)")
    )
    width = max(len(what) for what, _ in report.checks)
    for what, problems in report.checks:
        print(f"  {what:<{width}}  {'ok' if not problems else 'FAILED:'}")
        for problem in problems:
            print(f"      {problem}")
    print()
    if report.sizes is None:
        print("sizes per table: this SQLite has no dbstat table (SQLITE_ENABLE_DBSTAT_VTAB)")
    else:
        _sizes_table(report.sizes, size)
    print()
    if report.healthy:
        print("healthy")
        return 0
    print(f"NOT healthy: {len(report.problems)} problem(s)")
    return 1


def _sizes_table(sizes: list[dict], total: int) -> None:
    width = max([len("table or index"), *(len(r["name"]) for r in sizes)])
    print(f"  {'table or index':<{width}}  {'kind':<6}  {'pages':>9}  {'size':>10}  {'%':>5}")
    for r in sizes:
        share = 100 * r["bytes"] / total if total else 0
        print(
            f"  {r['name']:<{width}}  {r['kind']:<6}  {r['pages']:>9,}  "
            f"{_size(r['bytes']):>10}  {share:>5.1f}"
        )


def _problems(command: str, what: str, report: backups.Report) -> None:
    print(f"bass {command}: {what}:", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)


def _progress(command: str) -> backups.Progress | None:
    """Progress on a terminal (stderr), every 0.2 s: bytes copied of those expected."""
    if not sys.stderr.isatty():
        return None

    def show(written: int, expected: int) -> None:
        percent = 100 * written // expected if expected else 100
        then = ", checking it\n" if written >= expected else ""
        print(f"\rbass {command}: copied {percent:3d}% ({_size(written)} of {_size(expected)})"
              f"{then}", end="", file=sys.stderr, flush=True)  # fmt: skip

    return show


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
