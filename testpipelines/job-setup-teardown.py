#!/usr/bin/env python3
"""Setup and teardown around a step that fails on purpose.

The setup creates a scratch directory, the "test" step fails, the "never" step is
skipped (earlier step failed) and the teardown still removes the scratch directory.

Run from this directory: python3 job-setup-teardown.py   (expected: failed, exit 1)
"""

from bass import assert_pipeline, build

pipeline = {
    "name": "setup-teardown",
    "setup": {"name": "make-scratch", "exec": "mkdir -p .scratch && echo 'scratch ready'"},
    "steps": [
        {"name": "use-scratch", "exec": "echo data > .scratch/data.txt && cat .scratch/data.txt"},
        {"name": "test", "exec": ["./scripts/fail.sh", "2 tests failed"]},
        {"name": "never", "exec": "echo this step is skipped"},
    ],
    "teardown": {"name": "remove-scratch", "exec": "rm -rf .scratch && echo 'scratch removed'"},
}

assert_pipeline(pipeline)
build(pipeline)
