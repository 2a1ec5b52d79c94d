"""The worker and trigger API over HTTP: /webhook, /pipelines, /dequeue, /jobs/*."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from datetime import datetime
from typing import Any

import pytest

from tests.unit.conftest import App
from tests.unit.helpers import KEY, span, wait_until

PIPELINES: dict[str, dict[str, Any]] = {
    "demo": {"repository": "https://builder:s3cret-token@git.example.com/demo.git",
             "exec": ["./build.py"], "ref": "main"},
    "linux": {"repository": "/srv/git/linux.git", "exec": "make", "worker-tags": ["linux"]},
    "release": {"repository": "git@example.com:org/release.git", "exec": ["./release.sh"],
                "tag-pattern": "^v[0-9]+$"},
}  # fmt: skip


@pytest.fixture
def app(make_app: Any) -> App:
    return make_app(PIPELINES, env={"SECRET": "xyz"})


def queued_jobs(app: App) -> list[dict[str, Any]]:
    return app.rows("SELECT * FROM builds ORDER BY id")


BUILDER = "bass_builder"  # the scope the builder's spans carry: what makes a local build


def holder(job: dict[str, Any]) -> dict[str, str]:
    """The headers of the worker that holds the build: its key and the job token."""
    return {"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"}


def claim(app: App, **body: Any) -> dict[str, Any]:
    response = app.dequeue(body)
    assert response.status_code == 200, response.text
    return response.json()


# -- /webhook -------------------------------------------------------------------------


def test_webhook_queues_a_build(app: App) -> None:
    response = app.webhook("demo")
    assert response.status_code == 200
    body = response.json()
    assert body["queued"] is True
    assert (body["pipeline"], body["number"]) == ("demo", 1)
    assert body["url"] == "http://testserver/pipelines/demo/1"
    (job,) = queued_jobs(app)
    assert (job["id"], job["state"], job["trigger"]) == (body["id"], "queued", "webhook")
    assert job["trace_id"] == body["trace-id"]
    assert app.webhook("demo").json()["number"] == 2


def test_webhook_without_pipeline_is_400(app: App) -> None:
    for response in (app.client.post("/webhook"), app.client.post("/webhook?pipeline=")):
        assert response.status_code == 400
        assert "pipeline" in response.json()["error"]
    assert queued_jobs(app) == []


def test_webhook_unknown_pipeline_is_404(app: App) -> None:
    response = app.webhook("nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
    assert queued_jobs(app) == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"demo"', b"\xff\xfe"])
def test_webhook_malformed_body_is_400(app: App, body: bytes) -> None:
    response = app.client.post("/webhook?pipeline=demo", content=body)
    assert response.status_code == 400
    assert queued_jobs(app) == []


def test_changed_refs_and_tags_from_the_query(app: App) -> None:
    assert app.webhook("demo", changed_refs="abc123,feature/x", tags="t1,t2").status_code == 200
    (job,) = queued_jobs(app)
    assert job["changed_refs"] == '["abc123", "feature/x"]'
    assert job["tags"] == '["t1", "t2"]'


def test_pipeline_changed_refs_and_tags_from_a_json_body(app: App) -> None:
    body = {"pipeline": "demo", "changed-refs": ["abc123", "main..topic"], "tags": "x,y"}
    assert app.client.post("/webhook", json=body).status_code == 200
    (job,) = queued_jobs(app)
    assert (job["pipeline"], job["changed_refs"], job["tags"]) == (
        "demo",
        '["abc123", "main..topic"]',
        '["x", "y"]',
    )


def test_changed_refs_and_tags_from_a_push_event(app: App) -> None:
    push = {
        "ref": "refs/tags/v1",
        "before": "0" * 40,
        "after": "b" * 40,
        "commits": [{"id": "a" * 40, "message": "one"}, {"id": "b" * 40, "message": "two"}],
        "repository": {"full_name": "org/demo"},
    }
    # a tag push builds where a tag-pattern matches it (issue 10: not on every pipeline)
    response = app.client.post("/webhook?pipeline=demo", json=push)
    assert response.json() == {"queued": False, "reason": "tag v1: the pipeline has no tag-pattern"}
    response = app.client.post("/webhook?pipeline=release", json=push)
    assert response.status_code == 200
    (job,) = queued_jobs(app)
    assert job["changed_refs"] == f'["{"a" * 40}", "{"b" * 40}"]'
    assert job["tags"] == '["v1"]'
    assert (job["tag"], job["commit_sha"], job["branch"]) == ("v1", "b" * 40, None)


def test_a_branch_push_event_has_no_tag(app: App) -> None:
    push = {"ref": "refs/heads/main", "commits": [{"id": "c" * 40}]}
    assert app.client.post("/webhook?pipeline=demo", json=push).status_code == 200
    assert queued_jobs(app)[0]["tags"] == "[]"


@pytest.mark.parametrize("ref", ["--output=x", "-x", "a..b..c", "has space", "$(id)", "a;b"])
def test_changed_refs_that_are_no_refs_are_400(app: App, ref: str) -> None:
    assert app.webhook("demo", changed_refs=f"abc,{ref}").status_code == 400
    body = {"pipeline": "demo", "changed-refs": [ref]}
    assert app.client.post("/webhook", json=body).status_code == 400
    push = {"commits": [{"id": ref}]}
    assert app.client.post("/webhook?pipeline=demo", json=push).status_code == 400
    assert queued_jobs(app) == []


@pytest.mark.parametrize("commit_id", [12345, ["abc"], {"sha": "abc"}])
def test_push_event_commit_ids_must_be_strings(app: App, commit_id: Any) -> None:
    push = {"commits": [{"id": commit_id}]}
    response = app.client.post("/webhook?pipeline=demo", json=push)
    assert response.status_code == 400
    assert queued_jobs(app) == []


@pytest.mark.parametrize("value", [5, [1], {"a": "b"}, True])
def test_changed_refs_of_the_wrong_type_are_400(app: App, value: Any) -> None:
    for field in ("changed-refs", "tags"):
        response = app.client.post("/webhook", json={"pipeline": "demo", field: value})
        assert response.status_code == 400, field
    assert queued_jobs(app) == []


def test_tag_pattern_suppresses_builds(app: App) -> None:
    for response in (
        app.webhook("release"),
        app.webhook("release", tags="nightly,v1-rc"),
        app.client.post("/webhook?pipeline=release", json={"ref": "refs/heads/v1"}),
    ):
        assert response.status_code == 200
        assert response.json()["queued"] is False
    assert queued_jobs(app) == []


def test_tag_pattern_lets_matching_builds_through(app: App) -> None:
    assert app.webhook("release", tags="nightly,v12").json()["queued"] is True
    push = {"ref": "refs/tags/v2", "commits": []}
    assert app.client.post("/webhook?pipeline=release", json=push).json()["queued"] is True
    assert [j["tags"] for j in queued_jobs(app)] == ['["nightly", "v12"]', '["v2"]']


# -- /pipelines -----------------------------------------------------------------------


def test_pipelines_returns_the_config_keyed_by_name(app: App) -> None:
    response = app.client.get("/pipelines")
    assert response.status_code == 200
    pipelines = response.json()
    assert sorted(pipelines) == ["demo", "linux", "release"]
    assert pipelines["demo"]["exec"] == ["./build.py"]
    assert pipelines["demo"]["ref"] == "main"
    assert pipelines["demo"]["worker-tags"] == []
    assert pipelines["linux"]["worker-tags"] == ["linux"]
    assert pipelines["release"]["tag-pattern"] == "^v[0-9]+$"
    assert pipelines["linux"]["repository"] == "/srv/git/linux.git"
    assert pipelines["release"]["repository"] == "git@example.com:org/release.git"


def test_pipelines_redact_a_password_in_the_repository_url(app: App) -> None:
    response = app.client.get("/pipelines")
    assert "s3cret-token" not in response.text
    assert response.json()["demo"]["repository"] == "https://builder:***@git.example.com/demo.git"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:pw@host.example:8443/r.git", "https://u:***@host.example:8443/r.git"),
        ("https://u:pw@[::1]:8080/r.git", "https://u:***@[::1]:8080/r.git"),
        ("https://u:pw@Host.Example/r.git", "https://u:***@Host.Example/r.git"),
        ("https://host.example/r.git", "https://host.example/r.git"),
        ("https://ghp_token123@host.example/r.git", "https://***@host.example/r.git"),
        ("ssh://git@host.example/r.git", "ssh://git@host.example/r.git"),
        ("git@host.example:team/r.git", "git@host.example:team/r.git"),
    ],
)
def test_redaction_keeps_the_rest_of_the_url(make_app: Any, url: str, shown: str) -> None:
    app = make_app({"p": {"repository": url, "exec": ["x"]}})
    response = app.client.get("/pipelines")
    assert response.json()["p"]["repository"] == shown
    if url != shown:
        assert "pw" not in response.text and "token" not in response.text


# -- /dequeue -------------------------------------------------------------------------


def test_dequeue_without_key_is_401(app: App) -> None:
    app.webhook("demo")
    assert app.dequeue(key=None).status_code == 401
    assert queued_jobs(app)[0]["state"] == "queued"


@pytest.mark.parametrize("key", ["wrong", KEY + "x", KEY[:-1], ""])
def test_dequeue_with_a_wrong_key_is_403_or_401(app: App, key: str) -> None:
    app.webhook("demo")
    assert app.dequeue(key=key).status_code == (401 if key == "" else 403)
    assert queued_jobs(app)[0]["state"] == "queued"


def test_any_of_several_keys_is_accepted(make_app: Any) -> None:
    app = make_app(keys=["first", "second"])
    app.webhook("demo")
    assert app.dequeue(key="second").status_code == 200


def test_without_keys_only_loopback_may_dequeue(make_app: Any) -> None:
    app = make_app(keys=[])
    app.webhook("demo")
    # TestClient's client host is "testclient": not this machine
    for key in (None, "anything"):
        response = app.dequeue(key=key)
        assert response.status_code == 403
        assert "no worker keys" in response.json()["error"]
    assert queued_jobs(app)[0]["state"] == "queued"


def test_dequeue_with_nothing_queued_is_204(app: App) -> None:
    response = app.dequeue({"tags": []})
    assert response.status_code == 204
    assert response.content == b""


def test_dequeue_returns_the_job(app: App) -> None:
    queued = app.webhook("demo", changed_refs="abc123").json()
    job = claim(app, tags=["linux"], worker="box-1")
    # the prototype's fields
    assert job["name"] == "demo"
    assert datetime.fromisoformat(job["schedule-time"]).tzinfo is not None
    assert job["env"] == {"SECRET": "xyz"}
    assert job["pipeline"]["exec"] == ["./build.py"]
    assert job["pipeline"]["repository"] == PIPELINES["demo"]["repository"]  # the worker needs it
    assert job["changed-refs"] == ["abc123"]
    otel = job["otel"]
    assert otel["traces-endpoint"] == "http://testserver/v1/traces"
    assert otel["logs-endpoint"] == "http://testserver/v1/logs"
    assert otel["service-name"] == "bass:pipeline:demo"
    assert re.fullmatch(r"[0-9a-f]{32}", otel["trace-id"])
    assert re.fullmatch(r"[0-9a-f]{16}", otel["root-span-id"])
    assert otel["trace-id"] == queued["trace-id"]
    # the additions
    assert (job["id"], job["number"]) == (queued["id"], 1)
    assert job["heartbeat-url"] == f"http://testserver/jobs/{job['id']}/heartbeat"
    assert job["result-url"] == f"http://testserver/jobs/{job['id']}/result"
    row = app.job(job["id"])
    assert (row["state"], row["worker"], row["lease_expires"]) == ("running", "box-1", None)
    assert app.dequeue({}).status_code == 204  # handed out once


def test_dequeue_uses_the_configured_telemetry_endpoints(make_app: Any) -> None:
    app = make_app(
        traces_endpoint="http://tempo:4318/v1/traces", logs_endpoint="http://loki:4318/v1/logs"
    )
    app.webhook("demo")
    otel = claim(app)["otel"]
    assert otel["traces-endpoint"] == "http://tempo:4318/v1/traces"
    assert otel["logs-endpoint"] == "http://loki:4318/v1/logs"


def test_a_prototype_worker_request_works(app: App) -> None:
    app.webhook("demo")
    response = app.client.post("/dequeue", headers={"X-API-KEY": KEY})  # no body at all
    assert response.status_code == 200
    assert response.json()["name"] == "demo"


def test_dequeue_respects_worker_tags(app: App) -> None:
    app.webhook("linux")
    assert app.dequeue({"tags": ["docker"]}).status_code == 204
    assert app.dequeue({}).status_code == 204
    assert claim(app, tags=["docker", "linux"])["name"] == "linux"


@pytest.mark.parametrize(
    "body",
    [b"{oops", b"[]", b'{"tags": 5}', b'{"wait": -1}', b'{"wait": "5"}', b'{"wait": true}',
     b'{"worker": "has space"}', b'{"worker": 7}'],
)  # fmt: skip
def test_malformed_dequeue_is_400(app: App, body: bytes) -> None:
    app.webhook("demo")
    response = app.client.post("/dequeue", content=body, headers={"X-API-KEY": KEY})
    assert response.status_code == 400
    assert queued_jobs(app)[0]["state"] == "queued"


def _dequeue_in_a_thread(app: App, body: dict[str, Any]) -> tuple[threading.Thread, dict]:
    result: dict[str, Any] = {}

    def poll() -> None:
        result["response"] = app.dequeue(body)

    poller = threading.Thread(target=poll)
    poller.start()
    return poller, result


def test_long_poll_returns_as_soon_as_a_job_is_queued(app: App) -> None:
    orchestrator = app.client.app_state["orchestrator"]
    poller, result = _dequeue_in_a_thread(app, {"wait": 60, "tags": []})
    wait_until(lambda: orchestrator.waiting == 1, what="the poll waiting")
    assert "response" not in result
    queued = app.webhook("demo").json()
    poller.join(30)
    response = result["response"]
    # woken by the webhook: without the wake-up it would sit out its 60 s and answer 204
    assert response.status_code == 200
    assert response.json()["id"] == queued["id"]
    assert orchestrator.waiting == 0


def test_long_poll_with_nothing_queued_is_204(app: App) -> None:
    orchestrator = app.client.app_state["orchestrator"]
    poller, result = _dequeue_in_a_thread(app, {"wait": 3})
    wait_until(lambda: orchestrator.waiting == 1, what="the poll waiting")  # it waits ...
    poller.join(30)
    assert result["response"].status_code == 204  # ... and answers nothing to do
    assert orchestrator.waiting == 0


# -- heartbeat, cancel, result ---------------------------------------------------------


class FakeClock:
    """The orchestrator's clock, moved by the test: leases expire when it says."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fake_clock(app: App) -> FakeClock:
    clock = FakeClock()
    app.client.app_state["orchestrator"].clock = clock
    return clock


def test_heartbeat_extends_the_lease(make_app: Any) -> None:
    app = make_app(lease_seconds=30.0)
    clock = fake_clock(app)
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    assert job["lease-seconds"] == 30.0
    first = app.job(job["id"])["lease_expires"]
    assert first == clock.now + 30.0
    clock.now += 5
    response = app.client.post(job["heartbeat-url"], headers=holder(job))
    assert response.status_code == 200
    assert response.json() == {"state": "running", "cancel": False}
    assert app.job(job["id"])["lease_expires"] > first


def test_heartbeat_needs_the_key(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    assert app.client.post(job["heartbeat-url"]).status_code == 401
    assert app.client.post(job["heartbeat-url"], headers={"X-API-KEY": "no"}).status_code == 403
    assert app.client.post(job["result-url"], json={"status": "ok"}).status_code == 401
    assert app.job(job["id"])["state"] == "running"


def test_heartbeat_carries_a_dashboard_cancel(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    response = app.form_post("/pipelines/demo/1/cancel")
    assert response.status_code == 303
    assert app.job(job["id"])["state"] == "running"  # until the worker stops the build
    beat = app.client.post(job["heartbeat-url"], headers=holder(job))
    assert beat.json() == {"state": "running", "cancel": True}
    result = app.client.post(job["result-url"], json={"status": "cancelled"}, headers=holder(job))
    assert result.json() == {"state": "cancelled"}
    assert app.job(job["id"])["state"] == "cancelled"


def test_cancel_of_a_queued_build_ends_it(app: App) -> None:
    app.webhook("demo")
    assert app.form_post("/pipelines/demo/1/cancel").status_code == 303
    assert app.rows("SELECT state FROM builds") == [{"state": "cancelled"}]
    assert app.dequeue({}).status_code == 204


def test_cancel_of_a_build_whose_worker_cannot_be_told_ends_it(app: App) -> None:
    app.webhook("demo")
    job = claim(app)  # no heartbeat: a prototype worker
    app.form_post("/pipelines/demo/1/cancel")
    assert app.job(job["id"])["state"] == "cancelled"


def test_heartbeat_after_the_end_is_409(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    app.client.post(job["result-url"], json={"status": "ok"}, headers=holder(job))
    response = app.client.post(job["heartbeat-url"], headers=holder(job))
    assert response.status_code == 409
    # no such build: 404 (it was 409, as if the build had ended)
    assert app.client.post("/jobs/999/heartbeat", headers={"X-API-KEY": KEY}).status_code == 404


def test_result_sets_the_final_state_once(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    trace, root = job["otel"]["trace-id"], job["otel"]["root-span-id"]
    app.send_spans(span(trace, root, name="build"), span(trace, "1" * 16, parent=root))
    response = app.client.post(
        job["result-url"],
        json={"status": "failed", "message": "exit code 1"},
        headers=holder(job),
    )
    assert response.status_code == 200
    assert response.json() == {"state": "failed"}
    row = app.job(job["id"])
    assert (row["state"], row["message"]) == ("failed", "exit code 1")
    assert row["finished_at"] is not None and row["lease_expires"] is None
    # spans that never reported their end are closed with the build's status
    spans = app.rows("SELECT end_ns, bass_status FROM spans")
    assert len(spans) == 2
    assert all(s["end_ns"] > 0 and s["bass_status"] == "failed" for s in spans)

    again = app.client.post(job["result-url"], json={"status": "ok"}, headers=holder(job))
    assert again.status_code == 409
    assert app.job(job["id"])["state"] == "failed"


@pytest.mark.parametrize(
    "body",
    [{"status": "great"}, {"status": "running"}, {"status": "queued"}, {}, {"status": None},
     {"status": "ok", "message": 5}, {"status": "failed", "message": "lone \ud800"}],
)  # fmt: skip
def test_result_with_a_bad_status_is_400(app: App, body: dict[str, Any]) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    response = app.client.post(
        job["result-url"],
        content=json.dumps(body),  # ASCII: "\ud800" spelled as JSON spells it
        headers={**holder(job), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert app.job(job["id"])["state"] == "running"


def test_result_needs_a_body(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    assert app.client.post(job["result-url"], headers=holder(job)).status_code == 400
    assert app.job(job["id"])["state"] == "running"


# -- builds that end without a result report --------------------------------------------


def test_a_lost_worker_ends_its_build_as_error(make_app: Any) -> None:
    app = make_app(lease_seconds=0.3, reap_interval=0.05)
    app.webhook("demo")
    app.webhook("demo")
    leased = claim(app, heartbeat=True, worker="box-1")
    legacy = claim(app)  # no heartbeat: no lease, never reaped
    trace, root = leased["otel"]["trace-id"], leased["otel"]["root-span-id"]
    app.send_spans(span(trace, root, name="build"), span(trace, "2" * 16, parent=root))

    row = wait_until(
        lambda: (j := app.job(leased["id"]))["state"] != "running" and j, what="the reaper"
    )
    assert row["state"] == "error"
    assert "lost" in row["message"] and "box-1" in row["message"]
    spans = app.rows("SELECT end_ns, bass_status, status_code FROM spans")
    assert len(spans) == 2
    assert all(s["end_ns"] > 0 and s["bass_status"] == "error" for s in spans)
    assert all(s["status_code"] == 2 for s in spans)
    assert app.job(legacy["id"])["state"] == "running"


def test_a_heartbeating_worker_keeps_its_build(make_app: Any) -> None:
    app = make_app(lease_seconds=1.0, reap_interval=0.05)
    clock = fake_clock(app)
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    for _ in range(4):  # 2.4 s of the orchestrator's time, more than two leases
        clock.now += 0.6
        beat = app.client.post(job["heartbeat-url"], headers=holder(job))
        assert beat.status_code == 200
        assert app.job(job["id"])["state"] == "running"
    # the reaper is running all along: a lease left to lapse ends the build
    clock.now += 1.5
    wait_until(lambda: app.job(job["id"])["state"] == "error", what="the reaper")


def test_a_legacy_build_ends_with_its_root_span(app: App) -> None:
    app.webhook("demo")
    job = claim(app)  # a prototype worker: no heartbeat, no result report
    trace, root = job["otel"]["trace-id"], job["otel"]["root-span-id"]
    step = "3" * 16
    app.send_spans(span(trace, root, start=100, end=0))  # root started
    app.send_spans(span(trace, step, parent=root, start=110, end=120, bass_status="failed"))
    app.send_spans(span(trace, "4" * 16, start=100, end=130))  # parentless, not the root
    assert app.job(job["id"])["state"] == "running"

    app.send_spans(span(trace, root, start=100, end=150, bass_status="failed"))
    row = app.job(job["id"])
    assert row["state"] == "failed"
    assert row["finished_at"] is not None


def test_a_heartbeating_build_does_not_end_with_its_root_span(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    trace, root = job["otel"]["trace-id"], job["otel"]["root-span-id"]
    app.send_spans(span(trace, root, start=100, end=150, bass_status="ok"))
    assert app.job(job["id"])["state"] == "running"  # its worker reports the result


def test_a_local_build_appears_and_ends_with_its_root_span(app: App) -> None:
    trace, root = "ab" * 16, "cd" * 8
    app.send_spans(
        span(trace, root, start=1_700_000_000_000_000_000),
        service="bass:pipeline:foo",
        scope=BUILDER,
    )
    (job,) = app.rows("SELECT * FROM builds")
    assert (job["pipeline"], job["number"], job["trigger"]) == ("foo", 1, "local")
    assert (job["state"], job["trace_id"], job["root_span_id"]) == ("running", trace, root)
    assert job["started_at"] == pytest.approx(1_700_000_000.0)
    page = app.client.get("/traces/" + trace, follow_redirects=False)
    assert page.headers["location"].endswith("/pipelines/foo/1")

    app.send_spans(span(trace, "ef" * 8, parent=root, end=5, bass_status="ok"),
                   service="bass:pipeline:foo", scope=BUILDER)  # fmt: skip
    assert app.job(job["id"])["state"] == "running"
    app.send_spans(
        span(trace, root, start=1_700_000_000_000_000_000, end=1_700_000_001_000_000_000,
             bass_status="ok"),
        service="bass:pipeline:foo", scope=BUILDER,
    )  # fmt: skip
    assert app.job(job["id"])["state"] == "ok"
    assert len(app.rows("SELECT * FROM builds")) == 1


def test_a_local_build_reported_only_at_its_end(app: App) -> None:
    trace, root = "12" * 16, "34" * 8
    app.send_spans(
        span(trace, root, end=9, bass_status="timeout"), service="bass:pipeline:foo", scope=BUILDER
    )
    assert app.rows("SELECT pipeline, state FROM builds") == [
        {"pipeline": "foo", "state": "timeout"}
    ]


def test_spans_of_other_services_make_no_build(app: App) -> None:
    app.send_spans(span("56" * 16, "78" * 8), service="checkout-service")
    app.send_spans(
        span("9a" * 16, "bc" * 8, parent="de" * 8), service="bass:pipeline:foo", scope=BUILDER
    )
    assert app.rows("SELECT * FROM builds") == []


def test_a_local_build_with_a_name_the_dashboard_cannot_show_makes_no_build(app: App) -> None:
    app.send_spans(span("57" * 16, "79" * 8), service="bass:pipeline:a/b", scope=BUILDER)
    app.send_spans(span("58" * 16, "7a" * 8), service="bass:pipeline:", scope=BUILDER)
    assert app.rows("SELECT * FROM builds") == []
    assert app.count("spans") == 2  # the spans themselves are kept


def test_a_root_span_of_another_sdk_makes_no_build(app: App) -> None:
    """A tool inside a step, instrumented with an OpenTelemetry SDK, that names its
    service bass:pipeline:X: its root spans are stored, and no phantom build appears."""
    for n in range(3):
        trace = f"{n + 1:02x}" * 16
        app.send_spans(span(trace, "77" * 8, end=5), service="bass:pipeline:foo",
                       scope="opentelemetry.instrumentation.requests")  # fmt: skip
    assert app.rows("SELECT * FROM builds") == []
    assert app.count("spans") == 3


def test_a_webhook_ping_queues_nothing(app: App) -> None:
    response = app.client.post(
        "/webhook?pipeline=demo", json={"zen": "Keep it simple.", "hook_id": 1},
        headers={"X-GitHub-Event": "ping"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json() == {"queued": False, "reason": "ping"}
    assert app.count("builds") == 0


# -- bodies that made a 500 (issue 9) -----------------------------------------------------


@pytest.mark.parametrize("body", [b'{"wait": NaN}', b'{"wait": 1e400}', b'{"wait": -Infinity}'])
def test_a_wait_that_is_no_finite_number_is_400(app: App, body: bytes) -> None:
    response = app.client.post("/dequeue", content=body, headers={"X-API-KEY": KEY})
    assert response.status_code == 400
    assert "wait" in response.json()["error"]


@pytest.mark.parametrize("commits", [5, "abc", {"id": "x"}, True])
def test_push_commits_that_are_no_list_are_400(app: App, commits: Any) -> None:
    response = app.client.post("/webhook?pipeline=demo", json={"commits": commits})
    assert response.status_code == 400
    assert "commits" in response.json()["error"]
    assert queued_jobs(app) == []


@pytest.mark.parametrize("origin", ["http://[::1", "http://[", "://"])
def test_an_origin_that_is_no_url_is_refused_not_a_500(app: App, origin: str) -> None:
    for path in ("/pipelines/demo/trigger", "/pipelines/demo/1/cancel"):
        response = app.client.post(path, headers={"Origin": origin}, follow_redirects=False)
        assert response.status_code in (403, 404), (path, response.status_code)
    assert queued_jobs(app) == []


# -- who holds a build (issue 9) -----------------------------------------------------------


@pytest.fixture
def two_keys(make_app: Any) -> App:
    return make_app(PIPELINES, keys=["box-a: key-a", "box-b: key-b"])


def _claim_with(app: App, key: str) -> dict[str, Any]:
    response = app.dequeue({"tags": [], "heartbeat": True}, key=key)
    assert response.status_code == 200, response.text
    return response.json()


def test_another_key_cannot_heartbeat_or_end_a_build(two_keys: App) -> None:
    two_keys.webhook("demo")
    job = _claim_with(two_keys, "key-a")
    assert two_keys.job(job["id"])["worker_key"] == "box-a"
    stolen = {"X-API-KEY": "key-b", "Authorization": f"Bearer {job['job-token']}"}
    beat = two_keys.client.post(job["heartbeat-url"], headers=stolen)
    assert beat.status_code == 403 and "another worker key" in beat.json()["error"]
    forged = two_keys.client.post(job["result-url"], json={"status": "ok"}, headers=stolen)
    assert forged.status_code == 403
    assert two_keys.job(job["id"])["state"] == "running"
    # the real holder's result is taken
    mine = {"X-API-KEY": "key-a", "Authorization": f"Bearer {job['job-token']}"}
    real = two_keys.client.post(job["result-url"], json={"status": "failed"}, headers=mine)
    assert real.json() == {"state": "failed"}


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_missing_or_wrong_job_token_is_refused(app: App, token: str | None) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    headers = {"X-API-KEY": KEY, **({"Authorization": f"Bearer {token}"} if token else {})}
    assert app.client.post(job["heartbeat-url"], headers=headers).status_code == 403
    result = app.client.post(job["result-url"], json={"status": "ok"}, headers=headers)
    assert result.status_code == 403 and "job token" in result.json()["error"]
    assert app.job(job["id"])["state"] == "running"


def test_a_queued_build_cannot_be_ended_by_a_report(app: App) -> None:
    queued = app.webhook("demo").json()
    response = app.client.post(
        f"/jobs/{queued['id']}/result", json={"status": "ok"}, headers={"X-API-KEY": KEY}
    )
    assert response.status_code == 409
    assert app.job(queued["id"])["state"] == "queued"


def test_an_unknown_build_is_404_for_heartbeats_and_results(app: App) -> None:
    for path in ("/jobs/4242/heartbeat", "/jobs/4242/result"):
        response = app.client.post(path, json={"status": "ok"}, headers={"X-API-KEY": KEY})
        assert response.status_code == 404, path


def test_the_job_token_is_handed_out_once_and_never_stored_or_shown(app: App) -> None:
    app.webhook("demo")
    job = claim(app, heartbeat=True)
    token = job["job-token"]
    assert len(token) >= 40
    row = app.job(job["id"])
    assert token not in json.dumps(row) and row["job_token"] and len(row["job_token"]) == 64
    shown = app.client.get(f"/api/builds/{job['id']}").json()
    assert "job_token" not in shown and token not in json.dumps(shown)


def test_a_bare_key_gets_a_name_that_does_not_show_it(make_app: Any) -> None:
    app = make_app(PIPELINES, keys=["s3cret-bare-key"])
    app.webhook("demo")
    job = _claim_with(app, "s3cret-bare-key")
    name = app.job(job["id"])["worker_key"]
    assert name.startswith("key-") and "s3cret" not in name


# -- webhook secrets ------------------------------------------------------------------------

SIGNED = {
    "signed": {"repository": "/srv/git/s.git", "exec": ["./b"], "webhook-secret": "$HOOK"},
    "literal": {"repository": "/srv/git/l.git", "exec": ["./b"], "webhook-secret": "lit-secret"},
}


@pytest.fixture
def signed_app(make_app: Any) -> App:
    return make_app(SIGNED, env={"HOOK": "s3cret-hook"})


def _sig(body: bytes, secret: str = "s3cret-hook") -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Hub-Signature-256": "sha256=" + "0" * 64}, {"X-Gitlab-Token": "wrong"},
     {"Authorization": "Bearer wrong"}, {"X-Gitea-Signature": "nope"}],
)  # fmt: skip
def test_an_unsigned_or_wrongly_signed_delivery_queues_nothing(
    signed_app: App, headers: dict[str, str]
) -> None:
    body = json.dumps({"ref": "refs/heads/main", "commits": []}).encode()
    response = signed_app.client.post(
        "/webhook?pipeline=signed",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 401
    assert "signed with its secret" in response.json()["error"]
    assert signed_app.count("builds") == 0


@pytest.mark.parametrize("forge", ["github", "gitea", "forgejo", "gitlab", "script"])
def test_a_delivery_signed_as_each_forge_signs_queues(signed_app: App, forge: str) -> None:
    push = {"ref": "refs/heads/main", "before": "1" * 40, "after": "2" * 40, "commits": []}
    body = json.dumps({**push, "object_kind": "push"}).encode()
    headers = {  # as each forge sends a push: its event header and its proof
        "github": {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={_sig(body)}"},
        "gitea": {"X-Gitea-Event": "push", "X-Gitea-Signature": _sig(body)},
        "forgejo": {"X-Forgejo-Event": "push", "X-Forgejo-Signature": _sig(body)},
        "gitlab": {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cret-hook"},
        "script": {"Authorization": "Bearer s3cret-hook"},
    }[forge]
    response = signed_app.client.post(
        "/webhook?pipeline=signed",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 200, response.text
    assert response.json()["queued"] is True


def test_a_signature_of_another_body_is_refused(signed_app: App) -> None:
    signed_for = b'{"commits": []}'
    response = signed_app.client.post(
        "/webhook?pipeline=signed",
        content=b'{"commits": [], "tags": ["v9"]}',
        headers={"X-Hub-Signature-256": f"sha256={_sig(signed_for)}"},
    )
    assert response.status_code == 401


def test_the_secret_is_never_shown_nor_handed_to_workers(signed_app: App) -> None:
    shown = signed_app.client.get("/pipelines").json()
    assert shown["literal"]["webhook-secret"] == "***" and "lit-secret" not in json.dumps(shown)
    signed_app.client.post(
        "/webhook?pipeline=literal", headers={"Authorization": "Bearer lit-secret"}
    )
    job = claim(signed_app)
    assert "webhook-secret" not in job["pipeline"]
    assert "lit-secret" not in json.dumps(signed_app.rows("SELECT * FROM builds"))


def test_a_ping_to_a_signed_pipeline_is_checked_too(signed_app: App) -> None:
    ping = {"X-GitHub-Event": "ping"}
    body = b'{"zen": "hi"}'
    assert (
        signed_app.client.post("/webhook?pipeline=signed", content=body, headers=ping).status_code
        == 401
    )
    good = {**ping, "X-Hub-Signature-256": f"sha256={_sig(body)}"}
    response = signed_app.client.post("/webhook?pipeline=signed", content=body, headers=good)
    assert response.json() == {"queued": False, "reason": "ping"}


@pytest.mark.parametrize("depth", [1000, 5000, 100_000])
def test_a_webhook_body_nested_too_deep_is_400(app: App, depth: int) -> None:
    body = b'{"pipeline": "demo", "x": ' + b"[" * depth + b"]" * depth + b"}"
    response = app.client.post("/webhook", content=body)
    assert response.status_code in (400, 413)
    assert app.count("builds") == 0
