"""A small service traced through the OpenTelemetry API only, for
tests/browser/test_sdk_traces.py: run it under `opentelemetry-instrument`, which
configures the SDK (exporter, endpoint, service name) from the environment and flushes
the spans when the program exits.

One request: a root span, and a child that fails with a ZeroDivisionError, recorded
as an exception event with the span's status ERROR. Prints the trace id."""

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, format_trace_id

tracer = trace.get_tracer("invoice-app")


def share_of(total: int, parts: int) -> float:
    return total / parts


with tracer.start_as_current_span("GET /invoices/{id}") as request:
    request.set_attribute("http.route", "/invoices/{id}")
    with tracer.start_as_current_span("split invoice") as split:
        split.set_attribute("invoice.id", "INV-2024-017")
        split.set_attribute("invoice.parts", 0)
        try:
            share_of(120, 0)
        except ZeroDivisionError as e:
            split.record_exception(e)
            split.set_status(Status(StatusCode.ERROR, "cannot split an invoice into 0 parts"))
    print(format_trace_id(request.get_span_context().trace_id), flush=True)
