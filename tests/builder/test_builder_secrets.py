"""Secrets stay secret: the values of BASS_SECRET_NAMES never reach telemetry or the output.

Each test runs the builder on text that holds a secret (a step's name, its cwd, a
function's name, a line cut at 64 KiB, a multi-line value printed line by line) and
looks for it everywhere: every byte the fake receiver got, the builder's stdout and
stderr; and, where text is cut (records at 64 KiB, lines at the terminal's width), for
the halves too.
"""

from __future__ import annotations

import io
import random
import sys
from itertools import pairwise
from typing import Any

import pytest
from builder_testing import BUILDER_DIR, PYTHON, Receiver, Result

sys.path.insert(0, str(BUILDER_DIR))
import bass_builder  # noqa: E402

SECRET = "s3cr3t_T0k3n_xyz"  # 16 characters, valid in a path and a Python name
ENV = {"BASS_SECRET_NAMES": "MY_TOKEN", "MY_TOKEN": SECRET}
CUT = bass_builder.MAX_LINE


def assert_not_leaked(result: Result, receiver: Receiver) -> None:
    """The secret is nowhere: not in what the receiver got, not in what the builder
    printed, not even split over two lines of it (a record cut in two shows as two
    lines of a failing step's tail)."""
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert SECRET not in text, f"{name}:\n{text}"
        assert SECRET not in text.replace("\n", ""), f"{name}, across lines:\n{text}"
    for path, _, body in receiver.requests:
        assert SECRET.encode() not in body, path
    for record in receiver.logs():
        assert SECRET not in record["body"]["stringValue"]
    for span in receiver.span_exports():
        assert SECRET not in span["status"].get("message", "").replace("\n", "")


def masked(text: str) -> str:
    return text.replace(SECRET, "***")


def straddling(length: int, before: list[int]) -> str:
    """A line of `length` characters with the secret across its first cuts (every
    64 KiB), `before[i]` of the secret's characters before cut i + 1."""
    line = ["x"] * length
    for k, n in enumerate(before, 1):
        start = k * CUT - n
        line[start : start + len(SECRET)] = SECRET
    text = "".join(line)
    assert len(text) == length and text.count(SECRET) == len(before)
    return text


def assert_cut_after_masking(bodies: list[str], line: str) -> None:
    """The records of `line` are the masked line cut every 64 KiB: the secret is
    masked before the cut, never cut in two."""
    assert "".join(bodies) == masked(line)
    assert all(len(b) == CUT for b in bodies[:-1]), [len(b) for b in bodies]
    assert 0 < len(bodies[-1]) <= CUT
    assert not any(SECRET in b for b in bodies)


# ---------------------------------------------------------------------------
# Names, attributes, output


def test_a_secret_in_step_names_cwd_and_messages_is_masked_everywhere(builder, receiver, tmp_path):
    (tmp_path / f"dir_{SECRET}").mkdir()
    pipeline = {
        "name": f"p_{SECRET}",
        "order": "unordered",
        "steps": [
            {"name": f"ok {SECRET}", "exec": "true", "cwd": f"dir_{SECRET}"},
            {"name": f"slow {SECRET}", "timeout": 0.5, "steps": [
                {"name": "sleeper", "exec": "sleep 5"},
            ]},
            {"name": f"seq {SECRET}", "steps": [
                {"name": f"fails {SECRET}", "exec": "echo no >&2; exit 3"},
                {"name": f"later {SECRET}", "exec": "true"},
            ]},
            {"name": f"bad cwd {SECRET}", "exec": "true", "cwd": f"../{SECRET}"},
        ],
        "teardown": {"name": f"clean {SECRET}", "exec": "true"},
    }  # fmt: skip
    result = builder.run_json(pipeline, ["-g"], env=ENV)
    assert result.returncode == 3, result  # the cwd outside the root: error
    assert_not_leaked(result, receiver)

    spans = receiver.spans().values()
    assert {s["name"] for s in spans} == {
        "build p_***",
        "p_***",
        "ok ***",
        "slow ***",
        "sleeper",
        "seq ***",
        "fails ***",
        "later ***",
        "bad cwd ***",
        "clean ***",
    }
    assert {s["service"] for s in spans} == {"bass:pipeline:p_***"}
    assert receiver.span("ok ***")["attrs"]["bass.cwd"] == "dir_***"
    assert receiver.span("later ***")["attrs"]["bass.skip_reason"] == "earlier step failed"
    sleeper = receiver.span("sleeper")
    assert sleeper["attrs"]["bass.status"] == "timeout"
    assert sleeper["status"]["message"] == "timeout: p_***/slow *** exceeded 0.5s"
    assert receiver.bodies("sleeper") == [
        "bass: timeout: p_***/slow *** exceeded 0.5s; stopping the step's processes"
    ]
    bad = receiver.span("bad cwd ***")
    assert (bad["attrs"]["bass.status"], bad["status"]["message"]) == (
        "error",
        "cwd escapes root: ../***",
    )
    assert receiver.bodies("bad cwd ***") == ["bass: cwd escapes root: ../***"]
    assert receiver.span("seq ***")["status"]["message"] == "p_***/seq ***/fails ***: failed"

    lines = result.stdout.splitlines()
    assert lines[0] == f"bass: pipeline p_*** (trace {result.trace_id})"
    for line in (
        "▶ p_***/ok ***",
        "⊘ p_***/seq ***/later *** skipped (earlier step failed)",
        "! p_***/bad cwd *** error: cwd escapes root: ../***",
        "⏱ p_***/slow ***/sleeper timeout: p_***/slow *** exceeded 0.5s",
        "--- last lines of p_***/seq ***/fails *** (failed) ---",
    ):
        assert line in lines, result.stdout
    assert any(line.startswith("✗ p_***/seq ***/fails *** failed (exit 3)") for line in lines)
    assert any(line.startswith("! pipeline p_*** error in ") for line in lines)


def test_every_string_attribute_but_the_status_is_masked(builder, receiver, tmp_path):
    """code.function.name, process.command_args, bass.skip_reason: whatever the builder
    puts on a span (here a second secret is a word of the builder's own, "changeset")."""
    changeset = tmp_path / "changes"
    changeset.write_text("src/main.c\n")
    result = builder.run_script(
        f"""
        from bass import build

        def deploy_{SECRET}():
            print("deploying {SECRET}")

        build({{"name": "p", "steps": [
            {{"name": "py", "exec": deploy_{SECRET}}},
            {{"name": "cmd", "exec": ["echo", "$MY_TOKEN", "literal-{SECRET}"]}},
            {{"name": "docs", "exec": "true", "if-changeset-matches": "^docs/"}},
        ]}})
        """,
        ["-c", str(changeset)],
        env={**ENV, "BASS_SECRET_NAMES": "MY_TOKEN,WORD", "WORD": "changeset"},
    )
    assert result.returncode == 0, result
    assert_not_leaked(result, receiver)
    assert receiver.span("py")["attrs"]["code.function.name"] == "deploy_***"
    assert receiver.bodies("py") == ["deploying ***"]
    assert receiver.span("cmd")["attrs"]["process.command_args"] == [
        "echo",
        "$MY_TOKEN",
        "literal-***",
    ]
    assert receiver.bodies("cmd") == ["*** literal-***"]
    docs = receiver.span("docs")["attrs"]
    assert (docs["bass.status"], docs["bass.skip_reason"]) == ("skipped", "***")
    assert "⊘ p/docs skipped (***)" in result.stdout.splitlines()


def test_the_live_tree_masks_names_before_cutting_lines_to_the_terminal_width(
    tmp_path, monkeypatch
):
    """The tree's lines are cut to the terminal's width (100 columns when it has none):
    a name cut in the middle of the secret must not show its first characters."""
    monkeypatch.chdir(tmp_path)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    name = "n" * 85 + SECRET  # the tree's line is cut in the middle of the secret
    pipeline = {"name": f"p_{SECRET}", "steps": [{"name": name, "exec": "sleep 0.5"}]}
    options = bass_builder.Options(export=False, view="tty", output=out, handle_signals=False)
    assert bass_builder.run_pipeline(pipeline, options) == bass_builder.OK
    text = out.getvalue()
    assert "\x1b[?25l" in text and any(c in text for c in "⠋⠙⠹⠸⠼")  # the tree was drawn
    assert SECRET[:6] not in text, text
    assert "n" * 85 + "***" in text
    assert "pipeline p_*** (trace" in text


def test_validation_problems_quoting_the_pipeline_are_masked(builder, receiver, monkeypatch):
    pipeline = {"name": "p", "exec": "true", "if-changeset-matches": f"({SECRET}", SECRET: 1}
    result = builder.run_json(pipeline, env=ENV)
    assert result.returncode == 2, result
    assert 'pipeline: unknown key "***"' in result.stderr
    assert 'invalid regex "(***": missing ), unterminated subpattern' in result.stderr
    assert_not_leaked(result, receiver)
    assert receiver.requests == []
    # the same problems, raised by the Python API, are masked too
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(bass_builder.PipelineError) as raised:
        bass_builder.assert_pipeline(pipeline)
    assert SECRET not in str(raised.value)
    assert 'pipeline: unknown key "***"' in raised.value.problems


# ---------------------------------------------------------------------------
# Lines cut at 64 KiB


def test_a_secret_across_the_64_KiB_cut_of_a_line_read_in_two_pieces(builder, receiver, tmp_path):
    """A 70,000-character line written at once, its newline later: the first 64 KiB
    are read while the line is still incomplete, and cut from it."""
    line = straddling(70_000, [8])
    (tmp_path / "line.txt").write_text(line)
    (tmp_path / "emit.py").write_text(
        "import sys, time\n"
        "sys.stderr.write(open('line.txt').read()); sys.stderr.flush()\n"
        "time.sleep(0.3)\n"
        "sys.stderr.write('\\n'); sys.exit(1)\n"
    )
    result = builder.run_json({"name": "p", "exec": [PYTHON, "emit.py"]}, env=ENV)
    assert result.returncode == 1, result
    assert_not_leaked(result, receiver)
    assert_cut_after_masking(receiver.bodies("p", "stderr"), line)
    # the failing step's last lines (its records) are printed, and its status message
    assert "--- last lines of p (failed) ---" in result.stdout


EMIT = """
import sys

def emit(size):
    text = open("line.txt").read()
    for i in range(0, len(text), size):
        sys.stderr.write(text[i : i + size])
        sys.stderr.flush()
    sys.stderr.write("\\n")
    return 1
"""


@pytest.mark.parametrize(
    ("step", "size"),
    [("python", 0), ("python", 997), ("python", 65_537), ("exec", 1000), ("exec", 0)],
)
def test_a_secret_across_every_cut_of_a_longer_line(builder, receiver, tmp_path, step, size):
    """Five cuts, the secret across each, 1 to 15 of its characters before the cut;
    written in one piece (size 0) or many: a Python step's writes, a process's pipe."""
    line = straddling(5 * CUT + 1000, [1, 5, 8, 12, 15])
    (tmp_path / "line.txt").write_text(line)
    (tmp_path / "emit.py").write_text(EMIT)
    size = size or len(line)
    if step == "python":
        command = f"lambda: emit.emit({size})"
    else:
        command = repr([PYTHON, "-c", f"import emit, sys; sys.exit(emit.emit({size}))"])
    result = builder.run_script(
        f"""
        import emit
        from bass import build

        build({{"name": "p", "steps": [{{"name": "long", "exec": {command}}}]}})
        """,
        env=ENV,
    )
    assert result.returncode == 1, result
    assert_not_leaked(result, receiver)
    assert_cut_after_masking(receiver.bodies("long", "stderr"), line)


class _Sink:
    """What a log stream hands to the exporter: its text, read back as records."""

    def __init__(self) -> None:
        self.records: list[str] = []

    def add_log_text(self, stream: Any, now: str, text: str, count: int) -> None:
        lines = bass_builder._split_lines(text.split("\n"))
        assert len(lines) >= count  # a line over MAX_LINE characters is several records
        self.records.extend(lines)


class _FakeRun:
    def __init__(self, secrets: list[str]) -> None:
        self.trace_id = "1" * 32
        self.telemetry = _Sink()
        self.mask = bass_builder._Masker(secrets)


@pytest.mark.parametrize("before", range(1, len(SECRET)))
def test_a_log_stream_never_cuts_a_secret_however_its_line_arrives(before):
    """Every position of the secret across the cut, every way of writing the line: in
    one piece, in chunks that end inside the secret or just before the cut, randomly."""
    line = straddling(3 * CUT + 777, [before, len(SECRET) - before, before])
    rng = random.Random(before)
    ways: list[list[int]] = [
        [len(line)],
        [CUT - before + 1, len(line)],
        [CUT, CUT + 1, len(line)],
        [CUT + 3, 2 * CUT + 10, len(line)],
        [rng.randrange(1, len(line)) for _ in range(40)],
        list(range(0, len(line), 4093)),
        list(range(0, len(line), 65_537)),
    ]
    for way in ways:
        run = _FakeRun([SECRET, "other-secret-that-never-shows"])
        stream = bass_builder._LogStream(run, "2" * 16, "stdout")  # type: ignore[arg-type]
        bounds = sorted({0, len(line), *way})
        for start, end in pairwise(bounds):
            stream.feed(line[start:end].encode())
        stream.feed(b"\nnext line\n")
        stream.close()
        records = run.telemetry.records
        assert records[-1] == "next line"
        assert_cut_after_masking(records[:-1], line)
        assert list(stream.tail or ())[-1] == "next line"


def test_without_secrets_a_long_line_is_cut_as_it_always_was():
    run = _FakeRun([])
    stream = bass_builder._LogStream(run, "2" * 16, "stdout")  # type: ignore[arg-type]
    stream.feed_text("a" * (CUT + 1))  # streamed as soon as a piece is complete
    assert run.telemetry.records == ["a" * CUT]
    stream.feed_text("b\n")
    assert run.telemetry.records == ["a" * CUT, "ab"]


# ---------------------------------------------------------------------------
# Multi-line secrets


def test_a_multi_line_secret_printed_line_by_line_is_masked_line_by_line(builder, receiver):
    """Lines are masked one by one as they come: a secret of several lines is masked
    as a whole when it comes at once, and line by line (each of 4 characters or more)
    however it comes."""
    key = "-----BEGIN KEY-----\nAbCdEfGh12345678\nzyxwvuts87654321\n-----END KEY-----"
    result = builder.run_script(
        """
        import os
        from bass import build

        def lines():
            for line in os.environ["MY_KEY"].splitlines():
                print(line)

        def at_once():
            print(os.environ["MY_KEY"])

        shell = 'printf "%s\\\\n" "$MY_KEY" | while read -r l; do echo "$l"; sleep 0.05; done'
        build({"name": "p", "steps": [
            {"name": "lines", "exec": lines},
            {"name": "at once", "exec": at_once},
            {"name": "shell", "exec": shell},
            {"name": "cat", "exec": 'printf "%s\\\\n" "$MY_KEY"'},
        ]})
        """,
        env={"BASS_SECRET_NAMES": "MY_KEY", "MY_KEY": key},
    )
    assert result.returncode == 0, result
    assert receiver.bodies("lines") == ["***"] * 4
    assert receiver.bodies("at once") == ["***"] * 4  # print: the key, then its newline
    assert receiver.bodies("shell") == ["***"] * 4
    assert set(receiver.bodies("cat")) == {"***"}  # one record when read at once
    everything = b"".join(body for _, _, body in receiver.requests)
    for part in key.splitlines():
        assert part.encode() not in everything


def test_masker_values():
    mask = bass_builder._Masker(["abc", "abcd", "x\r\nline two\n\n    \nend", ""])
    assert mask.values == ["x\r\nline two\n\n    \nend", "line two", "abcd"]
    assert mask("line two, abcd, abc") == "***, ***, abc"
    env = {"BASS_SECRET_NAMES": " A , B,,C", "A": "value-a", "B": "ab", "D": "not named"}
    assert bass_builder._Masker.from_environ(env).values == ["value-a"]
