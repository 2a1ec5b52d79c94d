#!/usr/bin/env python3
"""bass's many-steps build: BENCH_STEPS (default 200) trivial steps, in order."""

import os

from bass import build

count = int(os.environ.get("BENCH_STEPS", "200"))
build({"name": "steps", "steps": [{"name": f"step-{i}", "exec": ["true"]} for i in range(count)]})
