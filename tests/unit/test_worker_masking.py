"""The worker cuts an entry's long lines into pieces of MAX_LINE characters for log
records, and masks the secrets (the env file's values) before it cuts: a secret that
straddles a cut is never stored as two unmasked halves."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bass_builder
from bass.worker.procs import MAX_LINE, Lines, run_streaming

SECRET = "s3cr3t-T0KEN-value"


@pytest.fixture
def mask() -> Iterator[bass_builder._Masker]:
    """The masking the worker's Reporter does (nothing is sent: no span, no line)."""
    reporter = bass_builder.Reporter(
        "http://127.0.0.1:1/v1/traces", "http://127.0.0.1:1/v1/logs", "s", "0" * 32,
        secrets=[SECRET, "short-one"],
    )  # fmt: skip
    yield reporter.mask
    reporter.close()


def _straddling(length: int, *cuts: int) -> str:
    """A line of `length` characters with SECRET across each of the `cuts`."""
    line = list("x" * length)
    for cut in cuts:
        start = cut - len(SECRET) // 2
        line[start : start + len(SECRET)] = SECRET
    return "".join(line)


def _feed(lines: Lines, data: bytes, chunk: int) -> list[str]:
    out = []
    for i in range(0, len(data), chunk):
        out += lines.feed(data[i : i + chunk])
    return out + lines.feed(b"", final=True)


def test_the_fixture_puts_the_secret_across_the_cut() -> None:
    line = _straddling(70_000, MAX_LINE)
    assert len(line) == 70_000 and MAX_LINE == 65_536
    assert SECRET not in line[:MAX_LINE] and SECRET not in line[MAX_LINE:]
    assert SECRET in line


@pytest.mark.parametrize("chunk", [7, 4096, 65536, 1 << 20])
def test_a_long_line_is_masked_whole_then_cut(mask, chunk: int) -> None:
    line = _straddling(70_000, MAX_LINE)
    pieces = _feed(Lines(mask, len(SECRET)), (line + "\n").encode(), chunk)
    assert [len(p) for p in pieces] == [MAX_LINE, 70_000 - len(SECRET) + 3 - MAX_LINE]
    assert "".join(pieces) == line.replace(SECRET, "***")
    assert not any(SECRET[:3] in p or SECRET[-3:] in p for p in pieces)


@pytest.mark.parametrize("chunk", [1000, 4096, 65536])
def test_a_line_without_end_is_cut_without_splitting_a_secret(mask, chunk: int) -> None:
    """A line still coming is cut to bound memory: never where a secret could go on."""
    line = _straddling(300_000, MAX_LINE, 2 * MAX_LINE, 3 * MAX_LINE + 1, 299_990)
    lines = Lines(mask, len(SECRET))
    early = []
    data = line.encode()
    for i in range(0, len(data), chunk):
        early += lines.feed(data[i : i + chunk])
    assert early, "nothing was cut before the line ended"
    assert max(len(p) for p in early) <= MAX_LINE
    pieces = early + lines.feed(b"", final=True)
    assert "".join(pieces) == line.replace(SECRET, "***")
    assert not any(SECRET[:3] in p or SECRET[-3:] in p for p in pieces)


def test_short_lines_and_characters_split_between_reads() -> None:
    lines = Lines()
    data = "é\r\nplain\n\n€ end".encode()
    assert _feed(lines, data, 1) == ["é", "plain", "", "€ end"]


def test_an_entrys_output_through_run_streaming(mask, tmp_path: Path) -> None:
    """The real path: a process prints a 70,000-character line with the secret across
    the cut, and a last line without a newline."""
    line = _straddling(70_000, MAX_LINE)
    script = tmp_path / "print.py"
    script.write_text(
        f"import sys\nsys.stdout.write({line!r} + '\\n')\nsys.stderr.write('tail ' + {SECRET!r})\n"
    )
    got: list[tuple[str, str]] = []
    code, reason = run_streaming(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        on_line=lambda stream, text: got.append((stream, text)),
        stop_reason=lambda: None,
        mask=mask,
        longest_secret=len(SECRET),
    )
    assert (code, reason) == (0, None)
    out = [text for stream, text in got if stream == "stdout"]
    assert "".join(out) == line.replace(SECRET, "***") and len(out) == 2
    assert [text for stream, text in got if stream == "stderr"] == ["tail ***"]
    assert not any(SECRET[:4] in text or SECRET[-4:] in text for _, text in got)
