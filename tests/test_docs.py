"""README.md documents every command-line flag with the default `--help` has, and every
variable a build gets."""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import pytest

from bass import cli, ops_cli, users_cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SUBCOMMANDS = ("serve", "worker", "run", "demo", "watch", "user", "backup", "restore", "db check")
# commands documented together, under the first one's heading
SECTIONS = {"restore": "backup", "db check": "backup"}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for add in (
        cli._serve_parser,
        cli._worker_parser,
        cli._run_parser,
        cli._demo_parser,
        cli._watch_parser,
        users_cli.add_parser,
    ):
        add(sub)
    commands = ops_cli.add_parsers(sub)  # `db check` is a parser below `db`
    return {**sub.choices, **commands}


def _table_rows(command: str) -> dict[str, str]:
    """The flag table of README's `### \\`bass COMMAND\\`` section: flag → default cell."""
    heading = f"### `bass {SECTIONS.get(command, command)}`"
    assert heading in README, f"README has no section {heading}"
    section = README.split(heading, 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            for flag in re.findall(r"`(-[-\w]+)", cells[0]):
                rows[flag] = cells[1]
    return rows


def _shown(default: object) -> str | None:
    """A default as README writes it, or None when it has none to show (off, none)."""
    if default is None or default is False or default == [] or default == "":
        return None
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return str(default).replace(tempfile.gettempdir(), "$TMPDIR")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_flag_is_in_its_readme_table_with_its_default(command: str) -> None:
    rows = _table_rows(command)
    problems = []
    for action in _parsers()[command]._actions:
        flags = [f for f in action.option_strings if f not in ("-h", "--help")]
        if not flags:
            continue
        long = flags[-1]
        if long not in rows:
            problems.append(f"bass {command} {long}: not in README's table")
            continue
        shown = _shown(action.default)
        if shown is not None and rows[long] != f"`{shown}`":
            problems.append(f"bass {command} {long}: --help says {shown}, README {rows[long]}")
        if f"(default {action.default})" in (action.help or "") and shown is None:
            problems.append(f"bass {command} {long}: help names a default it does not have")
    assert not problems, problems


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_flag_in_readme_exists(command: str) -> None:
    section = SECTIONS.get(command, command)
    known = {
        f
        for name, parser in _parsers().items()
        if SECTIONS.get(name, name) == section
        for a in parser._actions
        for f in a.option_strings
    }
    stale = sorted(set(_table_rows(command)) - known)
    assert not stale, f"README documents flags bass {command} does not have: {stale}"


def test_every_build_variable_is_in_the_readme():
    source = (Path(cli.__file__).parent / "worker" / "runner.py").read_text()
    names = set(re.findall(r'"((?:BASS|OTEL)_[A-Z_]+|TRACEPARENT)"', source))
    assert "BASS_PIPELINE" in names and "TRACEPARENT" in names
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, missing
