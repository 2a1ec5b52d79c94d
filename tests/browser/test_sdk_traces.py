"""Traces that real OpenTelemetry SDKs send, found and read in headless Chromium the way
a person would: the Traces page's service filter, the trace's waterfall, a failing
span's details panel (its attributes, its exception event's type, message and stack
trace).

- a Python program under `opentelemetry-instrument`, given only the endpoint (bass's
  gRPC port) and its service name (sdk_apps/invoice_app.py);
- pytest with the pytest-opentelemetry plugin over OTLP/HTTP, on a failing test file;
- a Node.js program with the OpenTelemetry JS SDK and its OTLP/HTTP protobuf exporter
  (sdk_apps/orders.js), the packages installed by npm at test time (skipped, saying
  why, where node, npm or the registry are missing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, free_port, http
from tests.e2e.waiting import wait_until

pytestmark = pytest.mark.browser

APPS = Path(__file__).parent / "sdk_apps"
DECOY = "decoy-service"

# The OpenTelemetry JS packages orders.js needs, exactly (the same SDK release as
# tests/exporters/js/package-lock.json); the install is cached under a name made of them.
JS_PACKAGES = {
    "@opentelemetry/api": "1.9.1",
    "@opentelemetry/exporter-trace-otlp-proto": "0.223.1",
    "@opentelemetry/resources": "2.12.1",
    "@opentelemetry/sdk-trace-node": "2.12.1",
}


@pytest.fixture(scope="module")
def otel_js() -> Path:
    """A node_modules directory with JS_PACKAGES: installed by npm once into the system's
    temporary directory, under a name keyed by the pins, and reused from there."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are not installed (CI has Node.js 20)")
    pins = json.dumps(JS_PACKAGES, sort_keys=True)
    wanted = " ".join(f"{name}@{version}" for name, version in sorted(JS_PACKAGES.items()))
    home = Path(tempfile.gettempdir()) / (
        "bass-tests-otel-js-" + hashlib.sha256(pins.encode()).hexdigest()[:16]
    )
    if not (home / "installed").is_file():
        # installed aside, then renamed into place: a run never sees half an install
        staging = Path(tempfile.mkdtemp(prefix=f"{home.name}-", dir=home.parent))
        manifest = {"name": "bass-sdk-traces", "private": True, "dependencies": JS_PACKAGES}
        (staging / "package.json").write_text(json.dumps(manifest))
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
                 "--loglevel=error"],
                cwd=staging, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"npm install of {wanted} did not finish in 10 minutes")
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            why = "\n".join(done.stderr.strip().splitlines()[:4])
            pytest.skip(f"npm install of {wanted} failed (no npm registry?):\n{why}")
        (staging / "installed").write_text(pins)
        try:
            staging.rename(home)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return home / "node_modules"


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any OpenTelemetry or pytest configuration (the
    tests may run inside a build step, which has its own), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PYTEST_")) and k != "TRACEPARENT"}  # fmt: skip
    return {**env, **extra}


def run(
    command: list[str], cwd: Path, env: dict[str, str], server: Server, exit_code: int = 0
) -> str:
    """Run an instrumented program to its end, which must be `exit_code`, without a
    failed export; its stdout."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    report = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}\n--- bass:\n{server.output()}"
    assert done.returncode == exit_code, report
    assert "Failed to export" not in done.stderr and "export failed" not in done.stderr, report
    return done.stdout


def stored(server: Server, trace_id: str, count: int) -> dict[str, dict[str, Any]]:
    """The trace's `count` spans by name, once all have arrived (through the JSON API)."""

    def spans() -> dict[str, dict[str, Any]]:
        status, body = http("GET", f"{server.url}/api/traces/{trace_id}")
        if status == 404:
            return {}
        assert status == 200, body
        found: dict[str, dict[str, Any]] = {}
        todo = list(body["spans"])
        while todo:
            span = todo.pop()
            found[span["name"]] = span
            todo.extend(span["children"])
        return found if len(found) >= count else {}

    found = wait_until(spans, f"{count} spans of trace {trace_id}", timeout=30,
                       context=server.output)  # fmt: skip
    assert len(found) == count, sorted(found)
    return found


def decoy(server: Server, root_name: str) -> None:
    """A trace of another service whose root span has the same name as the trace the
    test looks for: only the service filter tells them apart."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": DECOY}))
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("decoy").start_as_current_span(root_name) as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    stored(server, trace_id, 1)


def open_failing_span(
    browser: Any, server: Server, trace_id: str, span: dict, listed: list[str]
) -> tuple[Any, Any]:
    """From the Traces page: choose the span's service in the filter form, see its one
    trace `listed` (its root span's name, the service, its status, its spans and failed
    spans), open it, click the failing `span`'s row. The page and the span's panel."""
    service = span["service_name"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server.url}/traces")
    rows = page.locator("table.traces tr[data-trace]")
    rows.first.wait_for()
    assert rows.count() == 2  # the service's trace and the decoy
    options = page.locator("select[name=service] option").all_inner_texts()
    assert service in options and DECOY in options, options
    page.select_option("select[name=service]", service)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/traces?service={service}&*")
    row = page.locator(f'table.traces tr[data-trace="{trace_id}"]')
    row.wait_for()
    assert rows.count() == 1, "the service filter leaves the decoy's trace out"
    cells = row.locator("td").all_inner_texts()
    assert [cells[0], cells[1], row.get_attribute("data-status"), *cells[5:7]] == listed

    row.locator("td").first.locator("a").click()
    page.wait_for_url(f"**/traces/{trace_id}")
    line = page.locator(f'.tl .tl-row[data-span="{span["span_id"]}"]')
    line.wait_for()
    assert line.get_attribute("data-step") == span["name"]
    assert line.get_attribute("data-status") == "failed"
    assert "error" in (line.get_attribute("class") or "").split()
    line.locator("a.tl-name").click()
    page.wait_for_url(f"**/traces/{trace_id}?span={span['span_id']}")
    panel = page.locator("aside.span-panel")
    panel.wait_for()
    assert panel.locator("h2").inner_text().startswith(span["name"])
    facts = panel.locator("dl.span-facts")
    assert dict(zip(facts.locator("dt").all_inner_texts(), facts.locator("dd").all_inner_texts(),
                    strict=True))["service"] == service  # fmt: skip
    return page, panel


def table(panel: Any, heading: str) -> dict[str, str]:
    """The panel's attribute table under `heading` (Attributes, Resource), as shown."""
    rows = panel.locator(f'h3:text-is("{heading}") + table.attrs tr')
    return dict(
        zip(rows.locator("th").all_inner_texts(), rows.locator("td").all_inner_texts(), strict=True)
    )


def exception_event(panel: Any) -> tuple[str, str]:
    """The panel's one event, an exception: its type and message line, and its stack
    trace (the <pre>, as shown: its lines kept)."""
    events = panel.locator(".span-event")
    assert events.count() == 1
    event = events.first
    assert "exception" in (event.get_attribute("class") or "").split()
    assert event.locator("strong").inner_text() == "exception"
    trace = event.locator("pre.stacktrace")
    assert trace.is_visible()
    shown = trace.inner_text()
    assert "\n" in shown.strip(), "a stack trace keeps its lines"
    return event.locator(".exception-line").inner_text(), shown


def test_python_auto_instrumentation_at_its_defaults(serve: Any, browser: Any, tmp_path: Path):
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    if instrument is None:
        pytest.skip("opentelemetry-instrument (opentelemetry-distro) is not installed")
    grpc_port = free_port()
    server = serve({}, extra=["--grpc-port", str(grpc_port)])
    service = "invoice-service"
    # opentelemetry-instrument configures the SDK from these alone: the OTLP exporter
    # at its default protocol, gRPC. (The test environment has two distros with the
    # same entry-point names, opentelemetry-distro and pytest-opentelemetry's
    # opentelemetry-container-distro; whichever loads, the defaults are the same.)
    env = clean_environ(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port}", OTEL_SERVICE_NAME=service
    )
    out = run([instrument, sys.executable, str(APPS / "invoice_app.py")], tmp_path, env, server)
    trace_id = out.split()[-1]
    spans = stored(server, trace_id, 2)
    assert {s["service_name"] for s in spans.values()} == {service}
    decoy(server, "GET /invoices/{id}")

    listed = ["GET /invoices/{id}", service, "ok", "2", "1"]  # the root span did not fail
    page, panel = open_failing_span(browser, server, trace_id, spans["split invoice"], listed)
    assert panel.locator("pre.span-status").inner_text() == "cannot split an invoice into 0 parts"
    assert table(panel, "Attributes") == {"invoice.id": "INV-2024-017", "invoice.parts": "0"}
    assert table(panel, "Resource")["service.name"] == service
    line, stack = exception_event(panel)
    assert line == "ZeroDivisionError: division by zero"
    lines = stack.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"
    program = APPS / "invoice_app.py"
    assert f'File "{program}", line 16, in share_of' in stack
    assert "    return total / parts" in lines
    page.close()


FAILING_TESTS = """\
def total(prices):
    return sum(prices)


def test_total_of_an_empty_cart():
    assert total([]) == 0


def test_total_with_a_discount():
    assert total([10, 5]) == 14
"""


def test_pytest_opentelemetry_failing_test(serve: Any, browser: Any, tmp_path: Path):
    server = serve({})
    service = "checkout-tests"
    project = tmp_path / "checkout"
    project.mkdir()
    (project / "test_checkout.py").write_text(FAILING_TESTS)
    # OTLP/HTTP, as bass's builder configures a build step (OTEL_TRACES_EXPORTER=otlp:
    # --export-traces alone would pick the gRPC exporter, whatever the protocol says)
    env = clean_environ(
        OTEL_EXPORTER_OTLP_ENDPOINT=server.url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_SERVICE_NAME=service,
    )
    out = run([sys.executable, "-m", "pytest", "-p", "pytest_opentelemetry", "-p",
               "no:cacheprovider", "--export-traces", "-q", "test_checkout.py"],
              project, env, server, exit_code=1)  # fmt: skip
    assert "1 failed, 1 passed" in out, out
    ((trace_id,),) = wait_until(
        lambda: server.query("SELECT DISTINCT trace_id FROM spans WHERE service_name = ?", service),
        f"the spans of {service}",
        context=server.output,
    )
    failing = "test_checkout.py::test_total_with_a_discount"
    passing = "test_checkout.py::test_total_of_an_empty_cart"
    # the run, each test, and each test's setup, call and teardown
    spans = stored(server, trace_id, 9)
    assert [spans[n]["bass_status"] for n in ("test run", passing, failing)] == [
        "failed", "ok", "failed"]  # fmt: skip
    decoy(server, "test run")

    listed = ["test run", service, "error", "9", "2"]  # the run failed, and one test
    page, panel = open_failing_span(browser, server, trace_id, spans[failing], listed)
    # pytest-opentelemetry's status message has two lines, and the panel keeps them
    assert panel.locator("pre.span-status").inner_text().splitlines() == [
        "<class 'AssertionError'>: assert 15 == 14",
        " +  where 15 = total([10, 5])",
    ]
    assert table(panel, "Attributes") == {
        "code.filepath": "test_checkout.py",
        "code.function": "test_total_with_a_discount",
        "code.lineno": "8",
        "pytest.nodeid": failing,
        "pytest.span_type": "test",
    }
    assert table(panel, "Resource")["service.name"] == service
    line, stack = exception_event(panel)
    assert line.startswith("AssertionError: assert 15 == 14")
    lines = stack.splitlines()
    assert lines[0] == "def test_total_with_a_discount():"
    assert ">       assert total([10, 5]) == 14" in lines
    assert "E       assert 15 == 14" in lines
    assert lines[-1] == "test_checkout.py:10: AssertionError"
    page.close()


def test_js_sdk_exception(serve: Any, browser: Any, otel_js: Path, tmp_path: Path):
    server = serve({})
    service = "orders-js"
    # the exporter's default protocol, http/protobuf, to the endpoint's /v1/traces
    env = clean_environ(
        NODE_PATH=str(otel_js),
        OTEL_EXPORTER_OTLP_ENDPOINT=server.url,
        OTEL_SERVICE_NAME=service,
    )
    out = run(["node", str(APPS / "orders.js")], tmp_path, env, server)
    trace_id = out.split()[-1]
    spans = stored(server, trace_id, 2)
    assert {s["service_name"] for s in spans.values()} == {service}
    decoy(server, "POST /orders")

    listed = ["POST /orders", service, "ok", "2", "1"]
    page, panel = open_failing_span(browser, server, trace_id, spans["reserve stock"], listed)
    assert panel.locator("pre.span-status").inner_text() == "no stock reserved"
    assert table(panel, "Attributes") == {"order.quantity": "-3", "order.sku": "BASS-GUITAR-4"}
    resource = table(panel, "Resource")
    assert (resource["service.name"], resource["telemetry.sdk.language"]) == (service, "nodejs")
    line, stack = exception_event(panel)
    assert line == "RangeError: quantity must be positive, got -3"
    lines = stack.splitlines()
    assert lines[0] == "RangeError: quantity must be positive, got -3"
    assert lines[1].startswith(f"    at reserveStock ({APPS / 'orders.js'}:")
    page.close()
