"""Python callables as steps, in a prototype-style script (`from bass import build`)."""

from __future__ import annotations


def test_callables_ok_false_int_and_exception(builder, receiver):
    result = builder.run_script(
        """
        from bass import assert_pipeline, build

        def fine():
            print("all good")

        def refuses():
            return False

        def exits_three():
            return 3

        def explodes():
            print("about to fail")
            raise RuntimeError("kaboom")

        pipeline = {
            "name": "py",
            "order": "unordered",
            "steps": [
                {"name": "fine", "exec": fine},
                {"name": "true", "exec": lambda: True},
                {"name": "refuses", "exec": refuses},
                {"name": "three", "exec": exits_three},
                {"name": "explodes", "exec": explodes},
            ],
        }
        assert_pipeline(pipeline)
        build(pipeline)
        """
    )
    assert result.returncode == 1, result
    assert receiver.status("fine") == "ok"
    assert receiver.bodies("fine", "stdout") == ["all good"]
    assert receiver.span("fine")["attrs"]["code.function.name"] == "fine"
    assert receiver.status("true") == "ok"
    assert receiver.status("refuses") == "failed"
    assert receiver.status("three") == "failed"
    assert receiver.span("three")["attrs"]["process.exit.code"] == 3
    span = receiver.span("explodes")
    assert span["attrs"]["bass.status"] == "failed"
    assert span["status"]["message"].splitlines()[-1] == "RuntimeError: kaboom"
    stderr = receiver.bodies("explodes", "stderr")
    assert stderr[0] == "Traceback (most recent call last):"
    assert stderr[-1] == "RuntimeError: kaboom"
    assert receiver.bodies("explodes", "stdout") == ["about to fail"]
    # the script's own prints outside steps are not captured
    assert "all good" not in result.stdout


def test_parallel_callables_print_on_their_own_spans(builder, receiver):
    result = builder.run_script(
        """
        import sys, time
        from bass import build

        def talker(name):
            def talk():
                for i in range(100):
                    print(f"{name} {i}")
                    if i % 10 == 0:
                        print(f"{name} err {i}", file=sys.stderr)
                        time.sleep(0.001)
            return talk

        build({
            "name": "py",
            "order": "unordered",
            "steps": [{"name": n, "exec": talker(n)} for n in ("red", "green", "blue")],
        })
        """,
        ["-j", "3"],
    )
    assert result.returncode == 0, result
    for name in ("red", "green", "blue"):
        assert receiver.bodies(name, "stdout") == [f"{name} {i}" for i in range(100)]
        assert receiver.bodies(name, "stderr") == [f"{name} err {i}" for i in range(0, 100, 10)]
    spans = [receiver.span(n) for n in ("red", "green", "blue")]
    starts = [int(s["startTimeUnixNano"]) for s in spans]
    ends = [int(s["endTimeUnixNano"]) for s in spans]
    assert max(starts) < min(ends)  # they did run side by side


def test_callable_timeout_is_reported_and_the_thread_abandoned(builder, receiver):
    result = builder.run_script(
        """
        import time
        from bass import build

        build({"name": "py", "steps": [
            {"name": "stuck", "exec": lambda: time.sleep(30), "timeout": 0.3},
            {"name": "after", "exec": lambda: None},
        ]})
        """
    )
    assert result.returncode == 4, result
    assert receiver.status("stuck") == "timeout"
    assert receiver.status("after") == "skipped"
