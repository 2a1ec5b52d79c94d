#!/usr/bin/env python3
"""bass's pickup build: its first line notes when the entry runs, then one step stamps."""

import os
import time

stamps, number = os.environ["BENCH_STAMPS"], os.environ["BASS_BUILD_NUMBER"]
with open(f"{stamps}/entry-pickup-{number}", "w") as f:
    f.write(str(time.time_ns()))

from bass import build  # noqa: E402  (after the stamp: the import is part of the pickup)

build(
    {
        "name": "pickup",
        "steps": [{"name": "stamp", "exec": ["./stamp.sh", f"{stamps}/pickup-{number}"]}],
    }
)
