#!/usr/bin/env python3
"""Nested ordered and unordered groups three levels deep, a $VAR argument and a Python step.

Run from this directory: python3 job-complex.py   (expected: ok, exit 0)
"""

import os

from bass import assert_pipeline, build

# Exec lists expand $VAR from the environment; a worker sets variables from its env file.
os.environ.setdefault("GREETING", "hello from the environment")


def count_scripts():
    """A step written in Python: its print() output becomes this step's log records."""
    scripts = sorted(os.listdir("scripts"))
    print(f"{len(scripts)} helper scripts: {', '.join(scripts)}")
    return len(scripts) > 0  # False would fail the step


pipeline = {
    "name": "complex",
    "steps": [
        {"name": "greet", "exec": ["./scripts/hello.sh", "$GREETING"]},
        {
            "name": "checks",
            "order": "unordered",
            "steps": [
                {"name": "count-scripts", "exec": count_scripts},
                {
                    "name": "compile",
                    "steps": [
                        {"name": "generate", "exec": ["./scripts/work.sh", "generate", "0.2"]},
                        {
                            "name": "targets",
                            "order": "unordered",
                            "steps": [
                                {"name": "linux", "exec": ["./scripts/work.sh", "linux", "0.3"]},
                                {"name": "macos", "exec": ["./scripts/work.sh", "macos", "0.3"]},
                            ],
                        },
                    ],
                },
                {"name": "lint", "exec": "./scripts/work.sh lint 0.2 && echo 'lint: clean'"},
            ],
        },
        {"name": "package", "exec": ["./scripts/work.sh", "package", "0.1"]},
    ],
}

assert_pipeline(pipeline)
build(pipeline)
