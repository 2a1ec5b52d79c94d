"""The Traces, Services and trace pages in headless Chromium, against a real `bass serve`
that the OpenTelemetry Python SDK sends a service's spans and logs to over OTLP/HTTP."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import http

pytestmark = pytest.mark.browser

EVIL = "<img src=x onerror=\"document.body.dataset.owned='1'\">"


def send(url: str, service: str, failing: bool) -> str:
    """One request of `service` as the SDK traces it (a root span, a failing child or
    not, a nested one) with a log line in each span; flushed. Its trace id."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode, format_trace_id

    resource = Resource.create({"service.name": service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=10))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", timeout=10))
    )
    tracer, logger = tracer_provider.get_tracer("shop"), logger_provider.get_logger("shop")
    with tracer.start_as_current_span(f"POST /checkout {EVIL}") as root:
        root.set_attribute("http.route", "/checkout")
        logger.emit(body="checkout started \x1b[32mgreen\x1b[0m")
        with tracer.start_as_current_span("charge card") as charge:
            logger.emit(body=f"card declined {EVIL}" if failing else "card charged")
            if failing:
                charge.set_status(Status(StatusCode.ERROR, "declined"))
            with tracer.start_as_current_span("call bank"):
                logger.emit(body="bank answered")
    trace_id = format_trace_id(root.get_span_context().trace_id)
    assert tracer_provider.force_flush(10_000) and logger_provider.force_flush(10_000)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return trace_id


def test_a_services_trace_is_found_by_its_service_and_shown_with_its_logs(serve, browser):
    server = serve({})
    if http("GET", f"{server.url}/traces")[0] == 404:
        pytest.skip("bass.app does not register the routes of bass.ui.traces yet")
    service = f"shop-{uuid.uuid4().hex[:8]}"
    wanted = send(server.url, service, failing=True)
    send(server.url, "other-service", failing=False)

    page = browser.new_page()
    page.goto(f"{server.url}/traces")
    rows = page.locator("table.traces tr[data-trace]")
    rows.first.wait_for()
    assert rows.count() == 2
    page.select_option("select[name=service]", service)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/traces?service={service}*")
    row = page.locator(f'tr[data-trace="{wanted}"]')
    row.wait_for()
    assert rows.count() == 1, "the service filter leaves the other service's trace out"
    assert row.get_attribute("data-status") == "ok"  # the root's status; a child failed
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == service and cells[5:7] == ["3", "1"]  # spans, errors
    assert EVIL in cells[0], "a span's name is shown as text"

    row.locator("td").first.locator("a").click()
    page.wait_for_url(f"**/traces/{wanted}")
    steps = page.locator(".tl .tl-row[data-step]")
    steps.first.wait_for()
    shown = steps.evaluate_all("els => els.map(e => [e.dataset.step, e.dataset.status])")
    assert shown == [[f"POST /checkout {EVIL}", "ok"], ["charge card", "failed"],
                     ["call bank", "ok"]]  # fmt: skip
    bars = page.locator(".tl-bar").evaluate_all("els => els.map(e => e.offsetWidth)")
    assert len(bars) == 3 and all(width >= 1 for width in bars)
    logs = page.locator("table.trace-logs tbody tr")
    assert logs.count() == 3
    assert [logs.nth(i).locator("td").nth(1).inner_text() for i in range(3)] == [
        f"POST /checkout {EVIL}", "charge card", "call bank"]  # fmt: skip
    assert f"card declined {EVIL}" in logs.nth(1).inner_text()
    assert logs.nth(0).locator(".ansi-fg-2", has_text="green").count() == 1
    assert page.locator("main img").count() == 0, "span names and log lines are text"
    assert page.evaluate("document.body.dataset.owned") is None
    # a span's details open beside the waterfall, its log lines with them
    page.locator('.tl-row[data-step="charge card"] a.tl-name').click()
    panel = page.locator("aside.span-panel")
    panel.wait_for()
    assert "declined" in panel.inner_text() and "card declined" in panel.inner_text()
    assert "span=" in page.url
    page.locator(".tl .tl-row[data-step]").first.locator("a.tl-name").click()
    page.wait_for_function("() => document.querySelector('aside.span-panel h2')"
                           ".textContent.startsWith('POST /checkout')")  # fmt: skip
    assert "/checkout" in panel.locator("table.attrs").first.inner_text()
    assert page.locator("main img").count() == 0

    page.goto(f"{server.url}/services")
    link = page.locator(f'tr[data-service="{service}"] a')
    assert link.inner_text() == service
    link.click()
    page.wait_for_url(f"**/traces?service={service}")
    page.locator(f'tr[data-trace="{wanted}"]').wait_for()
    page.close()
