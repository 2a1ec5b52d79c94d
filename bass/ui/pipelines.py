"""/pipelines/NAME : builds as rows, steps as columns, filtered by branch and status;
above them the durations of the last builds (of the branch shown) and how many ended ok,
and in each step's header its record over the builds shown, flaky steps marked."""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bass import params, states
from bass.store import builds, telemetry, trends
from bass.ui import charts, render, steps

PAGE = 30
CHART = PAGE  # builds in the duration chart: the grid's first page, when unfiltered


async def pipeline(request: Request) -> Response:
    name = request.path_params["name"]
    before_number = params.number(request.query_params.get("before"))
    branch = request.query_params.get("branch") or None
    status = request.query_params.get("status") or None
    if status not in (None, *states.STATES):
        status = None

    def load(conn):
        rows = builds.for_pipeline(
            conn, name, limit=PAGE, before=before_number, branch=branch, state=status
        )
        spans = telemetry.steps_of_traces(conn, [b["trace_id"] for b in rows])
        recent = rows  # the chart's builds are the grid's first page, unless filtered
        if before_number is not None or status is not None:
            recent = trends.recent(conn, name, limit=CHART, branch=branch)
        # what the builds that name no commit checked out, for the flaky steps
        unnamed = {b["trace_id"] for b in rows if not b.get("commit_sha")}
        checkouts = [
            (s["trace_id"], s["span_id"])
            for s in spans
            if s["name"] == "checkout" and s["trace_id"] in unnamed
        ]
        commits = trends.checkout_commits(conn, checkouts)
        found = (builds.branches(conn, name), name in builds.paused(conn))
        return rows, spans, recent, commits, *found

    rows, spans, recent, commits, known_branches, paused = await request.state.db.aread(load)
    config = request.state.orchestrator.config.pipelines.get(name)
    if config is None and not rows and before_number is None and not (branch or status):
        raise HTTPException(404, f"no pipeline named {name!r}")
    now_ns = time.time_ns()

    def build_url(b: dict[str, Any]) -> str:
        return request.url_for("build", name=b["pipeline"], number=b["number"]).path

    grid = steps.grid(rows, spans, now_ns, build_url)
    built = [b.get("commit_sha") or commits.get(b["trace_id"]) for b in rows]
    for level in grid["header"]:
        for column in level:
            if "runs" in column:
                column["stats"] = step_figures(column["path"], column.pop("runs"), built)
    context = {
        "now_ns": now_ns,
        "name": name,
        "config": config,
        "grid": grid,
        "trend": trend(recent, build_url, now_ns / 1e9) if recent else None,
        "active": any(b["state"] in states.ACTIVE for b in rows),
        "older": rows[-1]["number"] if len(rows) == PAGE else None,
        "branch": branch,
        "status": status,
        "branches": known_branches,
        "paused": paused,
    }
    return render(request, "pipeline.html", "_grid.html", context)


def trend(recent: list[dict[str, Any]], build_url: charts.BuildUrl, now: float) -> dict:
    """The chart of the last builds and what it says: the share that ended ok, the
    median and longest durations."""
    seconds = [charts.build_seconds(b, now) for b in recent if b["state"] not in states.ACTIVE]
    ended = [s for s in seconds if s is not None]
    return {
        "svg": charts.duration_chart(recent, build_url, now, CHART),
        "count": len(recent),
        "rate": trends.success_rate(recent),
        "median": charts.seconds_text(trends.median_of(ended) if ended else None),
        "longest": charts.seconds_text(max(ended, default=None)),
    }


def step_figures(path: str, runs: list, commits: list[str | None]) -> dict[str, Any]:
    """A step's header line ("9/10 ok · 1.2s"), its tooltip, and why it looks flaky."""
    record = trends.step_record(runs, commits)
    ok, ended, flaky = record["ok"], record["ended"], record["flaky"]
    median = charts.seconds_text(record["median_ns"] / 1e9 if ended else None)
    tip = f"{path}: {ok} of {ended} runs ok" if ended else f"{path}: no run ended"
    tip += f", median {median}, over the builds shown" if ended else " in the builds shown"
    if flaky:
        tip += f"\n⚠ {flaky}.\n{trends.FLAKY_RULE}."
    line = f"{ok}/{ended} ok · {median}" if ended else "–"
    return {"line": line, "tip": tip, "flaky": flaky}


routes = [
    Route("/pipelines/{name}", pipeline, methods=["GET"], name="pipeline"),
]
