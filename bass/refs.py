"""Git ref names as webhooks and `bass run` may send them (`changed-refs`), checked the
same way where they arrive (the webhook) and where they are used (the worker's git)."""

from __future__ import annotations

import re

# A commit, branch or tag name; never an option ("-…") git would read as a flag.
REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/@^~+-]{0,250}$")


def valid_changed_ref(ref: str) -> bool:
    """`rev` or `rev1..rev2`, each a plain ref name."""
    parts = ref.split("..")
    return len(parts) <= 2 and all(REF.match(p) for p in parts)
