"""Log blocks (bass.store.logs) give back every record as it was stored: any text in a
body (newlines, NULs, escapes, every plane of Unicode), times, severities, attributes and
resources that vary or not, across block boundaries; and a search finds lines in them."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bass.store import logs, schema
from bass.store.db import _dict_factory

TRACE, SPAN = "ab" * 16, "cd" * 8


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.row_factory = _dict_factory
    schema.migrate(connection)
    return connection


def records(bodies: list[str], **vary: bool) -> list[tuple]:
    """Records of `bodies` whose other fields are all alike, or vary (`vary`)."""
    out = []
    for n, body in enumerate(bodies):
        time_ns = 1_750_000_000_000_000_000 + (n if vary.get("time") else 0)
        severity = 9 + (n % 3 if vary.get("severity") else 0)
        text = "WARN" if vary.get("text") and n % 2 else "INFO"
        attributes = json.dumps({"n": n}) if vary.get("attributes") else "{}"
        resource = json.dumps({"service.name": f"s{n % 2 if vary.get('resource') else 0}"})
        out.append((TRACE, SPAN, time_ns, severity, text, body, attributes, resource))
    return out


def stored(conn: sqlite3.Connection, sent: list[tuple]) -> None:
    got = logs.logs_of(conn, TRACE, span_id=SPAN, limit=1_000_000)
    assert [r["line"] for r in got] == list(range(1, len(sent) + 1))
    services = {r["id"]: r["service_name"] for r in conn.execute("SELECT * FROM resources")}
    for record, row in zip(sent, got, strict=True):
        assert (row["time_ns"], row["severity_number"], row["severity_text"], row["body"]) == (
            record[2], record[3], record[4], record[5]
        )  # fmt: skip
        assert row["attributes"] == json.loads(record[6])
        assert services[row["resource_id"]] == json.loads(record[7])["service.name"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=40), st.booleans())
def test_any_bodies_come_back_as_sent(bodies: list[str], vary: bool) -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.row_factory = _dict_factory
    schema.migrate(connection)
    sent = records(bodies, time=vary, severity=vary, text=vary, attributes=vary, resource=vary)
    logs.insert_logs(connection, sent)
    stored(connection, sent)


def test_large_requests_split_into_blocks_that_read_as_one(conn: sqlite3.Connection) -> None:
    bodies = [f"line {n} " + "x" * (n % 300) for n in range(20_000)]
    bodies[5] = "two\nlines"  # a body of several lines: its block keeps bodies as JSON
    bodies[7000] = "\x1b[31mred\x1b[0m and \x00 a NUL"
    sent = records(bodies, time=True, severity=True, attributes=True)
    logs.insert_logs(conn, sent)
    blocks = conn.execute("SELECT COUNT(*) AS n, MAX(n) AS most FROM log_blocks").fetchone()
    assert blocks["n"] > 20_000 * 150 // logs.BLOCK_BYTES and blocks["most"] <= logs.BLOCK_LINES
    stored(conn, sent)
    window = logs.log_lines(conn, TRACE, SPAN, 4_000, 12_000)
    assert [r["body"] for r in window] == bodies[3_999:12_000]
    assert logs.line_hits(conn, TRACE, SPAN, "red") == [7001]
    assert logs.line_hits(conn, TRACE, SPAN, "lines") == [6]
    assert logs.line_hits(conn, TRACE, SPAN, "19999") == [20_000]
    assert [r["line"] for r in logs.logs_of(conn, TRACE, search="two lines")] == [6]
