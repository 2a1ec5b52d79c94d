"""Why a step failed, in one line: `summary(lines)` reads the last lines of a failed
step's output and returns its banner line and the index of the line its log opens at.
Pure, stdlib only, linear. The first rule of RULES whose tool is recognised (`detect`)
and that finds a useful line decides. The banner, per tool, is what a developer in a hurry
wants:

- pytest: the first `FAILED test::name - message` (or `ERROR ...`) line, else the first
  `E   SomeError: ...` (collection errors); the log opens at `FAILURES`/`ERRORS`.
- unittest: the first `FAIL: test_x (mod.Class.test_x)`/`ERROR: ...` header (for a module
  that failed to import, its exception).
- python: a traceback's final `SomeError: message`, opened at its `Traceback` line.
- cargo: the first `error[E0308]: ...`, else `thread '...' panicked at src/x.rs:1:2:`.
- ruff: the first diagnostic (`x.py:1:8: F401 ...`, or in the full format `F401 ...` with
  its `-->` below), never `Found N errors.`; mypy, gcc: the first `file:line: error:`
  (the linker's `undefined reference`, never `collect2: error: ld returned 1 ...`).
- npm: the test runner's failure (jest `●`, node `✖`/`not ok`, mocha `1) ...`), else
  node's `SomeError: ...`, else the first `npm error` that is not boilerplate.
- generic: the last line saying error/fail/fatal/exception/traceback, else the last
  non-blank line, never boilerplate such as `make: *** [...] Error 1` if avoidable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    index: int  # lines[index] is where the error begins: the log opens scrolled there
    line: str  # the banner: the single most useful line, escapes removed, stripped
    tool: str  # the rule that matched ("pytest", "cargo", ..., "generic")


@dataclass(frozen=True)
class Rule:
    """`useful` patterns are tried in order, each taking its first line (its last with
    `last`) that is not `boilerplate`. The index is the first `start` line (with `last`:
    the last one up to the useful line), or the useful line when that comes first."""

    tool: str
    detect: re.Pattern[str] | None  # None: always
    start: re.Pattern[str] | None
    useful: tuple[re.Pattern[str], ...]
    boilerplate: re.Pattern[str]
    last: bool = False


def _any(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


# Lines no rule ever shows: a wrapper's "it failed", which says nothing of why.
_COMMON = (
    r"^g?make(?:\[\d+\])?: \*\*\* .*Error \d+",
    r"^npm (?:ERR!|error) A complete log of this run can be found in",
    r"(?i:exited with (?:code|status)|exit (?:code|status):? \d+$|completed with exit code)",
)
_PY_EXC = (  # ValueError: ..., pkg.errors.ConfigError: ..., Exception: ..., KeyboardInterrupt
    r"(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exit|Interrupt|Failure|Warning)|\w*Exception)(?::|$)"
)
_COMPILE_ERROR = r"^[^\s:][^:]*:\d+(?::\d+)?: (?:fatal )?error: "
_JS_FAIL = r"^\s*● \S|^\s*not ok \d+ - |^✖ (?!failing tests:)|^\s+\d+\) \S"
_JS_EXC = r"^\s*[A-Z]?\w*Error(?: \[\w+\])?: \S"
_PANIC = r"^thread '[^']*'(?: \(\d+\))? panicked at "
_LD = r"^(?:\S*/)?(?:\w+-)*ld(?:\.\w+)?: "  # /usr/bin/ld: x86_64-linux-gnu-ld: ld.lld:


def _rule(
    tool: str,
    detect: str | None,
    start: str | None,
    useful: tuple[str, ...],
    boilerplate: tuple[str, ...] = (),
    last: bool = False,
) -> Rule:
    return Rule(
        tool,
        _any(detect) if detect else None,
        _any(start) if start else None,
        tuple(_any(u) for u in useful),
        _any(*_COMMON, *boilerplate),
        last,
    )


RULES = (
    _rule(
        "pytest",
        detect=r"^=+ (?:test session starts|FAILURES|ERRORS|short test summary info) =+$"
        r"|^(?:FAILED|ERROR) \S+::|^(?:=+ )?\d+ \w+(?:, \d+ \w+)* in [\d.]+s\b",
        start=r"^=+ (?:FAILURES|ERRORS|short test summary info) =+$|^_{3,} .+ _{3,}$"
        r"|^E {3}|^(?:FAILED|ERROR) \S",
        useful=(
            r"^(?:FAILED|ERROR) \S+ - \S",
            rf"^E +{_PY_EXC}",
            r"^(?:FAILED|ERROR) \S",
            r"^(?:=+ )?(?=.*\b\d+ (?:failed|errors?)\b)\d+ \w+(?:, \d+ \w+)* in [\d.]+s\b",
            r"^!+ .+ !+$",
        ),
    ),
    _rule(
        "unittest",
        detect=r"^(?:FAIL|ERROR): \S+ \(|^FAILED \((?:failures|errors)=|^Ran \d+ tests? in ",
        start=r"^(?:FAIL|ERROR): \S+ \(",
        useful=(
            r"^(?:FAIL|ERROR): \S+ \((?!unittest\.loader\._Failed)",
            rf"^{_PY_EXC}",
            r"^(?:FAIL|ERROR): ",
            r"^FAILED \(",
        ),
        boilerplate=(r"^ImportError: Failed to import test module:",),
    ),
    _rule(
        "python",
        detect=r"^Traceback \(most recent call last\):$",
        start=r"^Traceback \(most recent call last\):$",
        useful=(rf"^{_PY_EXC}", r"^[A-Za-z_][\w.]*: \S"),
        last=True,
    ),
    _rule(
        "cargo",
        detect=r"^error\[E\d+\]: |^error: could not compile |^test result: FAILED"
        rf"|^---- \S+ stdout ----$|{_PANIC}|^\s+Compiling \S+ v\d",
        start=rf"^error(?:\[E\d+\])?: |^---- \S+ stdout ----$|{_PANIC}",
        useful=(
            r"^error(?:\[E\d+\])?: ",
            _PANIC,
            r"^test \S+ \.\.\. FAILED$",
            r"^test result: FAILED",
        ),
        boilerplate=(
            r"^error: (?:could not compile|aborting due to|test failed, to rerun"
            r"|process didn't exit successfully|\d+ targets? failed)",
        ),
    ),
    _rule(
        "ruff",
        detect=r"^Found \d+ errors?\.$|^[^\s:][^:]*:\d+:\d+: [A-Z]+\d+ "
        r"|^\d+ files? would be reformatted|^Would reformat: ",
        start=None,  # the diagnostic itself
        useful=(
            r"^[^\s:][^:]*:\d+:\d+: \S",  # concise: x.py:1:8: F401 ...
            r"^(?:[A-Z]+\d+(?: \[\*\])?|[a-z]+(?:-[a-z]+)*:) \S",  # full: F401 ..., its --> below
            r"^Would reformat: ",
            r"^Found \d+ errors?\.|^\d+ files? would be reformatted",
        ),
        boilerplate=(r"^(?:help|note|info|hint|warning):",),
    ),
    _rule(
        "mypy",
        detect=r"^Found \d+ errors? in \d+ files? \(checked \d+ source files?\)$",
        start=None,
        useful=(_COMPILE_ERROR,),
    ),
    _rule(
        "gcc",
        detect=rf"{_COMPILE_ERROR}|: undefined reference to |^collect2: error: |{_LD}",
        start=rf"{_COMPILE_ERROR}|{_LD}|: undefined reference to ",
        useful=(
            _COMPILE_ERROR,
            r": undefined reference to |: multiple definition of |cannot find -l",
            _LD,
        ),
        boilerplate=(r"^collect2: error: ld returned|linker command failed with exit code",),
    ),
    _rule(
        "npm",
        detect=r"^npm (?:ERR!|error) |^> \S+@\S+ \S|^Node\.js v\d|^Tests: +\d+ failed"
        r"|^# fail [1-9]|^ℹ fail [1-9]|^\s+\d+ failing$",
        start=rf"^\s*FAIL +\S|{_JS_FAIL}|{_JS_EXC}|^npm (?:ERR!|error) ",
        useful=(_JS_FAIL, _JS_EXC, r"^npm (?:ERR!|error) +\S"),
        boilerplate=(
            r"^npm (?:ERR!|error) +(?:code \w+$|errno |path |command |syscall |signal "
            r"|workspace |location |Exit status|A complete log|/\S+\.log$|Failed at the "
            r"|This is probably not a problem with npm|Test failed\.  See above)",
        ),
    ),
    _rule(
        "generic",
        detect=None,
        start=None,
        useful=(r"(?i:error|fail|fatal|exception|traceback)", r"\S"),
        boilerplate=(
            r"^tar: Exiting with failure status due to previous errors",
            r"^collect2: error: ld returned|^ERROR: Job failed",
        ),
        last=True,
    ),
)

# Escape sequences (CSI, OSC, other ESC pairs) and control characters but tab and CR.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)
_NEEDS_CLEANING = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(line: str) -> str:
    """The line as a terminal last showed it: escapes gone, only what follows the last
    carriage return that has text after it (a progress bar's redraws), right-stripped."""
    if _NEEDS_CLEANING.search(line):
        shown = [part for part in _ESCAPE.sub("", line).split("\r") if part.strip()]
        line = shown[-1] if shown else ""
    return line.rstrip()


def _apply(rule: Rule, text: list[str]) -> Finding | None:
    order = range(len(text) - 1, -1, -1) if rule.last else range(len(text))
    for pattern in rule.useful:
        at = next(
            (i for i in order if pattern.search(text[i]) and not rule.boilerplate.search(text[i])),
            None,
        )
        if at is not None:
            break
    else:
        return None
    index = at
    if rule.start is not None:
        before = range(at, -1, -1) if rule.last else range(at + 1)
        index = next((i for i in before if rule.start.search(text[i])), at)
    return Finding(index, text[at].strip(), rule.tool)


def summary(lines: list[str]) -> Finding | None:
    """The banner line of a failed step's output `lines` and where its log opens (see
    the module's docstring); None when there is no text at all (empty or blank lines)."""
    text = [_clean(line) for line in lines]
    last = next((i for i in range(len(text) - 1, -1, -1) if text[i]), None)
    if last is None:
        return None
    for rule in RULES:
        if rule.detect is None or any(map(rule.detect.search, text)):
            found = _apply(rule, text)
            if found is not None:
                return found
    return Finding(last, text[last].strip(), "generic")
