"""The timeline's geometry: bars in percent of the trace's time, running spans to now."""

from __future__ import annotations

from typing import Any

from bass.ui import waterfall

S = 1_000_000_000  # a second in ns


def span(span_id: str, name: str, start: int, end: int, parent: str = "") -> dict[str, Any]:
    return {"span_id": span_id, "parent_span_id": parent, "name": name, "start_ns": start,
            "end_ns": end, "bass_status": "ok" if end else "running"}  # fmt: skip


def test_bars_are_placed_in_percent_of_the_trace() -> None:
    spans = [
        span("r", "build", 10 * S, 20 * S),
        span("a", "a", 10 * S, 15 * S, parent="r"),
        span("b", "b", 15 * S, 20 * S, parent="r"),
        span("c", "c", 16 * S, 17 * S, parent="b"),
    ]
    t = waterfall.waterfall(spans, now_ns=99 * S)
    geometry = [(r["span"]["name"], r["depth"], r["left"], r["width"]) for r in t["rows"]]
    assert geometry == [("build", 0, 0, 100), ("a", 1, 0, 50), ("b", 1, 50, 50),
                        ("c", 2, 60, 10)]  # fmt: skip
    assert t["total"] == "10.0s" and [p for p, _ in t["ticks"]] == [0, 25, 50, 75, 100]


def test_a_running_span_reaches_to_now_and_unstarted_ones_are_left_out() -> None:
    spans = [
        span("r", "build", 0 * S + 1, 0),
        span("a", "a", 1 * S + 1, 2 * S + 1, parent="r"),
        span("z", "not started", 0, 0, parent="r"),
    ]
    t = waterfall.waterfall(spans, now_ns=4 * S + 1)
    assert [(r["span"]["name"], r["left"], r["width"]) for r in t["rows"]] == [
        ("build", 0, 100),
        ("a", 25, 25),
    ]
    empty = waterfall.waterfall([], now_ns=1)
    assert (empty["rows"], empty["ticks"], empty["total"]) == ([], [], "")


def test_a_zero_length_span_stays_visible() -> None:
    spans = [span("r", "build", S, 101 * S), span("a", "instant", 50 * S, 50 * S, parent="r")]
    (_, instant) = waterfall.waterfall(spans, now_ns=200 * S)["rows"]
    assert instant["width"] == 0.2
