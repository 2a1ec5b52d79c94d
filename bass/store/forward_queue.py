"""The durable queue of what bass forwards (bass.ingest.forward), in the database.

Every request offered is kept in `forward_queue` as it came (body, encoding, record
count), and every destination, named by kind and URL, has a cursor in
`forward_cursors`: the id of the last entry it passed (sent, or given up on). A
destination reads the entries after its cursor, in order, so what it has not passed is
sent after a restart (at least once). A new destination starts at the end: it is not
sent the past. An entry every destination of its kind has passed is deleted; past
`max_bytes` (all entries together) the oldest go, counted as dropped by each destination
that had not passed them.

One writer thread does every write of the queue, each a short transaction of the
database's group commit (ingest shares the writer): appends, cursors, the cap, deletes.
`append` only hands it a request, so the event loop never waits on the database; the
senders read with read-only connections and wait here, in their own threads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bass.store.db import Busy, Database

log = logging.getLogger("bass.forward")

T = TypeVar("T")
KINDS = ("traces", "logs")
EVERYTHING = 1 << 62  # a position past every entry


@dataclass
class Entry:
    id: int
    kind: str
    encoding: str
    records: int
    body: bytes


# -- the SQL: each takes a connection and never commits (bass.store.db) -------------------


def open_cursors(conn: sqlite3.Connection, keep: list[tuple[str, str]]) -> dict[str, Any]:
    """Forget the cursors of destinations no longer configured, start the missing ones
    at the end; returns their positions and what the queue holds."""
    wanted = set(keep)
    for row in conn.execute("SELECT kind, url FROM forward_cursors").fetchall():
        if (row["kind"], row["url"]) not in wanted:
            conn.execute(
                "DELETE FROM forward_cursors WHERE kind = ? AND url = ?", (row["kind"], row["url"])
            )
    end = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) AS n FROM sqlite_sequence WHERE name = 'forward_queue'"
    ).fetchone()["n"]
    for kind, url in keep:
        conn.execute(
            "INSERT OR IGNORE INTO forward_cursors (kind, url, position) VALUES (?, ?, ?)",
            (kind, url, end),
        )
    return look(conn, keep)


def look(conn: sqlite3.Connection, keep: list[tuple[str, str]]) -> dict[str, Any]:
    positions = {}
    queued = {}
    for kind, url in keep:
        row = conn.execute(
            "SELECT position FROM forward_cursors WHERE kind = ? AND url = ?", (kind, url)
        ).fetchone()
        positions[kind, url] = row["position"] if row else EVERYTHING
        queued[kind, url] = conn.execute(
            "SELECT COALESCE(SUM(records), 0) AS n FROM forward_queue WHERE kind = ? AND id > ?",
            (kind, positions[kind, url]),
        ).fetchone()["n"]
    last = {
        row["kind"]: row["last"]
        for row in conn.execute("SELECT kind, MAX(id) AS last FROM forward_queue GROUP BY kind")
    }
    total = conn.execute("SELECT COALESCE(SUM(size), 0) AS n FROM forward_queue").fetchone()["n"]
    return {"positions": positions, "queued": queued, "last": last, "bytes": total}


def insert_entries(conn: sqlite3.Connection, entries: list[Entry]) -> list[int]:
    ids = []
    for e in entries:
        cursor = conn.execute(
            "INSERT INTO forward_queue (kind, encoding, records, size, body)"
            " VALUES (?, ?, ?, ?, ?)",
            (e.kind, e.encoding, e.records, len(e.body), e.body),
        )
        ids.append(int(cursor.lastrowid or 0))
    return ids


def next_entry(conn: sqlite3.Connection, kind: str, after: int) -> Entry | None:
    row = conn.execute(
        "SELECT id, kind, encoding, records, body FROM forward_queue"
        " WHERE kind = ? AND id > ? ORDER BY id LIMIT 1",
        (kind, after),
    ).fetchone()
    return Entry(**row) if row else None


def save_positions(conn: sqlite3.Connection, positions: dict[tuple[str, str], int]) -> None:
    conn.executemany(
        "UPDATE forward_cursors SET position = MAX(position, ?) WHERE kind = ? AND url = ?",
        [(position, kind, url) for (kind, url), position in positions.items()],
    )


def drop_oldest(conn: sqlite3.Connection, excess: int, limit: int) -> list[dict[str, Any]]:
    """Delete the oldest entries, of every kind, until `excess` bytes are freed (at most
    `limit` entries); returns them (without their bodies)."""
    chosen, freed = [], 0
    for row in conn.execute(
        "SELECT id, kind, records, size FROM forward_queue ORDER BY id LIMIT ?", (limit,)
    ):
        chosen.append(row)
        freed += row["size"]
        if freed >= excess:
            break
    if chosen:
        conn.execute("DELETE FROM forward_queue WHERE id <= ?", (chosen[-1]["id"],))
    return chosen


def delete_passed(conn: sqlite3.Connection, kind: str, through: int, limit: int) -> list[int]:
    """Delete up to `limit` entries of `kind` up to id `through`; returns their sizes."""
    return [
        row["size"]
        for row in conn.execute(
            "DELETE FROM forward_queue WHERE id IN (SELECT id FROM forward_queue"
            " WHERE kind = ? AND id <= ? ORDER BY id LIMIT ?) RETURNING size",
            (kind, through, limit),
        ).fetchall()
    ]


# -- the queue ----------------------------------------------------------------------------


class Reader:
    """One destination's place in the queue. Its sender calls `next`, then `passed`
    (sent or given up on) or `release` (stopping: to be sent after the next start)."""

    def __init__(self, queue: ForwardQueue, kind: str, url: str, position: int, queued: int):
        self.queue, self.kind, self.url = queue, kind, url
        self.position = position  # the last entry passed
        self.saved = position  # what the database has
        self.queued = queued  # records after `position`: offered, neither sent nor dropped
        self.holding = 0  # the entry being sent, 0: none
        self.on_dropped: Callable[[int], None] = lambda records: None  # by the cap

    def next(self) -> Entry | None:
        """The entry after this destination's place, waiting for one; None once the
        queue stops."""
        queue = self.queue
        while True:
            with queue.cond:
                while not queue.stopping and queue.last.get(self.kind, 0) <= self.position:
                    queue.cond.wait()
                if queue.stopping:
                    return None
                start = self.position
            try:
                entry = queue.db.read(next_entry, self.kind, start)
            except sqlite3.Error as e:
                log.warning("forwarding %s: reading the queue failed: %s", self.kind, e)
                entry = None
            with queue.cond:
                if queue.stopping:
                    return None
                if entry is not None and self.position == start:
                    self.holding = entry.id
                    return entry
                if entry is None:  # dropped by the cap: the writer is about to say so
                    queue.cond.wait(0.1)

    def passed(self, entry: Entry) -> None:
        with self.queue.cond:
            self.position = max(self.position, entry.id)
            self.holding = 0
            self.queued -= entry.records
            self.queue.cond.notify_all()

    def release(self) -> None:
        with self.queue.cond:
            self.holding = 0


class ForwardQueue:
    """The queue of one database, for the destinations (kind, url) given: one queue per
    database, since cursors of destinations not given are forgotten."""

    APPEND_BATCH = 8 << 20  # bytes appended per transaction, at most (one entry at least)

    def __init__(
        self,
        db: Database,
        destinations: list[tuple[str, str]],
        *,
        max_bytes: int = 64 << 20,
        batch: int = 100,
    ):
        self.db = db
        self.max_bytes = max_bytes
        self.batch = batch  # entries deleted per transaction, at most
        self.cond = threading.Condition()
        self.stopping = False  # readers stop
        self._closing = False  # the writer writes what it holds, then stops
        self._pending: list[Entry] = []  # offered, not yet written
        self._pending_bytes = 0
        keep = list(dict.fromkeys(destinations))
        if not keep and not db.read(_has_rows):  # never forwarded: nothing to write
            state = db.read(look, keep)
        else:
            state = db.write(open_cursors, keep)
        self.last: dict[str, int] = state["last"]  # the newest entry of each kind
        self.bytes: int = state["bytes"]  # what the entries hold, for the cap
        self.readers = {
            key: Reader(self, *key, state["positions"][key], state["queued"][key]) for key in keep
        }
        kinds = {kind for kind, _ in keep}
        # everything of a kind nobody forwards is passed, left from an earlier run
        self._deleted = {k: 0 if k in kinds or k in self.last else EVERYTHING for k in KINDS}
        self._thread: threading.Thread | None = None
        if keep or self.last:
            self._thread = threading.Thread(
                target=self._write_forever, name="bass-forward-queue", daemon=True
            )
            self._thread.start()

    def append(self, kind: str, body: bytes, encoding: str, records: int) -> None:
        """Queue a request for every destination of `kind`; never waits. Written by the
        writer thread; what the database cannot take in time is bounded by the cap."""
        dropped: list[tuple[Reader, int]] = []
        with self.cond:
            if self._closing:
                return
            self._pending.append(Entry(0, kind, encoding, records, body))
            self._pending_bytes += len(body)
            for reader in self._of(kind):
                reader.queued += records
            while self._pending_bytes > self.max_bytes and len(self._pending) > 1:
                old = self._pending.pop(0)  # the database is stuck: memory is bounded too
                self._pending_bytes -= len(old.body)
                for reader in self._of(old.kind):
                    reader.queued -= old.records
                    dropped.append((reader, old.records))
            self.cond.notify_all()
        for reader, records in dropped:
            reader.on_dropped(records)

    def stop_reading(self) -> None:
        """Every reader's `next` returns None from now on."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Write what was offered and the cursors, then stop (the readers first)."""
        with self.cond:
            self.stopping = self._closing = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("forwarding: the queue was not written in %g s", timeout)

    def _of(self, kind: str) -> list[Reader]:
        return [r for r in self.readers.values() if r.kind == kind]

    def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, ...) in the group commit; waits in this thread while it is full."""
        while True:
            try:
                return self.db.submit(fn, *args).result()
            except Busy:  # ingest has the writer: let it
                with self.cond:
                    self.cond.wait(0.05)

    def _take(self) -> tuple[list[Entry], dict[tuple[str, str], int]] | None:
        """What to write next; None when closing and nothing is left (caller holds cond).
        Closing, only what was offered and the cursors are written: the cap and the
        deletes wait for the next start."""
        while True:
            entries: list[Entry] = []
            size = 0
            while self._pending and (not entries or size < self.APPEND_BATCH):
                entries.append(self._pending.pop(0))
                size += len(entries[-1].body)
            self._pending_bytes -= size
            moved = {k: r.position for k, r in self.readers.items() if r.position != r.saved}
            tidy = not self._closing and (self.bytes > self.max_bytes or self._passed_any())
            if entries or moved or tidy:
                return entries, moved
            if self._closing:
                return None
            self.cond.wait()

    def _passed_any(self) -> bool:
        return any(self._low(kind) > self._deleted[kind] for kind in KINDS)

    def _low(self, kind: str) -> int:
        """Entries of `kind` up to this id are passed by every destination of the kind."""
        return min((r.saved for r in self._of(kind)), default=EVERYTHING)

    def _write_forever(self) -> None:
        failures = 0
        while True:
            with self.cond:
                work = self._take()
            if work is None:
                return
            entries, moved = work
            try:
                if entries:
                    self._append(entries)
                    entries = []
                if moved:
                    self._write(save_positions, moved)
                    with self.cond:
                        for key, position in moved.items():
                            self.readers[key].saved = position
                if not self._closing:
                    self._trim()
                    self._delete_passed()
                failures = 0
            except Exception as error:  # the disk is full, say: try again, later and later
                failures += 1
                log.warning("forwarding: writing the queue failed: %s", error)
                with self.cond:
                    self._pending[:0] = entries
                    self._pending_bytes += sum(len(entry.body) for entry in entries)
                    if self._closing:
                        return
                    self.cond.wait(min(0.1 * 2**failures, 10.0))

    def _append(self, entries: list[Entry]) -> None:
        ids = self._write(insert_entries, entries)
        with self.cond:
            for entry, new_id in zip(entries, ids, strict=True):
                self.last[entry.kind] = max(self.last.get(entry.kind, 0), new_id)
                self.bytes += len(entry.body)
            self.cond.notify_all()

    def _trim(self) -> None:
        """Past the cap, the oldest entries go: dropped for whoever had not passed them."""
        while self.bytes > self.max_bytes:
            gone = self._write(drop_oldest, self.bytes - self.max_bytes, self.batch)
            if not gone:
                self.bytes = self.db.read(look, [])["bytes"]
                return
            dropped: list[tuple[Reader, int]] = []
            with self.cond:
                self.bytes -= sum(row["size"] for row in gone)
                for reader in self.readers.values():
                    mine = [row for row in gone if row["kind"] == reader.kind]
                    lost = sum(  # what it passed was not lost, nor what it is sending
                        row["records"]
                        for row in mine
                        if row["id"] > reader.position and row["id"] != reader.holding
                    )
                    if mine:
                        reader.position = max(reader.position, mine[-1]["id"])
                    if lost:
                        reader.queued -= lost
                        dropped.append((reader, lost))
                self.cond.notify_all()
            for reader, records in dropped:
                log.warning("forwarding %s to %s: the queue is full (%d bytes): dropped the "
                            "%d oldest records", reader.kind, reader.url, self.max_bytes,
                            records)  # fmt: skip
                reader.on_dropped(records)

    def _delete_passed(self) -> None:
        """Delete what every destination of its kind passed, `batch` entries at a time."""
        for kind in KINDS:
            with self.cond:
                low = self._low(kind)
            if low <= self._deleted[kind]:
                continue
            while sizes := self._write(delete_passed, kind, low, self.batch):
                with self.cond:
                    self.bytes -= sum(sizes)
                if len(sizes) < self.batch:
                    break
            self._deleted[kind] = low


def _has_rows(conn: sqlite3.Connection) -> bool:
    return any(
        conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
        for table in ("forward_queue", "forward_cursors")
    )
