"""Spans and log records as they reach a real OTLP/HTTP receiver."""

from __future__ import annotations

import socket
import subprocess
import sys

from builder_testing import BUILDER_FILE, PYTHON, wait_for


def test_spans_are_exported_live_at_start_and_again_at_end(builder, receiver):
    result = builder.run_json({"name": "p", "steps": [{"name": "a", "exec": "true"}]}, ["-g"])
    assert result.returncode == 0, result
    exports = receiver.span_exports()
    for name in ("p", "a", "build p"):
        mine = [s for s in exports if s["name"] == name]
        assert len(mine) == 2, mine
        start, end = mine
        assert start["spanId"] == end["spanId"]
        assert start["endTimeUnixNano"] == "0"
        assert start["attrs"]["bass.status"] == "running"
        assert start["status"]["code"] == 0
        assert end["attrs"]["bass.status"] == "ok"
        assert end["status"] == {"code": 1}
        assert int(end["endTimeUnixNano"]) >= int(end["startTimeUnixNano"]) > 0
        assert end["startTimeUnixNano"] == start["startTimeUnixNano"]
        assert end["kind"] == 1
        assert end["traceId"] == result.trace_id
        assert end["service"] == "bass:pipeline:p"
        assert end["scope"]["name"] == "bass_builder"
    root, pipeline, step = (receiver.span(n) for n in ("build p", "p", "a"))
    assert root["spanId"] == result.root_span_id and "parentSpanId" not in root
    assert pipeline["parentSpanId"] == result.root_span_id
    assert step["parentSpanId"] == pipeline["spanId"]


def test_skipped_spans_are_exported_once(builder, receiver):
    builder.run_json(
        {"name": "p", "steps": [{"name": "a", "exec": "false"}, {"name": "b", "exec": "true"}]}
    )
    mine = [s for s in receiver.span_exports() if s["name"] == "b"]
    assert len(mine) == 1
    assert mine[0]["startTimeUnixNano"] == mine[0]["endTimeUnixNano"] != "0"


def test_without_root_span_flag_the_worker_root_span_is_not_emitted(builder, receiver):
    result = builder.run_json({"name": "p", "exec": "true"})
    assert result.returncode == 0, result
    assert [s["name"] for s in receiver.spans().values()] == ["p"]
    assert receiver.span("p")["parentSpanId"] == result.root_span_id


def test_local_run_generates_ids_and_the_root_span(builder, receiver):
    result = builder.run_json({"name": "p", "exec": "true"}, ids=False)
    assert result.returncode == 0, result
    root, pipeline = receiver.span("build p"), receiver.span("p")
    assert "parentSpanId" not in root
    assert pipeline["parentSpanId"] == root["spanId"]
    assert pipeline["traceId"] == root["traceId"]
    assert f"trace: {receiver.url}/traces/{root['traceId']}" in result.stdout


def test_service_name_argument(builder, receiver):
    builder.run_json({"name": "p", "exec": "true"}, ["-s", "my-service"])
    assert receiver.span("p")["service"] == "my-service"


def test_log_lines_keep_order_and_span_across_parallel_steps(builder, receiver):
    steps = [
        {"name": f"s{n}", "exec": f"for i in $(seq 1 300); do echo s{n}-$i; done"} for n in range(3)
    ]
    result = builder.run_json({"name": "p", "order": "unordered", "steps": steps}, ["-j", "3"])
    assert result.returncode == 0, result
    for n in range(3):
        assert receiver.bodies(f"s{n}") == [f"s{n}-{i}" for i in range(1, 301)]


def test_stdout_and_stderr_records(builder, receiver):
    result = builder.run_json(
        {"name": "p", "exec": "echo out; echo err >&2; printf '\\033[31mred\\033[0m\\n'; echo"}
    )
    assert result.returncode == 0, result
    span = receiver.span("p")
    records = [r for r in receiver.logs() if r["spanId"] == span["spanId"]]
    by_stream = {}
    for r in records:
        by_stream.setdefault(r["attrs"]["log.iostream"], []).append(r)
        assert r["traceId"] == result.trace_id
        assert int(r["timeUnixNano"]) > 0  # observedTimeUnixNano is the receiver's to set
    assert [r["body"]["stringValue"] for r in by_stream["stdout"]] == [
        "out",
        "\x1b[31mred\x1b[0m",
        "",
    ]
    assert {(r["severityNumber"], r["severityText"]) for r in by_stream["stdout"]} == {(9, "INFO")}
    (err,) = by_stream["stderr"]
    assert err["body"] == {"stringValue": "err"}
    assert (err["severityNumber"], err["severityText"]) == (13, "WARN")


def test_non_utf8_output_and_a_huge_line_without_newline(builder, receiver, tmp_path):
    (tmp_path / "emit.py").write_text(
        "import sys\n"
        "sys.stdout.buffer.write(b'caf\\xe9 \\xff\\n')\n"
        "sys.stdout.buffer.write('h\\u00e9llo\\n'.encode())\n"
        "sys.stdout.write('x' * (1024 * 1024))\n"
    )
    result = builder.run_json({"name": "p", "exec": [PYTHON, "emit.py"]})
    assert result.returncode == 0, result
    bodies = receiver.bodies("p")
    assert bodies[0] == "caf\ufffd \ufffd"
    assert bodies[1] == "héllo"
    rest = bodies[2:]
    assert len(rest) == 16 and all(len(b) == 64 * 1024 for b in rest)
    assert "".join(rest) == "x" * (1024 * 1024)


def test_a_line_without_newline_streams_in_pieces_while_the_step_runs(builder, receiver, tmp_path):
    (tmp_path / "emit.py").write_text(
        "import sys, time\n"
        "sys.stdout.write('y' * (200 * 1024)); sys.stdout.flush()\n"
        "time.sleep(0.6)\n"
        "sys.stdout.write('tail')\n"
    )
    result = builder.run_json({"name": "p", "exec": [PYTHON, "emit.py"]})
    assert result.returncode == 0, result
    span = receiver.span("p")
    records = [r for r in receiver.logs() if r["spanId"] == span["spanId"]]
    bodies = [r["body"]["stringValue"] for r in records]
    assert "".join(bodies) == "y" * (200 * 1024) + "tail"
    assert [len(b) for b in bodies[:3]] == [64 * 1024] * 3
    # the first pieces were sent while the step still ran, not buffered until it ended
    assert int(records[0]["timeUnixNano"]) < int(span["endTimeUnixNano"]) - 400_000_000


def test_endpoint_down_never_fails_the_build(builder):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = builder.run_json(
        {"name": "p", "steps": [{"name": "a", "exec": "echo hi"}]},
        ["-t", f"http://127.0.0.1:{port}/v1/traces", "-l", f"http://127.0.0.1:{port}/v1/logs"],
        endpoints=False,
    )
    assert result.returncode == 0, result
    assert "telemetry: dropped" in result.stderr
    assert "spans" in result.stderr and "connection refused" in result.stderr


def test_retry_after_503_delivers_everything(builder, receiver):
    receiver.fail_next(2, 503, retry_after="1")
    result = builder.run_json(
        {"name": "p", "steps": [{"name": "a", "exec": "seq 1 50"}, {"name": "b", "exec": "true"}]}
    )
    assert result.returncode == 0, result
    assert "dropped" not in result.stderr
    assert not receiver.failures
    assert receiver.bodies("a") == [str(i) for i in range(1, 51)]
    assert {receiver.status(n) for n in ("p", "a", "b")} == {"ok"}
    assert len(receiver.span_exports()) == 6


def test_client_errors_are_reported_and_dropped(builder, receiver):
    receiver.fail_next(1, 400, retry_after=None)
    result = builder.run_json({"name": "p", "exec": "true"})
    assert result.returncode == 0, result
    assert "HTTP 400" in result.stderr and "dropped" in result.stderr


def test_otel_exporter_otlp_endpoint_fallback_and_headers(builder, receiver):
    result = builder.run_json(
        {"name": "p", "exec": "echo hi"},
        endpoints=False,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url + "/",
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc, x-tenant = t1",
        },
    )
    assert result.returncode == 0, result
    paths = {path for path, _, _ in receiver.requests}
    assert paths == {"/v1/traces", "/v1/logs"}
    for _, headers, _ in receiver.requests:
        assert headers["Authorization"] == "Bearer abc"
        assert headers["x-tenant"] == "t1"
        assert headers["Content-Type"] == "application/json"
    assert receiver.bodies("p") == ["hi"]


def test_signal_specific_endpoint_variables(builder, receiver):
    result = builder.run_json(
        {"name": "p", "exec": "echo hi"},
        endpoints=False,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/never",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/custom/traces",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": receiver.url + "/custom/logs",
        },
    )
    assert result.returncode == 0, result
    assert {path for path, _, _ in receiver.requests} == {"/custom/traces", "/custom/logs"}


def test_secrets_are_masked_in_logs_and_status_messages(builder, receiver):
    result = builder.run_json(
        {"name": "p", "exec": "echo token=$MY_TOKEN; echo bad $MY_TOKEN >&2; echo $SHORT; exit 1"},
        env={"BASS_SECRET_NAMES": "MY_TOKEN, SHORT", "MY_TOKEN": "s3cr3t-value", "SHORT": "abc"},
    )
    assert result.returncode == 1, result
    assert receiver.bodies("p", "stdout") == ["token=***", "abc"]
    assert receiver.bodies("p", "stderr") == ["bad ***"]
    assert receiver.span("p")["status"]["message"] == "bad ***"
    assert "s3cr3t-value" not in result.stdout
    assert all(b"s3cr3t-value" not in body for _, _, body in receiver.requests)


def test_keep_alive_connection_is_reused(builder, receiver):
    seen = []
    original = receiver.server.RequestHandlerClass.setup

    def setup(handler):
        seen.append(handler.client_address)
        original(handler)

    receiver.server.RequestHandlerClass.setup = setup
    steps = [{"name": f"s{i}", "exec": "echo x; sleep 0.25"} for i in range(4)]
    result = builder.run_json({"name": "p", "steps": steps})
    assert result.returncode == 0, result
    assert len(receiver.requests) > 4
    assert len(set(seen)) <= 2  # one connection per endpoint


def test_json_pipeline_runs_under_python_S_with_only_the_standard_library(builder, tmp_path):
    pipeline = builder.write_json({"name": "p", "exec": ["echo", "hi"]})
    result = subprocess.run(
        [
            PYTHON,
            "-S",
            str(BUILDER_FILE),
            str(pipeline),
            "-t",
            builder.receiver.traces_url,
            "-l",
            builder.receiver.logs_url,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result
    assert builder.receiver.bodies("p") == ["hi"]
    # Run a pipeline in a -S interpreter (the exporter's lazy imports included), then
    # look at every module loaded: all must come from the standard library.
    check = f"""
import sys, sysconfig
sys.path.insert(0, {str(BUILDER_FILE.parent)!r})
import bass_builder
options = bass_builder.Options(
    traces_endpoint={builder.receiver.traces_url!r}, logs_endpoint={builder.receiver.logs_url!r},
    view="quiet", handle_signals=False, trace_id="1" * 32,
)
pipeline = {{"name": "q", "exec": "printf 'x%.0s' $(seq 1 300000)"}}
status = bass_builder.run_pipeline(pipeline, options)
stdlib = sysconfig.get_paths()["stdlib"]
third = sorted(n for n, m in sys.modules.items() if getattr(m, "__file__", None)
               and n != "bass_builder" and not m.__file__.startswith(stdlib))
print(status, third, "socket" in sys.modules)
"""
    out = subprocess.run([PYTHON, "-S", "-c", check], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok [] True"
    assert len(builder.receiver.bodies("q")) == 5  # 300000 characters in 64 KiB pieces


def test_a_step_outrunning_a_slow_endpoint_never_waits_and_loses_nothing(
    builder, receiver, tmp_path
):
    """Past the memory queue (QUEUE_RECORDS), records wait in a spool file: the step
    goes on at full speed, and everything arrives once the endpoint catches up."""
    lines = 250_000  # more than the 200,000 records the memory queue holds
    marker = tmp_path / "next-step-ran"
    printer = f"import sys; sys.stdout.write(''.join('%d\\n' % i for i in range({lines})))"
    path = builder.write_json(
        {"name": "p", "steps": [
            {"name": "flood", "exec": [sys.executable, "-c", printer]},
            {"name": "next", "exec": ["touch", str(marker)]},
        ]}
    )  # fmt: skip
    receiver.gate.clear()  # the endpoint answers nothing for now
    proc, _ = builder.start(["-m", "bass_builder", str(path)])
    try:
        assert wait_for(marker.exists, timeout=30), "the flood step waited on telemetry"
    finally:
        receiver.gate.set()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "dropped" not in stderr
    assert receiver.bodies("flood") == [str(i) for i in range(lines)]


def test_spooled_output_of_parallel_steps_keeps_its_span_order_and_escaping(
    builder, receiver, tmp_path
):
    """Spooled as text and made into records later, each step's lines still land on
    its own span, in order, with quotes, backslashes, CRLF and non-ASCII intact."""
    lines = 120_000  # two of these outrun the 200,000 records of the memory queue
    printer = (
        "import sys; tag = sys.argv[1]; out = sys.stdout.buffer; "
        "out.write(''.join('%s \"%d\" \\\\ é\\r\\n' % (tag, i) for i in range(N)).encode())"
    ).replace("N", str(lines))
    marker = tmp_path / "after"
    path = builder.write_json(
        {"name": "p", "steps": [
            {"name": "par", "order": "unordered", "steps": [
                {"name": "a", "exec": [sys.executable, "-c", printer, "a"]},
                {"name": "b", "exec": [sys.executable, "-c", printer, "b"]},
            ]},
            {"name": "after", "exec": ["touch", str(marker)]},
        ]}
    )  # fmt: skip
    receiver.gate.clear()
    proc, _ = builder.start(["-m", "bass_builder", str(path), "-j", "2"])
    try:
        assert wait_for(marker.exists, timeout=60), "the steps waited on telemetry"
    finally:
        receiver.gate.set()
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert "dropped" not in stderr
    for tag in ("a", "b"):
        assert receiver.bodies(tag) == [f'{tag} "{i}" \\ é' for i in range(lines)]


def test_only_bass_no_telemetry_turns_the_builders_telemetry_off(builder, receiver):
    """OTEL_SDK_DISABLED is for a team's own SDKs (often set on workers for their tests):
    the builder still reports its steps; `BASS_NO_TELEMETRY=1` (bass watch --offline)
    turns its telemetry off."""
    pipeline = {"name": "p", "steps": [{"name": "a", "exec": "true"}]}
    result = builder.run_json(pipeline, ["-g"], env={"OTEL_SDK_DISABLED": "true"})
    assert result.returncode == 0, result
    assert {s["name"] for s in receiver.span_exports()} == {"p", "a", "build p"}
    before = len(receiver.span_exports())
    result = builder.run_json(pipeline, ["-g"], env={"BASS_NO_TELEMETRY": "1"})
    assert result.returncode == 0, result
    assert len(receiver.span_exports()) == before
