"""A build's log lines as the log viewer reads them (windows of one step's lines by
number, its tail, the lines that match a search) and as a file (the whole build, or one
step, raw)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bass import ansi
from bass.params import query_int
from bass.store import builds, logs, telemetry
from bass.ui import line_json, no_build, steps

WINDOW = 2_000  # most lines one request returns


async def lines(request: Request) -> Response:
    """GET /api/pipelines/NAME/builds/N/lines?span=ID and one of: from=A&to=B (lines A to
    B), tail=K (the last K), q=words (the numbers of the lines holding every word). Each
    line: n, time_ms, severity, stream, body as sent, html (colours as spans, escaped);
    `last` is the step's last line number so far. groups=1: the step's `groups`."""
    name, number = request.path_params["name"], request.path_params["number"]
    span_id = request.query_params.get("span", "")
    query = request.query_params.get("q", "")[:500]
    tail = query_int(request, "tail", 0, WINDOW)
    first = query_int(request, "from", 1, 2**62)
    last_asked = query_int(request, "to", first + 199, 2**62)

    def load(conn):
        build = builds.by_number(conn, name, number)
        if build is None:
            return None
        trace_id = build["trace_id"]
        last = logs.last_lines(conn, trace_id).get(span_id, 0)
        answer: dict[str, Any] = {"span": span_id, "last": last, "state": build["state"]}
        if query.strip():
            answer["hits"] = logs.line_hits(conn, trace_id, span_id, query)
            return answer
        if request.query_params.get("groups"):
            answer["groups"] = groups(logs.marker_lines(conn, trace_id, span_id))
            return answer
        start, end = (max(last - tail + 1, 1), last) if tail else (first, last_asked)
        end = min(end, start + WINDOW - 1)
        rows = logs.log_lines(conn, trace_id, span_id, start, end) if end >= start else []
        answer["lines"] = [line_json(r) for r in rows]
        return answer

    found = await request.state.db.aread(load)
    if found is None:
        raise await no_build(request, name, number)
    return JSONResponse(found)


GROUP_START = re.compile(r"(?:::group::|##\[group\])(.*)")
GROUP_END = re.compile(r"::endgroup::|##\[endgroup\]")


def groups(markers: list[dict[str, Any]]) -> list[list[Any]]:
    """[start, end, title] of each group a step's output marks (GitHub's `::group::title`
    … `::endgroup::`, Azure's `##[group]`); end 0 while a group has not ended."""
    found: list[list[Any]] = []
    open_: list[list[Any]] = []
    for row in markers:
        text = ansi.plain(row["body"])
        start = GROUP_START.match(text)
        if start:
            found.append([row["line"], 0, start.group(1).strip()[:200]])
            open_.append(found[-1])
        elif GROUP_END.match(text) and open_:
            open_.pop()[1] = row["line"]
    return found


async def download(request: Request) -> Response:
    """The whole log of a build, or of one step (?span=ID), as plain text, safe for a
    terminal (colours kept, other control sequences removed). The whole build's lines
    come in arrival order: under a heading for each step when its steps ran one after
    another, each line prefixed with its step when some ran at the same time."""
    name, number = request.path_params["name"], request.path_params["number"]
    span_id = request.query_params.get("span")

    def load(conn):
        build = builds.by_number(conn, name, number)
        return build, telemetry.spans_of(conn, build["trace_id"]) if build else []

    build, spans = await request.state.db.aread(load)
    if build is None:
        raise await no_build(request, name, number)
    paths = {
        span["span_id"]: " / ".join(path)
        for path, span in steps.step_paths(steps.build_steps(spans, build["root_span_id"]))
    }
    parallel = any(s["attributes"].get("bass.order") == "unordered" for s in spans)

    def chunks():
        after, current = 0, "build output"  # no heading before the first step's lines
        while True:
            page = request.state.db.read(
                logs.logs_of, build["trace_id"], span_id=span_id, after_id=after, limit=5000
            )
            if not page:
                return
            out = []
            for r in page:
                text = ansi.terminal_safe(r["body"])
                step = paths.get(r["span_id"], "build output")
                if span_id is not None:
                    out.append(text)
                elif parallel:
                    out.append(f"[{step}] {text}")
                else:
                    if step != current:
                        out.append(f"── {step} ──")
                        current = step
                    out.append(text)
            yield "\n".join(out) + "\n"
            after = page[-1]["id"]

    filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}-{number}.log")
    return StreamingResponse(
        chunks(),
        media_type="text/plain; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{filename}"'},
    )


routes = [
    Route("/pipelines/{name}/{number:id}/log", download, methods=["GET"], name="build_log"),
    Route(
        "/api/pipelines/{name}/builds/{number:id}/lines", lines, methods=["GET"], name="api_lines"
    ),
]
