"""One vocabulary: the states a build may be in and the statuses a step or build ends
with are bass.states (the builder's own statuses), the table checks them, and no module
writes its own list of them."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest

import bass_builder
from bass import states
from bass.store import schema

ROOT = Path(__file__).resolve().parents[2]


def test_the_statuses_are_the_builders():
    assert states.STATUSES is bass_builder.STATUSES
    assert states.RUNNING == bass_builder.RUNNING
    assert states.STATES == ("queued", "running", *bass_builder.STATUSES)
    assert set(states.FAILURES) < set(states.STATUSES)


@pytest.mark.parametrize("status", [s for s in bass_builder.STATUSES if s != "skipped"])
def test_an_exit_code_reads_back_as_the_status_that_made_it(status):
    assert states.status_of_exit_code(bass_builder.EXIT_CODES[status]) == status


@pytest.mark.parametrize(
    ("code", "status"), [(2, "failed"), (7, "failed"), (-15, "cancelled"), (143, "cancelled"),
                         (-9, "failed"), (0, "ok")],
)  # fmt: skip
def test_other_exit_codes(code, status):
    assert states.status_of_exit_code(code) == status


def _insert(conn: sqlite3.Connection, state: str, n: int) -> None:
    conn.execute(
        "INSERT INTO builds (pipeline, number, state, trigger, trace_id, root_span_id, "
        "queued_at) VALUES ('p', ?, ?, 'cli', ?, 'r', 0)",
        (n, state, f"{n:032x}"),
    )


def test_the_builds_table_takes_every_state_and_nothing_else(tmp_path):
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    schema.migrate(conn)
    for n, state in enumerate(states.STATES, start=1):
        _insert(conn, state, n)
    for n, bogus in enumerate(["passed", "", "OK", "running "], start=100):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            _insert(conn, bogus, n)
    conn.close()


def test_migrating_keeps_every_build(tmp_path):
    """A database made before 0005 keeps its jobs, ids and all, as builds."""
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrations = schema.MIGRATIONS
    names = [name for name, *_ in migrations]
    schema.MIGRATIONS = migrations[: names.index("0005_builds")]
    try:
        schema.migrate(conn)
    finally:
        schema.MIGRATIONS = migrations
    conn.execute(
        "INSERT INTO jobs (id, pipeline, number, state, trigger, trace_id, root_span_id, "
        "queued_at, finished_at) VALUES (41, 'p', 7, 'failed', 'webhook', 't', 'r', 1, 2)"
    )
    assert schema.migrate(conn)[0] == "0005_builds"
    row = conn.execute("SELECT id, pipeline, number, state, finished_at FROM builds").fetchone()
    assert row == (41, "p", 7, "failed", 2.0)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "jobs" not in tables
    conn.close()


def _state_lists(tree: ast.AST) -> list[int]:
    """Lines of tuple/list/set literals naming two or more states."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if sum(1 for w in words if w in states.STATES) >= 2:
                found.append(node.lineno)
    return found


def test_no_module_writes_its_own_list_of_states():
    copies = []
    for path in sorted((ROOT / "bass").rglob("*.py")):
        for line in _state_lists(ast.parse(path.read_text())):
            copies.append(f"{path.relative_to(ROOT)}:{line}")
    for path in sorted((ROOT / "bass" / "templates").glob("*.html")):
        text = path.read_text()
        if any(f"'{a}', '{b}'" in text for a in states.STATES for b in states.STATES):
            copies.append(str(path.relative_to(ROOT)))
    assert not copies, f"lists of states outside bass.states: {copies}"
