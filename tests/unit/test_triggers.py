"""What a trigger builds (issue 10): branches and tags a pipeline builds, builds of a
ref, reruns, pause, concurrency and superseded builds; through the app and its store."""

from __future__ import annotations

from typing import Any

import pytest

from bass.orchestrator import not_built
from bass.store.builds import Source
from tests.unit.conftest import App
from tests.unit.helpers import KEY

PIPELINES = {
    "main-only": {"repository": "/r.git", "exec": ["./b"], "ref": "main"},
    "features": {"repository": "/r.git", "exec": ["./b"], "ref": "main",
                 "branches": "main|feature/.*", "cancel-superseded": True},
    "releases": {"repository": "/r.git", "exec": ["./b"], "tag-pattern": "^v[0-9]"},
    "one-at-a-time": {"repository": "/r.git", "exec": ["./b"], "concurrency": 1},
}  # fmt: skip


@pytest.fixture
def app(make_app: Any) -> App:
    return make_app(PIPELINES)


def enqueue(app: App, pipeline: str, **source: Any) -> dict[str, Any]:
    orchestrator = app.client.app_state["orchestrator"]

    async def go() -> dict[str, Any]:
        return await orchestrator.enqueue(pipeline, trigger="webhook", source=Source(**source))

    return app.client.portal.call(go)  # type: ignore[union-attr]


def claim(app: App, **body: Any) -> Any:
    return app.dequeue({"tags": [], "heartbeat": True, **body})


def holder(job: dict[str, Any]) -> dict[str, str]:
    return {"X-API-KEY": KEY, "Authorization": f"Bearer {job['job-token']}"}


@pytest.mark.parametrize(
    ("pipeline", "source", "built"),
    [
        ("main-only", Source(branch="main"), True),
        ("main-only", Source(branch="feature/x"), False),
        ("features", Source(branch="feature/x"), True),
        ("features", Source(branch="features"), False),  # a full match
        ("features", Source(branch="dev"), False),
        ("releases", Source(branch="main"), False),  # a tag-pattern: only matching tags
        ("one-at-a-time", Source(branch="anything"), True),  # no ref, no branches: all
        ("releases", Source(tag="v1.2.0"), True),
        ("releases", Source(tag="nightly"), False),
        ("main-only", Source(tag="v1.2.0"), False),  # no tag-pattern: tags build nothing
        ("main-only", Source(), True),  # the prototype's webhook: the ref's head
        ("main-only", Source(ref="some-branch"), True),  # Build now of a ref
    ],
)
def test_which_pushes_a_pipeline_builds(pipeline: str, source: Source, built: bool) -> None:
    from bass.config import check_pipeline

    config = check_pipeline(dict(PIPELINES[pipeline]), pipeline)
    reason = not_built(config, source, [])
    assert (reason is None) is built, reason


def test_the_job_says_what_to_build(app: App) -> None:
    enqueue(app, "features", branch="feature/x", commit="c" * 40, before="b" * 40,
            changed_files=["a.py"], message="Fix it", author="Ann")  # fmt: skip
    job = claim(app).json()
    assert (job["commit"], job["ref"], job["branch"], job["tag"]) == (
        "c" * 40,
        None,
        "feature/x",
        None,
    )
    assert (job["before"], job["changed-files"]) == ("b" * 40, ["a.py"])


def test_build_now_of_a_ref_from_the_dashboard_and_the_api(app: App) -> None:
    response = app.form_post("/pipelines/main-only/trigger", ref="release-1.x")
    assert response.status_code == 303
    assert app.job(1)["ref"] == "release-1.x"
    response = app.client.post("/api/pipelines/main-only/builds", json={"ref": "v2.0"})
    assert response.json()["queued"] is True and app.job(2)["ref"] == "v2.0"
    assert app.client.post("/api/pipelines/main-only/builds", json={}).json()["number"] == 3
    assert app.job(3)["ref"] is None
    for bad in ("--upload-pack=x", "a..b", "x y"):
        assert (
            app.client.post("/api/pipelines/main-only/builds", json={"ref": bad}).status_code == 400
        )
    assert app.form_post("/pipelines/main-only/trigger", ref="-x").status_code == 400


def test_a_rerun_builds_the_same_commit_and_changeset(app: App) -> None:
    enqueue(app, "features", branch="main", commit="d" * 40, before="e" * 40,
            changed_files=["x"], message="m")  # fmt: skip
    job = claim(app).json()
    app.client.post(job["result-url"], json={"status": "failed"}, headers=holder(job))
    response = app.client.post("/api/pipelines/features/builds/1/rerun")
    assert response.status_code == 200
    rerun = app.job(response.json()["id"])
    assert (rerun["trigger"], rerun["rerun_of"]) == ("rerun", job["id"])
    assert (rerun["commit_sha"], rerun["before_sha"], rerun["branch"]) == (
        "d" * 40,
        "e" * 40,
        "main",
    )
    # from the dashboard: the build page's button
    page = app.form_post("/pipelines/features/1/rerun")
    assert page.status_code == 303 and page.headers["location"].endswith("/pipelines/features/3")
    assert app.client.get("/pipelines/features/3").status_code == 200
    assert (
        app.client.get(f"/builds/{job['id']}", follow_redirects=False)
        .headers["location"]
        .endswith("/pipelines/features/1")
    )


def test_a_rerun_of_a_ref_build_pins_the_commit_it_ran_on(app: App) -> None:
    from tests.unit.helpers import span

    app.webhook("main-only")
    job = claim(app).json()
    trace, root = job["otel"]["trace-id"], job["otel"]["root-span-id"]
    checkout = span(trace, "1" * 16, parent=root, name="checkout", end=9,
                    attributes=[{"key": "vcs.ref.head.revision",
                                 "value": {"stringValue": "f" * 40}}])  # fmt: skip
    app.send_spans(checkout)
    app.client.post(job["result-url"], json={"status": "ok"}, headers=holder(job))
    rerun = app.client.post("/api/pipelines/main-only/builds/1/rerun").json()
    assert app.job(rerun["id"])["commit_sha"] == "f" * 40


def test_a_paused_pipeline_queues_but_does_not_start(app: App) -> None:
    assert app.client.post("/api/pipelines/main-only/pause").json() == {
        "pipeline": "main-only", "paused": True}  # fmt: skip
    app.webhook("main-only")
    assert claim(app).status_code == 204
    assert "paused" in app.client.get("/pipelines/main-only").text
    app.webhook("releases", tags="v1")  # another pipeline still runs
    assert claim(app).json()["name"] == "releases"
    assert app.form_post("/pipelines/main-only/resume").status_code == 303
    assert claim(app).json()["name"] == "main-only"


def test_concurrency_holds_a_pipelines_second_build(app: App) -> None:
    app.webhook("one-at-a-time")
    app.webhook("one-at-a-time")
    first = claim(app).json()
    assert claim(app).status_code == 204  # one runs: the other waits
    app.client.post(first["result-url"], json={"status": "ok"}, headers=holder(first))
    assert claim(app).json()["number"] == 2


def test_a_newer_build_of_a_branch_supersedes_the_older_ones(app: App) -> None:
    enqueue(app, "features", branch="feature/a", commit="1" * 40)
    running = claim(app).json()
    enqueue(app, "features", branch="feature/a", commit="2" * 40)  # queued, then superseded
    enqueue(app, "features", branch="feature/b", commit="3" * 40)  # another branch: kept
    newest = enqueue(app, "features", branch="feature/a", commit="4" * 40)
    assert app.job(2)["state"] == "cancelled"
    assert app.job(2)["message"] == f"cancelled: superseded by #{newest['number']}"
    assert app.job(3)["state"] == "queued"
    beat = app.client.post(running["heartbeat-url"], headers=holder(running)).json()
    assert beat == {"state": "running", "cancel": True}
    app.client.post(running["result-url"], headers=holder(running),
                    json={"status": "cancelled", "message": "cancelled: requested"})  # fmt: skip
    ended = app.job(running["id"])
    assert (ended["state"], ended["message"]) == ("cancelled", "cancelled: superseded by #4")


def test_the_pipeline_page_filters_by_branch_and_status(app: App) -> None:
    enqueue(app, "features", branch="main", commit="a" * 40, message="on main")
    enqueue(app, "features", branch="feature/x", commit="b" * 40)
    page = app.client.get("/pipelines/features?branch=feature/x")
    assert 'data-build="2"' in page.text and 'data-build="1"' not in page.text
    assert "feature/x" in page.text and "bbbbbbbbbb" in page.text
    page = app.client.get("/pipelines/features?status=queued")
    assert 'data-build="1"' in page.text and 'data-build="2"' in page.text
    assert "data-build" not in app.client.get("/pipelines/features?status=ok").text
    api = app.client.get("/api/pipelines/features/builds?branch=main").json()["builds"]
    assert [b["number"] for b in api] == [1]
    build_page = app.client.get("/pipelines/features/1").text
    assert "on main" in build_page and "aaaaaaaaaa" in build_page


def test_a_bad_edit_of_the_pipelines_file_shows_on_every_page(make_app: Any, tmp_path: Any) -> None:
    import json as _json

    from tests.e2e.waiting import wait_until

    pipelines_file = tmp_path / "live-pipelines.json"
    pipelines_file.write_text(_json.dumps(PIPELINES))
    app = make_app(PIPELINES, pipelines_file=str(pipelines_file))
    status = app.client.app_state["config_status"]
    wait_until(lambda: status()["watching"], "the watcher to watch")
    pipelines_file.write_text('{"oops": ')
    wait_until(lambda: status()["error"], "the bad edit to be seen")
    for path in ("/", "/pipelines/main-only", "/status"):
        page = app.client.get(path).text
        assert "The configuration files have an error" in page, path
        assert "live-pipelines.json" in page
    assert app.client.get("/api/status").json()["config"]["ok"] is False
    pipelines_file.write_text(_json.dumps({**PIPELINES, "added": PIPELINES["main-only"]}))
    wait_until(lambda: not status()["error"], "the fix to be seen")
    assert "The configuration files have an error" not in app.client.get("/").text
    assert "added" in app.client.get("/pipelines").json()


def test_a_rerun_cancels_no_newer_build_and_waits_for_its_build_to_end(app: App) -> None:
    """Rerunning an older commit of a branch leaves the branch's newer build alone; a
    build that has not ended is not rerun (409)."""
    enqueue(app, "features", branch="feature/a", commit="1" * 40)
    first = claim(app).json()
    assert app.client.post("/api/pipelines/features/builds/1/rerun").status_code == 409
    assert app.form_post("/pipelines/features/1/rerun").status_code == 409
    app.client.post(first["result-url"], json={"status": "failed"}, headers=holder(first))
    enqueue(app, "features", branch="feature/a", commit="2" * 40)
    newer = claim(app).json()
    rerun = app.client.post("/api/pipelines/features/builds/1/rerun").json()
    assert app.job(rerun["id"])["commit_sha"] == "1" * 40
    beat = app.client.post(newer["heartbeat-url"], headers=holder(newer)).json()
    assert beat == {"state": "running", "cancel": False}
