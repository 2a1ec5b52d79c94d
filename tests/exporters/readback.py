"""Reading what a `bass serve` stored back through its JSON API, polling until an
exporter's batches have all arrived."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import Server, http


def typed(value: Any) -> Any:
    """`value` with each scalar tagged by its type: 2 != 2.0 != True, unlike in Python."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def assert_same(got: Any, expected: Any) -> None:
    """Equal, and every scalar of the same JSON type (an int stayed an int, …)."""
    assert typed(got) == typed(expected)


def poll(what: str, fetch: Callable[[], Any], ready: Callable[[Any], bool], timeout=10.0) -> Any:
    """fetch() until ready(its value), or fail after `timeout` seconds with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not complete after {timeout} s; last seen: {value!r}")
        time.sleep(0.05)


def flatten(tree: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Span tree → {span_id: span}; each span keeps its `children` list."""
    out: dict[str, dict[str, Any]] = {}
    stack = list(tree)
    while stack:
        span = stack.pop()
        assert span["span_id"] not in out, f"span {span['span_id']} twice in the tree"
        out[span["span_id"]] = span
        stack.extend(span["children"])
    return out


def trace_spans(server: Server, trace_id: str, count: int) -> dict[str, dict[str, Any]]:
    """The `count` spans of a trace, once all have arrived ended, by span id."""

    def fetch() -> dict[str, dict[str, Any]]:
        status, body = http("GET", f"{server.url}/api/traces/{trace_id}")
        if status == 404:
            return {}
        assert status == 200, body
        assert body["trace_id"] == trace_id
        return flatten(body["spans"])

    def ready(spans: dict[str, dict[str, Any]]) -> bool:
        return len(spans) >= count and all(s["end_ns"] for s in spans.values())

    spans = poll(f"trace {trace_id}", fetch, ready)
    assert len(spans) == count, sorted(s["name"] for s in spans.values())
    return spans


def trace_logs(server: Server, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The `count` log records of a trace, in arrival order."""

    def fetch() -> list[dict[str, Any]]:
        status, body = http("GET", f"{server.url}/api/traces/{trace_id}/logs")
        assert status == 200, body
        return body["logs"]

    logs = poll(f"logs of trace {trace_id}", fetch, lambda logs: len(logs) >= count)
    assert len(logs) == count, logs
    return logs
