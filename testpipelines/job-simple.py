#!/usr/bin/env python3
"""The smallest pipeline: two ordered steps that succeed.

Run from this directory: python3 job-simple.py   (expected: ok, exit 0)
"""

from bass import assert_pipeline, build

pipeline = {
    "name": "simple",
    "steps": [
        {"name": "hello", "exec": ["./scripts/hello.sh", "world"]},
        {"name": "done", "exec": "echo all done"},
    ],
}

assert_pipeline(pipeline)
build(pipeline)
