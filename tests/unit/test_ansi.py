"""Log lines with terminal escapes: `plain` (search, failure summaries), `to_html` (the
dashboard), `collapse_cr` (progress lines), and `terminal_safe` (the download) as before.

The coloured samples are what the tools printed, captured byte for byte (pytest 9 with
--color=yes and pygments, gcc -fdiagnostics-color=always, ruff and npm with colours
forced, node's util.inspect and util.styleText, git diff --color=always)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup, escape

from bass.ansi import CSS_CLASSES, collapse_cr, plain, terminal_safe, to_html

RED, BOLD = '<span class="ansi-fg-1">', '<span class="ansi-bold">'

# (what the tool printed, plain, to_html)
REAL = [
    (  # pytest: a failure in the short test summary
        "\x1b[31mFAILED\x1b[0m test_fail.py::\x1b[1mtest_fails\x1b[0m - AssertionError:"
        " assert '<b>&amp;' == 'E501'",
        "FAILED test_fail.py::test_fails - AssertionError: assert '<b>&amp;' == 'E501'",
        f"{RED}FAILED</span> test_fail.py::{BOLD}test_fails</span> - AssertionError:"
        " assert &#39;&lt;b&gt;&amp;amp;&#39; == &#39;E501&#39;",
    ),
    (  # pytest: the closing line
        "\x1b[31m========================= \x1b[31m\x1b[1m1 failed\x1b[0m, \x1b[32m1 passed"
        "\x1b[0m\x1b[31m in 0.63s\x1b[0m\x1b[31m ==========================\x1b[0m",
        "========================= 1 failed, 1 passed in 0.63s ==========================",
        f"{RED}========================= </span>"
        '<span class="ansi-fg-1 ansi-bold">1 failed</span>, '
        f'<span class="ansi-fg-2">1 passed</span>{RED} in 0.63s ==========================</span>',
    ),
    (  # pytest: source highlighted by pygments (39;49;00 resets)
        '>       \x1b[94massert\x1b[39;49;00m x == \x1b[33m"\x1b[39;49;00m\x1b[33mE501'
        '\x1b[39;49;00m\x1b[33m"\x1b[39;49;00m\x1b[90m\x1b[39;49;00m',
        '>       assert x == "E501"',
        '&gt;       <span class="ansi-bright-fg-4">assert</span> x == '
        '<span class="ansi-fg-3">&#34;E501&#34;</span>',
    ),
    (  # pytest: an assertion diff line, bold red then bright green
        "\x1b[1m\x1b[31mE         \x1b[92m+ <b>&amp;\x1b[39;49;00m\x1b[90m\x1b[39;49;00m\x1b[0m",
        "E         + <b>&amp;",
        '<span class="ansi-fg-1 ansi-bold">E         </span>'
        '<span class="ansi-bright-fg-2 ansi-bold">+ &lt;b&gt;&amp;amp;</span>',
    ),
    (  # gcc: 01 for bold, ESC[K (erase to the end of the line) after each colour
        "\x1b[01m\x1b[Kbad.c:1:25:\x1b[m\x1b[K \x1b[01;31m\x1b[Kerror: \x1b[m\x1b[K‘\x1b[01m"
        "\x1b[Kx\x1b[m\x1b[K’ undeclared (first use in this function)",
        "bad.c:1:25: error: ‘x’ undeclared (first use in this function)",
        f'{BOLD}bad.c:1:25:</span> <span class="ansi-fg-1 ansi-bold">error: </span>‘'
        f"{BOLD}x</span>’ undeclared (first use in this function)",
    ),
    (  # ruff
        "\x1b[1m\x1b[91mI001\x1b[0m [\x1b[1m\x1b[96m*\x1b[0m]\x1b[1m Import block is"
        " un-sorted or un-formatted\x1b[0m",
        "I001 [*] Import block is un-sorted or un-formatted",
        '<span class="ansi-bright-fg-1 ansi-bold">I001</span> ['
        '<span class="ansi-bright-fg-6 ansi-bold">*</span>]'
        f"{BOLD} Import block is un-sorted or un-formatted</span>",
    ),
    (  # npm
        '\x1b[1mnpm\x1b[22m \x1b[31merror\x1b[39m Missing script: "nope"',
        'npm error Missing script: "nope"',
        f"{BOLD}npm</span> {RED}error</span> Missing script: &#34;nope&#34;",
    ),
    (  # node: util.inspect
        "{ n: \x1b[33m1\x1b[39m, s: \x1b[32m'<x>'\x1b[39m, u: \x1b[90mundefined\x1b[39m }",
        "{ n: 1, s: '<x>', u: undefined }",
        '{ n: <span class="ansi-fg-3">1</span>, s: <span class="ansi-fg-2">&#39;&lt;x&gt;&#39;'
        '</span>, u: <span class="ansi-bright-fg-0">undefined</span> }',
    ),
    (  # node: util.styleText(["red", "inverse", "bold"]), a test runner's FAIL badge
        "\x1b[31m\x1b[7m\x1b[1m FAIL \x1b[22m\x1b[27m\x1b[39m a.test.js",
        " FAIL  a.test.js",
        '<span class="ansi-inverse-fg ansi-bg-1 ansi-bold"> FAIL </span> a.test.js',
    ),
    (  # git diff
        "\x1b[32m+\x1b[m\x1b[32mc\x1b[m",
        "+c",
        '<span class="ansi-fg-2">+c</span>',
    ),
]


@pytest.mark.parametrize(("text", "shown", "markup"), REAL)
def test_real_coloured_output(text: str, shown: str, markup: str) -> None:
    assert plain(text) == shown
    assert to_html(text) == Markup(markup)
    assert isinstance(to_html(text), Markup)


def test_what_pytest_prints_now(tmp_path: Path) -> None:
    """A real pytest run with --color=yes: every line plain and safe to render."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_red.py").write_text(
        'def test_fails():\n    assert "<b>&amp;" == "E501"\n\ndef test_ok():\n    pass\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PY_COLORS")}
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--color=yes", "-p", "no:cacheprovider", "test_red.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = run.stdout.splitlines()
    assert any("\x1b[" in line for line in lines)
    for line in lines:
        assert not any(unicodedata.category(c) == "Cc" and c != "\t" for c in plain(line))
        assert "\x1b" not in to_html(line)
        assert html.unescape(re.sub(r"</?span[^>]*>", "", to_html(line))) == plain(line)
    summary = next(line for line in lines if plain(line).startswith("FAILED"))
    assert plain(summary) == (
        "FAILED test_red.py::test_fails - AssertionError: assert '<b>&amp;' == 'E501'"
    )
    assert to_html(summary).startswith(f"{RED}FAILED</span>")
    assert "&lt;b&gt;&amp;amp;" in to_html(summary)
    closing = plain(lines[-1])
    assert re.fullmatch(r"=+ 1 failed, 1 passed in [0-9.]+s =+", closing)
    assert '<span class="ansi-fg-2">1 passed</span>' in to_html(lines[-1])


STYLES = [  # the text "x" in each style
    ("\x1b[30mx", "ansi-fg-0", ""),
    ("\x1b[37mx", "ansi-fg-7", ""),
    ("\x1b[90mx", "ansi-bright-fg-0", ""),
    ("\x1b[97mx", "ansi-bright-fg-7", ""),
    ("\x1b[40mx", "ansi-bg-0", ""),
    ("\x1b[47mx", "ansi-bg-7", ""),
    ("\x1b[100mx", "ansi-bright-bg-0", ""),
    ("\x1b[107mx", "ansi-bright-bg-7", ""),
    ("\x1b[38;5;1mx", "ansi-fg-1", ""),  # the palette's first 16 are the basic colours
    ("\x1b[38;5;9mx", "ansi-bright-fg-1", ""),
    ("\x1b[48;5;15mx", "ansi-bright-bg-7", ""),
    ("\x1b[38;5;16mx", "", "color:#000000"),  # the 6x6x6 cube
    ("\x1b[38;5;21mx", "", "color:#0000ff"),
    ("\x1b[38;5;67mx", "", "color:#5f87af"),
    ("\x1b[38;5;196mx", "", "color:#ff0000"),
    ("\x1b[38;5;208mx", "", "color:#ff8700"),
    ("\x1b[38;5;231mx", "", "color:#ffffff"),
    ("\x1b[38;5;232mx", "", "color:#080808"),  # the greys
    ("\x1b[38;5;244mx", "", "color:#808080"),
    ("\x1b[48;5;255mx", "", "background-color:#eeeeee"),
    ("\x1b[38;2;255;135;0mx", "", "color:#ff8700"),  # truecolour
    ("\x1b[48;2;1;2;3mx", "", "background-color:#010203"),
    ("\x1b[38;2;0;0;0;48;2;255;255;255mx", "", "color:#000000;background-color:#ffffff"),
    ("\x1b[38:2::10:20:30mx", "", "color:#0a141e"),  # ITU T.416's colon form
    ("\x1b[38:2:10:20:30mx", "", "color:#0a141e"),
    ("\x1b[48:5:196mx", "", "background-color:#ff0000"),
    ("\x1b[1mx", "ansi-bold", ""),
    ("\x1b[2mx", "ansi-dim", ""),
    ("\x1b[3mx", "ansi-italic", ""),
    ("\x1b[4mx", "ansi-underline", ""),
    ("\x1b[4:3mx", "ansi-underline", ""),  # curly underline
    ("\x1b[21mx", "ansi-underline", ""),  # double underline
    ("\x1b[9mx", "ansi-strike", ""),
    ("\x1b[1;2;3;4;9mx", "ansi-bold ansi-dim ansi-italic ansi-underline ansi-strike", ""),
    ("\x1b[31;1;44mx", "ansi-fg-1 ansi-bg-4 ansi-bold", ""),
    ("\x1b[7mx", "ansi-inverse-fg ansi-inverse-bg", ""),  # inverse swaps the colours
    ("\x1b[31;7mx", "ansi-inverse-fg ansi-bg-1", ""),
    ("\x1b[42;7mx", "ansi-fg-2 ansi-inverse-bg", ""),
    ("\x1b[31;42;7mx", "ansi-fg-2 ansi-bg-1", ""),
    ("\x1b[7;38;5;200mx", "ansi-inverse-fg", "background-color:#ff00d7"),
    ("\x1b[7;48;2;1;2;3mx", "ansi-inverse-bg", "color:#010203"),
    ("\x1b[1;38;5;208;48;5;17mx", "ansi-bold", "color:#ff8700;background-color:#00005f"),
    ("\x1b[58;5;1;4mx", "ansi-underline", ""),  # the underline's colour is not shown
    ("\x1b[5;8;53mx", "", ""),  # blink, conceal, overline: not shown
    ("\x1b[31m\x1b[32mx", "ansi-fg-2", ""),  # the last colour wins
    ("\x1b[1m\x1b[0;4mx", "ansi-underline", ""),
]


@pytest.mark.parametrize(("text", "classes", "style"), STYLES)
def test_styles(text: str, classes: str, style: str) -> None:
    attrs = (f' class="{classes}"' if classes else "") + (f' style="{style}"' if style else "")
    assert to_html(text) == (f"<span{attrs}>x</span>" if attrs else "x")
    assert plain(text) == "x"
    assert set(classes.split()) <= set(CSS_CLASSES)


RESETS = [
    ("\x1b[31mA\x1b[0mB", f"{RED}A</span>B"),
    ("\x1b[31mA\x1b[mB", f"{RED}A</span>B"),
    ("\x1b[31mA\x1b[00mB", f"{RED}A</span>B"),
    ("\x1b[31mA\x1b[;mB", f"{RED}A</span>B"),
    ("\x1b[1;2mA\x1b[22mB", '<span class="ansi-bold ansi-dim">A</span>B'),
    ("\x1b[3mA\x1b[23mB", '<span class="ansi-italic">A</span>B'),
    ("\x1b[4mA\x1b[24mB", '<span class="ansi-underline">A</span>B'),
    ("\x1b[4mA\x1b[4:0mB", '<span class="ansi-underline">A</span>B'),
    ("\x1b[7mA\x1b[27mB", '<span class="ansi-inverse-fg ansi-inverse-bg">A</span>B'),
    ("\x1b[9mA\x1b[29mB", '<span class="ansi-strike">A</span>B'),
    ("\x1b[31;1mA\x1b[39mB", f'<span class="ansi-fg-1 ansi-bold">A</span>{BOLD}B</span>'),
    ("\x1b[44mA\x1b[49mB", '<span class="ansi-bg-4">A</span>B'),
    ("\x1b[38;5;100mA\x1b[39mB", '<span style="color:#878700">A</span>B'),
    ("\x1b[31mA\x1b[0mB\x1b[31mC", f"{RED}A</span>B{RED}C</span>"),
    ("\x1b[31mA\x1b[31mB", f"{RED}AB</span>"),  # one span for one style
    ("\x1b[31mA\x1b[KB", f"{RED}AB</span>"),  # ESC[K at the end of the line erases nothing
    ("\x1b[31mAB\x1b[1K", "  "),  # ESC[1K erases to the start of the line
    ("\x1b[0m\x1b[m", ""),
]


@pytest.mark.parametrize(("text", "markup"), RESETS)
def test_resets(text: str, markup: str) -> None:
    assert to_html(text) == Markup(markup)


ESCAPING = [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("a & b \"c\" 'd'", "a &amp; b &#34;c&#34; &#39;d&#39;"),
    ("&amp; &lt;", "&amp;amp; &amp;lt;"),
    ("\x1b[31m<script>\x1b[0m", f"{RED}&lt;script&gt;</span>"),
    ("\x1b[31m\"'&<>\x1b[0m", f"{RED}&#34;&#39;&amp;&lt;&gt;</span>"),
    ('\x1b[31m" onmouseover="x', f"{RED}&#34; onmouseover=&#34;x</span>"),
    ("\x1b]8;;javascript:alert(1)\x1b\\<b>\x1b]8;;\x1b\\", "&lt;b&gt;"),
    ("a\tb", "a\tb"),
]


@pytest.mark.parametrize(("text", "markup"), ESCAPING)
def test_everything_is_escaped(text: str, markup: str) -> None:
    assert to_html(text) == Markup(markup)


DROPPED = [  # (text, plain): what is not colour goes, text stays
    ("a\x1b[2J\x1b[Hb", "ab"),  # clear, cursor home
    ("a\x1b[5Ab\x1b[3Cc\x1b[s\x1b[u", "abc"),  # cursor up, forward, save, restore
    ("\x1b]0;owned\x07title", "title"),  # OSC title, BEL
    ("\x1b]2;owned\x1b\\title", "title"),  # OSC title, ST
    ("\x1b]0;owned\x9ctitle", "title"),  # OSC title, 8-bit ST
    ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ here", "click here"),  # OSC 8
    ("\x1b]8;id=1;https://e.example\x07link\x1b]8;;\x07", "link"),
    ("\x1bPdcs\x1b\\after", "after"),  # DCS, SOS, PM, APC
    ("\x1bXsos\x1b\\a\x1b^pm\x1b\\b\x1b_apc\x1b\\c", "abc"),
    ("\x1b(B\x1b[mok", "ok"),  # tput sgr0: charset G0 to ASCII
    ("\x1b7a\x1b8b\x1b=c\x1b>", "abc"),  # save/restore cursor, keypad modes
    ("\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"),
    ("\x1b[?1049h\x1b[>4;1m\x1b[<u", ""),  # private modes and a private `m`
    ("bell\x07 nul\x00 del\x7f esc", "bell nul del esc"),
    ("c1\x9b2Jcsi \x85nel \x9dosc", "c12Jcsi nel osc"),  # C1 controls go alone
    ("vt\x0bff\x0cso\x0e", "vtffso"),
    ("keep\ttabs é 漢字 ✓", "keep\ttabs é 漢字 ✓"),
]


@pytest.mark.parametrize(("text", "shown"), DROPPED)
def test_other_controls_are_dropped(text: str, shown: str) -> None:
    assert plain(text) == shown
    assert to_html(text) == escape(shown)


MALFORMED = [  # never raises, never lets ESC through
    ("\x1b[38;5mx", "x"),
    ("\x1b[38;5;mx", "x"),
    ("\x1b[38;5;256mx", "x"),
    ("\x1b[38;5;1234567mx", "x"),
    ("\x1b[38;2;1;2mx", "x"),
    ("\x1b[38;2;1;2;300mx", "x"),
    ("\x1b[38;2;;;mx", "x"),
    ("\x1b[38mx", "x"),
    ("\x1b[38;9;1mx", "x"),
    ("\x1b[48;5mx", "x"),
    ("\x1b[38:5mx", "x"),
    ("\x1b[38:2:1:2mx", "x"),
    ("\x1b[999mx", "x"),
    ("\x1b[" + "9" * 5000 + "mx", "x"),  # past int()'s digit limit
    ("\x1b[" + "1;" * 5000 + "1mx", '<span class="ansi-bold">x</span>'),
    ("\x1b[" + "1;" * 5000 + "mx", "x"),  # the last, empty, parameter is 0
    ("\x1b[" + "9" * 5000 + "Gx", "x"),
    ("\x1b[31;mx", "x"),  # an empty parameter is 0
    ("\x1b[1:::::mx", '<span class="ansi-bold">x</span>'),
    ("x\x1b", "x"),  # a lone ESC at the end
    ("x\x1b[", "x"),
    ("x\x1b[38;5", "x"),  # cut short
    ("x\x1b[38;2;255", "x"),
    ("x\x1b]8;;https://e.example", "x"),
    ("x\x1bP", "x"),
    ("\x1b\x1b[31mx", f"{RED}x</span>"),
    ("\x1b[\x1b[31mx", f"{RED}x</span>"),
    ("\x1b[31\x1b[32mx", '<span class="ansi-fg-2">x</span>'),
    ("\x1b[38;5;1\x1b[mx", "x"),
    ("\x1b[31 mx", "x"),  # an intermediate byte: not SGR
]


@pytest.mark.parametrize(("text", "markup"), MALFORMED)
def test_malformed_sequences(text: str, markup: str) -> None:
    assert to_html(text) == Markup(markup)
    assert plain(text) == "x"


def test_a_sequence_cut_short_drops_no_later_text() -> None:
    assert plain("\x1b[31hello") == "ello"  # as a terminal: ESC [ 3 1 h sets a mode
    assert plain("\x1b[31é") == "é"
    assert plain("\x1b]0;title\nnext line") == "next line"


CARRIAGE_RETURNS = [  # (text, collapse_cr, plain)
    ("10%\r50%\r100%", "100%", "100%"),
    ("abcdef\rXY", "XYcdef", "XYcdef"),
    ("done\r", "done", "done"),
    ("done\r\n", "done\n", "done"),
    ("\rdone", "done", "done"),
    ("a\r\r\rb", "b", "b"),
    ("long line\rshort\r", "shortline", "shortline"),
    ("one\r\ntwo\r", "one\ntwo", "one two"),
    ("l1\nl2 old\rl2", "l1\nl2 old", "l1 l2 old"),
    (" 10%|#         | 10/100\r100%|##########| 100/100", "100%|##########| 100/100", None),
    ("Downloading 120 files\r\x1b[Kdone", "done", "done"),  # CR, erase to the end
    ("Downloading 120 files\r\x1b[2Kdone", "done", "done"),  # erase the whole line
    ("Downloading\x1b[2K\rdone", "done", "done"),
    ("abcdef\r\x1b[0Kxy", "xy", "xy"),
    ("abcdef\r\x1b[3G\x1b[1KXY", "  XYef", "  XYef"),  # column 3, erase to its start
    ("50%\x1b[1G75%\x1b[G100%", "100%", "100%"),  # cursor to column 1
    ("ab\x1b[5Gc", "ab  c", "ab  c"),  # past the end: blanks
    ("|\b/\b-\b\\", "\\", "\\"),  # a spinner
    ("ab\b\b\bc", "cb", "cb"),
    ("\x1b[31mabcdef\r\x1b[32mXY", "\x1b[0;32mXY\x1b[0;31mcdef\x1b[0m", "XYcdef"),
    ("\x1b[1m 50%\x1b[0m\r\x1b[1m100%\x1b[0m", "\x1b[0;1m100%\x1b[0m", "100%"),
    ("\x1b[31mred\x1b[0m\rpl", "pl\x1b[0;31md\x1b[0m", "pld"),
    ("\x1b[38;5;208;48;2;1;2;3;7;9mx\r", "\x1b[0;7;9;38;5;208;48;2;1;2;3mx\x1b[0m", "x"),
    ("\x1b[93;104mx\r", "\x1b[0;93;104mx\x1b[0m", "x"),
    ("\x1b]0;title\x07a\rb", "b", "b"),
]


@pytest.mark.parametrize(("text", "collapsed", "shown"), CARRIAGE_RETURNS)
def test_carriage_returns(text: str, collapsed: str, shown: str | None) -> None:
    assert collapse_cr(text) == collapsed
    assert plain(text) == (collapsed if shown is None else shown)
    assert to_html(collapsed) == to_html(text)


def test_carriage_returns_in_html() -> None:
    assert to_html("\x1b[31m10%\r\x1b[32m100%\x1b[0m") == Markup(
        '<span class="ansi-fg-2">100%</span>'
    )
    assert to_html("\x1b[31mabcdef\r\x1b[32mXY") == Markup(
        f'<span class="ansi-fg-2">XY</span>{RED}cdef</span>'
    )
    assert to_html("<b>\r&") == Markup("&amp;b&gt;")
    assert to_html("done\r\n") == Markup("done")
    assert to_html("one\ntwo") == Markup("one\ntwo")


def test_collapse_cr_leaves_a_line_without_moves_as_it_is() -> None:
    for text in ("plain", "\x1b[31mred\x1b[0m", "\x1b]0;t\x07x", "a\nb", "\x1b[01m\x1b[Kbold"):
        assert collapse_cr(text) is text


def test_fast_paths_return_the_line_itself() -> None:
    line = "2026-11-29T10:00:00Z collecting tests/unit/test_builds.py ... PASSED [ 10%]"
    assert plain(line) is line
    assert plain(tabbed := "a\tb") is tabbed
    assert to_html(line) == Markup(line)
    assert to_html("") == Markup("")
    assert plain("") == ""


def test_lines_of_a_body_holding_newlines() -> None:
    assert plain("first\n\x1b[31msecond\x1b[0m\n\nthird\n") == "first second third"
    assert to_html("\x1b[31mred\nstill red") == Markup(f"{RED}red</span>\n{RED}still red</span>")


def test_css_classes() -> None:
    assert len(CSS_CLASSES) == len(set(CSS_CLASSES)) == 39
    assert all(re.fullmatch(r"ansi-[a-z0-9-]+", name) for name in CSS_CLASSES)


def test_terminal_safe_behaves_as_before() -> None:
    assert terminal_safe("\x1b[38;5;200mx\x1b[0m") == "\x1b[38;5;200mx\x1b[0m"
    assert terminal_safe("10%\r100%") == "10%100%"  # carriage returns go, not collapsed
    assert terminal_safe("x\x1b[38;5") == "x38;5"
    assert terminal_safe("\x1b[?25l\x1b[31mr") == "\x1b[31mr"
    assert terminal_safe(line := "plain line") is line


# Fragments that make up escape sequences, good and broken, and text around them.
FRAGMENTS = st.sampled_from(
    ["\x1b", "\x1b[", "\x1b]", "\x1b\\", "\x1bP", "\x1b(", "[", "]", ";", ":", "m", "K", "G"]
    + ["0", "1", "2", "5", "7", "38;5;", "48;2;", "38:2::", "255", "999", "\x07", "\x9b"]
    + ["\x9c", "\r", "\n", "\r\n", "\b", "\t", "\x00", "<", ">", "&", '"', "'", "é", "漢"]
)
TEXTS = st.lists(FRAGMENTS | st.text(max_size=4), max_size=30).map("".join) | st.text()
SPAN = re.compile(r'<span(?: class="([a-z0-9 -]+)")?(?: style="([a-z:#0-9;-]+)")?>([^<]*)</span>')


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(text=TEXTS)
def test_any_text_renders_safely(text: str) -> None:
    markup = to_html(text)
    assert "\x1b" not in markup
    spans = list(SPAN.finditer(markup))
    outside = SPAN.sub("", markup)
    assert "<" not in outside and ">" not in outside  # the only tags are our spans
    for span in spans:
        assert span.group(1) or span.group(2)
        assert set((span.group(1) or "").split()) <= set(CSS_CLASSES)
        assert all(
            re.fullmatch(r"(color|background-color):#[0-9a-f]{6}", css)
            for css in filter(None, (span.group(2) or "").split(";"))
        )
        assert not re.search(r"[<>\"']", span.group(3))
    shown = plain(text)
    assert not any(unicodedata.category(c) == "Cc" and c != "\t" for c in shown)
    # the HTML's text is the plain text (whose lines are joined with a space)
    lines = html.unescape(SPAN.sub(lambda m: m.group(3), markup)).split("\n")
    assert shown == " ".join(filter(None, lines))
    # collapsing first changes nothing
    assert to_html(collapse_cr(text)) == markup
    assert plain(collapse_cr(text)) == shown
    # and the download keeps colours only
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", terminal_safe(text))
