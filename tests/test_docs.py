"""Every command-line flag and every variable a build gets is documented in README.md."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bass import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for add in (cli._serve_parser, cli._worker_parser, cli._run_parser, cli._demo_parser):
        add(sub)
    return dict(sub.choices)


def test_every_flag_is_in_the_readme():
    missing = []
    for name, parser in _subcommands().items():
        for action in parser._actions:
            for flag in action.option_strings:
                if (
                    flag not in ("-h", "--help")
                    and f"`{flag}" not in README
                    and (f"{flag} " not in README and f"{flag}]" not in README)
                ):
                    missing.append(f"bass {name} {flag}")
    assert not missing, missing


def test_every_build_variable_is_in_the_readme():
    source = (Path(cli.__file__).parent / "worker" / "runner.py").read_text()
    names = set(re.findall(r'"((?:BASS|OTEL)_[A-Z_]+|TRACEPARENT)"', source))
    assert "BASS_PIPELINE" in names and "TRACEPARENT" in names
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, missing
