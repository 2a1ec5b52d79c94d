"""What the builder prints: plain lines for pipes, a live tree on a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

from builder_testing import BUILDER_DIR

sys.path.insert(0, str(BUILDER_DIR))
import bass_builder  # noqa: E402

PIPELINE = {
    "name": "p",
    "steps": [
        {"name": "a", "exec": "sleep 0.3; echo a-out"},
        {"name": "b", "exec": "echo boom >&2; exit 2"},
        {"name": "c", "exec": "true"},
    ],
}


def test_plain_output_one_line_per_start_and_end_and_a_summary(builder, receiver):
    result = builder.run_json(PIPELINE)
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert lines[0] == f"bass: pipeline p (trace {result.trace_id})"
    patterns = [
        r"▶ p",
        r"▶ p/a",
        r"✓ p/a 0\.\ds",
        r"▶ p/b",
        r"✗ p/b failed \(exit 2\) 0\.\ds",
        r"⊘ p/c skipped \(earlier step failed\)",
        r"✗ p failed 0\.\ds",
        r"--- last lines of p/b \(failed\) ---",
        r"boom",
        r"✗ pipeline p failed in 0\.\ds \(1 ok, 1 failed, 1 skipped\)",
        rf"trace: {re.escape(receiver.url)}/traces/{result.trace_id}",
    ]
    assert len(lines) == len(patterns) + 1, result.stdout
    for line, pattern in zip(lines[1:], patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert "a-out" not in result.stdout  # step output goes to telemetry, not the console


def test_live_tree_on_a_terminal(builder, tmp_path):
    path = builder.write_json(PIPELINE)
    cmd, _, _ = builder.command(["-m", "bass_builder", str(path)])
    master, slave = pty.openpty()
    chunks = []
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.DEVNULL,
            env=builder.env({"TERM": "xterm"}),
            cwd=tmp_path,
        )
        os.close(slave)
        slave = -1
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 1
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    text = b"".join(chunks).decode()
    assert "\x1b[?25l" in text and "\x1b[?25h" in text  # cursor hidden, then shown again
    assert re.search(r"\x1b\[\d+A", text)  # redrawn in place
    assert any(spinner in text for spinner in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    final = text.rsplit("\x1b[J", 1)[1].replace("\r", "").replace("\x1b[?25h", "").splitlines()
    assert final[0].startswith("✗ p failed")
    assert final[1].startswith("  ✓ a ")
    assert final[2].startswith("  ✗ b failed (exit 2)")
    assert final[3] == "  ⊘ c skipped (earlier step failed)"
    assert "boom" in final
    assert final[-1].startswith("trace: http://127.0.0.1:")


def test_run_pipeline_in_process_returns_the_status(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    options = bass_builder.Options(export=False, view="plain", output=out)
    seen = []

    def step():
        print("captured")
        seen.append(sys.stdout)

    status = bass_builder.run_pipeline(
        {"name": "p", "steps": [{"name": "py", "exec": step}, {"name": "sh", "exec": "true"}]},
        options,
    )
    assert status == bass_builder.OK
    assert "✓ pipeline p ok" in out.getvalue()
    assert "captured" not in out.getvalue()
    assert seen and seen[0] is not sys.stdout  # routed while running, restored after
    failed = bass_builder.run_pipeline({"name": "p", "exec": "exit 1"}, options)
    assert failed == bass_builder.FAILED


def test_public_api():
    for name in bass_builder.__all__:
        assert getattr(bass_builder, name) is not None
    for name in ("assert_pipeline", "validate_pipeline", "build", "run_pipeline", "main"):
        assert getattr(bass_builder, name).__doc__
    assert bass_builder.STATUSES == ("ok", "failed", "timeout", "skipped", "cancelled", "error")
    assert bass_builder.EXIT_CODES == {
        "ok": 0,
        "skipped": 0,
        "failed": 1,
        "error": 3,
        "timeout": 4,
        "cancelled": 5,
    }
