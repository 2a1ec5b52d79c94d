"""bass.store.builds on a real SQLite file: numbering, claiming, leases, ends."""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bass.store import builds, schema
from bass.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "bass.db")
    yield database
    database.close()


_clock = itertools.count(1000)


def enqueue(db: Database, pipeline: str = "demo", worker_tags: list[str] | None = None,
            **kw: Any) -> dict[str, Any]:  # fmt: skip
    config = {"repository": "r", "exec": ["x"], "worker-tags": worker_tags or []}
    return db.write(
        builds.enqueue,
        pipeline=pipeline,
        config=config,
        trigger="webhook",
        trace_id=secrets.token_hex(16),
        root_span_id=secrets.token_hex(8),
        now=float(next(_clock)),
        **kw,
    )


def claim(db: Database, tags: list[str] | None = None, now: float = 100.0,
          lease: float | None = 10.0, worker: str = "w1") -> dict[str, Any] | None:  # fmt: skip
    return db.write(builds.claim, worker=worker, tags=tags or [], now=now, lease_seconds=lease)


def test_numbers_count_per_pipeline(db: Database) -> None:
    numbers = [(j["pipeline"], j["number"]) for j in (
        enqueue(db, "a"), enqueue(db, "a"), enqueue(db, "b"), enqueue(db, "a"), enqueue(db, "b"),
    )]  # fmt: skip
    assert numbers == [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]


def test_enqueue_returns_the_decoded_row(db: Database) -> None:
    job = enqueue(db, worker_tags=["linux"], changed_refs=["abc"], tags=["v1"])
    assert job["state"] == "queued"
    assert job["changed_refs"] == ["abc"]
    assert job["tags"] == ["v1"]
    assert job["worker_tags"] == ["linux"]
    assert job["config"]["exec"] == ["x"]
    assert job["started_at"] is None and job["worker"] is None


def test_claim_takes_the_oldest(db: Database) -> None:
    first, second, third = enqueue(db, "a"), enqueue(db, "b"), enqueue(db, "a")
    assert [claim(db)["id"] for _ in range(3)] == [first["id"], second["id"], third["id"]]  # type: ignore[index]
    assert claim(db) is None


def test_claim_marks_the_job_running_for_the_worker(db: Database) -> None:
    job = enqueue(db)
    claimed = claim(db, now=500.0, lease=30.0, worker="box-1")
    assert claimed is not None and claimed["id"] == job["id"]
    assert (claimed["state"], claimed["worker"]) == ("running", "box-1")
    assert (claimed["started_at"], claimed["lease_expires"]) == (500.0, 530.0)
    assert db.read(builds.get, job["id"])["state"] == "running"


def test_claim_without_lease_has_no_expiry(db: Database) -> None:
    enqueue(db)
    assert claim(db, lease=None)["lease_expires"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("job_tags", "worker_tags", "claimed"),
    [
        (["linux", "docker"], ["docker", "linux", "x"], True),
        (["linux", "docker"], ["linux", "docker"], True),
        (["linux", "docker"], ["linux"], False),
        (["linux", "docker"], [], False),
        (["linux"], ["Linux"], False),
        ([], [], True),
        ([], ["linux", "gpu"], True),
    ],
)
def test_worker_tags_must_include_all_of_the_jobs(
    db: Database, job_tags: list[str], worker_tags: list[str], claimed: bool
) -> None:
    job = enqueue(db, worker_tags=job_tags)
    got = claim(db, tags=worker_tags)
    assert (got is not None and got["id"] == job["id"]) is claimed
    if not claimed:
        assert db.read(builds.get, job["id"])["state"] == "queued"


def test_claim_skips_jobs_the_worker_cannot_run(db: Database) -> None:
    gpu = enqueue(db, worker_tags=["gpu"])
    plain = enqueue(db)
    assert claim(db, tags=["linux"])["id"] == plain["id"]  # type: ignore[index]
    assert claim(db, tags=["linux"]) is None
    assert claim(db, tags=["gpu"])["id"] == gpu["id"]  # type: ignore[index]


def test_two_databases_never_claim_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "bass.db"
    setup = Database(path)
    ids = {enqueue(setup)["id"] for _ in range(200)}
    setup.close()

    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        db = Database(path)
        try:
            start.wait()
            while (job := claim(db, worker=name)) is not None:
                claimed[name].append(job["id"])
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            db.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    everything = claimed["w1"] + claimed["w2"]
    assert sorted(everything) == sorted(ids)  # each exactly once
    check = Database(path)
    try:
        rows = check.read(lambda c: c.execute("SELECT id, worker FROM builds").fetchall())
    finally:
        check.close()
    owner = {r["id"]: r["worker"] for r in rows}
    assert all(owner[i] == "w1" for i in claimed["w1"])
    assert all(owner[i] == "w2" for i in claimed["w2"])


def test_heartbeat_extends_the_lease(db: Database) -> None:
    job = enqueue(db)
    claim(db, now=100.0, lease=10.0)
    beat = db.write(builds.heartbeat, job["id"], now=105.0, lease_seconds=10.0)
    assert beat is not None and beat["lease_expires"] == 115.0
    assert db.read(builds.get, job["id"])["lease_expires"] == 115.0


def test_heartbeat_only_for_running_jobs(db: Database) -> None:
    queued = enqueue(db)
    assert db.write(builds.heartbeat, queued["id"], now=1.0, lease_seconds=10.0) is None
    assert db.read(builds.get, queued["id"])["lease_expires"] is None
    claim(db)
    db.write(builds.finish, queued["id"], status="ok", now=2.0)
    assert db.write(builds.heartbeat, queued["id"], now=3.0, lease_seconds=10.0) is None
    assert db.write(builds.heartbeat, 9999, now=3.0, lease_seconds=10.0) is None


def test_finish_a_running_job(db: Database) -> None:
    job = enqueue(db)
    claim(db, now=100.0)
    done = db.write(builds.finish, job["id"], status="failed", now=120.0, message="step 2 failed")
    assert done is not None
    assert (done["state"], done["finished_at"], done["lease_expires"]) == ("failed", 120.0, None)
    assert (done["started_at"], done["message"]) == (100.0, "step 2 failed")


def test_finish_only_from_queued_or_running(db: Database) -> None:
    job = enqueue(db)
    done = db.write(builds.finish, job["id"], status="cancelled", now=50.0)
    assert done is not None and done["state"] == "cancelled"
    assert done["started_at"] == 50.0  # a build that never ran starts and ends at once
    assert db.write(builds.finish, job["id"], status="ok", now=60.0) is None
    row = db.read(builds.get, job["id"])
    assert (row["state"], row["finished_at"]) == ("cancelled", 50.0)


@pytest.mark.parametrize("state", ["running", "queued", "passed", ""])
def test_finish_refuses_non_final_states(db: Database, state: str) -> None:
    job = enqueue(db)
    with pytest.raises(ValueError, match="not a final state"):
        db.write(builds.finish, job["id"], status=state, now=1.0)
    assert db.read(builds.get, job["id"])["state"] == "queued"


def test_expired(db: Database) -> None:
    leased = enqueue(db)
    enqueue(db)  # claimed without a lease (a worker that does not heartbeat)
    ended = enqueue(db)
    enqueue(db)  # stays queued
    claim(db, now=100.0, lease=10.0)  # leased: until 110
    claim(db, now=100.0, lease=None)  # legacy: no lease
    claim(db, now=100.0, lease=1.0)  # ended, then finished
    db.write(builds.finish, ended["id"], status="ok", now=101.0)
    assert db.read(builds.expired, now=109.0) == []
    assert [j["id"] for j in db.read(builds.expired, now=111.0)] == [leased["id"]]
    # the lease-less, the ended and the queued job never expire
    assert [j["id"] for j in db.read(builds.expired, now=1e12)] == [leased["id"]]


def test_request_cancel(db: Database) -> None:
    queued, running, ended = enqueue(db), enqueue(db), enqueue(db)
    db.write(builds.finish, ended["id"], status="ok", now=1.0)
    claim(db)  # takes `queued`
    claim(db)  # takes `running`
    assert db.write(builds.request_cancel, running["id"])["cancel_requested"] == 1  # type: ignore[index]
    assert db.write(builds.request_cancel, ended["id"]) is None
    assert db.read(builds.get, ended["id"])["cancel_requested"] == 0
    assert db.read(builds.get, queued["id"])["cancel_requested"] == 0
    fresh = enqueue(db)
    assert db.write(builds.request_cancel, fresh["id"])["state"] == "queued"  # type: ignore[index]


def test_register_local_is_idempotent_per_trace(db: Database) -> None:
    enqueue(db, "demo")
    first = db.write(
        builds.register_local, pipeline="demo", trace_id="a" * 32, root_span_id="b" * 16,
        started_at=10.0,
    )  # fmt: skip
    assert first is not None
    assert (first["number"], first["state"], first["trigger"]) == (2, "running", "local")
    assert (first["root_span_id"], first["started_at"]) == ("b" * 16, 10.0)
    again = db.write(
        builds.register_local, pipeline="demo", trace_id="a" * 32, root_span_id="c" * 16,
        started_at=11.0,
    )  # fmt: skip
    assert again is None
    assert db.read(builds.by_trace, "a" * 32)["id"] == first["id"]
    # a queued build's trace is known too
    queued = enqueue(db, "demo")
    assert db.write(
        builds.register_local, pipeline="demo", trace_id=queued["trace_id"], root_span_id="d" * 16,
        started_at=12.0,
    ) is None  # fmt: skip
    assert enqueue(db, "demo")["number"] == 4


def test_queued_job_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "bass.db"
    first = Database(path)
    job = enqueue(first, worker_tags=["linux"], changed_refs=["abc"], tags=["v2"])
    first.close()

    second = Database(path)
    try:
        claimed = claim(second, tags=["linux"])
        assert claimed is not None
        assert claimed["id"] == job["id"]
        assert claimed["trace_id"] == job["trace_id"]
        assert (claimed["changed_refs"], claimed["tags"]) == (["abc"], ["v2"])
        assert claimed["config"] == job["config"]
        assert enqueue(second)["number"] == 2
    finally:
        second.close()


def test_migrations_run_once(tmp_path: Path) -> None:
    Database(tmp_path / "bass.db").close()
    db = Database(tmp_path / "bass.db")
    try:
        assert db.write(schema.migrate) == []
        names = db.read(lambda c: [r["name"] for r in c.execute("SELECT name FROM migrations")])
        assert names == [name for name, *_ in schema.MIGRATIONS]
    finally:
        db.close()


def test_a_failed_write_stores_nothing(db: Database) -> None:
    def enqueue_then_fail(conn: Any) -> None:
        builds.enqueue(conn, pipeline="demo", config={}, trigger="cli", trace_id="a" * 32,
                     root_span_id="b" * 16, now=1.0)  # fmt: skip
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        db.write(enqueue_then_fail)
    assert db.read(builds.by_trace, "a" * 32) is None
    assert enqueue(db)["number"] == 1


def test_pages_and_latest(db: Database) -> None:
    for _ in range(5):
        enqueue(db, "a")
    enqueue(db, "b")
    assert [j["number"] for j in db.read(builds.for_pipeline, "a", limit=2)] == [5, 4]
    assert [j["number"] for j in db.read(builds.for_pipeline, "a", limit=2, before=4)] == [3, 2]
    latest = db.read(builds.latest_per_pipeline)
    assert {k: v["number"] for k, v in latest.items()} == {"a": 5, "b": 1}
    assert db.read(builds.by_number, "a", 3)["number"] == 3
    assert db.read(builds.by_number, "a", 9) is None
