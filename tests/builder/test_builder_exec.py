"""exec forms, $VAR expansion, the step environment and exit codes."""

from __future__ import annotations


def test_exec_list_runs_without_a_shell(builder, receiver):
    result = builder.run_json(
        {"name": "p", "steps": [{"name": "echo", "exec": ["echo", "a;b", "$(nope)", "*"]}]}
    )
    assert result.returncode == 0, result
    assert receiver.bodies("echo", "stdout") == ["a;b $(nope) *"]
    assert receiver.span("echo")["attrs"]["process.command_args"] == ["echo", "a;b", "$(nope)", "*"]
    assert receiver.span("echo")["attrs"]["process.exit.code"] == 0


def test_exec_string_runs_with_sh(builder, receiver):
    result = builder.run_json({"name": "p", "exec": "echo one && echo two | tr a-z A-Z"})
    assert result.returncode == 0, result
    assert receiver.bodies("p", "stdout") == ["one", "TWO"]
    attrs = receiver.span("p")["attrs"]
    assert attrs["process.command_args"] == ["sh", "-c", "echo one && echo two | tr a-z A-Z"]


def test_dollar_variables_expand_from_the_environment_but_are_recorded_unexpanded(
    builder, receiver
):
    result = builder.run_json(
        {
            "name": "p",
            "steps": [
                {"name": "list", "exec": ["echo", "$APIKEY", "${APIKEY}-x", "$UNSET_VAR_X"]},
                {"name": "string", "exec": "echo $APIKEY"},
            ],
        },
        env={"APIKEY": "k123"},
    )
    assert result.returncode == 0, result
    assert receiver.bodies("list") == ["k123 k123-x $UNSET_VAR_X"]
    assert receiver.bodies("string") == ["k123"]
    assert receiver.span("list")["attrs"]["process.command_args"] == [
        "echo",
        "$APIKEY",
        "${APIKEY}-x",
        "$UNSET_VAR_X",
    ]
    assert receiver.span("string")["attrs"]["process.command_args"] == ["sh", "-c", "echo $APIKEY"]


def test_step_environment_carries_traceparent_endpoints_and_names(builder, receiver):
    script = 'echo "$TRACEPARENT|$OTEL_SERVICE_NAME|$BASS_STEP_NAME|$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT|$OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"'  # noqa: E501
    result = builder.run_json({"name": "env", "steps": [{"name": "show", "exec": script}]})
    assert result.returncode == 0, result
    span = receiver.span("show")
    (line,) = receiver.bodies("show")
    assert line.split("|") == [
        f"00-{result.trace_id}-{span['spanId']}-01",
        "bass:pipeline:env",
        "show",
        receiver.traces_url,
        receiver.logs_url,
    ]


def test_command_not_found_fails_the_step(builder, receiver):
    result = builder.run_json({"name": "p", "exec": ["./does-not-exist.sh"]})
    assert result.returncode == 1, result
    span = receiver.span("p")
    assert span["attrs"]["bass.status"] == "failed"
    assert span["status"] == {"code": 2, "message": "command not found: ./does-not-exist.sh"}


def test_failed_step_reports_exit_code_and_stderr_tail(builder, receiver):
    lines = "; ".join(f"echo line{i} >&2" for i in range(30))
    result = builder.run_json({"name": "p", "exec": f"{lines}; exit 7"})
    assert result.returncode == 1, result
    span = receiver.span("p")
    assert span["attrs"]["process.exit.code"] == 7
    assert span["status"]["code"] == 2
    assert span["status"]["message"].splitlines() == [f"line{i}" for i in range(10, 30)]
    assert "✗ p failed (exit 7)" in result.stdout
    assert "line29" in result.stdout  # the failing step's last lines at the end


def test_exit_codes_per_status(builder, tmp_path):
    (tmp_path / "changes").write_text("docs/readme.md\n")
    cases = {
        0: {"name": "p", "exec": "true"},
        1: {"name": "p", "exec": "false"},
        3: {"name": "p", "exec": "true", "cwd": ".."},
        4: {"name": "p", "exec": "sleep 5", "timeout": 0.2},
    }
    for expected, pipeline in cases.items():
        assert builder.run_json(pipeline).returncode == expected, pipeline
    skipped = {"name": "p", "exec": "false", "if-changeset-matches": "^src/"}
    result = builder.run_json(skipped, ["-c", str(tmp_path / "changes")])
    assert result.returncode == 0, result


def test_unknown_arguments_are_ignored_with_a_warning(builder, receiver):
    result = builder.run_json({"name": "p", "exec": "true"}, ["--future-flag", "x"])
    assert result.returncode == 0, result
    assert "ignoring unknown arguments: --future-flag x" in result.stderr


def test_bad_trace_id_is_refused(builder):
    result = builder.run_json({"name": "p", "exec": "true"}, ["-i", "xyz"], ids=False)
    assert result.returncode == 2
    assert "--trace-id" in result.stderr
