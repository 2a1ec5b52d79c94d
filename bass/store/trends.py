"""How a pipeline has been doing: its last builds (for the duration chart, the home page's
strips and the status badge), the commits its builds checked out, and the figures drawn
from such rows: a success rate, a step's record over the builds a grid shows, and
whether that step looks flaky. The figures are pure functions of the rows."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bass_builder import ERROR, FAILED, OK, RUNNING, SKIPPED, TIMEOUT

FAILING = (FAILED, TIMEOUT, ERROR)
_COLUMNS = "pipeline, number, state, queued_at, started_at, finished_at, branch, commit_sha"
FLAKY_RULE = (
    "flaky: over these builds it passed and failed on the same commit, "
    "or alternated ok, failed, ok, failed"
)


def recent(
    conn: sqlite3.Connection, pipeline: str, *, limit: int, branch: str | None = None
) -> list[dict[str, Any]]:
    """The last `limit` builds of a pipeline (of `branch` when given), newest first."""
    return conn.execute(
        f"SELECT {_COLUMNS} FROM builds WHERE pipeline = :pipeline "
        "AND (:branch IS NULL OR branch = :branch) ORDER BY number DESC LIMIT :limit",
        {"pipeline": pipeline, "branch": branch, "limit": limit},
    ).fetchall()


def recent_per_pipeline(
    conn: sqlite3.Connection, pipelines: list[str], *, limit: int
) -> dict[str, list[dict]]:
    """The last `limit` builds of each of `pipelines`, newest first: those numbered
    within `limit` of its newest (a pipeline's newest builds have consecutive numbers;
    retention prunes the oldest). Index searches only, however many builds there are."""
    rows = conn.execute(
        f"""
        SELECT {", ".join("b." + c for c in _COLUMNS.split(", "))}
        FROM json_each(:pipelines) AS p JOIN builds b ON b.pipeline = p.value
          AND b.number > (SELECT MAX(number) FROM builds m WHERE m.pipeline = p.value) - :limit
        ORDER BY b.pipeline, b.number DESC
        """,
        {"pipelines": json.dumps(pipelines), "limit": limit},
    ).fetchall()
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["pipeline"], []).append(row)
    return out


def latest(
    conn: sqlite3.Connection, pipeline: str, branch: str | None = None
) -> tuple[bool, dict[str, Any] | None]:
    """(whether the pipeline has any build, its newest build — of `branch` if given)."""
    newest = recent(conn, pipeline, limit=1, branch=branch)
    if newest:
        return True, newest[0]
    if branch is None:
        return False, None
    return bool(recent(conn, pipeline, limit=1)), None


def checkout_commits(conn: sqlite3.Connection, checkouts: list[tuple[str, str]]) -> dict[str, str]:
    """The commit each (trace, checkout span) checked out (`vcs.ref.head.revision`),
    by trace: one primary-key lookup a span."""
    out: dict[str, str] = {}
    for trace_id, span_id in checkouts:
        row = conn.execute(
            "SELECT json_extract(attributes, '$.\"vcs.ref.head.revision\"') AS sha FROM spans "
            "WHERE trace_id = ? AND span_id = ? AND json_valid(attributes)",
            (trace_id, span_id),
        ).fetchone()
        if row is not None and isinstance(row["sha"], str):
            out[trace_id] = row["sha"]
    return out


def success_rate(builds: list[dict[str, Any]]) -> dict[str, Any]:
    """Of the builds that ended, how many ended ok: {ok, ended, percent (None: none)}."""
    ended = [b for b in builds if b["state"] not in ("queued", RUNNING)]
    ok = sum(1 for b in ended if b["state"] == OK)
    percent = round(100 * ok / len(ended)) if ended else None
    return {"ok": ok, "ended": len(ended), "percent": percent}


def step_record(runs: list[dict[str, Any] | None], commits: list[str | None]) -> dict[str, Any]:
    """A step's record over a grid's builds: `runs` its span in each build, newest first
    (None where it did not run), `commits` the commit each build built. Returns the runs
    that ended (skipped ones left out) and how many were ok, their median duration in
    ns, and why the step looks flaky (None when it does not; FLAKY_RULE says when)."""
    ok = ended = 0
    durations: list[int] = []
    outcomes: list[tuple[str | None, bool]] = []  # (commit, passed), oldest first
    for span, commit in zip(reversed(runs), reversed(commits), strict=True):
        if span is None or not span["end_ns"] or span["bass_status"] in (SKIPPED, RUNNING, None):
            continue
        ended += 1
        ok += span["bass_status"] == OK
        durations.append(max(span["end_ns"] - span["start_ns"], 0))
        if span["bass_status"] == OK or span["bass_status"] in FAILING:
            outcomes.append((commit, span["bass_status"] == OK))
    median = int(median_of(durations)) if durations else None
    return {"ok": ok, "ended": ended, "median_ns": median, "flaky": flaky(outcomes)}


def median_of(values: list[float] | list[int]) -> float:
    """The median of a non-empty list (not `statistics`: its import, with `decimal` and
    `fractions`, is half a megabyte of an idle server)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def flaky(outcomes: list[tuple[str | None, bool]]) -> str | None:
    """Why a step with these (commit, passed) outcomes, oldest first, looks flaky: it
    passed and failed on one commit, or four runs in a row alternated; else None."""
    seen: dict[str, set[bool]] = {}
    for commit, passed in outcomes:
        if commit:
            seen.setdefault(commit, set()).add(passed)
            if len(seen[commit]) == 2:
                return f"passed and failed on commit {commit[:10]}"
    passes = [passed for _, passed in outcomes]
    for i in range(len(passes) - 3):
        window = passes[i : i + 4]
        if all(window[j] != window[j + 1] for j in range(3)):
            words = ", ".join("ok" if p else "failed" for p in window)
            return f"alternated {words}"
    return None
