"""One real build through every part: webhook → queue → bass worker → git checkout →
build script → builder → OTLP → SQLite → JSON API and dashboard pages."""

from __future__ import annotations

import sys

from tests.conftest import http
from tests.e2e.waiting import wait_until

MIXED = r"""#!/usr/bin/env python3
from bass import assert_pipeline, build

pipeline = {
    "name": "mixed",
    "steps": [
        {"name": "compile", "exec": ["sh", "-c", "echo compiling $GREETING; echo careful >&2"]},
        {"name": "docs", "if-changeset-matches": "^docs/", "exec": ["echo", "docs built"]},
        {"name": "src-only", "if-changeset-matches": "^src/", "exec": ["echo", "src built"]},
        {"name": "checks", "order": "unordered", "steps": [
            {"name": "slow", "timeout": 1, "exec": ["sleep", "30"]},
            {"name": "lint", "exec": ["sh", "-c", "echo '<b>lint</b> failed'; exit 3"]},
        ]},
        {"name": "deploy", "exec": ["echo", "never runs"]},
    ],
}

assert_pipeline(pipeline)
build(pipeline)
"""

SIMPLE = r"""#!/usr/bin/env python3
from bass import build

build({"name": "simple", "steps": [
    {"name": "hello", "exec": ["echo", "hello from simple"]},
    {"name": "nested", "steps": [{"name": "inner", "exec": ["echo", "inner ok"]}]},
]})
"""

CRASH = "#!/usr/bin/env python3\nprint('about to crash', flush=True)\nraise SystemExit(1/0)\n"
HANG = "#!/usr/bin/env python3\nimport time\nprint('hanging', flush=True)\ntime.sleep(120)\n"


def pipelines(repo_path, **extra) -> dict:
    def p(entry, **more):
        return {"repository": str(repo_path), "ref": "main", "exec": entry, **more}

    return {
        "mixed": p([sys.executable, "job.py"]),
        "simple": p([sys.executable, "simple.py"]),
        "crash": p([sys.executable, "crash.py"]),
        "missing": p(["./does-not-exist.sh"]),
        "hang": p([sys.executable, "hang.py"], timeout=2),
        "bad-ref": {**p([sys.executable, "simple.py"]), "ref": "no-such-branch"},
        **extra,
    }


def commit_scripts(repo) -> str:
    repo.commit(
        {
            "job.py": MIXED,
            "simple.py": SIMPLE,
            "crash.py": CRASH,
            "hang.py": HANG,
            "docs/index.md": "docs\n",
        },
        "scripts",
    )
    return repo.commit({"src/main.c": "int main(void) { return 0; }\n"}, "touch src")


def tree_by_name(spans: list[dict]) -> dict[str, dict]:
    """Every span of a nested tree keyed by its path of names below the root."""
    out: dict[str, dict] = {}

    def walk(nodes, prefix):
        for node in nodes:
            path = f"{prefix}/{node['name']}" if prefix else node["name"]
            out[path] = node
            walk(node["children"], path)

    walk(spans, "")
    return out


def test_mixed_build_statuses_logs_and_pages(repo, serve, worker):
    head = commit_scripts(repo)
    server = serve(pipelines(repo.path), env_file="GREETING=world\n")
    worker(server)
    queued = server.webhook("mixed", changed_refs=head)
    job = server.wait_for(queued["id"])
    assert job["state"] == "timeout", job  # the worst step status wins: timeout > failed

    tree = server.build("mixed", queued["number"])["spans"]
    assert len(tree) == 1, "one root: the build"
    root = tree[0]
    assert root["span_id"] == job["root_span_id"] and root["parent_span_id"] == ""
    assert root["service_name"] == "bass:pipeline:mixed"
    spans = tree_by_name(root["children"])
    assert spans["checkout"]["bass_status"] == "ok"
    steps = {p.removeprefix("mixed/"): s for p, s in spans.items() if p.startswith("mixed/")}
    assert spans["mixed"]["bass_status"] == "timeout"
    assert steps["compile"]["bass_status"] == "ok"
    assert steps["docs"]["bass_status"] == "skipped"  # changeset only touched src/
    assert steps["src-only"]["bass_status"] == "ok"
    assert steps["checks/slow"]["bass_status"] == "timeout"
    assert steps["checks/lint"]["bass_status"] == "failed"
    assert steps["deploy"]["bass_status"] == "skipped"
    for span in spans.values():
        assert span["end_ns"] >= span["start_ns"] > 0, span

    compile_logs = server.logs("mixed", 1, steps["compile"]["span_id"])
    # stdout and stderr are separate streams: each keeps its order, not their interleaving
    # the env file's values are secrets: the step got GREETING=world, the log shows ***
    assert sorted(r["body"] for r in compile_logs) == ["careful", "compiling ***"]
    streams = {r["body"]: r["attributes"].get("log.iostream") for r in compile_logs}
    assert streams == {"compiling ***": "stdout", "careful": "stderr"}
    assert all(r["trace_id"] == job["trace_id"] for r in compile_logs)
    lint_logs = server.logs("mixed", 1, steps["checks/lint"]["span_id"])
    assert [r["body"] for r in lint_logs] == ["<b>lint</b> failed"]

    status, home = http("GET", f"{server.url}/")
    assert status == 200 and "mixed" in home and "timeout" in home
    status, grid = http("GET", f"{server.url}/pipelines/mixed")
    assert status == 200
    for name in ("compile", "docs", "src-only", "slow", "lint", "deploy"):
        assert f">{name}<" in grid, name
    assert 'data-status="skipped"' in grid and 'data-status="failed"' in grid
    status, page = http("GET", f"{server.url}/pipelines/mixed/1")
    assert status == 200
    assert "world" not in page and "<b>lint</b>" not in page
    # the log viewer's lines: escaped HTML, the secret masked
    lines_url = f"{server.url}/api/pipelines/mixed/builds/1/lines?span="
    status, lines = http("GET", lines_url + steps["checks/lint"]["span_id"])
    assert status == 200 and [line["html"] for line in lines["lines"]] == [
        "&lt;b&gt;lint&lt;/b&gt; failed"
    ]
    status, lines = http("GET", lines_url + steps["compile"]["span_id"])
    assert {line["body"] for line in lines["lines"]} == {"compiling ***", "careful"}
    status, text = http("GET", f"{server.url}/pipelines/mixed/1/log")
    assert status == 200 and "compiling ***" in text and "<b>lint</b> failed" in text
    assert "world" not in text


def test_simple_build_is_ok_and_numbers_count_up(repo, serve, worker):
    commit_scripts(repo)
    server = serve(pipelines(repo.path))
    worker(server)
    first = server.webhook("simple")
    second = server.webhook("simple")
    assert (first["number"], second["number"]) == (1, 2)
    assert server.wait_for(first["id"])["state"] == "ok"
    assert server.wait_for(second["id"])["state"] == "ok"
    spans = tree_by_name(server.build("simple", 2)["spans"][0]["children"])
    assert spans["simple/nested/inner"]["bass_status"] == "ok"
    assert spans["simple/nested/inner"]["parent_span_id"] == spans["simple/nested"]["span_id"]
    logs = server.logs("simple", 2, spans["simple/nested/inner"]["span_id"])
    assert [r["body"] for r in logs] == ["inner ok"]


def test_broken_entries_end_with_reason_never_stuck(repo, serve, worker):
    commit_scripts(repo)
    server = serve(pipelines(repo.path))
    worker(server)
    ids = {name: server.webhook(name)["id"] for name in ("crash", "missing", "hang", "bad-ref")}
    ended = {name: server.wait_for(job_id, timeout=90) for name, job_id in ids.items()}
    assert ended["crash"]["state"] == "failed"
    assert ended["missing"]["state"] == "error"
    assert "cannot be run" in ended["missing"]["message"]
    assert ended["hang"]["state"] == "timeout"
    assert ended["bad-ref"]["state"] == "error"
    assert "no-such-branch" in ended["bad-ref"]["message"]
    crash_logs = " ".join(r["body"] for r in server.logs("crash", 1))
    assert "about to crash" in crash_logs and "ZeroDivisionError" in crash_logs
    hang_logs = " ".join(r["body"] for r in server.logs("hang", 1))
    assert "hanging" in hang_logs and "timeout" in hang_logs
    # no span of any of these builds is left running
    assert server.query("SELECT COUNT(*) FROM spans WHERE end_ns = 0")[0][0] == 0


def test_queued_job_survives_a_restart_of_serve(repo, serve, worker):
    commit_scripts(repo)
    server = serve(pipelines(repo.path))
    queued = server.webhook("simple")
    server.stop()
    server.start()
    worker(server)
    assert server.wait_for(queued["id"])["state"] == "ok"


def test_worker_tags_route_jobs(repo, serve, worker):
    commit_scripts(repo)
    tagged = {
        "repository": str(repo.path),
        "ref": "main",
        "exec": [sys.executable, "simple.py"],
        "worker-tags": ["gpu"],
    }
    server = serve(pipelines(repo.path, tagged=tagged))
    worker(server, tags="linux", name="linux-only")
    job = server.webhook("tagged")
    younger = server.webhook("simple")
    # a worker takes the oldest build it may run: once it has run the younger, untagged
    # build it has looked at the queue with the tagged one in it, and passed it over
    ran = server.wait_for(younger["id"])
    assert (ran["state"], ran["worker"]) == ("ok", "linux-only"), ran
    _, state = http("GET", f"{server.url}/api/jobs/{job['id']}")
    assert state["state"] == "queued", "a worker without the gpu tag must not take it"
    worker(server, tags="gpu,linux", name="gpu")
    assert server.wait_for(job["id"])["state"] == "ok"
    assert server.query("SELECT worker FROM builds WHERE id = ?", job["id"])[0][0] == "gpu"


def test_worker_sigterm_cancels_the_running_build_and_exits(repo, serve, worker):
    commit_scripts(repo)
    server = serve(
        pipelines(
            repo.path,
            slow={"repository": str(repo.path), "ref": "main", "exec": [sys.executable, "hang.py"]},
        )
    )
    w = worker(server)
    job = server.webhook("slow")
    wait_until(
        lambda: "hanging" in [r["body"] for r in server.logs("slow", job["number"])],
        "the build entry to run (its 'hanging' line)",
        context=lambda: f"worker:\n{w.output()}\nserve:\n{server.output()}",
    )
    assert w.stop() == 0, w.output()
    # the worker reports the cancel before it exits: the build has ended already
    _, ended = http("GET", f"{server.url}/api/jobs/{job['id']}")
    assert ended["state"] == "cancelled", (ended, w.output())
    assert ended["message"] == "cancelled: the worker was stopped", ended


def test_missing_pipelines_file_is_a_clear_error(tmp_path):
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "bass", "serve", "--pipelines-file", "nope.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "nope.json" in result.stderr and "not found" in result.stderr
    (tmp_path / "bad.json").write_text('{"p": {"repository": "x", "exec": 5}}')
    result = subprocess.run(
        [sys.executable, "-m", "bass", "serve", "--pipelines-file", "bad.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert 'bad.json: pipeline "p": field "exec"' in result.stderr
