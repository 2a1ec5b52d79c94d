"""Spans as the dashboard shows them: a build's step tree, a pipeline's step grid."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

Path = tuple[str, ...]


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest spans under their parents (each gets `children`); spans whose parent is
    absent are roots. Children keep start order."""
    by_id = {s["span_id"]: {**s, "children": []} for s in spans}
    roots = []
    for node in sorted(by_id.values(), key=lambda s: (s["start_ns"], s["span_id"])):
        parent = by_id.get(node["parent_span_id"])
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            roots.append(node)
    return roots


def build_steps(spans: list[dict[str, Any]], root_span_id: str) -> list[dict[str, Any]]:
    """The steps of a build: the children of its root span (the build itself), or every
    root when the root span has not arrived."""
    roots = span_tree(spans)
    for root in roots:
        if root["span_id"] == root_span_id:
            return root["children"]
    return roots


def step_paths(
    steps: list[dict[str, Any]], prefix: Path = (), unique: bool = True
) -> list[tuple[Path, dict]]:
    """(path of names, span) for every step, depth first. A name used twice under one
    parent gets a ` #2` suffix so each path stays unique (unless not `unique`: then the
    repeats share the path, and the last one run is what a dict of them keeps)."""
    out: list[tuple[Path, dict]] = []
    seen: dict[str, int] = {}
    for step in steps:
        seen[step["name"]] = seen.get(step["name"], 0) + 1
        repeat = seen[step["name"]]
        name = step["name"] if repeat == 1 or not unique else f"{step['name']} #{repeat}"
        path = (*prefix, name)
        out.append((path, step))
        out.extend(step_paths(step["children"], path, unique))
    return out


_PLACE = re.compile(r"(setup|teardown|steps\[(\d+)\])$")


def _place(position: Any, seen: int) -> tuple[int, ...]:
    """Where a step's column goes among its siblings': the place the pipeline gives its
    node (the builder's `bass.position`: setup, its steps in order, teardown), else (a
    step of the worker's, or of an older builder) the order it was first seen in."""
    found = _PLACE.search(position) if isinstance(position, str) else None
    if found is None:
        return (0, seen)
    if found.group(2) is not None:
        return (2, int(found.group(2)))
    return (1, 0) if found.group(1) == "setup" else (3, 0)


@dataclass
class _Column:
    name: str
    place: tuple[int, ...] = (0, 0)
    children: dict[str, _Column] = field(default_factory=dict)

    def ordered(self) -> list[tuple[str, _Column]]:
        return sorted(self.children.items(), key=lambda item: item[1].place)

    def leaves(self, path: Path) -> list[Path]:
        if not self.children:
            return [path]
        return [leaf for n, c in self.ordered() for leaf in c.leaves((*path, n))]

    def depth(self) -> int:
        return 1 + max((c.depth() for c in self.children.values()), default=0)


_EMPTY_CELL = Markup('<td class="cell none"></td>')


def _cell(step: str, span: dict[str, Any], inherited: bool, now_ns: int, url: str) -> str:
    """One `<td>` of the grid, a link to the step on its build's page. A page holds
    hundreds of cells, so they are rendered here rather than by the template, at a
    tenth of the cost; every value is escaped."""
    status = escape(span["bass_status"])
    if inherited:
        text = ""
    elif span["bass_status"] == "skipped":
        text = "skipped"
    else:
        text = duration(span["start_ns"], span["end_ns"], now_ns)
    return (
        f'<td class="cell s-{status}{" inherited" if inherited else ""}" '
        f'data-step="{escape(step)}" data-status="{status}" '
        f'title="{escape(span["name"])}: {status}">'
        f'<a href="{escape(url)}#step-{escape(span["span_id"])}">{text}</a></td>'
    )


def grid(
    builds: list[dict[str, Any]],
    spans: list[dict[str, Any]],
    now_ns: int,
    build_url: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """Builds as rows, steps as columns, nested steps grouped under their parent.

    Returns `header` (rows of {name, colspan, rowspan, path}; a step's column, a leaf,
    also has `runs`: its span in each row's build, None where it did not run, for the
    figures its header shows) and `rows` ({build, cells}); `cells` is the row's `<td>`s
    as markup. A step that did not run its children (skipped, failed setup) fills their
    cells as `inherited`.
    """
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    top = _Column("")
    per_build: list[dict[Path, dict]] = []
    seen = 0
    for build in builds:  # newest first: the newest build's places win
        steps = build_steps(by_trace.get(build["trace_id"], []), build["root_span_id"])
        paths = dict(step_paths(steps, unique=False))
        per_build.append(paths)
        for path, span in paths.items():
            column = top
            for name in path:
                if name not in column.children:
                    seen += 1
                    column.children[name] = _Column(name, _place(span.get("position"), seen))
                column = column.children[name]
    columns = top.leaves(()) if top.children else []
    depth = top.depth() - 1
    header: list[list[dict[str, Any]]] = [[] for _ in range(depth)]

    def add_header(column: _Column, level: int, path: Path) -> None:
        for name, child in column.ordered():
            entry: dict[str, Any] = {
                "name": name,
                "colspan": len(child.leaves(())),
                "rowspan": 1 if child.children else depth - level,
                "path": "/".join((*path, name)),
                "group": bool(child.children),
            }
            if not child.children:
                entry["runs"] = [paths.get((*path, name)) for paths in per_build]
            header[level].append(entry)
            add_header(child, level + 1, (*path, name))

    add_header(top, 0, ())
    rows = []
    names = ["/".join(leaf) for leaf in columns]
    for build, paths in zip(builds, per_build, strict=True):
        url = build_url(build)
        cells: list[str] = []
        for leaf, step in zip(columns, names, strict=True):
            cell: str = _EMPTY_CELL
            for cut in range(len(leaf), 0, -1):
                found = paths.get(leaf[:cut])
                if found is not None:
                    cell = _cell(step, found, cut < len(leaf), now_ns, url)
                    break
            cells.append(cell)
        rows.append({"build": build, "cells": Markup("".join(cells))})
    return {"header": header, "rows": rows}


def duration(start_ns: int, end_ns: int, now_ns: int) -> str:
    """A short human duration: 850ms, 12.3s, 4m 05s, 2h 03m."""
    if not start_ns:
        return ""
    ns = (end_ns or now_ns) - start_ns
    seconds = max(ns, 0) / 1e9
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
