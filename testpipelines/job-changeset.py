#!/usr/bin/env python3
"""Steps that run only when the changeset touches their files.

Without -c every step runs (an empty changeset runs everything):
    python3 job-changeset.py                            (expected: ok, 4 steps run)
With the sample changeset only the docs steps (and "always") run:
    python3 job-changeset.py -c changeset-docs.txt      (expected: ok, 2 steps skipped)
"""

from bass import assert_pipeline, build

pipeline = {
    "name": "changeset",
    "order": "unordered",
    "steps": [
        {
            "name": "backend",
            "if-changeset-matches": r"^src/.*\.py$",
            "exec": ["./scripts/work.sh", "backend-tests", "0.1"],
        },
        {
            "name": "frontend",
            "if-changeset-matches": r"^web/",
            "exec": ["./scripts/work.sh", "frontend-tests", "0.1"],
        },
        {
            "name": "docs",
            "if-changeset-matches": r"^docs/|\.md$",
            "steps": [{"name": "render-docs", "exec": ["./scripts/work.sh", "render-docs", "0.1"]}],
        },
        {"name": "always", "exec": "echo runs whatever changed"},
    ],
}

assert_pipeline(pipeline)
build(pipeline)
