"""What telemetry can and cannot change (SECURITY.md, "Telemetry senders")."""

from __future__ import annotations

from tests.unit.conftest import App
from tests.unit.helpers import span, start_build, trace_of


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
    rows = app.rows("SELECT span_id, name, bass_status FROM spans ORDER BY span_id")
    assert [(r["name"], r["bass_status"]) for r in rows] == [
        ("test", "failed"),
        ("build", "failed"),
    ]
    page = app.client.get("/pipelines/demo/1").text
    assert 'data-status="ok"' not in page


def test_a_running_span_still_ends(app: App) -> None:
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    app.send_spans(span(trace, root, start=100, end=0, name="build"))
    app.send_spans(span(trace, root, start=100, end=300, bass_status="ok", name="build"))
    (row,) = app.rows("SELECT end_ns, bass_status FROM spans")
    assert (row["end_ns"], row["bass_status"]) == (300, "ok")
