"""What telemetry can and cannot change (SECURITY.md, "Telemetry senders")."""

from __future__ import annotations

from typing import Any

import pytest

from bass.auth import Users
from bass.config import Settings, named_keys
from tests.unit.conftest import App
from tests.unit.helpers import (
    KEY,
    as_body,
    log_record,
    logs_payload,
    span,
    start_build,
    trace_of,
    traces_payload,
)


def test_an_ended_span_is_never_rewritten(app: App) -> None:
    """Re-exporting a failed build's root span as ok turned it green on the page."""
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    step = "5" * 16
    app.send_spans(
        span(trace, root, start=100, end=900, bass_status="failed", name="build"),
        span(trace, step, parent=root, start=200, end=800, bass_status="failed", name="test"),
    )
    assert app.job(job["id"])["state"] == "failed"  # a prototype worker: its root span ends it
    app.send_spans(
        span(trace, root, start=100, end=900, bass_status="ok", name="build"),
        span(trace, step, parent=root, start=200, end=800, bass_status="ok", name="renamed"),
    )
    rows = app.rows("SELECT name, bass_status FROM spans")
    assert sorted((r["name"], r["bass_status"]) for r in rows) == [
        ("build", "failed"),
        ("test", "failed"),
    ]
    page = app.client.get("/pipelines/demo/1").text
    assert 'data-status="ok"' not in page
    assert ">Rerun</button>" in page  # a configured pipeline's ended build can be rerun


def test_a_running_span_still_ends(app: App) -> None:
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    app.send_spans(span(trace, root, start=100, end=0, name="build"))
    app.send_spans(span(trace, root, start=100, end=300, bass_status="ok", name="build"))
    (row,) = app.rows("SELECT end_ns, bass_status FROM spans")
    assert (row["end_ns"], row["bass_status"]) == (300, "ok")


# -- who may write a trace, on a server others can reach (bass.ingest.gate) -----------------


@pytest.fixture
def network(make_app: Any, tmp_path: Any) -> App:
    users = tmp_path / "users.json"
    Users(users).add("ann", "a long password")
    app = make_app(host="0.0.0.0", users_file=str(users))
    app.token = Users(users).new_token("ann")  # type: ignore[attr-defined]
    return app


def _post(app: App, path: str, payload: dict, token: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return app.client.post(path, content=as_body(payload), headers=headers)


def _claim(app: App) -> dict:
    app.webhook("demo")
    response = app.dequeue({"tags": [], "heartbeat": True})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_builds_telemetry_needs_its_job_token(network: App) -> None:
    job = _claim(network)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    spans = traces_payload(span(trace, root, end=0, name="build"))
    logs = logs_payload(log_record(trace, root, "a line"))
    for token in (None, "wrong", network.token):  # type: ignore[attr-defined]
        assert _post(network, "/v1/traces", spans, token).status_code == 401
        assert _post(network, "/v1/logs", logs, token).status_code == 401
    assert network.count("spans") == 0 and network.count("logs") == 0
    assert _post(network, "/v1/traces", spans, job["job-token"]).status_code == 200
    assert _post(network, "/v1/logs", logs, job["job-token"]).status_code == 200
    assert network.count("spans") == 1 and network.count("logs") == 1


def test_an_ended_builds_trace_takes_nothing_more(network: App) -> None:
    job = _claim(network)
    orchestrator = network.client.app_state["orchestrator"]
    orchestrator.clock = lambda: 1_000_000.0  # it ended long ago
    headers = {"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"}
    assert network.client.post(job["result-url"], json={"status": "ok"}, headers=headers).json()
    trace = trace_of(job)
    late = traces_payload(span(trace, "6" * 16, parent=job["otel"]["root-span-id"], end=9))
    response = _post(network, "/v1/traces", late, job["job-token"])
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "has ended" in response.json()["partialSuccess"]["errorMessage"]
    assert network.count("spans") == 0


def test_other_services_need_an_ingest_or_api_token_there(network: App, make_app: Any) -> None:
    other = traces_payload(span("ab" * 16, "cd" * 8, end=5), service="checkout")
    assert _post(network, "/v1/traces", other, None).status_code == 401
    assert _post(network, "/v1/traces", other, "nope").status_code == 401
    assert _post(network, "/v1/traces", other, network.token).status_code == 200  # type: ignore[attr-defined]
    assert network.count("spans") == 1


def test_an_ingest_token_lets_another_service_in(network: App) -> None:
    network.client.app_state["receiver"].gate.ingest_tokens = [("shop", "shop-token-123")]
    other = traces_payload(span("ab" * 16, "cd" * 8, end=5), service="shop")
    assert _post(network, "/v1/traces", other, "shop-token-123").status_code == 200
    assert _post(network, "/v1/traces", other, "shop-token-12").status_code == 401


def test_ingest_tokens_are_read_from_their_file(tmp_path: Any) -> None:
    (tmp_path / "p.json").write_text("{}")
    (tmp_path / "ingest-tokens").write_text("# tokens\nshop: shop-token-123\nbare-token\n")
    settings = Settings(
        pipelines_file=str(tmp_path / "p.json"),
        env_file=str(tmp_path / "env"),
        worker_keys_file=str(tmp_path / "keys"),
        ingest_tokens_file=str(tmp_path / "ingest-tokens"),
    ).load_files()
    names = [name for name, _ in named_keys(settings.config.ingest_tokens)]
    assert names[0] == "shop" and names[1].startswith("key-")


def test_on_a_laptop_telemetry_needs_no_token(app: App) -> None:
    other = traces_payload(span("ab" * 16, "cd" * 8, end=5), service="checkout")
    assert _post(app, "/v1/traces", other, None).status_code == 200
