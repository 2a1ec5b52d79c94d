"""The Traces, Services and trace pages (bass.ui.traces) through the app, with spans
and logs sent over OTLP/JSON as any service sends them."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import pytest

from bass.store import traces as store
from bass.ui import traces as ui
from tests.unit.conftest import App
from tests.unit.helpers import attr, record, span, start_build, trace_of

NOW = time.time_ns()
MS, S = 1_000_000, 1_000_000_000
EVIL = "<script>alert('x')</script>&amp;"


@pytest.fixture
def app(make_app: Any) -> App:
    """The app, with the routes of bass.ui.traces first (until bass.app registers them)."""
    found = make_app()
    routes = found.client.app.router.routes  # type: ignore[attr-defined]
    if not any(getattr(r, "name", None) == "trace_list" for r in routes):
        routes[:0] = ui.routes
    return found


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def trace(
    app: App, n: int, *, service: str = "web", name: str = "GET /", start: int = NOW - 60 * S,
    length: int = 100 * MS, children: int = 1, error: bool = False, child_error: bool = False,
    running: bool = False, attrs: list[dict[str, Any]] | None = None, root: bool = True,
) -> str:  # fmt: skip
    """Send trace `n`: a root span and `children` child spans (sid n*100+i)."""
    spans = []
    if root:
        spans.append(span(tid(n), sid(n * 100), name=name, start=start,
                          end=0 if running else start + length, attributes=attrs or [],
                          status={"code": 2} if error else {}))  # fmt: skip
    for i in range(1, children + 1):
        spans.append(span(tid(n), sid(n * 100 + i), parent=sid(n * 100), name=f"child {i}",
                          start=start + i * MS, end=start + length - MS,
                          status={"code": 2} if child_error and i == 1 else {},
                          attributes=attrs if not root else []))  # fmt: skip
    app.send_spans(*spans, service=service)
    return tid(n)


def listed(app: App, **params: str) -> list[dict[str, Any]]:
    response = app.client.get("/traces", params=params)
    assert response.status_code == 200, response.text
    return response.context["page"].traces  # type: ignore[attr-defined]


def ids(app: App, **params: str) -> list[str]:
    return [t["trace_id"] for t in listed(app, **params)]


def test_traces_newest_first_with_status_counts_and_build(app: App) -> None:
    ok = trace(app, 1, start=NOW - 50 * S, children=3, child_error=True)
    failed = trace(app, 2, start=NOW - 40 * S, error=True, service="api")
    running = trace(app, 3, start=NOW - 30 * S, running=True)
    job = start_build(app)
    root = job["otel"]["root-span-id"]
    app.send_spans(span(trace_of(job), root, name="build demo", start=NOW - 20 * S,
                        end=NOW - 10 * S, bass_status="failed"))  # fmt: skip
    found = listed(app)
    assert [t["trace_id"] for t in found] == [trace_of(job), running, failed, ok]
    by_id = {t["trace_id"]: t for t in found}
    assert (by_id[ok]["status"], by_id[ok]["spans"], by_id[ok]["errors"]) == ("ok", 4, 1)
    assert (by_id[failed]["status"], by_id[failed]["errors"]) == ("error", 1)
    assert by_id[running]["status"] == "running"
    assert (by_id[trace_of(job)]["pipeline"], by_id[trace_of(job)]["number"]) == ("demo", 1)
    assert by_id[trace_of(job)]["status"] == "error"  # bass.status failed
    html = app.client.get("/traces").text
    assert 'href="http://testserver/pipelines/demo/1"' in html
    assert f'href="http://testserver/traces/{ok}"' in html
    assert "<time datetime=" in html  # the `when` macro: relative, absolute on hover


def test_a_large_trace_is_counted_up_to_a_bound(app: App, monkeypatch) -> None:
    monkeypatch.setattr(store, "COUNT_SPANS", 5)
    trace(app, 1, children=9, child_error=True, start=NOW - 2 * S)
    trace(app, 2, children=3, start=NOW - 3 * S)
    (big, small) = listed(app)
    assert (big["spans"], big["errors"], big["more"]) == (5, 1, True)
    assert (small["spans"], small["more"]) == (4, False)
    assert '<td class="num">5+</td>' in app.client.get("/traces").text


def test_each_filter_narrows_the_list(app: App) -> None:
    items = [attr("http.route", "/api/items"), attr("http.status_code", 200)]
    fast = trace(app, 1, service="web", length=5 * MS, start=NOW - 10 * S, attrs=items)
    other = [attr("http.route", "/api/other"), attr("cached", True)]
    slow = trace(app, 2, service="web", length=3 * S, start=NOW - 9 * S, attrs=other)
    failed = trace(app, 3, service="api", error=True, length=200 * MS, start=NOW - 8 * S)
    old = trace(app, 4, service="api", start=NOW - 3 * 3600 * S, length=50 * MS)
    running = trace(app, 5, service="api", running=True, start=NOW - 2 * S)
    # an attribute of a child span finds its trace too
    app.send_spans(span(tid(4), sid(499), parent=sid(400), name="db", start=NOW - 3 * 3600 * S,
                        end=NOW - 3 * 3600 * S + MS, attributes=[attr("db.system", "sqlite")]),
                   service="api")  # fmt: skip
    assert ids(app) == [running, failed, slow, fast, old]
    assert ids(app, service="web") == [slow, fast]
    assert ids(app, service="api") == [running, failed, old]
    assert ids(app, service="nobody") == []
    assert ids(app, status="error") == [failed]
    assert ids(app, status="ok") == [slow, fast, old]
    assert ids(app, status="running") == [running]
    assert ids(app, min="1s") == [running, slow]  # a running trace: its time so far
    assert ids(app, max="100ms") == [fast, old]
    assert ids(app, min="40ms", max="250ms") == [failed, old]
    assert ids(app, range="1h") == [running, failed, slow, fast]
    assert ids(app, range="15m", service="api") == [running, failed]
    assert ids(app, attr="http.route=/api/items") == [fast]
    assert ids(app, attr="http.status_code=200") == [fast]
    assert ids(app, attr="cached=true") == [slow]
    assert ids(app, attr="db.system=sqlite") == [old]
    assert ids(app, attr="http.route=/api") == []  # the whole value, not a part
    assert ids(app, attr="nothing=here") == []
    assert ids(app, service="web", attr="http.route=/api/other", min="1s") == [slow]


def test_pages_hold_every_trace_once_in_order(app: App, monkeypatch) -> None:
    for n in range(1, 121):
        trace(app, n, start=NOW - (200 - n) * S, error=n % 7 == 0)
    expected = [tid(n) for n in range(120, 0, -1)]
    assert walk(app) == expected
    # a filter that looks through few roots at a time still finds each once
    monkeypatch.setattr(store, "SCAN", 9)
    failed = [n for n in range(120, 0, -1) if n % 7 == 0]
    assert walk(app, status="error") == [tid(n) for n in failed]
    assert walk(app, status="ok") == [tid(n) for n in range(120, 0, -1) if n not in failed]
    assert walk(app, service="web", max="1s") == expected


def test_traces_that_started_at_one_instant_page_by_trace_id(app: App, monkeypatch) -> None:
    for n in range(1, 131):
        trace(app, n, start=NOW - S, children=2)
    expected = sorted((tid(n) for n in range(1, 131)), reverse=True)
    assert walk(app) == expected
    monkeypatch.setattr(store, "SCAN", 7)
    assert walk(app) == expected
    assert walk(app, service="web", min="1ms") == expected


def walk(app: App, **params: str) -> list[str]:
    seen, query, pages = [], dict(params), 0
    while True:
        response = app.client.get("/traces", params=query)
        assert response.status_code == 200
        context = response.context  # type: ignore[attr-defined]
        seen += [t["trace_id"] for t in context["page"].traces]
        pages += 1
        assert pages < 200, "paging does not end"
        if context["older"] is None:
            return seen
        assert 'rel="next"' in response.text
        query = dict(re.findall(r"([^?&=]+)=([^&]*)", context["older"]))


def test_a_trace_is_listed_once_its_root_span_arrives(app: App) -> None:
    whole = trace(app, 1, start=NOW - 20 * S)
    partial = trace(app, 2, start=NOW - 10 * S, root=False, children=2, child_error=True,
                    service="worker", length=2 * S)  # fmt: skip
    assert ids(app) == [whole]
    page = app.client.get(f"/traces/{partial}")  # its page shows it meanwhile
    assert page.status_code == 200 and "its root span has not arrived" in page.text
    context = page.context  # type: ignore[attr-defined]
    assert (context["root"]["name"], context["status"]) == ("child 1", "error")
    assert context["errors"] == 1
    app.send_spans(span(partial, sid(200), name="job", start=NOW - 11 * S, end=NOW - 5 * S),
                   service="worker")  # fmt: skip
    (first, second) = listed(app)
    assert (first["trace_id"], first["name"], second["trace_id"]) == (partial, "job", whole)
    assert (first["status"], first["spans"], first["errors"]) == ("ok", 3, 1)
    assert first["start_ns"] == NOW - 11 * S and first["end_ns"] == NOW - 5 * S
    assert ids(app, service="worker") == [partial] and ids(app, status="error") == []


@pytest.mark.parametrize(
    "params",
    [
        {"min": "fast"}, {"max": "-1s"}, {"min": "1e9s"}, {"min": "99999999999h"},
        {"min": "999999999h"}, {"max": "999999999.999999999h"},
        {"status": "<b>"}, {"range": "1y"}, {"attr": "nokey"}, {"attr": 'a"b=1'},
        {"attr": "a\\b=1"}, {"attr": "=1"}, {"attr": "k=" + "\x00" * 3}, {"attr": "k=\"'"},
        {"before": "x"}, {"before": "99999999999999999999-ab"}, {"before": "-1-"},
        {"service": EVIL}, {"service": "\x00"}, {"min": "1" * 5000}, {"attr": "k=" + "v" * 9000},
    ],
)  # fmt: skip
def test_hostile_query_parameters_are_ignored_with_a_message(app: App, params) -> None:
    trace(app, 1, name=EVIL)
    response = app.client.get("/traces", params=params)
    assert response.status_code == 200, response.text
    assert "<script>alert" not in response.text
    if response.context["page"].traces:  # type: ignore[attr-defined]
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;" in response.text


def test_an_unknown_duration_is_named_back(app: App) -> None:
    response = app.client.get(
        "/traces", params={"min": "<i>soon</i>", "status": "bad", "range": "1y"}
    )
    assert "Ignored: min duration &#39;&lt;i&gt;soon&lt;/i&gt;&#39;" in response.text
    assert "status &#39;bad&#39; is none of ok, error, running" in response.text
    assert "time range &#39;1y&#39; is none of 15m, 1h, 24h, 7d" in response.text
    assert ui.duration_ns("1.5s") == 1_500_000_000 and ui.duration_ns("250 ms") == 250 * MS
    assert ui.duration_ns("2m") == 120 * S and ui.duration_ns("10us") == 10_000
    assert ui.duration_ns("5") is None and ui.duration_ns("s") is None
    assert ui.duration_ns("999999999h") == store.MAX_NS  # what SQLite's integers hold


def test_hostile_names_and_attributes_are_escaped(app: App) -> None:
    nested = {"key": "n", "value": {"kvlistValue": {"values": [attr("x", EVIL)]}}}
    trace(app, 1, name=EVIL, service=EVIL, attrs=[attr(EVIL, EVIL), nested])
    app.send_logs(record(tid(1), sid(100), f"\x1b[31m{EVIL}\x1b[0m"), service=EVIL)
    for path in ("/traces", "/services", f"/traces/{tid(1)}", f"/traces/{tid(1)}?span={sid(100)}"):
        response = app.client.get(path)
        assert response.status_code == 200, path
        assert "<script>" not in response.text, path
        assert "&lt;script&gt;" in response.text, path
    panel = app.client.get(f"/traces/{tid(1)}", params={"span": sid(100)}).text
    assert panel.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;") >= 3


def test_services_count_errors_and_percentiles(app: App) -> None:
    for n in range(1, 21):  # 20 traces of web in the last hour: 100ms … 2000ms, 2 failed
        trace(app, n, service="web", start=NOW - n * 60 * S, length=n * 100 * MS, error=n <= 2)
    trace(app, 30, service="web", start=NOW - 5 * 3600 * S, length=10 * S)  # today, not this hour
    trace(app, 31, service="web", start=NOW - 3 * 86400 * S)  # before the day
    trace(app, 32, service="jobs", running=True, start=NOW - 10 * S)
    app.send_logs(record(tid(99), sid(1), "only logs"), service="logger")
    response = app.client.get("/services")
    assert response.status_code == 200
    stats = {s["service"]: s for s in response.context["stats"]}  # type: ignore[attr-defined]
    assert set(stats) == {"web", "jobs", "logger"}
    web = stats["web"]
    assert (web["hour"]["traces"], web["hour"]["errors"]) == (20, 2)
    assert web["hour"]["error_rate"] == pytest.approx(0.1)
    assert (web["hour"]["p50"], web["hour"]["p95"]) == (1000 * MS, 1900 * MS)
    assert (web["hour"]["p50_text"], web["hour"]["p95_text"]) == ("1.0s", "1.9s")
    assert (web["day"]["traces"], web["day"]["p95"]) == (21, 2000 * MS)
    assert web["last_ns"] == NOW - 60 * S
    jobs = stats["jobs"]["hour"]
    assert (jobs["traces"], jobs["p50"], jobs["error_rate"]) == (1, None, 0)
    assert stats["logger"]["day"]["traces"] == 0 and stats["logger"]["last_ns"] is None
    assert 'href="http://testserver/traces?service=web"' in response.text


def test_trace_page_shows_the_waterfall_then_the_logs(app: App, monkeypatch) -> None:
    t = trace(app, 1, name="GET /items", children=2, child_error=True, length=2 * S)
    app.send_spans(span(t, sid(150), parent=sid(101), name="query", start=NOW - 60 * S + 5 * MS,
                        end=NOW - 59 * S), service="db")  # fmt: skip
    app.send_logs(*[record(t, sid(101), f"line {n} \x1b[1mbold\x1b[0m", time_ns=NOW + n)
                    for n in range(1, 8)], service="web")  # fmt: skip
    response = app.client.get(f"/traces/{t.upper()}")  # any case
    assert response.status_code == 200, response.text
    html = response.text
    rows = re.findall(r'<div class="tl-row[^"]*" data-step="([^"]*)" data-status="([^"]*)"', html)
    assert rows == [("GET /items", "ok"), ("child 1", "failed"), ("query", "ok"),
                    ("child 2", "ok")]  # fmt: skip
    assert 'class="tl-bar s-failed"' in html and 'data-service="db"' in html
    assert '<div class="tl-row critical" data-step="GET /items"' in html  # bass.ui.waterfall
    assert '<div class="tl-row error" data-step="child 1"' in html
    assert html.index('class="tl"') < html.index("line 1 ")
    assert response.context["status"] == "ok" and response.context["errors"] == 1  # type: ignore[attr-defined]
    assert 'line 1 <span class="ansi-bold">bold</span>' in html  # bass.ansi.to_html
    lines = response.context["lines"]  # type: ignore[attr-defined]
    assert [(line["body"].split()[1], line["span_name"]) for line in lines][:2] == [
        ("1", "child 1"), ("2", "child 1")]  # fmt: skip
    # the lines page on
    monkeypatch.setattr(ui, "LOG_PAGE", 3)
    first = app.client.get(f"/traces/{t}").context  # type: ignore[attr-defined]
    assert [line["body"][:6] for line in first["lines"]] == ["line 1", "line 2", "line 3"]
    nxt = app.client.get(f"/traces/{t}", params={"after": first["next_after"]})
    assert [line["body"][:6] for line in nxt.context["lines"]] == ["line 4", "line 5", "line 6"]  # type: ignore[attr-defined]
    assert 'rel="next"' in nxt.text and "first lines" in nxt.text
    for bad in ("x", "-1", "9" * 40):
        assert app.client.get(f"/traces/{t}", params={"after": bad}).status_code == 200
    # a span's details beside the waterfall, its log lines with them
    panel = app.client.get(f"/traces/{t}", params={"span": sid(101)})
    assert 'class="span-panel"' in panel.text and "line 1 " in panel.text.split("span-panel")[1]
    for hostile in ({"span": EVIL}, {"span": "x" * 5000}, {"offset": "-1"}, {"from": "nan"},
                    {"to": "1e300"}, {"expand": EVIL}):  # fmt: skip
        response = app.client.get(f"/traces/{t}", params=hostile)
        assert response.status_code == 200 and "<script>" not in response.text, hostile


def test_trace_page_of_a_build_leads_to_the_build(app: App) -> None:
    job = start_build(app)
    response = app.client.get(f"/traces/{trace_of(job)}", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "http://testserver/pipelines/demo/1"


def test_trace_page_404_for_no_trace(app: App) -> None:
    response = app.client.get(f"/traces/{tid(12345)}")
    assert response.status_code == 404
    assert "no span or log line of trace" in response.text
    for bad in ("nothex", "0" * 33, "<script>", "%00"):
        response = app.client.get(f"/traces/{bad}")
        assert response.status_code == 404, bad
        assert "<script>" not in response.text


def test_a_trace_of_logs_alone_shows_its_lines(app: App) -> None:
    app.send_logs(record(tid(7), sid(1), "orphan line"), service="logger")
    response = app.client.get(f"/traces/{tid(7)}")
    assert response.status_code == 200
    assert "orphan line" in response.text and "No spans yet." in response.text


def test_search_results_link_to_the_trace_and_the_build(app: App) -> None:
    stray = trace(app, 1, service="other")
    app.send_logs(record(stray, sid(101), "needle stray"), service="other")
    job = start_build(app)
    step = sid(5)
    app.send_spans(span(trace_of(job), step, parent=job["otel"]["root-span-id"], name="unit"))
    app.send_logs(record(trace_of(job), step, "needle built"))
    response = app.client.get("/search", params={"q": "needle"})
    assert response.status_code == 200
    html = response.text
    assert f'href="http://testserver/traces/{stray}"' in html
    assert f'href="http://testserver/traces/{trace_of(job)}"' in html
    assert f'href="http://testserver/pipelines/demo/1#step-{step}-L1"' in html
    lines = response.context["lines"]  # type: ignore[attr-defined]
    if "service_name" in lines[0]:  # once logs.search_logs names each line's service
        assert ">other<" in html and ">bass:pipeline:demo<" in html
    # within one build, each line links to its step only
    within = app.client.get("/search", params={"q": "needle", "pipeline": "demo", "number": 1})
    assert f"/traces/{trace_of(job)}" not in within.text
    assert f'href="http://testserver/pipelines/demo/1#step-{step}-L1"' in within.text


def test_the_queries_read_indexes_never_the_whole_spans_table(app: App) -> None:
    """Every query of a page, filters and all, seeks an index: none scans the spans;
    the root spans are read from their index alone."""
    from bass.store.db import _dict_factory

    for n in range(1, 6):
        trace(app, n, start=NOW - n * S, children=3, root=n != 3)
    conn = sqlite3.connect(f"file:{app.db_path}?mode=ro", uri=True)
    conn.row_factory = _dict_factory
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    every = store.Filters(service="web", status="ok", min_ns=1, max_ns=10 * S, since_ns=1,
                          attr=("k", "v"))  # fmt: skip
    for filters in (store.Filters(), every):
        page = store.recent(conn, filters, now_ns=NOW)
        store.recent(conn, filters, now_ns=NOW, before=(NOW - 2 * S, ""))
    assert page.traces == [] and len(store.recent(conn, store.Filters(), now_ns=NOW).traces) == 4
    store.recent_roots(conn, since_ns=0)
    conn.set_trace_callback(None)
    plans = {sql: [r["detail"] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
             for sql in statements}  # fmt: skip
    conn.close()
    for sql, plan in plans.items():
        assert not any(re.match(r"SCAN (spans|a)\b", step) for step in plan), (sql, plan)
    steps = [step for plan in plans.values() for step in plan]
    assert any("COVERING INDEX spans_roots" in step for step in steps)
    assert not any("USING INDEX spans_roots" in step for step in steps)


def test_0010_indexes_a_store_of_before_it(tmp_path, monkeypatch) -> None:
    """A store from before 0010 gets the index of the Traces page (spans_start goes:
    spans_roots serves its queries) and lists the traces it holds."""
    from bass.store import schema
    from bass.store.db import _dict_factory

    names = [name for name, *_ in schema.MIGRATIONS]
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[: names.index("0010_traces")])
    schema.migrate(conn)
    monkeypatch.undo()
    for n, parent in ((1, ""), (2, sid(9))):
        conn.execute(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, name, start_ns, end_ns, "
            "service_name) VALUES (?, ?, ?, 'x', ?, ?, 'old')",
            (tid(n), sid(n), parent, n * S, n * S + MS),
        )
    assert "0010_traces" in schema.migrate(conn)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "spans_roots" in indexes and "spans_start" not in indexes
    conn.row_factory = _dict_factory
    page = store.recent(conn, store.Filters(), now_ns=NOW)
    assert [(t["trace_id"], t["spans"]) for t in page.traces] == [(tid(1), 1)]
    conn.close()
