"""What the unit tests share: builders of OTLP/JSON payloads, builds made through the
worker API of a running app, a read-only look into the SQLite file, waiting on a
condition."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bass.store import logs

if TYPE_CHECKING:
    from tests.unit.conftest import App

KEY = "worker-key-1"


def rows(db_path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Query the database file on a connection of its own (the app keeps running)."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        logs.attach_view(conn)  # log records as rows: `SELECT … FROM logs`
        return [dict(r) for r in conn.execute(sql, params).fetchall()]


def count(db_path: Path, table: str) -> int:
    return rows(db_path, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]


def attr(key: str, value: Any) -> dict[str, Any]:
    """An OTLP KeyValue for a str/bool/int/float value."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def span(
    trace_id: str,
    span_id: str,
    *,
    parent: str = "",
    name: str = "step",
    start: int = 1_700_000_000_000_000_000,
    end: int = 0,
    bass_status: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An OTLP span; `bass_status` becomes its `bass.status` attribute, `extra` its
    other OTLP fields (`status`, `events`, `kind`, ...)."""
    attrs = [attr("bass.status", bass_status)] if bass_status else []
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": attrs,
        **extra,
    }


def traces_payload(
    *spans: dict[str, Any], service: str = "bass:pipeline:demo", scope: str = "bass"
) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", service)]},
                "scopeSpans": [{"scope": {"name": scope}, "spans": list(spans)}],
            }
        ]
    }


def log_record(
    trace_id: str = "", span_id: str = "", body: str = "hello", time_ns: int = 1
) -> dict[str, Any]:
    return {
        "timeUnixNano": str(time_ns),
        "severityNumber": 9,
        "severityText": "INFO",
        "body": {"stringValue": body},
        "traceId": trace_id,
        "spanId": span_id,
    }


def logs_payload(*records: dict[str, Any], service: str = "bass:pipeline:demo") -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [attr("service.name", service)]},
                "scopeLogs": [{"scope": {"name": "bass"}, "logRecords": list(records)}],
            }
        ]
    }


def as_body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def record(
    trace_id: str,
    span_id: str,
    body: str,
    *,
    severity: int = 9,
    time_ns: int = 1_700_000_000_000_000_000,
    attributes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OTLP/JSON log record with a severity of its own."""
    return {
        "timeUnixNano": str(time_ns),
        "severityNumber": severity,
        "severityText": f"S{severity}",
        "body": {"stringValue": body},
        "traceId": trace_id,
        "spanId": span_id,
        "attributes": attributes or [],
    }


def post_logs(app: App, *records: dict[str, Any], service: str = "bass:pipeline:demo") -> None:
    app.send_logs(*records, service=service)


def post_spans(app: App, *spans: dict[str, Any], service: str = "bass:pipeline:demo") -> None:
    app.send_spans(*spans, service=service)


def start_build(app: App, pipeline: str = "demo") -> dict[str, Any]:
    """Queue a build by webhook and claim it as a worker: the job JSON (running)."""
    response = app.webhook(pipeline)
    assert response.status_code == 200, response.text
    response = app.dequeue({"tags": [], "worker": "w1"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["name"] == pipeline
    return job


def finish_build(app: App, job: dict[str, Any], status: str = "ok") -> None:
    response = app.client.post(
        f"/jobs/{job['id']}/result",
        json={"status": status},
        headers={"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"},
    )
    assert response.status_code == 200, response.text


def trace_of(job: dict[str, Any]) -> str:
    return job["otel"]["trace-id"]


def json_traces(*spans: dict[str, Any], service: str = "svc") -> bytes:
    return as_body(traces_payload(*spans, service=service))


def json_logs(*records: dict[str, Any], service: str = "svc") -> bytes:
    return as_body(logs_payload(*records, service=service))
