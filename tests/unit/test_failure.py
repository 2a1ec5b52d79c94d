"""bass.ui.failure on real failed steps: the banner line and the line the log opens at,
for the saved samples (tests/unit/data/failures, README there) and for pytest, unittest
and python run here and now, so the rules are checked against the installed versions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bass.ui.failure import RULES, Finding, summary

DATA = Path(__file__).parent / "data" / "failures"

FAILURES = "=================================== FAILURES ==================================="
ERRORS = "==================================== ERRORS ===================================="
TRACEBACK = "Traceback (most recent call last):"

# sample → (rule, the banner line, the line the log opens at)
EXPECTED = {
    "pytest-assert.txt": (
        "pytest",
        "FAILED test_calc.py::test_add_negative - assert -2 == -3",
        FAILURES,
    ),
    "pytest-verbose.txt": (
        "pytest",
        "FAILED test_calc.py::test_add_negative - assert -2 == -3",
        FAILURES,
    ),
    "pytest-q.txt": (
        "pytest",
        "FAILED test_calc.py::test_add_negative - assert -2 == -3",
        FAILURES,
    ),
    "pytest-collection-error.txt": (
        "pytest",
        "E   ModuleNotFoundError: No module named 'missing_helpers'",
        ERRORS,
    ),
    "pytest-setup-error.txt": (
        "pytest",
        "FAILED test_setup.py::test_ratio - ZeroDivisionError: division by zero",
        ERRORS,
    ),
    "unittest-fail.txt": (
        "unittest",
        "ERROR: test_suffix (test_parser.ParseVersionTest.test_suffix)",
        "ERROR: test_suffix (test_parser.ParseVersionTest.test_suffix)",
    ),
    "unittest-verbose.txt": (
        "unittest",
        "ERROR: test_suffix (test_parser.ParseVersionTest.test_suffix)",
        "ERROR: test_suffix (test_parser.ParseVersionTest.test_suffix)",
    ),
    "unittest-import-error.txt": (
        "unittest",
        "ModuleNotFoundError: No module named 'yaml_loader'",
        "ERROR: test_config (unittest.loader._FailedTest.test_config)",
    ),
    "python-traceback.txt": (
        "python",
        "ValueError: could not convert string to float: 'n/a'",
        TRACEBACK,
    ),
    "python-traceback-chained.txt": (
        "python",
        "RuntimeError: cannot migrate without settings.json",
        TRACEBACK,
    ),
    "ruff-full.txt": (
        "ruff",
        "F401 [*] `os` imported but unused",
        "F401 [*] `os` imported but unused",
    ),
    "ruff-concise.txt": (
        "ruff",
        "report.py:1:8: F401 [*] `os` imported but unused",
        "report.py:1:8: F401 [*] `os` imported but unused",
    ),
    "ruff-format.txt": (
        "ruff",
        "unformatted: File would be reformatted",
        "unformatted: File would be reformatted",
    ),
    "mypy.txt": (
        "mypy",
        'inventory.py:7: error: Incompatible return value type (got "int", expected "str")'
        "  [return-value]",
        'inventory.py:7: error: Incompatible return value type (got "int", expected "str")'
        "  [return-value]",
    ),
    "gcc-make.txt": (
        "gcc",
        "main.c:7:5: error: expected ‘,’ or ‘;’ before ‘printf’",
        "main.c:7:5: error: expected ‘,’ or ‘;’ before ‘printf’",
    ),
    "gcc-link.txt": (
        "gcc",
        "main.c:(.text+0xa): undefined reference to `square'",
        "/usr/bin/ld: main.o: in function `main':",
    ),
    "cargo-build.txt": (
        "cargo",
        "error[E0308]: mismatched types",
        "error[E0308]: mismatched types",
    ),
    "cargo-test.txt": (
        "cargo",
        "thread 'tests::strips_punctuation' (17226) panicked at src/lib.rs:16:9:",
        "---- tests::strips_punctuation stdout ----",
    ),
    "npm-node-test.txt": (
        "npm",
        "not ok 2 - formats thousands with a separator",
        "not ok 2 - formats thousands with a separator",
    ),
    "npm-node-test-spec.txt": (
        "npm",
        "✖ formats thousands with a separator (1.246683ms)",
        "✖ formats thousands with a separator (1.246683ms)",
    ),
    "npm-node-assert.txt": (
        "npm",
        "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:",
        "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:",
    ),
    "npm-postinstall.txt": (
        "npm",
        "Error: ENOENT: no such file or directory, open 'assets/logo.svg'",
        "Error: ENOENT: no such file or directory, open 'assets/logo.svg'",
    ),
    "npm-missing-script.txt": (
        "npm",
        'npm error Missing script: "lint"',
        'npm error Missing script: "lint"',
    ),
    "npm-ci.txt": (
        "npm",
        "npm error The `npm ci` command can only install with an existing package-lock.json or",
        "npm error code EUSAGE",
    ),
    "npm-jest.txt": ("npm", "● sum › adds negative numbers", " FAIL  src/sum.test.js"),
    "npm-eresolve.txt": (
        "npm",
        "npm ERR! ERESOLVE unable to resolve dependency tree",
        "npm ERR! code ERESOLVE",
    ),
    "generic-git.txt": (
        "generic",
        "fatal: repository '/nonexistent/repo.git' does not exist",
        "fatal: repository '/nonexistent/repo.git' does not exist",
    ),
    "generic-make.txt": (
        "generic",
        "cp: cannot stat 'build/app.tar.gz': No such file or directory",
        "cp: cannot stat 'build/app.tar.gz': No such file or directory",
    ),
    "generic-shell.txt": (
        "generic",
        "tar: missing-dir: Cannot stat: No such file or directory",
        "tar: missing-dir: Cannot stat: No such file or directory",
    ),
}

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A passing test's line: never the banner, never where the log opens.
PASSING = re.compile(r"PASSED|\.\.\. ok$|^ok \d|^✔|✓|^\s*PASS\b")
# A summary or a wrapper's epilogue: never the banner.
BOILERPLATE = re.compile(
    r"^Ran \d+ tests|^Found \d+ errors?\.|^make: \*\*\*|^collect2:|^error: could not compile"
    r"|^npm (?:ERR!|error) (?:code|A complete log)|^test result:"
)


def sample(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def banner_index(lines: list[str], found: Finding) -> int:
    """Where the banner line is (the first line that reads as it)."""
    return next(i for i, line in enumerate(lines) if ANSI.sub("", line).strip() == found.line)


def test_every_sample_has_its_expectation():
    assert sorted(p.name for p in DATA.glob("*.txt")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str):
    lines = sample(name)
    found = summary(lines)
    assert found is not None
    assert (found.tool, found.line, lines[found.index]) == EXPECTED[name]
    assert not PASSING.search(found.line) and not PASSING.search(lines[found.index])
    assert not BOILERPLATE.search(found.line)
    assert found.index <= banner_index(lines, found)  # the log opens at or above the banner


def test_the_rules_table():
    tools = [rule.tool for rule in RULES]
    assert len(set(tools)) == len(tools)
    assert {"pytest", "unittest", "python", "ruff", "npm", "cargo", "gcc"} <= set(tools)
    assert tools[-1] == "generic" and RULES[-1].detect is None


def test_a_chained_traceback_opens_at_its_last_traceback():
    lines = sample("python-traceback-chained.txt")
    found = summary(lines)
    assert found is not None
    assert [i for i, line in enumerate(lines) if line == TRACEBACK] == [1, found.index]


def test_the_tail_of_pytest_without_its_failures_header():
    """The caller passes the last lines only: the log opens at the first failure left."""
    lines = sample("pytest-assert.txt")
    tail = lines[lines.index(FAILURES) + 5 :]
    found = summary(tail)
    assert found == Finding(0, "FAILED test_calc.py::test_add_negative - assert -2 == -3", "pytest")
    assert tail[0].startswith("E ")
    only_summary = lines[-4:]
    found = summary(only_summary)
    assert found is not None and only_summary[found.index].startswith("=") and found.index == 0


def test_a_pytest_run_under_make_still_reads_as_pytest():
    lines = [*sample("pytest-setup-error.txt"), "make: *** [Makefile:7: test] Error 1"]
    found = summary(lines)
    assert found is not None and found.tool == "pytest"
    assert found.line.startswith("FAILED test_setup.py::test_ratio")


def test_pytest_passing_lines_are_never_chosen():
    lines = [f"tests/test_a.py::test_ok_{i} PASSED{' ' * 30}[ {i}%]" for i in range(50)]
    lines += ["tests/test_a.py::test_bad FAILED                    [ 99%]", "", "=" * 20]
    lines += [
        "FAILED tests/test_a.py::test_bad - assert 1 == 2",
        "=== 1 failed, 50 passed in 0.1s ===",
    ]
    found = summary(lines)
    assert found == Finding(53, "FAILED tests/test_a.py::test_bad - assert 1 == 2", "pytest")


def test_escapes_and_carriage_returns_left_in_the_text():
    lines = [
        "\x1b[1mcollecting ...\x1b[0m\r\x1b[K\x1b[1mcollected 2 items\x1b[0m",
        "\x1b[31m=== FAILURES ===\x1b[0m",
        "\x1b[31mE       assert 1 == 2\x1b[0m",
        "\x1b[31mFAILED\x1b[0m t.py::test_x - assert 1 == 2\r",
        "\x1b]0;title\x07\x1b[31m=== 1 failed in 0.01s ===\x1b[0m",
    ]
    assert summary(lines) == Finding(1, "FAILED t.py::test_x - assert 1 == 2", "pytest")
    assert summary(["50%\r75%\rbuild \x1b[1;31merror\x1b[m: disk full\r"]) == Finding(
        0, "build error: disk full", "generic"
    )


def test_generic_fallbacks():
    assert summary([]) is None
    assert summary(["", "   ", "\x1b[0m"]) is None
    assert summary(["step one", "step two", ""]) == Finding(1, "step two", "generic")
    boilerplate = ["", "make: *** [Makefile:3: all] Error 1"]
    assert summary(boilerplate) == Finding(1, "make: *** [Makefile:3: all] Error 1", "generic")
    lines = ["Error: build failed", "Uploading logs", "Error: Process completed with exit code 1."]
    assert summary(lines) == Finding(0, "Error: build failed", "generic")


@pytest.mark.parametrize("name", ["pytest-verbose.txt", "cargo-test.txt", "generic-make.txt"])
def test_long_input(name: str):
    """100,000 lines are read in a pass per pattern (no timing asserted), and still right."""
    noise = [f"tests/test_many.py::test_case_{i} PASSED" for i in range(100_000)]
    found = summary(noise + sample(name))
    expected = summary(sample(name))
    assert found is not None and expected is not None
    assert found == Finding(expected.index + len(noise), expected.line, expected.tool)


def test_long_input_of_no_known_tool():
    lines = [f"copying file {i}" for i in range(100_000)]
    assert summary(lines) == Finding(99_999, "copying file 99999", "generic")


def run(
    tmp_path: Path, *argv: str, env: dict[str, str] | None = None, ok: bool = False
) -> list[str]:
    """The output of `python ARGV` run in tmp_path, which must fail (or pass with `ok`)."""
    colours = ("PY_COLORS", "FORCE_COLOR", "NO_COLOR")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", *colours))}
    clean["COLUMNS"] = "80"  # pytest's width: its summary lines keep their messages
    clean["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # starts faster; the output is pytest's own
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=tmp_path,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return (done.stdout + done.stderr).splitlines()


WIDGET_TESTS = """\
def test_widget_count():
    assert 2 + 2 == 4


def test_widget_rounding():
    assert round(2.675, 2) == 2.68


def test_widget_name():
    assert "widget".upper() == "WIDGET"
"""


@pytest.mark.parametrize(
    "options",
    [[], ["-v", "-rA"], ["-q"], ["--color=yes"], ["--tb=native"], ["--tb=line"]],
    ids=lambda options: " ".join(options) or "default",
)
def test_real_pytest(tmp_path: Path, options: list[str]):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # rootdir here, no outer config
    (tmp_path / "test_widgets.py").write_text(WIDGET_TESTS)
    lines = run(tmp_path, "-m", "pytest", "-p", "no:cacheprovider", *options, "test_widgets.py")
    found = summary(lines)
    assert found is not None and found.tool == "pytest", lines
    assert found.line.startswith("FAILED test_widgets.py::test_widget_rounding - "), lines
    assert found.index <= banner_index(lines, found)
    assert not PASSING.search(found.line) and not PASSING.search(lines[found.index])


def test_a_passing_pytest_run_is_not_the_failure(tmp_path: Path):
    """pytest passed, then something else failed: the banner is not pytest's summary."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_widgets.py").write_text(WIDGET_TESTS.replace("2.68", "2.67"))
    lines = run(tmp_path, "-m", "pytest", "-p", "no:cacheprovider", "test_widgets.py", ok=True)
    coverage = "FAIL Required test coverage of 90% not reached. Total coverage: 85.00%"
    lines.append(coverage)
    assert summary(lines) == Finding(len(lines) - 1, coverage, "generic")


UNITTEST_TESTS = """\
import unittest


class WidgetTest(unittest.TestCase):
    def test_widget_count(self):
        self.assertEqual(2 + 2, 4)

    def test_widget_rounding(self):
        self.assertEqual(round(2.675, 2), 2.68)
"""


@pytest.mark.parametrize(
    ("options", "env"), [([], {}), (["-v"], {"FORCE_COLOR": "1"})], ids=["plain", "verbose"]
)
def test_real_unittest(tmp_path: Path, options: list[str], env: dict[str, str]):
    (tmp_path / "test_widgets.py").write_text(UNITTEST_TESTS)
    lines = run(tmp_path, "-m", "unittest", *options, env=env)
    found = summary(lines)
    assert found is not None and found.tool == "unittest", lines
    assert found.line.startswith("FAIL: test_widget_rounding ("), lines
    assert ANSI.sub("", lines[found.index]).strip() == found.line


def test_real_python_traceback(tmp_path: Path):
    (tmp_path / "load.py").write_text("import json\n\nprint('loading')\njson.loads('{')\n")
    lines = run(tmp_path, "load.py")
    found = summary(lines)
    assert found is not None and found.tool == "python", lines
    assert found.line.startswith("json.decoder.JSONDecodeError: Expecting property name")
    assert lines[found.index] == TRACEBACK
