"""GET /api/status and /status; the receiver under overload (503 + Retry-After when the
group-commit queue is full); group commit keeping each write all or nothing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from bass.ingest.forward import json_to_protobuf
from bass.store import logs
from bass.store.db import Busy, Database
from tests.unit.conftest import App
from tests.unit.helpers import (
    finish_build,
    json_logs,
    json_traces,
    record,
    rows,
    span,
    start_build,
    trace_of,
    wait_until,
)

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "eee19b7ec3c1b174"
JSON = {"Content-Type": "application/json"}


# -- /api/status and /status --------------------------------------------------------------


def test_status_shape(app: App) -> None:
    first = start_build(app)
    finish_build(app, first, "ok")
    second = start_build(app)
    finish_build(app, second, "failed")
    start_build(app)  # running
    assert app.webhook().status_code == 200  # queued
    post = app.client.post
    spans = json_traces(span(TRACE, ROOT), span(TRACE, "eee19b7ec3c1b175", parent=ROOT))
    assert post("/v1/traces", content=spans, headers=JSON).status_code == 200
    logs = json_logs(*(record(trace_of(first), ROOT, f"l{n}") for n in range(3)))
    assert post("/v1/logs", content=logs, headers=JSON).status_code == 200
    partial = json_logs(record(TRACE, ROOT, "kept"), record(TRACE, "xyz", "refused"))
    assert post("/v1/logs", content=partial, headers=JSON).status_code == 200
    assert post("/v1/traces", content=b"{", headers=JSON).status_code == 400
    assert post("/v1/logs", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415

    response = app.client.get("/api/status")

    assert response.status_code == 200
    status = response.json()
    assert set(status) == {"builds", "config", "ingest", "forwarding", "store"}
    assert status["config"]["ok"] is True and status["config"]["error"] is None
    assert status["builds"] == {"ok": 1, "failed": 1, "running": 1, "queued": 1}
    ingest = status["ingest"]
    assert ingest["requests"] == {"traces 200": 1, "logs 200": 2, "traces 400": 1, "logs 415": 1}
    assert ingest["stored"] == {"traces": 2, "logs": 4}
    assert ingest["rejected"] == {"traces": 0, "logs": 1}
    assert status["forwarding"] == []
    assert status["store"]["path"] == str(app.db_path.resolve())
    on_disk = sum(p.stat().st_size for p in (app.db_path, Path(f"{app.db_path}-wal")) if p.exists())
    assert status["store"]["bytes"] == on_disk > 0

    page = app.client.get("/status")
    assert page.status_code == 200
    assert page.template.name == "status.html"  # type: ignore[attr-defined]
    for text in (
        "requests: traces 400",
        "logs stored",
        "logs rejected (bad ids)",
        "Not configured",
    ):
        assert text in page.text
    assert page.context["builds"] == status["builds"]  # type: ignore[attr-defined]


def test_status_of_a_new_server(app: App) -> None:
    status = app.client.get("/api/status").json()
    assert status["builds"] == {}
    assert status["ingest"] == {"requests": {}, "stored": {}, "rejected": {}}
    page = app.client.get("/status")
    assert page.status_code == 200
    assert "nothing yet" in page.text and "none yet" in page.text


# -- overload -------------------------------------------------------------------------------


def app_db(app: App) -> Database:
    return app.client.app_state["db"]


def post_concurrently(
    app: App, bodies: list[bytes], results: dict[int, Any]
) -> list[threading.Thread]:
    def post(n: int, body: bytes) -> None:
        results[n] = app.client.post("/v1/logs", content=body, headers=JSON)

    threads = [threading.Thread(target=post, args=(n, b)) for n, b in enumerate(bodies)]
    for t in threads:
        t.start()
    return threads


def test_a_full_write_queue_answers_503_with_retry_after(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Database, "MAX_PENDING", 3)
    bodies = [json_logs(record(TRACE, ROOT, f"request {n}")) for n in range(10)]
    results: dict[int, Any] = {}
    db = app_db(app)
    with db._write_lock:  # the store is stuck behind a long write
        threads = post_concurrently(app, bodies, results)
        wait_until(lambda: len(results) == 10 - 3, what="the refusals")
        refused = dict(results)
        assert app.count("logs") == 0
    for t in threads:
        t.join(30)
    assert len(results) == 10

    for response in refused.values():
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == 14  # UNAVAILABLE
    accepted = sorted(n for n, r in results.items() if r.status_code == 200)
    assert len(accepted) == 3
    assert {r.status_code for r in results.values()} == {200, 503}  # no 500
    stored = [r["body"] for r in app.rows("SELECT body FROM logs ORDER BY body")]
    assert stored == sorted(f"request {n}" for n in accepted)  # the refused stored nothing

    requests = app.client.get("/api/status").json()["ingest"]["requests"]
    assert requests == {"logs 200": 3, "logs 503": 7}
    # room again: the next request is taken
    assert app.client.post("/v1/logs", content=bodies[0], headers=JSON).status_code == 200


def test_overload_answers_protobuf_in_protobuf(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Database, "MAX_PENDING", 0)
    body = json_to_protobuf("logs", json_logs(record(TRACE, ROOT, "protobuf")))
    assert ExportLogsServiceRequest.FromString(body).resource_logs
    response = app.client.post(
        "/v1/logs", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/x-protobuf"
    assert response.content[:2] == b"\x08\x0e"  # google.rpc.Status code 14, UNAVAILABLE
    assert b"retry later" in response.content
    assert app.count("logs") == 0


# -- group commit ---------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "bass.db")
    yield database
    database.close()


@contextlib.contextmanager
def writer_busy(db: Database) -> Iterator[None]:
    """Hold the group-commit writer inside a write: what is submitted meanwhile waits,
    and is committed together once the block ends."""
    running, go_on = threading.Event(), threading.Event()

    def long_write(conn: Any) -> None:
        running.set()
        go_on.wait(30)

    blocker = db.submit(long_write)
    assert running.wait(30)
    try:
        yield
    finally:
        go_on.set()
        blocker.result(30)


def log_line(body: str) -> tuple:
    return (TRACE, ROOT, 1, 9, "INFO", body, "{}", '{"service.name":"x"}')


def read_logs(db: Database, sql: str) -> list[dict[str, Any]]:
    """Rows of `sql` over log records as rows of a view `logs`."""

    def read(conn: Any) -> list[dict[str, Any]]:
        logs.attach_view(conn)
        return conn.execute(sql).fetchall()

    return db.read(read)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_write_in_a_batch_spoils_only_itself(db: Database, failing: int) -> None:
    seen_from_outside: list[list] = []

    def write(conn: Any, n: int) -> str:
        logs.insert_logs(conn, [log_line(f"write{n} alpha"), log_line(f"write{n} beta")])
        # the other write of the batch is not committed yet: one transaction for both
        seen_from_outside.append(rows(db.path, "SELECT body FROM logs"))
        if n == failing:
            raise ValueError(f"write {n} fails")
        return f"write {n} done"

    with writer_busy(db):
        futures = [db.submit(write, 0), db.submit(write, 1)]

    ok = 1 - failing
    assert futures[ok].result(30) == f"write {ok} done"
    with pytest.raises(ValueError, match=f"write {failing} fails"):
        futures[failing].result(30)
    assert seen_from_outside == [[], []]
    bodies = [r["body"] for r in read_logs(db, "SELECT body FROM logs")]
    assert bodies == [f"write{ok} alpha", f"write{ok} beta"]
    fts = db.read(logs.search_logs, f"write{failing}")
    assert fts == []
    assert [r["body"] for r in db.read(logs.search_logs, f"write{ok}")] == [
        f"write{ok} beta",
        f"write{ok} alpha",
    ]
    db.write(lambda c: c.execute("INSERT INTO log_text (log_text) VALUES ('integrity-check')"))


def test_submit_refuses_past_max_pending(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Database, "MAX_PENDING", 4)
    with writer_busy(db):
        accepted = [db.submit(logs.insert_logs, [log_line(f"queued {n}")]) for n in range(3)]
        with pytest.raises(Busy):
            db.submit(logs.insert_logs, [log_line("one too many")])
    for future in accepted:
        future.result(30)
    assert db.submit(logs.insert_logs, [log_line("room again")]).result(30) is None
    bodies = read_logs(db, "SELECT body FROM logs ORDER BY id")
    assert [r["body"] for r in bodies] == ["queued 0", "queued 1", "queued 2", "room again"]


def test_a_write_given_up_before_it_ran_is_not_made_and_the_writer_goes_on(db: Database) -> None:
    """A caller cancelled while its write waited (a client gone, a deadline passed):
    the write is skipped, the writes queued with it are made, and so are later ones
    (setting the outcome of a cancelled future used to kill the writer thread)."""
    with writer_busy(db):
        kept = db.submit(logs.insert_logs, [log_line("kept")])
        dropped = db.submit(logs.insert_logs, [log_line("given up")])
        assert dropped.cancel()
    kept.result(30)
    assert db.submit(logs.insert_logs, [log_line("later")]).result(30) is None
    bodies = read_logs(db, "SELECT body FROM logs ORDER BY id")
    assert [r["body"] for r in bodies] == ["kept", "later"]
