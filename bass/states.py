"""The words for where a build is and how a step or a build ended, defined once.

A build's *state* is `queued`, `running`, or the *status* it ended with. A status is
one of the builder's STATUSES (`ok`, `failed`, `timeout`, `skipped`, `cancelled`,
`error`), the words its spans carry as `bass.status`; a span still running says
`running`. The statuses and the exit codes are the builder's own (bass_builder), so a
build entry, a worker and the server can never disagree on them.
docs/contracts.md, "Status model", is the contract.
"""

from __future__ import annotations

from bass_builder import (
    CANCELLED,
    ERROR,
    FAILED,
    OK,
    RUNNING,
    SKIPPED,
    STATUSES,
    TIMEOUT,
    status_of_exit_code,
)

QUEUED = "queued"
ACTIVE = (QUEUED, RUNNING)  # a build in one of these has not ended
STATES = (*ACTIVE, *STATUSES)  # every state a build row may hold (the table checks it)
FAILURES = (FAILED, TIMEOUT, ERROR)  # what onFailure mails and what a page shows first

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "ERROR",
    "FAILED",
    "FAILURES",
    "OK",
    "QUEUED",
    "RUNNING",
    "SKIPPED",
    "STATES",
    "STATUSES",
    "TIMEOUT",
    "status_of_exit_code",
    "sql_list",
]


def sql_list(words: tuple[str, ...]) -> str:
    """States as an SQL list literal, `('queued', 'running')`, for a query's text: a
    literal lets SQLite use the partial indexes that name the same states."""
    assert all(w.isalpha() for w in words), words  # constants of this module, never input
    return "(" + ", ".join(f"'{w}'" for w in words) + ")"
