"""bass.metrics: its histograms and worker presence, /metrics of the app under
TestClient (read with prometheus_client's parser), what a scrape loads, and who may
read it. A real `bass serve` under real traffic: tests/e2e/test_metrics_scrape.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bass import metrics, pruning
from bass.auth import Users
from bass.config import Destination
from bass.metrics import Histogram, Workers
from bass.store.db import Database
from tests.unit.conftest import App
from tests.unit.helpers import finish_build, start_build, wait_until

PASSWORD = "a long password for the scraper"


def scrape(app: App, **headers: str) -> dict[tuple[str, frozenset], float]:
    response = app.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# -- the structures ----------------------------------------------------------------------


def test_a_value_on_a_bound_is_in_that_bucket_and_the_buckets_add_up() -> None:
    histogram = Histogram((0.1, 1.0))
    for seconds in (0.1, 0.10001, 1.0, 7.0, 0.0):
        histogram.observe(seconds)

    assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert histogram.sum == pytest.approx(8.20001)
    copy = histogram.copy()
    histogram.observe(0.5)
    assert copy.cumulative()[-1] == (float("inf"), 5)  # a copy does not move with it


def test_a_worker_is_connected_while_it_polls_and_for_a_lease_after() -> None:
    now = [100.0]
    workers = Workers(clock=lambda: now[0])
    with workers.poll("a"), workers.poll("a"):
        now[0] += 1000  # a long-poll longer than the lease: still connected
        assert workers.connected(within=60) == 1
    workers.saw("b")  # a heartbeat
    assert workers.connected(within=60) == 2
    now[0] += 60.5
    assert workers.connected(within=60) == 0
    assert workers.seen == {}  # forgotten


def test_worker_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_WORKERS", 3)
    workers = Workers(clock=lambda: 0.0)
    for n in range(10):
        workers.saw(f"w{n}")
    assert list(workers.seen) == ["w7", "w8", "w9"]


# -- the app's counts --------------------------------------------------------------------


def test_builds_claimed_and_ended_are_counted_by_pipeline_and_status(make_app: Any) -> None:
    pipelines = {name: {"repository": "https://example.com/r.git", "exec": ["./b"]}
                 for name in ("demo", "other")}  # fmt: skip
    app = make_app(pipelines)
    first = start_build(app)
    finish_build(app, first, "failed")
    finish_build(app, start_build(app, "other"), "ok")
    running = start_build(app)
    assert app.webhook("other").status_code == 200  # queued: no worker takes it

    samples = scrape(app)

    assert value(samples, "bass_builds_ended_total", pipeline="demo", status="failed") == 1
    assert value(samples, "bass_builds_ended_total", pipeline="other", status="ok") == 1
    assert value(samples, "bass_build_pickup_seconds_count", pipeline="demo") == 2
    assert value(samples, "bass_build_pickup_seconds_count", pipeline="other") == 1
    assert value(samples, "bass_build_duration_seconds_count", pipeline="demo") == 1
    assert value(samples, "bass_builds_running", pipeline="demo") == 1
    assert value(samples, "bass_builds_queued", pipeline="other") == 1
    assert value(samples, "bass_builds_queued", pipeline="demo") == 0
    assert value(samples, "bass_workers_connected") == 1  # "w1", start_build's worker
    assert running["name"] == "demo"


def test_a_build_cancelled_in_the_queue_is_ended_but_never_ran(app: App) -> None:
    queued = app.webhook().json()
    orchestrator = app.client.app_state["orchestrator"]
    app.client.portal.call(orchestrator.cancel, queued["id"])  # type: ignore[union-attr]

    samples = scrape(app)

    assert value(samples, "bass_builds_ended_total", pipeline="demo", status="cancelled") == 1
    assert value(samples, "bass_build_duration_seconds_count", pipeline="demo") == 0
    assert value(samples, "bass_build_pickup_seconds_count", pipeline="demo") == 0


def test_pipelines_past_the_cap_are_counted_together(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "MAX_PIPELINES", 2)
    pipelines = {name: {"repository": "https://example.com/r.git", "exec": ["./b"]}
                 for name in ("a", "b", "c", "d")}  # fmt: skip
    app = make_app(pipelines)
    for name in pipelines:
        finish_build(app, start_build(app, name))

    samples = scrape(app)

    ended = {dict(labels)["pipeline"]: v for (name, labels), v in samples.items()
             if name == "bass_builds_ended_total"}  # fmt: skip
    assert ended == {"a": 1, "b": 1, metrics.OTHER: 2}


def test_retention_passes_and_what_they_removed(make_app: Any) -> None:
    app = make_app(keep_builds=1, prune_interval=0.1)
    for _ in range(3):
        finish_build(app, start_build(app))

    def pruned() -> dict | None:
        samples = scrape(app)
        deleted = value(samples, "bass_retention_deleted_total", what="builds")
        return samples if deleted == 2 else None

    samples = wait_until(pruned, what="two builds pruned and counted")

    assert value(samples, "bass_retention_runs_total", result="ok") >= 1
    assert value(samples, "bass_retention_runs_total", result="failed") == 0
    assert ("bass_retention_deleted_total", frozenset({("what", "log_records")})) in samples


def test_a_failed_retention_pass_is_counted(tmp_path: Path) -> None:
    db = Database(tmp_path / "broken.db")
    db.write(lambda conn: conn.execute("ALTER TABLE builds RENAME TO elsewhere"))  # passes fail
    heard: list[dict[str, int] | None] = []

    async def two_passes() -> None:
        task = asyncio.create_task(
            pruning.prune_forever(db, pruning.Policy(keep_builds=1), 0.01, on_pass=heard.append)
        )

        async def heard_two() -> None:
            while len(heard) < 2:
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(heard_two(), 30)  # a loop that stopped fails, not hangs
        finally:
            task.cancel()

    asyncio.run(two_passes())
    db.close()
    assert heard[:2] == [None, None]


def test_store_size_is_the_database_file_and_its_wal(app: App) -> None:
    samples = scrape(app)
    files = [app.db_path, app.db_path.with_name(app.db_path.name + "-wal")]
    assert value(samples, "bass_store_size_bytes") == sum(
        f.stat().st_size for f in files if f.exists()
    )


def test_a_destination_is_named_without_its_password(make_app: Any) -> None:
    secret_url = "http://bass:s3cret-pw@127.0.0.1:9/v1/logs?api_key=k3y"  # port 9: nothing
    app = make_app(forward=[Destination("logs", secret_url, {})])

    text = app.client.get("/metrics").text

    assert "s3cret-pw" not in text and "k3y" not in text
    assert 'destination="http://bass:***@127.0.0.1:9/v1/logs"' in text
    assert value(scrape(app), "bass_forward_queue_limit_bytes") == 64 << 20


def test_metrics_is_read_only(app: App) -> None:
    assert app.client.post("/metrics").status_code == 405


# -- what a scrape costs ---------------------------------------------------------------------


def test_prometheus_client_is_loaded_by_the_first_scrape_not_at_start(tmp_path: Path) -> None:
    """In a process of its own: this one has loaded prometheus_client long ago."""
    script = textwrap.dedent(
        f"""
        import sys
        from starlette.testclient import TestClient
        from bass.app import create_app
        from bass.config import Config, Settings

        settings = Settings(db={str(tmp_path / "bass.db")!r}, config=Config(),
                            allowed_hosts=["testserver"],
                            users_file={str(tmp_path / "users.json")!r})
        with TestClient(create_app(settings)) as client:
            client.post("/v1/logs", content=b"{{}}", headers={{"Content-Type": "application/json"}})
            client.get("/api/status")
            print("before", "prometheus_client" in sys.modules)
            assert client.get("/metrics").status_code == 200
            print("after", "prometheus_client" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["before", "False", "after", "True"]


# -- who may read it ---------------------------------------------------------------------------


@pytest.fixture
def locked(make_app: Any, tmp_path: Path) -> tuple[App, str]:
    """The app with a users file, and a person's API token."""
    users = Users(tmp_path / "people.json")
    users.add("prom", PASSWORD)
    return make_app(users_file=str(users.path)), users.new_token("prom", "scrape")


def test_with_users_a_stranger_gets_401_not_the_login_page(locked: tuple[App, str]) -> None:
    app, _ = locked
    response = app.client.get("/metrics", follow_redirects=False)
    assert response.status_code == 401
    assert "bass_" not in response.text


def test_with_users_a_token_or_a_session_opens_it(locked: tuple[App, str]) -> None:
    app, token = locked
    assert value(scrape(app, Authorization=f"Bearer {token}"), "bass_workers_connected") == 0

    app.client.get("/login")
    login = app.client.post(
        "/login",
        data={"user": "prom", "password": PASSWORD, "next": "/",
              "csrf": app.client.cookies["bass_csrf"]},
        follow_redirects=False,
    )  # fmt: skip
    assert login.status_code == 303
    assert ("bass_store_size_bytes", frozenset()) in scrape(app)
