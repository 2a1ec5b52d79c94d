#!/usr/bin/env python3
"""Steps that run inside subproject/ (cwd is relative to the parent node's directory and
may not leave --root, the directory the build started in).

Run from this directory: python3 job-cwd.py   (expected: ok, exit 0)
"""

from bass import assert_pipeline, build

pipeline = {
    "name": "cwd",
    "steps": [
        {"name": "where", "exec": ["pwd"]},
        {
            "name": "subproject",
            "cwd": "subproject",
            "steps": [
                {"name": "build", "exec": ["./build.sh"]},
                {"name": "check", "exec": "test -f build.sh && echo 'running in subproject/'"},
            ],
        },
    ],
}

assert_pipeline(pipeline)
build(pipeline)
