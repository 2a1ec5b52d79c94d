"""Retention: pruning ended builds by age and by count, with their spans, logs and search
entries, other services' traces by age, in small transactions, giving the space back.
On a real SQLite file created by bass.store.db.Database, and through the app."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bass.ingest import otlp_json
from bass.pruning import Policy, Unmerged, prune_once
from bass.store import builds, logmatch, logs, retention, telemetry
from bass.store.db import Database
from tests.unit.conftest import App
from tests.unit.helpers import (
    finish_build,
    json_logs,
    json_traces,
    post_logs,
    post_spans,
    record,
    span,
    start_build,
    trace_of,
    wait_until,
)

NOW = 1_750_000_000.0
DAY = 86400.0
ns = int


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "bass.db")
    yield database
    database.close()


def prune(db: Database, policy: Policy, now: float = NOW) -> dict[str, int]:
    return asyncio.run(prune_once(db, policy, clock=lambda: now))


def store_spans(db: Database, *spans: dict[str, Any], service: str) -> None:
    db.write(
        telemetry.insert_spans, otlp_json.decode_traces(json_traces(*spans, service=service)).spans
    )


def store_logs(db: Database, trace_id: str, lines: list[str], *, service: str, at: float) -> None:
    """Store `lines` in requests of 1,000 (so in blocks of 1,000 lines at most)."""
    records = [record(trace_id, "c0ffee00c0ffee00", line, time_ns=ns(at * 1e9)) for line in lines]
    for i in range(0, len(records), 1000):
        decoded = otlp_json.decode_logs(json_logs(*records[i : i + 1000], service=service))
        db.write(logs.insert_logs, decoded.logs)


def add_build(
    db: Database,
    pipeline: str = "demo",
    *,
    finished: float | None = NOW - DAY,
    state: str = "ok",
    lines: list[str] | None = None,
    queued: float | None = None,
) -> dict[str, Any]:
    """A build row with a root span, a step span and log lines, queued → running → state."""
    queued = (finished if finished is not None else NOW) - 60 if queued is None else queued
    trace, root = secrets.token_hex(16), secrets.token_hex(8)
    job = db.write(builds.enqueue, pipeline=pipeline, config={}, trigger="cli", trace_id=trace,
                   root_span_id=root, now=queued)  # fmt: skip
    if state != "queued":
        claimed = db.write(builds.claim, worker="w", tags=[], now=queued, lease_seconds=None)
        assert claimed["id"] == job["id"]
    if state not in ("queued", "running"):
        assert finished is not None
        assert db.write(builds.finish, job["id"], status=state, now=finished) is not None
    start = ns(queued * 1e9)
    store_spans(
        db,
        span(trace, root, name="build", start=start, end=start + 10),
        span(trace, "c0ffee00c0ffee00", parent=root, name="step", start=start, end=start + 5),
        service=f"bass:pipeline:{pipeline}",
    )
    store_logs(db, trace, lines or [f"line of {pipeline} #{job['number']}"],
               service=f"bass:pipeline:{pipeline}", at=queued)  # fmt: skip
    return job


def add_stray(db: Database, started: float, lines: list[str]) -> str:
    """Another service's trace (no build), its root started at `started`."""
    trace = secrets.token_hex(16)
    start = ns(started * 1e9)
    store_spans(db, span(trace, "5a5a5a5a5a5a5a5a", name="GET /", start=start, end=start + 1),
                service="shop-frontend")  # fmt: skip
    store_logs(db, trace, lines, service="shop-frontend", at=started)
    return trace


def filler(size: int = 2000) -> str:
    """`size` characters that do not compress much (as logs full of ids and hashes)."""
    return base64.b64encode(os.urandom(size * 3 // 4)).decode()


def q(db: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of `sql`, which may read log records as rows of `logs` (a view of blocks)."""

    def read(conn: Any) -> list[dict[str, Any]]:
        logs.attach_view(conn)
        return conn.execute(sql, params).fetchall()

    return db.read(read)


def numbers(db: Database, pipeline: str = "demo") -> list[int]:
    rows = q(db, "SELECT number FROM builds WHERE pipeline = ? ORDER BY number", pipeline)
    return [r["number"] for r in rows]


def fts_count(db: Database, words: str) -> int:
    """Log blocks the search index says hold `words`."""
    return q(db, "SELECT COUNT(*) AS n FROM log_text WHERE log_text MATCH ?", words)[0]["n"]


def check_fts(db: Database) -> None:
    """FTS5's own integrity check, and the index holds exactly the words of the blocks
    left (fts5vocab lists each word of each block it indexed): a deleted block's words
    are gone, no block is missing. And the per-span line counts agree with the blocks."""

    def check(conn: Any) -> None:
        conn.execute("INSERT INTO log_text (log_text) VALUES ('integrity-check')")
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.log_words "
            "USING fts5vocab(main, log_text, instance)"
        )
        indexed: dict[int, set[str]] = {}
        for row in conn.execute("SELECT term, doc FROM temp.log_words"):
            indexed.setdefault(row["doc"], set()).add(row["term"])
        blocks = {
            row["id"]: set(logmatch.tokens(logs.searchable(logs.decode(row["data"])["b"])))
            for row in conn.execute("SELECT id, data FROM log_blocks")
        }
        assert indexed == {k: v for k, v in blocks.items() if v}

    db.write(check)
    check_counts(db)


def check_counts(db: Database) -> None:
    counted = q(db, "SELECT trace_id, span_id, n FROM log_counts WHERE n > 0 ORDER BY 1, 2")
    actual = q(
        db, "SELECT trace_id, span_id, SUM(n) AS n FROM log_blocks GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert counted == actual


def traces_with(db: Database, table: str, trace_id: str) -> int:
    return q(db, f"SELECT COUNT(*) AS n FROM {table} WHERE trace_id = ?", trace_id)[0]["n"]


# -- by age -----------------------------------------------------------------------------


def test_old_builds_go_with_their_spans_logs_and_search_entries(db: Database) -> None:
    old = add_build(db, finished=NOW - 10 * DAY, lines=["zebra crossing one", "zebra two"])
    recent = add_build(db, finished=NOW - DAY, lines=["giraffe kept"])
    assert fts_count(db, "zebra") == 1  # one block holds both lines

    removed = prune(db, Policy(days=7))

    assert removed == {"builds": 1, "traces": 0, "log records": 2}
    assert numbers(db) == [recent["number"]]
    assert traces_with(db, "spans", old["trace_id"]) == 0
    assert traces_with(db, "logs", old["trace_id"]) == 0
    assert fts_count(db, "zebra") == 0  # the search no longer finds them
    assert db.read(logs.search_logs, "zebra") == []
    check_fts(db)
    # what is recent stays whole
    assert traces_with(db, "spans", recent["trace_id"]) == 2
    assert [r["body"] for r in db.read(logs.search_logs, "giraffe")] == ["giraffe kept"]
    assert prune(db, Policy(days=7)) == {"builds": 0, "traces": 0, "log records": 0}


def test_the_cutoff_is_the_clock_minus_the_days(db: Database) -> None:
    add_build(db, finished=NOW - 7 * DAY - 5)
    add_build(db, finished=NOW - 7 * DAY + 5)
    prune(db, Policy(days=7))
    assert numbers(db) == [2]
    prune(db, Policy(days=7), now=NOW + 10)
    assert numbers(db) == []


@pytest.mark.parametrize("state", ["ok", "failed", "timeout", "skipped", "cancelled", "error"])
def test_every_final_state_is_pruned(db: Database, state: str) -> None:
    add_build(db, finished=NOW - 30 * DAY, state=state)
    prune(db, Policy(days=1))
    assert numbers(db) == []


def test_queued_and_running_builds_are_never_pruned(db: Database) -> None:
    ended = add_build(db, finished=NOW - 90 * DAY)
    running = add_build(db, state="running", finished=None, queued=NOW - 90 * DAY)
    queued = add_build(db, state="queued", finished=None, queued=NOW - 90 * DAY)

    prune(db, Policy(days=1, keep_builds=1))
    prune(db, Policy(keep_builds=1, per_pipeline={"demo": 1}))

    assert numbers(db) == [running["number"], queued["number"]]
    for job in (running, queued):
        assert traces_with(db, "spans", job["trace_id"]) == 2
        assert traces_with(db, "logs", job["trace_id"]) == 1
    assert traces_with(db, "spans", ended["trace_id"]) == 0


def test_log_records_without_a_trace_go_by_age(db: Database) -> None:
    """Logs another service sent without trace context belong to no build and no span."""
    for at, line in ((NOW - 10 * DAY, "wombat old event"), (NOW - DAY, "wombat new event")):
        decoded = otlp_json.decode_logs(
            json_logs({"timeUnixNano": str(ns(at * 1e9)), "body": {"stringValue": line}},
                      service="cron")
        )  # fmt: skip
        db.write(logs.insert_logs, decoded.logs)
    build = add_build(db, finished=NOW - DAY, lines=["wombat build line"])

    assert prune(db, Policy(keep_builds=5))["log records"] == 0  # no age limit

    assert prune(db, Policy(days=7)) == {"builds": 0, "traces": 0, "log records": 1}
    left = q(db, "SELECT trace_id, body FROM logs ORDER BY id")
    assert [(r["trace_id"], r["body"]) for r in left] == [
        ("", "wombat new event"),
        (build["trace_id"], "wombat build line"),
    ]
    assert fts_count(db, "old") == 0 and fts_count(db, "wombat") == 2
    check_fts(db)


def test_stray_traces_go_by_age(db: Database) -> None:
    old = add_stray(db, NOW - 10 * DAY, ["okapi old request"])
    recent = add_stray(db, NOW - DAY, ["okapi new request"])

    assert prune(db, Policy(keep_builds=1)) == {"builds": 0, "traces": 0, "log records": 0}
    assert traces_with(db, "spans", old) == 1  # no age limit, no stray pruned

    removed = prune(db, Policy(days=7))

    assert removed == {"builds": 0, "traces": 1, "log records": 1}
    assert (traces_with(db, "spans", old), traces_with(db, "logs", old)) == (0, 0)
    assert (traces_with(db, "spans", recent), traces_with(db, "logs", recent)) == (1, 1)
    assert fts_count(db, "old") == 0 and fts_count(db, "okapi") == 1
    check_fts(db)


# -- by count ---------------------------------------------------------------------------


def test_keep_builds_keeps_the_newest_per_pipeline(db: Database) -> None:
    for pipeline, n in (("demo", 5), ("other", 3), ("third", 3)):
        for k in range(n):
            add_build(db, pipeline, finished=NOW - (10 - k) * 60, lines=[f"{pipeline} tapir {k}"])

    removed = prune(db, Policy(keep_builds=2, per_pipeline={"demo": 4, "other": 1}))

    assert numbers(db, "demo") == [2, 3, 4, 5]  # the pipeline's keep-builds, over the global
    assert numbers(db, "other") == [3]  # ... whether smaller or larger
    assert numbers(db, "third") == [2, 3]  # the global value
    assert removed["builds"] == 1 + 2 + 1
    assert sorted(r["body"] for r in db.read(logs.search_logs, "tapir")) == [
        "demo tapir 1", "demo tapir 2", "demo tapir 3", "demo tapir 4",
        "other tapir 2",
        "third tapir 1", "third tapir 2",
    ]  # fmt: skip
    check_fts(db)


def test_keep_builds_counts_ended_builds_only(db: Database) -> None:
    add_build(db, finished=NOW - 300)  # 1
    add_build(db, finished=NOW - 200)  # 2
    add_build(db, state="running", finished=None)  # 3
    prune(db, Policy(keep_builds=1))
    assert numbers(db) == [2, 3]


# -- space and chunks --------------------------------------------------------------------


def test_space_goes_back_to_the_file_system(db: Database) -> None:
    assert db.read(retention.auto_vacuum_mode) == 2  # INCREMENTAL, set on the new file
    old = add_build(db, finished=NOW - 30 * DAY)
    for batch in range(25):  # 25 x 1000 x 2 KB = 50 MB, ~38 MB compressed
        records = [
            (old["trace_id"], "c0ffee00c0ffee00", n, 9, "INFO", f"w{batch}x{n} {filler()}", "{}",
             '{"service.name":"bass:pipeline:demo"}')
            for n in range(1000)
        ]  # fmt: skip
        db.write(logs.insert_logs, records)
    add_build(db, finished=NOW - DAY, lines=["small and recent"])
    db.checkpoint()
    full = db.size()
    assert full > 30_000_000

    removed = prune(db, Policy(days=7))

    assert removed["log records"] == 25_001
    assert db.read(retention.free_pages) == 0
    assert db.size() < full / 10
    assert traces_with(db, "logs", old["trace_id"]) == 0
    assert [r["body"] for r in db.read(logs.search_logs, "recent")] == ["small and recent"]
    check_fts(db)


def test_one_vacuum_step_gives_back_many_pages(db: Database) -> None:
    """Reclaiming is a few transactions of many pages each, not one per page."""
    # random numbers below 256: the blocks do not compress much, yet hold few distinct
    # words (deleting them adds few delete markers to the search index)
    lines = [" ".join(map(str, os.urandom(750))) for _ in range(10_000)]
    job = add_build(db, finished=NOW - 30 * DAY, lines=lines)
    while db.write(retention.delete_logs_chunk, job["trace_id"]):
        pass
    free = db.read(retention.free_pages)
    assert free > 2500
    db.write(retention.incremental_vacuum, 1000)
    assert db.read(retention.free_pages) == free - 1000
    db.write(retention.incremental_vacuum)
    assert db.read(retention.free_pages) == max(0, free - 1000 - 2048)
    db.write(retention.incremental_vacuum, 10**9)
    assert db.read(retention.free_pages) == 0


def test_logs_are_deleted_a_chunk_per_transaction(db: Database) -> None:
    lines = [f"walrus {n}" for n in range(2 * retention.CHUNK + 7)]
    job = add_build(db, finished=NOW - 30 * DAY, lines=lines)
    other = add_build(db, finished=NOW - DAY, lines=["walrus elsewhere"])
    done = [db.write(retention.delete_logs_chunk, job["trace_id"]) for _ in range(4)]
    assert done == [retention.CHUNK, retention.CHUNK, 7, 0]
    assert traces_with(db, "logs", job["trace_id"]) == 0
    assert traces_with(db, "logs", other["trace_id"]) == 1
    assert fts_count(db, "walrus") == 1
    check_fts(db)


class WatchedDatabase(Database):
    """The real Database; after each chunk of deletions, one ingest request is written the
    way the receiver writes it (group commit) and must commit before pruning goes on."""

    def __init__(self, path: Path, trace_id: str):
        super().__init__(path)
        self.trace_id = trace_id
        self.left_between_chunks: list[int] = []

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        result = super().write(fn, *args, **kwargs)
        if fn is retention.delete_logs_chunk and result:
            left = self.read(lambda c: c.execute(
                "SELECT COALESCE(SUM(n), 0) AS n FROM log_blocks WHERE trace_id = ?",
                (self.trace_id,),
            ).fetchone()["n"])  # fmt: skip
            self.left_between_chunks.append(left)
            line = f"ingested while {left} left"
            records = [("", "", ns(NOW * 1e9), 9, "INFO", line, "{}", "{}")]
            self.submit(logs.insert_logs, records).result(timeout=30)
        return result


def test_ingest_commits_between_the_chunks_of_a_large_build(tmp_path: Path) -> None:
    path = tmp_path / "bass.db"
    setup = Database(path)
    big = add_build(setup, finished=NOW - 30 * DAY,
                    lines=[f"narwhal {n}" for n in range(3 * retention.CHUNK + 1)])  # fmt: skip
    setup.close()
    db = WatchedDatabase(path, big["trace_id"])
    try:
        removed = prune(db, Policy(days=1))
        assert removed["log records"] == 3 * retention.CHUNK + 1
        total = 3 * retention.CHUNK + 1
        assert db.left_between_chunks == [total - retention.CHUNK * k for k in (1, 2, 3)] + [0]
        ingested = q(db, "SELECT body FROM logs ORDER BY id")
        assert [r["body"] for r in ingested] == [
            f"ingested while {n} left" for n in db.left_between_chunks
        ]
        check_fts(db)
    finally:
        db.close()


# -- through the app --------------------------------------------------------------------


def app_db(app: App) -> Database:
    return app.client.app_state["db"]


def gone(app: App, trace_id: str) -> bool:
    return not app.rows(
        "SELECT 1 FROM builds WHERE trace_id = ?1 "
        "UNION ALL SELECT 1 FROM spans WHERE trace_id = ?1 "
        "UNION ALL SELECT 1 FROM logs WHERE trace_id = ?1",
        trace_id,
    )


def test_the_app_prunes_by_age(make_app: Any) -> None:
    app = make_app(retention_days=7, prune_interval=0.2)
    now_ns = time.time_ns()
    old_stray, new_stray = secrets.token_hex(16), secrets.token_hex(16)
    for trace, start in ((old_stray, now_ns - ns(30 * DAY * 1e9)), (new_stray, now_ns)):
        post_logs(app, record(trace, "5a5a5a5a5a5a5a5a", f"quokka {trace}"), service="shop")
        post_spans(app, span(trace, "5a5a5a5a5a5a5a5a", start=start, end=start + 1), service="shop")
    old, recent = start_build(app), start_build(app)
    for job in (old, recent):
        post_logs(app, record(trace_of(job), "c0ffee00c0ffee00", f"quokka build {job['number']}"))
    finish_build(app, recent)
    app_db(app).write(builds.finish, old["id"], status="ok", now=time.time() - 8 * DAY)

    wait_until(lambda: gone(app, trace_of(old)) and gone(app, old_stray), what="pruning")

    assert [j["number"] for j in app.rows("SELECT number FROM builds")] == [recent["number"]]
    response = app.client.get("/api/search", params={"q": "quokka"})
    assert {r["body"] for r in response.json()["logs"]} == {"quokka build 2", f"quokka {new_stray}"}
    assert app.rows("SELECT COUNT(*) AS n FROM log_text WHERE log_text MATCH 'quokka'") == [
        {"n": 2}
    ]
    check_fts(app_db(app))


def test_the_app_keeps_the_newest_builds(make_app: Any) -> None:
    pipelines = {
        "demo": {"repository": "https://example.com/d.git", "exec": ["./b"], "keep-builds": 1},
        "other": {"repository": "https://example.com/o.git", "exec": ["./b"]},
    }
    app = make_app(pipelines, keep_builds=2, prune_interval=0.2)
    made = []
    for pipeline in ("demo", "other") * 3:
        job = start_build(app, pipeline)
        line = record(trace_of(job), "c0ffee00c0ffee00", f"ibex {pipeline} {job['number']}")
        post_logs(app, line, service=f"bass:pipeline:{pipeline}")
        finish_build(app, job)
        made.append(job)
    running = start_build(app, "demo")  # newest of all, and never pruned

    def kept() -> list[tuple[str, int]]:
        rows = app.rows("SELECT pipeline, number FROM builds ORDER BY pipeline, number")
        return [(r["pipeline"], r["number"]) for r in rows]

    expected = [("demo", 3), ("demo", 4), ("other", 2), ("other", 3)]
    wait_until(lambda: kept() == expected, what=f"pruning down to {expected}")
    assert running["number"] == 4
    bodies = sorted(r["body"] for r in app.rows("SELECT body FROM logs"))
    assert bodies == ["ibex demo 3", "ibex other 2", "ibex other 3"]
    response = app.client.get("/api/search", params={"q": "ibex"})
    assert len(response.json()["logs"]) == 3
    check_fts(app_db(app))

    # a pruned build's pages say so, with the trace id to look it up by elsewhere
    first = made[0]
    said = "demo #1 (ok) was removed by retention on "
    for path in ("/pipelines/demo/1", "/pipelines/demo/1/timeline", "/api/pipelines/demo/builds/1",
                 "/api/pipelines/demo/builds/1/logs", f"/traces/{trace_of(first)}"):  # fmt: skip
        response = app.client.get(path)
        assert response.status_code == 404, path
        assert said in response.text and trace_of(first) in response.text, (path, response.text)
    never = app.client.get("/pipelines/demo/99")
    assert never.status_code == 404 and "no build demo #99" in never.text


def test_pruned_builds_are_remembered_the_newest_only(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNED_KEPT", 3)
    made = [add_build(db, finished=NOW - (10 - k) * 60) for k in range(6)]
    prune(db, Policy(keep_builds=1))
    remembered = db.read(
        lambda conn: conn.execute(
            "SELECT pipeline, number, trace_id, state FROM pruned_builds ORDER BY number"
        ).fetchall()
    )
    pruned = {(b["number"], b["trace_id"]) for b in made[:5]}  # #6 is kept
    assert len(remembered) == 3  # 5 pruned, the 3 pruned last remembered
    assert {(r["number"], r["trace_id"]) for r in remembered} <= pruned
    assert {r["pipeline"] for r in remembered} == {"demo"} and {r["state"] for r in remembered} == {
        "ok"
    }
    last = remembered[0]
    assert db.read(builds.pruned, trace_id=last["trace_id"])["number"] == last["number"]
    assert db.read(builds.pruned, pipeline="demo", number=last["number"])["state"] == "ok"
    assert db.read(builds.pruned, pipeline="demo", number=6) is None  # kept, not pruned


def test_line_counts_follow_inserts(db: Database) -> None:
    """log_counts is kept by every insert."""
    build = add_build(db, lines=["a", "b"])
    store_logs(db, build["trace_id"], ["c"], service="bass:pipeline:demo", at=NOW)
    add_stray(db, NOW, ["x", "y", "z"])
    check_counts(db)
    counted = q(db, "SELECT span_id, n FROM log_counts WHERE trace_id = ?", build["trace_id"])
    assert counted == [{"span_id": "c0ffee00c0ffee00", "n": 3}]
    assert q(db, "SELECT SUM(n) AS n FROM log_counts")[0]["n"] == 6


def test_the_index_is_merged_once_a_tenth_of_the_records_is_deleted(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge writes the whole search index anew: the prune loop does it once the
    records deleted since the last one reach a tenth of those stored, not every pass."""
    merges = []
    real = retention.merge_index

    def counted(conn: Any, *args: Any) -> bool:
        merges.append(1)
        return real(conn, *args)

    monkeypatch.setattr(retention, "merge_index", counted)
    add_build(db, finished=NOW - DAY, lines=[f"kept {n}" for n in range(950)])
    unmerged = Unmerged()
    for k in range(10):  # ten small builds of 10 lines, pruned one a pass
        add_build(db, "small", finished=NOW - 2 * DAY, lines=[f"gone {k} {n}" for n in range(10)])
        asyncio.run(prune_once(db, Policy(per_pipeline={"small": 0}), lambda: NOW, unmerged))
        if k < 9:  # 10 × (k + 1) deleted, 950 left: under a tenth
            assert unmerged.records == 10 * (k + 1) and not merges
    assert merges and unmerged.records == 0  # the tenth pass: 100 deleted, 950 left
    check_fts(db)
