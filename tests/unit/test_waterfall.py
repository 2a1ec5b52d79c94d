"""The waterfall (bass.ui.waterfall) and the span panel of a build's timeline page: the
critical path and errors marked, crowded parents folded, rows in windows, zoom, and a
span's attributes, events (an exception's stack trace), links, resource and lines."""

from __future__ import annotations

from typing import Any

from bass.ui import waterfall
from bass.ui.waterfall import View
from tests.unit.conftest import App
from tests.unit.helpers import attr, post_logs, record, span, start_build, trace_of

MS = 1_000_000


def node(span_id: str, start: int, end: int, parent: str = "", **extra: Any) -> dict[str, Any]:
    return {"trace_id": "t", "span_id": span_id, "parent_span_id": parent, "name": span_id,
            "start_ns": start * MS, "end_ns": end * MS, "status_code": 1, "bass_status": "ok",
            **extra}  # fmt: skip


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["span"]["name"] if "span" in r else f"+{r['more']}" for r in rows]


def test_the_critical_path_follows_what_ended_last_and_errors_are_marked() -> None:
    spans = [node("root", 1, 100), node("a", 1, 40, "root"), node("b", 2, 90, "root"),
             node("b1", 3, 50, "b"), node("b2", 4, 89, "b", status_code=2),
             node("c", 5, 20, "root", bass_status="failed")]  # fmt: skip
    shown = waterfall.waterfall(spans, 1000 * MS)
    assert names(shown["rows"]) == ["root", "a", "b", "b1", "b2", "c"]
    critical = {r["span"]["name"] for r in shown["rows"] if r["critical"]}
    assert critical == {"root", "b", "b2"}
    assert {r["span"]["name"] for r in shown["rows"] if r["error"]} == {"b2", "c"}


def test_a_crowded_parent_folds_and_rows_come_in_windows() -> None:
    spans = [node("root", 1, 10_000)] + [
        node(f"c{i:05}", i + 1, i + 2, "root") for i in range(waterfall.CHILDREN + 25)
    ]
    shown = waterfall.waterfall(spans, 0)
    assert names(shown["rows"])[-1] == "+25" and shown["rows"][-1]["parent"] == "root"
    assert len(shown["rows"]) == 1 + waterfall.CHILDREN + 1
    every = waterfall.waterfall(spans, 0, View(expanded=frozenset({"root"})))
    assert every["count"] == 1 + waterfall.CHILDREN + 25 and "+25" not in names(every["rows"])
    many = (
        [node("root", 1, 10**6)]
        + [node(f"g{g}", g + 1, g + 2, "root") for g in range(30)]
        + [node(f"g{g}-{i}", g + 1, g + 2, f"g{g}") for g in range(30) for i in range(40)]
    )
    first = waterfall.waterfall(many, 0)
    assert first["count"] == 1 + 30 + 1200 and len(first["rows"]) == waterfall.ROWS
    pages = [first]
    while pages[-1]["next"] is not None:
        pages.append(waterfall.waterfall(many, 0, View(offset=pages[-1]["next"])))
    shown = [r["span"]["span_id"] for page in pages for r in page["rows"]]
    assert len(shown) == len(set(shown)) == first["count"]  # every row once


def test_zoom_places_bars_in_the_window_asked_for() -> None:
    spans = [node("root", 1, 101), node("early", 1, 11, "root"), node("late", 51, 101, "root")]
    zoomed = waterfall.waterfall(spans, 0, View(start_ms=50, end_ms=100))
    bars = {r["span"]["name"]: (r["left"], r["width"]) for r in zoomed["rows"]}
    assert bars["late"] == (0, 100) and bars["early"][1] == 0  # outside: no bar
    assert zoomed["zoomed"] and zoomed["total"] == "100ms"


def test_a_view_from_hostile_query_parameters() -> None:
    class Q(dict):
        def getlist(self, key: str) -> list[str]:
            return [self[key]] if key in self else []

    assert waterfall.view_of(Q({"offset": "nan", "from": "-3", "to": "1e400"})) == View()
    assert waterfall.view_of(Q({"offset": "2000", "expand": "ab"})) == View(
        offset=2000, expanded=frozenset({"ab"}))  # fmt: skip


def test_the_span_panel_shows_attributes_events_links_resource_and_lines(app: App) -> None:
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    step = "9" * 16
    exception = {
        "timeUnixNano": "1700000000500000000",
        "name": "exception",
        "attributes": [attr("exception.type", "ZeroDivisionError"),
                       attr("exception.message", "division by zero <b>"),
                       attr("exception.stacktrace",
                            'Traceback (most recent call last):\n  File "t.py", line 3\n'
                            "ZeroDivisionError: division by zero")],
    }  # fmt: skip
    app.send_spans(
        span(trace, step, parent=root, name="test_divide", end=1_700_000_001_000_000_000,
             attributes=[attr("test.case", "<script>x</script>")], events=[exception],
             links=[{"traceId": "ab" * 16, "spanId": "cd" * 8}],
             status={"code": 2, "message": "failed"}),
        service="pytest",
    )  # fmt: skip
    post_logs(app, record(trace, step, "\x1b[31mboom\x1b[0m"))
    page = app.client.get("/pipelines/demo/1/timeline", params={"span": step})
    assert page.status_code == 200
    html = page.text
    assert 'class="span-panel"' in html and "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "ZeroDivisionError: division by zero &lt;b&gt;" in html
    assert 'Traceback (most recent call last):\n  File "t.py", line 3' in html.replace("&#34;", '"')
    assert f'href="/traces/{"ab" * 16}"' in html
    assert "pytest" in html and "boom</span>" in html and "\x1b" not in html
    assert f"?span={step}" in html  # rows link to their panel
    # an unknown span: the waterfall without a panel
    assert 'class="span-panel"' not in app.client.get(
        "/pipelines/demo/1/timeline", params={"span": "0" * 16}).text  # fmt: skip


def test_spans_past_a_depth_fold_behind_their_parent() -> None:
    chain = [node("s0", 1, 100)] + [
        node(f"s{d}", 1 + d, 100, f"s{d - 1}") for d in range(1, waterfall.DEPTH + 5)
    ]
    shown = waterfall.waterfall(chain, 0)
    assert names(shown["rows"])[-1] == "+1"
    assert len(shown["rows"]) == waterfall.DEPTH + 2  # DEPTH + 1 levels, then the fold
    folded_at = shown["rows"][-1]["parent"]
    deeper = waterfall.waterfall(chain, 0, View(expanded=frozenset({folded_at})))
    assert len(deeper["rows"]) == waterfall.DEPTH + 3
