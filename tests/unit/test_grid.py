"""The pipeline page's step grid and the span helpers under it (bass/ui/steps.py).

Covers span_tree (nesting by parent, orphans as roots, start order), build_steps (the root
span's children, or every root while the root span is missing), step_paths (` #2` suffixes
for duplicate sibling names), grid (nested header rows with colspan/rowspan, one cell per
leaf column in column order, status classes, `inherited` cells for steps whose children did
not run, empty cells, links to `URL#step-SPANID`, escaping, columns unioned across builds in
order of first appearance, the real _grid.html rendering a well-formed table), timeline
(bars, running spans to now, ticks) and duration's formatting boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
from markupsafe import Markup

import bass
from bass.ui import steps, waterfall

S = 1_000_000_000  # a second in ns
MS = 1_000_000  # a millisecond in ns
NOW = 1_000 * S  # the fixed "now" every test passes in


# -- building blocks ----------------------------------------------------------------------


def span(
    span_id: str,
    name: str,
    start: int,
    end: int,
    parent: str = "",
    status: str = "ok",
    trace: str = "t1",
) -> dict[str, Any]:
    return {
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_ns": start,
        "end_ns": end,
        "bass_status": status,
    }


def build(number: int, trace: str, root: str, state: str = "succeeded") -> dict[str, Any]:
    return {
        "pipeline": "demo",
        "number": number,
        "state": state,
        "trace_id": trace,
        "root_span_id": root,
    }


def url_of(b: dict[str, Any]) -> str:
    return f"/pipelines/{b['pipeline']}/{b['number']}"


def make_grid(
    builds: list[dict[str, Any]],
    spans: list[dict[str, Any]],
    build_url: Callable[[dict[str, Any]], str] = url_of,
) -> dict[str, Any]:
    return steps.grid(builds, spans, NOW, build_url)


def header_of(g: dict[str, Any]) -> list[list[tuple[str, int, int]]]:
    return [[(h["name"], h["colspan"], h["rowspan"]) for h in row] for row in g["header"]]


@dataclass
class Cell:
    """One parsed `<td>`: its attributes in order, its `<a>`'s attributes, its text, and
    every tag inside it (itself included)."""

    attrs: list[tuple[str, str | None]]
    link: list[tuple[str, str | None]] | None = None
    text: str = ""
    tags: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        (value,) = [v for k, v in self.attrs if k == name] or [None]
        return value

    @property
    def classes(self) -> str | None:
        return self.get("class")

    @property
    def step(self) -> str | None:
        return self.get("data-step")

    @property
    def href(self) -> str | None:
        if self.link is None:
            return None
        (value,) = [v for k, v in self.link if k == "href"]
        return value


class _CellParser(HTMLParser):
    """A row's cells markup as a list of Cell; anything outside a `<td>` is an error."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[Cell] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            assert not self.open, f"<td> nested in {self.open}"
            self.cells.append(Cell(attrs))
        else:
            assert self.open, f"<{tag}> outside a cell"
            if tag == "a":
                assert self.cells[-1].link is None, "two links in one cell"
                self.cells[-1].link = attrs
        self.cells[-1].tags.append(tag)
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        assert self.open, f"text {data!r} outside a cell"
        self.cells[-1].text += data


def cells_of(markup: str) -> list[Cell]:
    parser = _CellParser()
    parser.feed(markup)
    parser.close()
    assert not parser.open, f"unclosed {parser.open}"
    return parser.cells


def row_cells(g: dict[str, Any], index: int) -> list[Cell]:
    cells = g["rows"][index]["cells"]
    assert isinstance(cells, Markup)  # the template must not escape it again
    return cells_of(str(cells))


def summary(cell: Cell) -> tuple[str | None, str | None, str | None, str]:
    """(data-step, class, href, text) of a cell."""
    return (cell.step, cell.classes, cell.href, cell.text)


def layout(header: list[list[tuple[str, int, int]]], width: int) -> list[str]:
    """Lay header cells out the way a browser does (each row fills the first free slots,
    rowspan reserves slots below) and return every column's path of names, joined by /.
    Fails on any overlap, overflow or hole."""
    slots: list[list[tuple[int, int] | None]] = [[None] * width for _ in header]
    for r, row in enumerate(header):
        c = 0
        for i, (name, colspan, rowspan) in enumerate(row):
            assert colspan >= 1 and rowspan >= 1, (name, colspan, rowspan)
            while c < width and slots[r][c] is not None:
                c += 1
            assert c + colspan <= width, f"{name} overflows the {width} columns"
            assert r + rowspan <= len(header), f"{name} reaches below the header"
            for dr in range(rowspan):
                for dc in range(colspan):
                    assert slots[r + dr][c + dc] is None, f"{name} overlaps"
                    slots[r + dr][c + dc] = (r, i)
            c += colspan
    for r, row_slots in enumerate(slots):
        assert None not in row_slots, f"header row {r} leaves a hole: {row_slots}"
    paths = []
    for c in range(width):
        cells = dict.fromkeys(row_slots[c] for row_slots in slots)  # a rowspan counts once
        paths.append("/".join(header[r][i][0] for r, i in cells))  # type: ignore[misc]
    return paths


def check_consistent(g: dict[str, Any]) -> list[str]:
    """The header lays out without gaps or overlaps over exactly the columns every row has
    cells for, and names each column the same path as its cells' data-step."""
    widths = {len(row_cells(g, i)) for i in range(len(g["rows"]))}
    assert len(widths) <= 1, f"rows of different widths: {widths}"
    width = widths.pop() if widths else 0
    paths = layout(header_of(g), width) if g["header"] else []
    assert len(paths) == width
    for i in range(len(g["rows"])):
        assert [c.step or p for c, p in zip(row_cells(g, i), paths, strict=True)] == paths
    return paths


# -- span_tree ------------------------------------------------------------------------------


def test_span_tree_nests_children_under_their_parents_in_start_order() -> None:
    spans = [
        span("c2", "late", 5 * S, 6 * S, parent="r"),
        span("g1", "grandchild", 3 * S, 4 * S, parent="c1"),
        span("r", "root", 1 * S, 9 * S),
        span("c1", "early", 2 * S, 5 * S, parent="r"),
        span("c0", "first", 1 * S, 2 * S, parent="r"),
    ]
    (root,) = steps.span_tree(spans)
    assert root["span_id"] == "r"
    assert [c["span_id"] for c in root["children"]] == ["c0", "c1", "c2"]
    assert [g["span_id"] for g in root["children"][1]["children"]] == ["g1"]
    assert root["children"][0]["children"] == [] and root["children"][2]["children"] == []
    # every key of the span is kept
    assert {k: v for k, v in root["children"][0].items() if k != "children"} == spans[4]


def test_span_tree_breaks_start_ties_by_span_id() -> None:
    spans = [
        span("r", "root", 1 * S, 9 * S),
        span("b", "b", 2 * S, 3 * S, parent="r"),
        span("a", "a", 2 * S, 3 * S, parent="r"),
    ]
    (root,) = steps.span_tree(spans)
    assert [c["span_id"] for c in root["children"]] == ["a", "b"]


def test_span_tree_makes_orphans_and_self_parented_spans_roots_in_start_order() -> None:
    spans = [
        span("o2", "orphan late", 7 * S, 8 * S, parent="gone"),
        span("r", "root", 2 * S, 9 * S),
        span("o1", "orphan early", 1 * S, 3 * S, parent="missing"),
        span("me", "self", 3 * S, 4 * S, parent="me"),
        span("k", "kid of orphan", 1 * S, 2 * S, parent="o2"),
    ]
    roots = steps.span_tree(spans)
    assert [r["span_id"] for r in roots] == ["o1", "r", "me", "o2"]
    assert [c["span_id"] for c in roots[3]["children"]] == ["k"]
    assert all(r["children"] == [] for r in roots[:3])


def test_span_tree_leaves_its_input_alone() -> None:
    spans = [span("r", "root", 1 * S, 9 * S), span("a", "a", 2 * S, 3 * S, parent="r")]
    before = [dict(s) for s in spans]
    first = steps.span_tree(spans)
    assert spans == before  # no `children` added to the caller's dicts
    assert steps.span_tree(spans) == first  # so a second call does not double up
    assert steps.span_tree([]) == []


# -- build_steps ----------------------------------------------------------------------------


def test_build_steps_are_the_children_of_the_root_span() -> None:
    spans = [
        span("r", "build", 1 * S, 9 * S),
        span("b", "test", 3 * S, 4 * S, parent="r"),
        span("a", "setup", 2 * S, 3 * S, parent="r"),
        span("x", "inner", 3 * S, 4 * S, parent="b"),
        span("z", "stray", 0 * S + 1, 1 * S, parent="unknown"),  # another root, not shown
    ]
    result = steps.build_steps(spans, "r")
    assert [s["name"] for s in result] == ["setup", "test"]
    assert [s["name"] for s in result[1]["children"]] == ["inner"]


def test_build_steps_are_every_root_while_the_root_span_is_missing() -> None:
    spans = [
        span("b", "test", 3 * S, 4 * S, parent="r"),
        span("a", "setup", 2 * S, 3 * S, parent="r"),
        span("x", "inner", 3 * S, 4 * S, parent="b"),
    ]
    result = steps.build_steps(spans, "r")
    assert [s["span_id"] for s in result] == ["a", "b"]
    assert [s["span_id"] for s in result[1]["children"]] == ["x"]
    assert steps.build_steps([], "r") == []


def test_build_steps_of_a_root_without_children_are_none() -> None:
    spans = [span("r", "build", 1 * S, 9 * S), span("o", "orphan", 2 * S, 3 * S, parent="q")]
    assert steps.build_steps(spans, "r") == []


# -- step_paths -----------------------------------------------------------------------------


def _tree(*spans: dict[str, Any]) -> list[dict[str, Any]]:
    return steps.build_steps(list(spans), "r")


def test_step_paths_walks_depth_first_with_full_paths() -> None:
    tree = _tree(
        span("r", "build", 1 * S, 9 * S),
        span("a", "setup", 2 * S, 3 * S, parent="r"),
        span("b", "test", 3 * S, 6 * S, parent="r"),
        span("c", "unit", 3 * S, 4 * S, parent="b"),
        span("d", "deep", 3 * S, 4 * S, parent="c"),
        span("e", "e2e", 4 * S, 6 * S, parent="b"),
        span("f", "deploy", 6 * S, 7 * S, parent="r"),
    )
    paths = [(p, s["span_id"]) for p, s in steps.step_paths(tree)]
    assert paths == [
        (("setup",), "a"),
        (("test",), "b"),
        (("test", "unit"), "c"),
        (("test", "unit", "deep"), "d"),
        (("test", "e2e"), "e"),
        (("deploy",), "f"),
    ]
    assert [p for p, _ in steps.step_paths(tree, ("pre",))][:2] == [
        ("pre", "setup"),
        ("pre", "test"),
    ]


def test_step_paths_suffixes_repeated_sibling_names_only() -> None:
    tree = _tree(
        span("r", "build", 1 * S, 9 * S),
        span("a1", "retry", 2 * S, 3 * S, parent="r"),
        span("a2", "retry", 3 * S, 4 * S, parent="r"),
        span("k", "check", 3 * S, 4 * S, parent="a2"),
        span("b", "other", 4 * S, 5 * S, parent="r"),
        span("k2", "check", 4 * S, 5 * S, parent="b"),  # same name, other parent: no suffix
        span("a3", "retry", 5 * S, 6 * S, parent="r"),
    )
    paths = [(p, s["span_id"]) for p, s in steps.step_paths(tree)]
    assert paths == [
        (("retry",), "a1"),
        (("retry #2",), "a2"),
        (("retry #2", "check"), "k"),
        (("other",), "b"),
        (("other", "check"), "k2"),
        (("retry #3",), "a3"),
    ]


# -- grid: header ---------------------------------------------------------------------------

# build #1: setup, test{unit, e2e}, deploy (running)
NESTED = [
    span("d1", "deploy", 10 * S, 0, parent="r1", status="running"),
    span("e1", "e2e", 4500 * MS, 10 * S, parent="g1", status="failed"),
    span("r1", "build", 1 * S, 0, status="running"),
    span("s1", "setup", 1 * S, 1500 * MS, parent="r1"),
    span("u1", "unit", 2 * S, 4500 * MS, parent="g1"),
    span("g1", "test", 2 * S, 10 * S, parent="r1", status="failed"),
]

# a{b{c, d}, e}, f
THREE_LEVELS = [
    span("r", "build", 1 * S, 20 * S),
    span("a", "a", 2 * S, 10 * S, parent="r"),
    span("b", "b", 2 * S, 6 * S, parent="a"),
    span("c", "c", 2 * S, 4 * S, parent="b"),
    span("d", "d", 4 * S, 6 * S, parent="b"),
    span("e", "e", 6 * S, 10 * S, parent="a"),
    span("f", "f", 10 * S, 20 * S, parent="r"),
]


def test_header_of_a_group_over_leaf_steps() -> None:
    g = make_grid([build(1, "t1", "r1")], NESTED)
    assert header_of(g) == [
        [("setup", 1, 2), ("test", 2, 1), ("deploy", 1, 2)],
        [("unit", 1, 1), ("e2e", 1, 1)],
    ]
    assert check_consistent(g) == ["setup", "test/unit", "test/e2e", "deploy"]


def test_header_of_three_levels_of_nesting() -> None:
    g = make_grid([build(1, "t1", "r")], THREE_LEVELS)
    assert header_of(g) == [
        [("a", 3, 1), ("f", 1, 3)],
        [("b", 2, 1), ("e", 1, 2)],
        [("c", 1, 1), ("d", 1, 1)],
    ]
    assert check_consistent(g) == ["a/b/c", "a/b/d", "a/e", "f"]


def test_header_of_flat_steps_is_one_row() -> None:
    spans = [
        span("r", "build", 1 * S, 9 * S),
        span("x", "x", 2 * S, 3 * S, parent="r"),
        span("y", "y", 3 * S, 4 * S, parent="r"),
    ]
    g = make_grid([build(1, "t1", "r")], spans)
    assert header_of(g) == [[("x", 1, 1), ("y", 1, 1)]]


def test_header_depth_is_the_deepest_build() -> None:
    # build 2 is flat, build 1 nests 3 deep: the header has 3 rows, the flat step spans them
    flat = [
        span("r2", "build", 1 * S, 9 * S, trace="t2"),
        span("z", "lint", 2 * S, 3 * S, parent="r2", trace="t2"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r")], flat + THREE_LEVELS)
    assert header_of(g) == [
        [("lint", 1, 3), ("a", 3, 1), ("f", 1, 3)],
        [("b", 2, 1), ("e", 1, 2)],
        [("c", 1, 1), ("d", 1, 1)],
    ]
    assert check_consistent(g) == ["lint", "a/b/c", "a/b/d", "a/e", "f"]


def test_no_builds_no_header_no_rows() -> None:
    assert make_grid([], NESTED) == {"header": [], "rows": []}


def test_builds_without_spans_get_rows_without_cells() -> None:
    b = build(1, "nothing", "r")
    g = make_grid([b], NESTED)
    assert g["header"] == []
    assert g["rows"] == [{"build": b, "cells": Markup("")}]


# -- grid: cells ----------------------------------------------------------------------------


def test_cells_one_per_leaf_column_with_status_link_and_duration() -> None:
    b = build(1, "t1", "r1", state="running")
    g = make_grid([b], NESTED)
    (row,) = g["rows"]
    assert row["build"] is b
    cells = row_cells(g, 0)
    assert [summary(c) for c in cells] == [
        ("setup", "cell s-ok", "/pipelines/demo/1#step-s1", "500ms"),
        ("test/unit", "cell s-ok", "/pipelines/demo/1#step-u1", "2.5s"),
        ("test/e2e", "cell s-failed", "/pipelines/demo/1#step-e1", "5.5s"),
        # running: measured to now
        ("deploy", "cell s-running", "/pipelines/demo/1#step-d1", "16m 30s"),
    ]
    assert [c.get("data-status") for c in cells] == ["ok", "ok", "failed", "running"]
    assert [c.get("title") for c in cells] == [
        "setup: ok",
        "unit: ok",
        "e2e: failed",
        "deploy: running",
    ]
    assert all(c.tags == ["td", "a"] for c in cells)
    assert all(
        [k for k, _ in c.attrs] == ["class", "data-step", "data-status", "title"] for c in cells
    )


def test_a_step_whose_children_did_not_run_fills_their_columns_as_inherited() -> None:
    skipped = [
        span("r2", "build", 1 * S, 3 * S, trace="t2", status="failed"),
        span("s2", "setup", 1 * S, 2 * S, parent="r2", trace="t2", status="failed"),
        span("g2", "test", 2 * S, 2 * S, parent="r2", trace="t2", status="skipped"),
        span("d2", "deploy", 3 * S, 3 * S, parent="r2", trace="t2", status="skipped"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], skipped + NESTED)
    assert header_of(g) == [
        [("setup", 1, 2), ("test", 2, 1), ("deploy", 1, 2)],
        [("unit", 1, 1), ("e2e", 1, 1)],
    ]
    cells = row_cells(g, 0)
    assert [summary(c) for c in cells] == [
        ("setup", "cell s-failed", "/pipelines/demo/2#step-s2", "1.0s"),
        ("test/unit", "cell s-skipped inherited", "/pipelines/demo/2#step-g2", ""),
        ("test/e2e", "cell s-skipped inherited", "/pipelines/demo/2#step-g2", ""),
        ("deploy", "cell s-skipped", "/pipelines/demo/2#step-d2", "skipped"),
    ]
    # the title names the step that holds the status, the data-step the column
    assert [c.get("title") for c in cells[1:3]] == ["test: skipped", "test: skipped"]
    assert [c.get("data-status") for c in cells] == ["failed", "skipped", "skipped", "skipped"]
    # the other build's own cells are not inherited
    assert [c.classes for c in row_cells(g, 1)] == [
        "cell s-ok",
        "cell s-ok",
        "cell s-failed",
        "cell s-running",
    ]
    check_consistent(g)


def test_a_group_that_stopped_half_way_fills_the_children_it_did_not_run() -> None:
    # build 2's setup ran checkout then failed: deps never ran
    done = [
        span("r1", "build", 1 * S, 9 * S),
        span("s1", "setup", 1 * S, 3 * S, parent="r1"),
        span("c1", "checkout", 1 * S, 2 * S, parent="s1"),
        span("p1", "deps", 2 * S, 3 * S, parent="s1"),
    ]
    failed = [
        span("r2", "build", 1 * S, 9 * S, trace="t2", status="failed"),
        span("s2", "setup", 1 * S, 3 * S, parent="r2", trace="t2", status="failed"),
        span("c2", "checkout", 1 * S, 2 * S, parent="s2", trace="t2", status="failed"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], failed + done)
    assert [summary(c) for c in row_cells(g, 0)] == [
        ("setup/checkout", "cell s-failed", "/pipelines/demo/2#step-c2", "1.0s"),
        ("setup/deps", "cell s-failed inherited", "/pipelines/demo/2#step-s2", ""),
    ]


def test_inheritance_reaches_up_several_levels_to_the_nearest_step_that_ran() -> None:
    only_a = [
        span("r2", "build", 1 * S, 9 * S, trace="t2"),
        span("a2", "a", 2 * S, 2 * S, parent="r2", trace="t2", status="skipped"),
        span("f2", "f", 2 * S, 3 * S, parent="r2", trace="t2"),
    ]
    down_to_b = [
        span("r3", "build", 1 * S, 9 * S, trace="t3"),
        span("a3", "a", 2 * S, 3 * S, parent="r3", trace="t3", status="failed"),
        span("b3", "b", 2 * S, 3 * S, parent="a3", trace="t3", status="cancelled"),
    ]
    builds = [build(3, "t3", "r3"), build(2, "t2", "r2"), build(1, "t1", "r")]
    g = make_grid(builds, down_to_b + only_a + THREE_LEVELS)
    assert check_consistent(g) == ["a/b/c", "a/b/d", "a/e", "f"]
    assert [summary(c) for c in row_cells(g, 0)] == [
        ("a/b/c", "cell s-cancelled inherited", "/pipelines/demo/3#step-b3", ""),
        ("a/b/d", "cell s-cancelled inherited", "/pipelines/demo/3#step-b3", ""),
        ("a/e", "cell s-failed inherited", "/pipelines/demo/3#step-a3", ""),
        (None, "cell none", None, ""),
    ]
    assert [summary(c) for c in row_cells(g, 1)] == [
        ("a/b/c", "cell s-skipped inherited", "/pipelines/demo/2#step-a2", ""),
        ("a/b/d", "cell s-skipped inherited", "/pipelines/demo/2#step-a2", ""),
        ("a/e", "cell s-skipped inherited", "/pipelines/demo/2#step-a2", ""),
        ("f", "cell s-ok", "/pipelines/demo/2#step-f2", "1.0s"),
    ]
    assert [c.href for c in row_cells(g, 2)] == [
        "/pipelines/demo/1#step-c",
        "/pipelines/demo/1#step-d",
        "/pipelines/demo/1#step-e",
        "/pipelines/demo/1#step-f",
    ]
    assert all("inherited" not in (c.classes or "") for c in row_cells(g, 2))


def test_a_step_a_build_lacks_is_an_empty_cell() -> None:
    short = [
        span("r2", "build", 1 * S, 9 * S, trace="t2"),
        span("s2", "setup", 1 * S, 2 * S, parent="r2", trace="t2"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], short + NESTED)
    markup = str(g["rows"][0]["cells"])
    empty = '<td class="cell none"></td>'
    assert markup.count(empty) == 3 and markup.endswith(empty * 3)
    cells = row_cells(g, 0)
    assert [summary(c) for c in cells] == [
        ("setup", "cell s-ok", "/pipelines/demo/2#step-s2", "1.0s"),
        (None, "cell none", None, ""),
        (None, "cell none", None, ""),
        (None, "cell none", None, ""),
    ]
    assert all(c.tags == ["td"] and c.attrs == [("class", "cell none")] for c in cells[1:])


def test_a_build_without_spans_is_a_row_of_empty_cells() -> None:
    g = make_grid([build(2, "none-yet", "r2"), build(1, "t1", "r1")], NESTED)
    assert [summary(c) for c in row_cells(g, 0)] == [(None, "cell none", None, "")] * 4
    assert len(row_cells(g, 1)) == 4


def test_each_row_shows_its_own_builds_spans_and_url() -> None:
    a = [
        span("ra", "build", 1 * S, 9 * S, trace="ta"),
        span("xa", "x", 1 * S, 2 * S, parent="ra", trace="ta"),
    ]
    b = [
        span("rb", "build", 1 * S, 9 * S, trace="tb", status="failed"),
        span("xb", "x", 1 * S, 4 * S, parent="rb", trace="tb", status="failed"),
    ]
    builds = [build(8, "tb", "rb"), build(7, "ta", "ra")]
    g = make_grid(builds, a + b, build_url=lambda bd: f"/p/{bd['number']}")
    assert [r["build"]["number"] for r in g["rows"]] == [8, 7]
    assert [summary(c) for c in row_cells(g, 0)] == [("x", "cell s-failed", "/p/8#step-xb", "3.0s")]
    assert [summary(c) for c in row_cells(g, 1)] == [("x", "cell s-ok", "/p/7#step-xa", "1.0s")]


def test_a_build_whose_root_span_is_missing_still_shows_its_steps() -> None:
    partial = [s for s in NESTED if s["span_id"] != "r1"]
    g = make_grid([build(1, "t1", "r1")], partial)
    assert check_consistent(g) == ["setup", "test/unit", "test/e2e", "deploy"]
    assert [c.href for c in row_cells(g, 0)] == [
        "/pipelines/demo/1#step-s1",
        "/pipelines/demo/1#step-u1",
        "/pipelines/demo/1#step-e1",
        "/pipelines/demo/1#step-d1",
    ]


# -- grid: columns across builds ------------------------------------------------------------


def test_columns_are_the_union_of_all_builds_in_order_of_first_appearance() -> None:
    newer = [
        span("r2", "build", 1 * S, 9 * S, trace="t2"),
        span("b2", "build-it", 1 * S, 2 * S, parent="r2", trace="t2"),
        span("t2", "test", 2 * S, 3 * S, parent="r2", trace="t2"),
    ]
    older = [  # has a lint step the newer build dropped
        span("r1", "build", 1 * S, 9 * S),
        span("b1", "build-it", 1 * S, 2 * S, parent="r1"),
        span("l1", "lint", 2 * S, 3 * S, parent="r1"),
        span("t1", "test", 3 * S, 4 * S, parent="r1"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], newer + older)
    assert check_consistent(g) == ["build-it", "test", "lint"]
    assert [c.step for c in row_cells(g, 0)] == ["build-it", "test", None]
    assert [c.href for c in row_cells(g, 1)] == [
        "/pipelines/demo/1#step-b1",
        "/pipelines/demo/1#step-t1",
        "/pipelines/demo/1#step-l1",
    ]


def test_a_child_only_an_older_build_has_joins_its_group() -> None:
    newer = [
        span("r2", "build", 1 * S, 9 * S, trace="t2"),
        span("g2", "test", 1 * S, 3 * S, parent="r2", trace="t2"),
        span("u2", "unit", 1 * S, 3 * S, parent="g2", trace="t2"),
        span("d2", "deploy", 3 * S, 4 * S, parent="r2", trace="t2"),
    ]
    older = [
        span("r1", "build", 1 * S, 9 * S),
        span("g1", "test", 1 * S, 3 * S, parent="r1"),
        span("u1", "unit", 1 * S, 2 * S, parent="g1"),
        span("e1", "e2e", 2 * S, 3 * S, parent="g1"),
        span("d1", "deploy", 3 * S, 4 * S, parent="r1"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], newer + older)
    assert header_of(g) == [
        [("test", 2, 1), ("deploy", 1, 2)],
        [("unit", 1, 1), ("e2e", 1, 1)],
    ]
    assert check_consistent(g) == ["test/unit", "test/e2e", "deploy"]
    # the newer build ran its test group, so e2e's missing cell falls back to the group
    assert [summary(c) for c in row_cells(g, 0)] == [
        ("test/unit", "cell s-ok", "/pipelines/demo/2#step-u2", "2.0s"),
        ("test/e2e", "cell s-ok inherited", "/pipelines/demo/2#step-g2", ""),
        ("deploy", "cell s-ok", "/pipelines/demo/2#step-d2", "1.0s"),
    ]


def test_column_order_follows_start_order_not_names() -> None:
    spans = [
        span("r", "build", 1 * S, 9 * S),
        span("z", "zeta", 1 * S, 2 * S, parent="r"),
        span("m", "mid", 2 * S, 3 * S, parent="r"),
        span("a", "alpha", 3 * S, 4 * S, parent="r"),
    ]
    g = make_grid([build(1, "t1", "r")], list(reversed(spans)))
    assert [h["name"] for h in g["header"][0]] == ["zeta", "mid", "alpha"]
    assert [c.href for c in row_cells(g, 0)] == [
        "/pipelines/demo/1#step-z",
        "/pipelines/demo/1#step-m",
        "/pipelines/demo/1#step-a",
    ]


def test_repeated_sibling_names_share_one_column_showing_the_last_run() -> None:
    spans = [
        span("r", "build", 1 * S, 9 * S),
        span("a1", "retry", 1 * S, 2 * S, parent="r", status="failed"),
        span("a2", "retry", 2 * S, 3 * S, parent="r", status="failed"),
        span("a3", "retry", 3 * S, 4 * S, parent="r"),
    ]
    g = make_grid([build(1, "t1", "r")], spans)
    assert header_of(g) == [[("retry", 1, 1)]]
    assert [summary(c) for c in row_cells(g, 0)] == [
        ("retry", "cell s-ok", "/pipelines/demo/1#step-a3", "1.0s")
    ]


def test_columns_follow_the_pipelines_order_not_the_order_steps_ran_in() -> None:
    """The builder gives each node its place (bass.position): setup, steps in order,
    teardown; unordered steps that started in another order keep their columns."""

    def placed(span_id: str, name: str, start: int, position: str, **kw: Any) -> dict:
        return {**span(span_id, name, start, start + S, **kw), "position": position}

    first = [span("r1", "build", 0, 9 * S), span("c1", "checkout", 0, S, parent="r1"),
             placed("p1", "pipe", S, "", parent="r1"),
             placed("z1", "zeta", 4 * S, "steps[2]", parent="p1"),
             placed("a1", "alpha", 2 * S, "steps[0]", parent="p1"),
             placed("t1", "down", 8 * S, "teardown", parent="p1"),
             placed("m1", "mid", 3 * S, "steps[1]", parent="p1"),
             placed("s1", "up", S, "setup", parent="p1")]  # fmt: skip
    second = [{**x, "trace_id": "t2", "span_id": x["span_id"][0] + "2",
               "parent_span_id": (x["parent_span_id"][0] + "2") if x["parent_span_id"] else "",
               "start_ns": 20 * S - x["start_ns"] if x.get("position") else x["start_ns"]}
              for x in first]  # fmt: skip
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], second + first)
    assert check_consistent(g) == [
        "checkout", "pipe/up", "pipe/alpha", "pipe/mid", "pipe/zeta", "pipe/down"]  # fmt: skip


# -- grid: escaping -------------------------------------------------------------------------

NASTY_NAME = "<b>x</b> & \"q\" 'a'"
NASTY_GROUP = 'g"><script>alert(1)</script>'


def test_every_value_in_a_cell_is_escaped() -> None:
    spans = [
        span("r", "build", 1 * S, 9 * S),
        span("g", NASTY_GROUP, 1 * S, 2 * S, parent="r"),
        span('s"1<', NASTY_NAME, 1 * S, 2 * S, parent="g", status='ok" x="<i>'),
    ]
    g = make_grid([build(1, "t1", "r")], spans, build_url=lambda _: '/p?a=1&b="2"')
    markup = str(g["rows"][0]["cells"])
    for raw in ("<b>", "<script>", "<i>", '"q"', '"2"', "&b", 's"1<'):
        assert raw not in markup, raw
    (cell,) = cells_of(markup)
    assert cell.tags == ["td", "a"]  # nothing smuggled in as a tag...
    assert [k for k, _ in cell.attrs] == ["class", "data-step", "data-status", "title"]
    assert [k for k, _ in cell.link or []] == ["href"]  # ...or as an attribute
    assert cell.step == f"{NASTY_GROUP}/{NASTY_NAME}"
    assert cell.get("data-status") == 'ok" x="<i>'
    assert cell.classes == 'cell s-ok" x="<i>'
    assert cell.get("title") == f'{NASTY_NAME}: ok" x="<i>'
    assert cell.href == '/p?a=1&b="2"#step-s"1<'
    assert cell.text == "1.0s"


def test_an_inherited_cell_escapes_the_column_and_the_step_that_holds_it() -> None:
    full = [
        span("r1", "build", 1 * S, 9 * S),
        span("g1", NASTY_GROUP, 1 * S, 2 * S, parent="r1"),
        span("c1", NASTY_NAME, 1 * S, 2 * S, parent="g1"),
    ]
    skipped = [
        span("r2", "build", 1 * S, 9 * S, trace="t2"),
        span("g2", NASTY_GROUP, 1 * S, 1 * S, parent="r2", trace="t2", status="skipped"),
    ]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r1")], skipped + full)
    markup = str(g["rows"][0]["cells"])
    assert "<script>" not in markup and "<b>" not in markup
    (cell,) = cells_of(markup)
    assert cell.tags == ["td", "a"]
    assert cell.step == f"{NASTY_GROUP}/{NASTY_NAME}"
    assert cell.get("title") == f"{NASTY_GROUP}: skipped"
    assert cell.classes == "cell s-skipped inherited"


def test_header_names_are_plain_strings_for_the_template_to_escape() -> None:
    spans = [
        span("r", "build", 1 * S, 9 * S),
        span("g", NASTY_GROUP, 1 * S, 2 * S, parent="r"),
        span("c", NASTY_NAME, 1 * S, 2 * S, parent="g"),
    ]
    g = make_grid([build(1, "t1", "r")], spans)
    names = [h["name"] for row in g["header"] for h in row]
    assert names == [NASTY_GROUP, NASTY_NAME]
    assert not any(isinstance(n, Markup) for n in names)


# -- grid through the real template ---------------------------------------------------------

_MACROS_STUB = """
{% macro badge(status) %}<span class="badge">{{ status }}</span>{% endmacro %}
{% macro build_link(build) %}<a href="#">#{{ build.number }}</a>{% endmacro %}
{% macro build_duration(build, now_ns) %}{% endmacro %}
{% macro source(build) %}{{ build.get('branch') }}{% endmacro %}
{% macro when(ts) %}{% endmacro %}
"""


class _TableParser(HTMLParser):
    """<thead> and <tbody> rows as lists of (tag, attrs, text) of their cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, list[list[tuple[str, dict[str, str | None], str]]]] = {}
        self.section = ""
        self.cell: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("thead", "tbody"):
            self.section = tag
            self.sections[tag] = []
        elif tag == "tr":
            self.sections[self.section].append([])
        elif tag in ("th", "td"):
            assert self.cell is None, "cell in a cell"
            self.cell = [tag, dict(attrs), ""]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td"):
            assert self.cell is not None
            self.sections[self.section][-1].append(
                (self.cell[0], self.cell[1], " ".join(self.cell[2].split()))
            )
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[2] += data


def render_grid(g: dict[str, Any]) -> _TableParser:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.DictLoader({"_macros.html": _MACROS_STUB}),
                jinja2.FileSystemLoader(str(Path(bass.__file__).parent / "templates")),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["ago"] = lambda _ts: ""
    html = env.get_template("_grid.html").render(grid=g, active=False, now_ns=NOW)
    assert "<script>" not in html and "<b>" not in html
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    return parser


def test_the_template_renders_a_well_formed_table() -> None:
    nested = [
        span("r2", "build", 1 * S, 9 * S, trace="t2", status="failed"),
        span("a2", NASTY_GROUP, 1 * S, 1 * S, parent="r2", trace="t2", status="skipped"),
        span("f2", "f", 2 * S, 3 * S, parent="r2", trace="t2", status="failed"),
    ]
    renamed = [dict(s, name=NASTY_GROUP) if s["span_id"] == "a" else s for s in THREE_LEVELS]
    g = make_grid([build(2, "t2", "r2"), build(1, "t1", "r")], nested + renamed)
    table = render_grid(g)
    thead = table.sections["thead"]
    header = [
        [(attrs["title"] or "", int(attrs["colspan"] or 0), int(attrs["rowspan"] or 0))
         for _tag, attrs, _ in row if attrs.get("class") != "build-col"]
        for row in thead
    ]  # fmt: skip
    # the text of each <th> is its name, escaped on the way in and read back intact
    # (a group's name follows the ▾ that folds it)
    assert [[text for _, a, text in row if a.get("class") != "build-col"] for row in thead] == [
        [f"▾ {NASTY_GROUP}", "f"],
        ["▾ b", "e"],
        ["c", "d"],
    ]
    groups = [a.get("data-group") for row in thead for _, a, _ in row if a.get("data-group")]
    assert groups == [NASTY_GROUP, f"{NASTY_GROUP}/b"]
    assert header[0][0] == (NASTY_GROUP, 3, 1)
    (build_col,) = [a for _, a, _ in thead[0] if a.get("class") == "build-col"]
    assert build_col["rowspan"] == "3"
    paths = layout(header, 4)
    assert paths == [f"{NASTY_GROUP}/b/c", f"{NASTY_GROUP}/b/d", f"{NASTY_GROUP}/e", "f"]
    body = table.sections["tbody"]
    assert len(body) == 2
    for row in body:
        (first, *cells) = row
        assert first[0] == "th" and first[1]["class"] == "build-col"
        assert [attrs.get("data-step") for _, attrs, _ in cells] == paths
    assert [attrs["class"] for _, attrs, _ in body[0][1:]] == [
        "cell s-skipped inherited",
        "cell s-skipped inherited",
        "cell s-skipped inherited",
        "cell s-failed",
    ]


def test_the_template_without_steps_has_one_header_cell() -> None:
    g = make_grid([build(1, "none", "r")], [])
    table = render_grid(g)
    assert [[a.get("class") for _, a, _ in row] for row in table.sections["thead"]] == [
        ["build-col"]
    ]
    assert [len(row) for row in table.sections["tbody"]] == [1]


# -- timeline -------------------------------------------------------------------------------


def test_timeline_rows_depth_first_with_bars_ticks_and_total() -> None:
    spans = [
        span("c", "c", 16 * S, 17 * S, parent="b"),
        span("b", "b", 15 * S, 20 * S, parent="r"),
        span("a", "a", 10 * S, 15 * S, parent="r"),
        span("r", "build", 10 * S, 20 * S),
    ]
    t = waterfall.waterfall(spans, now_ns=NOW)
    assert [
        (r["span"]["span_id"], r["depth"], r["left"], r["width"], r["duration"]) for r in t["rows"]
    ] == [
        ("r", 0, 0, 100, "10.0s"),
        ("a", 1, 0, 50, "5.0s"),
        ("b", 1, 50, 50, "5.0s"),
        ("c", 2, 60, 10, "1.0s"),
    ]
    assert t["ticks"] == [(0, "0"), (25, "2.5s"), (50, "5.0s"), (75, "7.5s"), (100, "10.0s")]
    assert t["total"] == "10.0s"


def test_timeline_running_spans_reach_to_now() -> None:
    spans = [
        span("r", "build", 100 * S, 0, status="running"),
        span("a", "a", 100 * S, 110 * S, parent="r"),
        span("b", "b", 110 * S, 0, parent="r", status="running"),
    ]
    t = waterfall.waterfall(spans, now_ns=140 * S)
    assert [(r["span"]["span_id"], r["left"], r["width"], r["duration"]) for r in t["rows"]] == [
        ("r", 0, 100, "40.0s"),
        ("a", 0, 25, "10.0s"),
        ("b", 25, 75, "30.0s"),
    ]
    assert t["total"] == "40.0s"
    assert t["ticks"] == [(0, "0"), (25, "10.0s"), (50, "20.0s"), (75, "30.0s"), (100, "40.0s")]


def test_timeline_leaves_out_unstarted_spans_and_roots_their_children() -> None:
    spans = [
        span("r", "build", 10 * S, 30 * S),
        span("w", "waiting", 0, 0, parent="r", status="queued"),
        span("k", "kid of unstarted", 20 * S, 30 * S, parent="w"),
    ]
    t = waterfall.waterfall(spans, now_ns=NOW)
    assert [(r["span"]["span_id"], r["depth"], r["left"], r["width"]) for r in t["rows"]] == [
        ("r", 0, 0, 100),
        ("k", 0, 50, 50),
    ]


def test_timeline_clamps_spans_ending_before_they_start() -> None:
    spans = [
        span("r", "build", 10 * S, 20 * S),
        span("x", "skewed", 30 * S, 25 * S, parent="r"),
    ]
    t = waterfall.waterfall(spans, now_ns=NOW)
    assert [(r["span"]["span_id"], r["left"], r["width"], r["duration"]) for r in t["rows"]] == [
        ("r", 0, 50, "10.0s"),
        ("x", 100, 0.2, "0ms"),
    ]
    assert t["total"] == "20.0s"


def test_timeline_rounds_to_three_places_and_of_nothing_is_empty() -> None:
    spans = [span("r", "build", 1 * S, 4 * S), span("a", "a", 2 * S, 3 * S, parent="r")]
    (_, a) = waterfall.waterfall(spans, now_ns=NOW)["rows"]
    assert (a["left"], a["width"]) == (33.333, 33.333)
    empty = waterfall.waterfall([span("z", "z", 0, 0)], now_ns=NOW)
    assert (empty["rows"], empty["ticks"], empty["total"], empty["count"]) == ([], [], "", 0)


# -- duration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "now", "expected"),
    [
        (0, 5 * S, NOW, ""),  # not started
        (S, S, NOW, "0ms"),
        (S, S + 1, NOW, "0ms"),
        (S, S + 850 * MS, NOW, "850ms"),
        (S, S + 999 * MS, NOW, "999ms"),
        (S, 2 * S, NOW, "1.0s"),
        (S, S + 12_340 * MS, NOW, "12.3s"),
        (S, S + 59_900 * MS, NOW, "59.9s"),
        (S, S + 60 * S, NOW, "1m 00s"),
        (S, S + 245 * S, NOW, "4m 05s"),
        (S, S + 3599 * S, NOW, "59m 59s"),
        (S, S + 3600 * S, NOW, "1h 00m"),
        (S, S + (2 * 3600 + 3 * 60 + 59) * S, NOW, "2h 03m"),
        (S, S + 100 * 3600 * S, NOW, "100h 00m"),
        (S, 0, 11 * S, "10.0s"),  # running: to now
        (S, 0, S + 61 * S, "1m 01s"),
        (5 * S, 4 * S, NOW, "0ms"),  # clocks disagree: never negative
        (5 * S, 0, 4 * S, "0ms"),
    ],
)
def test_duration(start: int, end: int, now: int, expected: str) -> None:
    assert steps.duration(start, end, now) == expected


def test_spans_of_other_tools_in_a_build_never_change_the_grids_columns(app) -> None:
    """A step's test runner exports its own spans into the build's trace: they are in
    the step's trace, never grid columns, and no row's columns change."""
    from tests.unit.helpers import span as otlp_span
    from tests.unit.helpers import start_build, trace_of

    def columns(page: str) -> dict[str, list[str]]:
        rows = re.findall(r'<tr data-build="(\d+)">(.*?)</tr>', page, re.S)
        return {n: re.findall(r'data-step="([^"]*)"', cells) for n, cells in rows}

    jobs = [start_build(app) for _ in range(2)]
    for job in jobs:
        trace, root = trace_of(job), job["otel"]["root-span-id"]
        app.send_spans(otlp_span(trace, "a" * 16, parent=root, name="lint", end=2),
                   otlp_span(trace, "b" * 16, parent=root, name="test", end=3),
                   scope="bass_builder")  # fmt: skip
    before = columns(app.client.get("/pipelines/demo").text)
    assert before == {"2": ["lint", "test"], "1": ["lint", "test"]}
    trace = trace_of(jobs[1])
    foreign = [otlp_span(trace, f"{i:016x}", parent="b" * 16, name=f"test_{i}", end=3)
               for i in range(1, 30)]  # fmt: skip
    app.send_spans(*foreign, scope="opentelemetry.instrumentation.pytest")
    assert columns(app.client.get("/pipelines/demo").text) == before
    # they are in the build's trace, under their step
    tree = app.client.get(f"/api/traces/{trace}").json()["spans"]
    step = next(node for node in tree if node["name"] == "test")
    assert len(step["children"]) == 29


def test_the_grid_page_of_30_builds_of_many_spans_stays_small(app) -> None:
    """30 builds of 40 steps each, and 500 spans of other tools in every one: the page
    holds the steps only (the issue's bound: 300 KB for 30 builds × 3,500 spans)."""
    from tests.unit.helpers import span as otlp_span
    from tests.unit.helpers import start_build, trace_of

    for _ in range(30):
        job = start_build(app)
        trace, root = trace_of(job), job["otel"]["root-span-id"]
        groups = [otlp_span(trace, f"{g:016x}", parent=root, name=f"group {g}", end=5)
                  for g in range(1, 5)]  # fmt: skip
        leaves = [otlp_span(trace, f"{g:08x}{i:08x}", parent=f"{g:016x}", name=f"step {i}", end=4,
                            attributes=[{"key": "bass.position",
                                         "value": {"stringValue": f"steps[{i}]"}}])
                  for g in range(1, 5) for i in range(10)]  # fmt: skip
        app.send_spans(*groups, *leaves, scope="bass_builder")
        foreign = [otlp_span(trace, f"f{i:015x}", parent=f"{1:08x}{0:08x}", name=f"t{i}", end=3)
                   for i in range(500)]  # fmt: skip
        app.send_spans(*foreign, scope="pytest")
    page = app.client.get("/pipelines/demo")
    assert page.status_code == 200
    assert page.text.count('<td class="cell') == 30 * 40
    assert len(page.content) < 300_000, len(page.content)
