"""The SQLite file: one writer connection doing short transactions, read-only readers.

Every function in bass.store takes a `sqlite3.Connection` as its first argument and
never commits; `Database.write` wraps a call in one `BEGIN IMMEDIATE` transaction (all
or nothing) and `Database.read` hands it a read-only connection of the calling thread.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread

from bass.store import schema

T = TypeVar("T")


def _dict_factory(cursor: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class Busy(Exception):
    """Too many writes are waiting: the caller should ask its client to retry later."""


class Database:
    """One SQLite file in WAL mode, migrated when opened."""

    MAX_PENDING = 256  # queued group-commit writes before `submit` refuses
    MAX_BATCH = 64  # writes committed together at most

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer = self._connect(readonly=False)
        # Only takes effect on a new file: lets retention give space back.
        self._writer.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._writer.execute("PRAGMA journal_mode=WAL")
        schema.migrate(self._writer)
        self._pending: queue.Queue[tuple[Future, Callable[..., Any], tuple] | None] = queue.Queue()
        self._pending_count = 0
        self._count_lock = threading.Lock()
        self._batcher: threading.Thread | None = None

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # In WAL mode, NORMAL survives a crash or kill of bass; `write` (builds) also
            # survives a power cut: it syncs, and with it everything committed before.
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.row_factory = _dict_factory
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, ...) in one IMMEDIATE transaction on the writer connection,
        synced to disk at commit (a queued build must survive a power cut)."""
        with self._write_lock:
            conn = self._writer
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args, **kwargs)
            except BaseException:
                conn.execute("ROLLBACK")
                conn.execute("PRAGMA synchronous=NORMAL")
                raise
            conn.execute("COMMIT")
            conn.execute("PRAGMA synchronous=NORMAL")
            return result

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue fn(conn, ...) for a group commit: writes queued together share one
        transaction (one fsync), each inside its own savepoint, so each is still all or
        nothing; the future resolves once its write is committed. Raises Busy when
        MAX_PENDING writes are already waiting."""
        with self._count_lock:  # not the write lock: this runs on the event loop
            if self._batcher is None:
                self._batcher = threading.Thread(
                    target=self._commit_batches, name="bass-db-writer", daemon=True
                )
                self._batcher.start()
            if self._pending_count >= self.MAX_PENDING:
                raise Busy(f"{self._pending_count} writes waiting")
            self._pending_count += 1
        future: Future[T] = Future()
        self._pending.put((future, fn, args))
        return future

    async def asubmit(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _commit_batches(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._pending.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, queued: list[tuple[Future, Callable[..., Any], tuple]]) -> None:
        # A write whose caller gave up (its awaiting task was cancelled) is not made;
        # the others cannot be cancelled from here on, so their outcome can be set.
        batch = [item for item in queued if item[0].set_running_or_notify_cancel()]
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                for future, fn, args in batch:
                    conn.execute("SAVEPOINT one_write")
                    try:
                        outcomes.append((future, fn(conn, *args), None))
                    except Exception as e:
                        conn.execute("ROLLBACK TO one_write")
                        outcomes.append((future, None, e))
                    conn.execute("RELEASE one_write")
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                outcomes = [(future, None, e) for future, _, _ in batch]
        with self._count_lock:
            self._pending_count -= len(queued)
        for future, result, error in outcomes:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, ...) on this thread's read-only connection, in one snapshot."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(readonly=True)
            self._readers.append(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn, *args, **kwargs)
        finally:
            conn.execute("COMMIT")

    async def awrite(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await to_thread.run_sync(lambda: self.write(fn, *args, **kwargs))

    async def aread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await to_thread.run_sync(lambda: self.read(fn, *args, **kwargs))

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file and truncate it."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += (self.path.parent / (self.path.name + suffix)).stat().st_size
            except FileNotFoundError:
                pass
        return total

    def close(self) -> None:
        if self._batcher is not None:
            self._pending.put(None)
            self._batcher.join()
            self._batcher = None
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        self._writer.close()
