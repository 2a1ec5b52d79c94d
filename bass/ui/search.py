"""/search : log lines matching words, within one build or across builds."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass import params
from bass.store import builds, logs, telemetry
from bass.ui import render

LIMIT = 200


async def search(request: Request) -> Response:
    text = request.query_params.get("q", "")[:500].strip()
    pipeline = request.query_params.get("pipeline") or None
    build_number = params.number(request.query_params.get("number"))

    def load(conn):
        if not text:
            return None, []
        if pipeline and build_number is not None:
            build = builds.by_number(conn, pipeline, build_number)
            if build is None:
                return None, []
            names = {s["span_id"]: s["name"] for s in telemetry.spans_of(conn, build["trace_id"])}
            lines = logs.logs_of(conn, build["trace_id"], search=text, limit=LIMIT)
            for line in lines:
                line.update(pipeline=pipeline, number=build_number)
                line["step"] = names.get(line["span_id"], "")
            return build, lines
        return None, logs.search_logs(conn, text, pipeline=pipeline, limit=LIMIT)

    build, lines = await request.state.db.aread(load)
    context = {
        "q": text,
        "pipeline": pipeline,
        "number": build_number,
        "build": build,
        "lines": lines,
        "limit": LIMIT,
    }
    return render(request, "search.html", "search.html", context)


routes = [
    Route("/search", search, methods=["GET"], name="search"),
]
