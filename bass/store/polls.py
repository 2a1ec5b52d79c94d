"""What the git poller last saw of each polled pipeline's ref."""

from __future__ import annotations

import sqlite3
from typing import Any


def last_seen(conn: sqlite3.Connection, pipeline: str) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM polls WHERE pipeline = ?", (pipeline,)).fetchone()


def record(conn: sqlite3.Connection, pipeline: str, *, ref: str, commit: str, now: float) -> None:
    conn.execute(
        """
        INSERT INTO polls (pipeline, ref, commit_id, checked_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (pipeline) DO UPDATE SET
            ref = excluded.ref, commit_id = excluded.commit_id, checked_at = excluded.checked_at
        """,
        (pipeline, ref, commit, now),
    )
