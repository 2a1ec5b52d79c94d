"""The build queue: one row per build, from `queued` through `running` to the status
it ended with (the table's CHECK holds the list; bass.states names it for the rest of
bass). Functions take a connection and never commit (see bass.store.db).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from bass_builder import STATUSES  # the statuses a build may end with, the builder's own

_JSON_COLUMNS = ("changed_refs", "tags", "worker_tags", "config", "changed_files")


@dataclass
class Source:
    """What a build builds, as a trigger says it (all optional): the pushed `branch` or
    `tag`, the `commit` to run on, else a `ref` to resolve (else the pipeline's ref),
    the commit `before` the push and the `changed_files` a forge listed (the changeset),
    and what the forge says of the head commit."""

    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    ref: str | None = None
    before: str | None = None
    changed_files: list[str] | None = None
    message: str | None = None
    author: str | None = None
    compare_url: str | None = None

    @classmethod
    def of(cls, build: dict[str, Any]) -> Source:
        """The source a build row recorded (what a rerun builds again)."""
        return cls(
            branch=build.get("branch"),
            tag=build.get("tag"),
            commit=build.get("commit_sha"),
            ref=build.get("ref"),
            before=build.get("before_sha"),
            changed_files=build.get("changed_files"),
            message=build.get("commit_message"),
            author=build.get("author"),
            compare_url=build.get("compare_url"),
        )


def _decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    for column in _JSON_COLUMNS:
        if column in row and isinstance(row[column], str):
            row[column] = json.loads(row[column])
    return row


def enqueue(
    conn: sqlite3.Connection,
    *,
    pipeline: str,
    config: dict[str, Any],
    trigger: str,
    trace_id: str,
    root_span_id: str,
    now: float,
    changed_refs: list[str] | None = None,
    tags: list[str] | None = None,
    source: Source | None = None,
    rerun_of: int | None = None,
) -> dict[str, Any]:
    """Queue a build of `pipeline`; returns its row, with its per-pipeline number."""
    source = source or Source()
    row = conn.execute(
        """
        INSERT INTO builds (pipeline, number, state, trigger, changed_refs, tags, worker_tags,
                          config, trace_id, root_span_id, queued_at, branch, tag, commit_sha,
                          ref, before_sha, changed_files, commit_message, author,
                          compare_url, rerun_of)
        VALUES (:pipeline,
                (SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE pipeline = :pipeline),
                'queued', :trigger, :changed_refs, :tags, :worker_tags, :config,
                :trace_id, :root_span_id, :now, :branch, :tag, :commit, :ref, :before,
                :changed_files, :message, :author, :compare_url, :rerun_of)
        RETURNING *
        """,
        {
            "branch": source.branch,
            "tag": source.tag,
            "commit": source.commit,
            "ref": source.ref,
            "before": source.before,
            "changed_files": (
                None if source.changed_files is None else json.dumps(source.changed_files)
            ),
            "message": source.message,
            "author": source.author,
            "compare_url": source.compare_url,
            "rerun_of": rerun_of,
            "pipeline": pipeline,
            "trigger": trigger,
            "changed_refs": json.dumps(changed_refs or []),
            "tags": json.dumps(tags or []),
            "worker_tags": json.dumps(config.get("worker-tags") or []),
            "config": json.dumps(config),
            "trace_id": trace_id,
            "root_span_id": root_span_id,
            "now": now,
        },
    ).fetchone()
    return _decode(row)  # type: ignore[return-value]


def claim(
    conn: sqlite3.Connection,
    *,
    worker: str,
    tags: list[str],
    now: float,
    lease_seconds: float | None,
    worker_key: str | None = None,
    job_token: str | None = None,
    limits: dict[str, int] | None = None,
) -> dict[str, Any] | None:
    """Hand the oldest queued build whose worker-tags are all in `tags` to `worker`
    (holding the key named `worker_key`; `job_token` the SHA-256 of its job token).

    One UPDATE … RETURNING, so two workers can never claim the same build. With
    `lease_seconds` None the worker does not heartbeat and the build has no lease.
    Builds of a paused pipeline wait, and so do those of a pipeline already running as
    many builds as `limits` allows it (its `concurrency`).
    """
    row = conn.execute(
        """
        UPDATE builds SET state = 'running', worker = :worker, started_at = :now,
                        lease_expires = :lease, worker_key = :worker_key,
                        job_token = :job_token
        WHERE id = (
            SELECT id FROM builds
            WHERE state = 'queued'
              AND NOT EXISTS (
                  SELECT 1 FROM json_each(builds.worker_tags) AS wanted
                  WHERE wanted.value NOT IN (SELECT value FROM json_each(:tags)))
              AND NOT EXISTS (
                  SELECT 1 FROM pipeline_flags f WHERE f.pipeline = builds.pipeline AND f.paused)
              AND (json_extract(:limits, '$."' || builds.pipeline || '"') IS NULL
                   OR (SELECT COUNT(*) FROM builds AS r
                       WHERE r.state = 'running' AND r.pipeline = builds.pipeline)
                      < json_extract(:limits, '$."' || builds.pipeline || '"'))
            ORDER BY id LIMIT 1)
        RETURNING *
        """,
        {
            "worker": worker,
            "now": now,
            "tags": json.dumps(tags),
            "lease": None if lease_seconds is None else now + lease_seconds,
            "worker_key": worker_key,
            "job_token": job_token,
            "limits": json.dumps(limits or {}),
        },
    ).fetchone()
    return _decode(row)


def heartbeat(
    conn: sqlite3.Connection, build_id: int, *, now: float, lease_seconds: float
) -> dict[str, Any] | None:
    """Extend a running build's lease; returns the build (None if it is not running)."""
    row = conn.execute(
        """
        UPDATE builds SET lease_expires = :lease
        WHERE id = :id AND state = 'running'
        RETURNING *
        """,
        {"id": build_id, "lease": now + lease_seconds},
    ).fetchone()
    return _decode(row)


def finish(
    conn: sqlite3.Connection,
    build_id: int,
    *,
    status: str,
    now: float,
    message: str | None = None,
) -> dict[str, Any] | None:
    """End a queued or running build with `status`; None if it had already ended."""
    if status not in STATUSES:
        raise ValueError(f"not a final state: {status!r}")
    row = conn.execute(
        """
        UPDATE builds SET state = :status, finished_at = :now, lease_expires = NULL,
                        message = COALESCE(:message, message),
                        started_at = COALESCE(started_at, :now)
        WHERE id = :id AND state IN ('queued', 'running')
        RETURNING *
        """,
        {"id": build_id, "status": status, "now": now, "message": message},
    ).fetchone()
    return _decode(row)


def expired(conn: sqlite3.Connection, *, now: float) -> list[dict[str, Any]]:
    """Running builds whose worker stopped heartbeating."""
    rows = conn.execute(
        "SELECT * FROM builds WHERE state = 'running' AND lease_expires < ?", (now,)
    ).fetchall()
    return [_decode(r) for r in rows]  # type: ignore[misc]


def running_on(conn: sqlite3.Connection, worker: str) -> list[dict[str, Any]]:
    """The builds a worker is running."""
    rows = conn.execute(
        "SELECT * FROM builds WHERE state = 'running' AND worker = ?", (worker,)
    ).fetchall()
    return [_decode(r) for r in rows]  # type: ignore[misc]


def request_cancel(
    conn: sqlite3.Connection, build_id: int, reason: str | None = None
) -> dict[str, Any] | None:
    """Mark a build for cancel, saying why; its worker learns it at the next heartbeat."""
    row = conn.execute(
        "UPDATE builds SET cancel_requested = 1, message = COALESCE(?, message) "
        "WHERE id = ? AND state IN ('queued', 'running') RETURNING *",
        (reason, build_id),
    ).fetchone()
    return _decode(row)


def state_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many builds are in each state."""
    rows = conn.execute("SELECT state, COUNT(*) AS n FROM builds GROUP BY state").fetchall()
    return {r["state"]: r["n"] for r in rows}


def waiting_and_running(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """How many builds of each pipeline are queued and running: rows of `pipeline`,
    `state`, `n`. Read from the partial indexes of queued and running builds (`+pipeline`
    keeps SQLite from walking an index of every build for the grouping instead)."""
    return conn.execute(
        "SELECT pipeline, state, COUNT(*) AS n FROM builds WHERE state = 'queued' "
        "GROUP BY +pipeline UNION ALL "
        "SELECT pipeline, state, COUNT(*) AS n FROM builds WHERE state = 'running' "
        "GROUP BY +pipeline"
    ).fetchall()


def get(conn: sqlite3.Connection, build_id: int) -> dict[str, Any] | None:
    return _decode(conn.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone())


def pruned(
    conn: sqlite3.Connection, *, pipeline: str = "", number: int = 0, trace_id: str = ""
) -> dict[str, Any] | None:
    """What retention remembers of a build it removed (by pipeline and number, or by
    trace id): pipeline, number, trace_id, state, finished_at, pruned_at; else None."""
    if trace_id:
        row = conn.execute("SELECT * FROM pruned_builds WHERE trace_id = ?", (trace_id,))
    else:
        row = conn.execute(
            "SELECT * FROM pruned_builds WHERE pipeline = ? AND number = ?", (pipeline, number)
        )
    found = row.fetchone()
    return dict(found) if found is not None else None


def by_number(conn: sqlite3.Connection, pipeline: str, number: int) -> dict[str, Any] | None:
    return _decode(
        conn.execute(
            "SELECT * FROM builds WHERE pipeline = ? AND number = ?", (pipeline, number)
        ).fetchone()
    )


def by_trace(conn: sqlite3.Connection, trace_id: str) -> dict[str, Any] | None:
    return _decode(conn.execute("SELECT * FROM builds WHERE trace_id = ?", (trace_id,)).fetchone())


def by_traces(conn: sqlite3.Connection, trace_ids: list[str]) -> list[dict[str, Any]]:
    """What the receiver needs to know of the builds among these traces."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(trace_ids), 500):  # SQLite's limit on parameters
        chunk = trace_ids[start : start + 500]
        out += conn.execute(
            "SELECT trace_id, pipeline, number, state, finished_at, job_token FROM builds "
            f"WHERE trace_id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
    return out


def for_pipeline(
    conn: sqlite3.Connection,
    pipeline: str,
    *,
    limit: int = 50,
    before: int | None = None,
    branch: str | None = None,
    state: str | None = None,
) -> list[dict[str, Any]]:
    """Builds of one pipeline, newest first; `before` pages back by build number;
    `branch` and `state` keep only those builds."""
    rows = conn.execute(
        """
        SELECT * FROM builds WHERE pipeline = :pipeline AND number < :before
          AND (:branch IS NULL OR branch = :branch) AND (:state IS NULL OR state = :state)
        ORDER BY number DESC LIMIT :limit
        """,
        {
            "pipeline": pipeline,
            "before": before if before is not None else 2**62,
            "limit": limit,
            "branch": branch,
            "state": state,
        },
    ).fetchall()
    return [_decode(r) for r in rows]  # type: ignore[misc]


def latest_per_pipeline(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The newest build of every pipeline that has one, keyed by pipeline name."""
    rows = conn.execute(
        """
        SELECT j.* FROM builds j
        JOIN (SELECT pipeline, MAX(number) AS number FROM builds GROUP BY pipeline) latest
          ON latest.pipeline = j.pipeline AND latest.number = j.number
        """
    ).fetchall()
    return {r["pipeline"]: _decode(r) for r in rows}  # type: ignore[misc]


def register_local(
    conn: sqlite3.Connection,
    *,
    pipeline: str,
    trace_id: str,
    root_span_id: str,
    started_at: float,
) -> dict[str, Any] | None:
    """Record a build that was run outside the queue (for example `python3 job.py`).

    Returns the new row, or None when the trace is already a known build.
    """
    row = conn.execute(
        """
        INSERT INTO builds (pipeline, number, state, trigger, trace_id, root_span_id,
                          queued_at, started_at)
        SELECT :pipeline,
               (SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE pipeline = :pipeline),
               'running', 'local', :trace_id, :root_span_id, :started_at, :started_at
        WHERE NOT EXISTS (SELECT 1 FROM builds WHERE trace_id = :trace_id)
        RETURNING *
        """,
        {
            "pipeline": pipeline,
            "trace_id": trace_id,
            "root_span_id": root_span_id,
            "started_at": started_at,
        },
    ).fetchone()
    return _decode(row)


def superseded(
    conn: sqlite3.Connection, pipeline: str, branch: str, newer_than: int
) -> list[dict[str, Any]]:
    """The queued and running builds of `branch` older than build number `newer_than`."""
    rows = conn.execute(
        "SELECT * FROM builds WHERE pipeline = ? AND branch = ? AND number < ? "
        "AND state IN ('queued', 'running') ORDER BY number",
        (pipeline, branch, newer_than),
    ).fetchall()
    return [_decode(r) for r in rows]  # type: ignore[misc]


def branches(conn: sqlite3.Connection, pipeline: str, limit: int = 100) -> list[str]:
    """The branches a pipeline has builds of, most recent first."""
    rows = conn.execute(
        "SELECT branch, MAX(number) AS latest FROM builds WHERE pipeline = ? "
        "AND branch IS NOT NULL GROUP BY branch ORDER BY latest DESC LIMIT ?",
        (pipeline, limit),
    ).fetchall()
    return [r["branch"] for r in rows]


def seen_delivery(conn: sqlite3.Connection, delivery_id: str, *, now: float, keep: float) -> bool:
    """Record a forge delivery's id; True when it had been recorded before (a replay).
    Ids older than `keep` seconds are forgotten on the way."""
    conn.execute("DELETE FROM deliveries WHERE received_at < ?", (now - keep,))
    cursor = conn.execute(
        "INSERT OR IGNORE INTO deliveries (id, received_at) VALUES (?, ?)", (delivery_id, now)
    )
    return cursor.rowcount == 0


def set_paused(conn: sqlite3.Connection, pipeline: str, paused: bool) -> None:
    conn.execute(
        "INSERT INTO pipeline_flags (pipeline, paused) VALUES (?, ?) "
        "ON CONFLICT (pipeline) DO UPDATE SET paused = excluded.paused",
        (pipeline, int(paused)),
    )


def paused(conn: sqlite3.Connection) -> set[str]:
    """The pipelines that are paused."""
    return {r["pipeline"] for r in conn.execute("SELECT pipeline FROM pipeline_flags WHERE paused")}
