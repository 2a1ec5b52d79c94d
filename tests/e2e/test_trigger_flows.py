"""What triggers build, end to end: real `bass serve` and `bass worker` processes
building real git repositories with branches, tags and commits.

Reruns (JSON API and the dashboard's form), builds of a branch, tag or commit (JSON
API and `bass run --ref`), branch builds from pushes and the filters that show them,
cancel-superseded, a pipeline's concurrency and pause/resume. Each build's entry
records what the worker checked out, its changeset and its environment under
`$OUT/PIPELINE-NUMBER/`; the blocking entry waits there for a `release` file, so a
test decides when a running build ends. tests/unit/test_triggers.py has the same rules
against the app alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from http.client import HTTPConnection
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.conftest import Repo, Server, http
from tests.e2e.waiting import wait_until

ZERO = "0" * 40

# The entry records what it builds: HEAD, the changeset file, the checkout's variables.
# A commit holding `fail-me` fails. The worker appends the standard arguments ("$@").
RECORD = (
    'd="$OUT/$BASS_PIPELINE-$BASS_BUILD_NUMBER"; mkdir -p "$d"; '
    'git rev-parse HEAD > "$d/head"; cp "$BASS_CHANGESET" "$d/changeset"; '
    'env | grep -E "^BASS_(COMMIT|REF|BRANCH|TAG)=" | sort > "$d/env"; '
)
RECORDING = RECORD + "[ ! -e fail-me ] || exit 1; true"
# ... and then runs until the test releases it: `pid` (written last) says it is running.
# Two builds of a pipeline running at once leave `overlap-PIPELINE` behind (mkdir is
# atomic: the second one cannot make the directory the first one holds).
BLOCKING = RECORD + (
    'mkdir "$OUT/active-$BASS_PIPELINE" 2>/dev/null || touch "$OUT/overlap-$BASS_PIPELINE"; '
    'echo $$ > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"; '
    'while [ ! -e "$d/release" ]; do sleep 0.05; done; '
    'rmdir "$OUT/active-$BASS_PIPELINE" 2>/dev/null; touch "$d/done"; true'
)


class Out:
    """What the builds' entries wrote."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir()
        self.env_file = f"OUT={path}\n"  # the orchestrator's env file hands it to builds

    def dir(self, pipeline: str, number: int) -> Path:
        return self.path / f"{pipeline}-{number}"

    def head(self, pipeline: str, number: int) -> str:
        return (self.dir(pipeline, number) / "head").read_text().strip()

    def changeset(self, pipeline: str, number: int) -> list[str]:
        return sorted((self.dir(pipeline, number) / "changeset").read_text().splitlines())

    def env(self, pipeline: str, number: int) -> dict[str, str]:
        lines = (self.dir(pipeline, number) / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def ran(self, pipeline: str, number: int) -> bool:
        return self.dir(pipeline, number).exists()

    def pid(self, pipeline: str, number: int) -> int | None:
        try:
            return int((self.dir(pipeline, number) / "pid").read_text())
        except FileNotFoundError:
            return None

    def running(self, server: Server, pipeline: str, number: int) -> int:
        """Wait until the build's entry runs; its process id."""
        pid = wait_until(
            lambda: self.pid(pipeline, number),
            f"{pipeline} #{number} running",
            context=server.output,
        )
        assert pid is not None
        return pid

    def release(self, pipeline: str, number: int) -> None:
        (self.dir(pipeline, number) / "release").touch()

    def done(self, pipeline: str, number: int) -> bool:
        return (self.dir(pipeline, number) / "done").exists()

    def overlapped(self, pipeline: str) -> bool:
        return (self.path / f"overlap-{pipeline}").exists()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def pipeline(repo: Repo, entry: str, **more: Any) -> dict[str, Any]:
    return {"repository": str(repo.path), "ref": "main", "exec": entry, **more}


def push(server: Server, name: str, branch: str, after: str, before: str = ZERO) -> dict:
    """A push delivery as a script sends it: GitHub's fields, no forge's headers."""
    body = {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": after,
        "commits": [{"id": after, "message": f"push to {branch}", "author": {"name": "Ann"}}],
    }
    headers = {"Content-Type": "application/json"}
    status, answer = http("POST", f"{server.url}/webhook?pipeline={name}", body, headers)
    assert status == 200, answer
    return answer


def build_now(server: Server, name: str, ref: str | None = None) -> dict:
    body = {} if ref is None else {"ref": ref}
    status, answer = http("POST", f"{server.url}/api/pipelines/{name}/builds", body)
    assert status == 200 and answer["queued"], answer
    return answer


def row(server: Server, name: str, number: int) -> dict:
    return server.build(name, number)["build"]


def numbers(server: Server, name: str, query: str) -> list[int]:
    status, body = http("GET", f"{server.url}/api/pipelines/{name}/builds?{query}")
    assert status == 200, body
    return [b["number"] for b in body["builds"]]


def dashboard_post(
    server: Server, page: str, action: str, *, csrf: bool = True, **fields: str
) -> tuple[int, str]:
    """Post one of a dashboard page's forms as a browser does: read the page (it sets
    the CSRF cookie), take the form's hidden field, send both back. Returns the status
    and the redirect's location."""
    conn = HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", page)
        response = conn.getresponse()
        html = response.read().decode()
        assert response.status == 200, html
        cookies: SimpleCookie = SimpleCookie()
        for header in response.headers.get_all("set-cookie") or []:
            cookies.load(header)
        cookie = cookies["bass_csrf"].value
        form = re.search(
            rf'<form[^>]*action="(?:https?://[^/"]+)?{re.escape(action)}"[^>]*>(.*?)</form>',
            html,
            re.S,
        )
        assert form, f"no form posting to {action} on {page}:\n{html}"
        field = re.search(r'<input type="hidden" name="csrf" value="([^"]+)">', form[1])
        assert field and field[1] == cookie, form[0]
        body = urlencode({**({"csrf": field[1]} if csrf else {}), **fields})
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"bass_csrf={cookie}",
        }
        conn.request("POST", action, body, headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("location") or ""
    finally:
        conn.close()


def bass_run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bass", "run", *args, "--server", server.url],
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- rerun ---------------------------------------------------------------------------


def test_a_rerun_builds_the_same_commit_and_changeset_after_the_branch_moved_on(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    base = repo.commit({"README": "r\n"}, "base")
    pushed_sha = repo.commit({"src/a.c": "a\n", "docs/a.md": "d\n"}, "the push")
    out = Out(tmp_path / "out")
    server = serve({"app": pipeline(repo, RECORDING)}, env_file=out.env_file)
    worker(server)

    pushed = push(server, "app", "main", after=pushed_sha, before=base)
    assert server.wait_for(pushed["id"])["state"] == "ok"
    assert out.head("app", 1) == pushed_sha
    assert out.changeset("app", 1) == ["docs/a.md", "src/a.c"]
    moved = repo.commit({"src/b.c": "b\n"}, "main moves on")

    # the JSON API
    status, answer = http("POST", f"{server.url}/api/pipelines/app/builds/1/rerun")
    assert status == 200 and answer["queued"] and answer["number"] == 2, answer
    assert answer["url"].endswith("/pipelines/app/2")
    rerun = server.wait_for(answer["id"])
    assert rerun["state"] == "ok", rerun
    assert (rerun["trigger"], rerun["rerun_of"]) == ("rerun", pushed["id"])
    assert (rerun["branch"], rerun["commit_sha"], rerun["before_sha"]) == ("main", pushed_sha, base)
    assert out.head("app", 2) == pushed_sha != moved
    assert out.changeset("app", 2) == out.changeset("app", 1)
    assert (
        out.env("app", 2)
        == out.env("app", 1)
        == {
            "BASS_BRANCH": "main",
            "BASS_COMMIT": pushed_sha,
            "BASS_REF": "main",
            "BASS_TAG": "",
        }
    )

    # a form posted without the CSRF field the page gave is refused, and queues nothing
    refused = dashboard_post(server, "/pipelines/app/1", "/pipelines/app/1/rerun", csrf=False)
    assert refused[0] == 403
    assert numbers(server, "app", "") == [2, 1]

    # the build page's Rerun button, as a browser posts it
    status, location = dashboard_post(server, "/pipelines/app/1", "/pipelines/app/1/rerun")
    assert status == 303 and location.endswith("/pipelines/app/3"), (status, location)
    third = server.wait_for(row(server, "app", 3)["id"])
    assert third["state"] == "ok", third
    assert (third["trigger"], third["rerun_of"], third["commit_sha"]) == (
        "rerun",
        pushed["id"],
        pushed_sha,
    )
    assert out.head("app", 3) == pushed_sha
    assert out.changeset("app", 3) == ["docs/a.md", "src/a.c"]
    # the rerun's page says what it reruns, and links there
    status, page = http("GET", f"{server.url}/pipelines/app/3")
    assert status == 200
    assert re.search(rf'rerun of <a href="[^"]*/builds/{pushed["id"]}">', page), page


def test_a_rerun_of_a_build_of_the_pipelines_ref_pins_the_commit_it_ran_on(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    repo.commit({"README": "r\n"}, "base")
    first = repo.commit({"src/a.c": "a\n"}, "first")
    out = Out(tmp_path / "out")
    server = serve({"app": pipeline(repo, RECORDING)}, env_file=out.env_file)
    worker(server)
    built = build_now(server, "app")  # no commit named: the head of main, as it is then
    assert server.wait_for(built["id"])["state"] == "ok"
    assert row(server, "app", 1)["commit_sha"] is None and out.head("app", 1) == first
    repo.commit({"src/b.c": "b\n"}, "main moves on")

    status, answer = http("POST", f"{server.url}/api/pipelines/app/builds/1/rerun")
    assert status == 200, answer
    rerun = server.wait_for(answer["id"])
    assert rerun["state"] == "ok" and rerun["commit_sha"] == first, rerun
    assert out.head("app", 2) == first
    assert out.changeset("app", 2) == out.changeset("app", 1) == []  # everything changed


def test_a_rerun_of_a_build_of_a_ref_gets_the_same_changeset(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    base = repo.commit({"README": "r\n"}, "base")
    first = repo.commit({"src/a.c": "a\n"}, "first")
    repo.git("checkout", "--quiet", "-b", "feature", base)
    repo.commit({"feature.txt": "f\n"}, "feature work")
    repo.git("checkout", "--quiet", "main")
    out = Out(tmp_path / "out")
    server = serve({"app": pipeline(repo, RECORDING)}, env_file=out.env_file)
    worker(server)
    # the prototype's webhook: main's head, the changeset of the changed refs
    assert server.wait_for(server.webhook("app", changed_refs=first)["id"])["state"] == "ok"
    # Build now of a branch: no changed refs, an empty changeset (everything changed)
    assert server.wait_for(build_now(server, "app", "feature")["id"])["state"] == "ok"
    assert (out.changeset("app", 1), out.changeset("app", 2)) == (["src/a.c"], [])
    repo.commit({"src/b.c": "b\n"}, "main moves on")
    for number in (1, 2):
        status, answer = http("POST", f"{server.url}/api/pipelines/app/builds/{number}/rerun")
        assert status == 200, answer
        assert server.wait_for(answer["id"])["state"] == "ok"
        assert out.head("app", answer["number"]) == out.head("app", number)
    # today: #3 gets [] (main's head is past `first`, the merge base is `first` itself)
    # and #4 gets ["feature.txt"] (the diff since the merge base with main)
    assert (out.changeset("app", 3), out.changeset("app", 4)) == (["src/a.c"], [])


# -- builds of a branch, tag or commit -----------------------------------------------


def test_a_build_of_a_branch_tag_or_commit_builds_exactly_that(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    base = repo.commit({"README": "r\n"}, "base")
    tagged = repo.commit({"src/a.c": "a\n"}, "released")
    repo.git("tag", "-a", "v1", "-m", "version one")
    head = repo.commit({"src/b.c": "b\n"}, "after the release")
    repo.git("checkout", "--quiet", "-b", "feature", base)
    feature = repo.commit({"feature.txt": "f\n"}, "feature work")
    repo.git("checkout", "--quiet", "main")
    out = Out(tmp_path / "out")
    server = serve({"app": pipeline(repo, RECORDING)}, env_file=out.env_file)
    worker(server)

    wanted = {"feature": feature, "v1": tagged, base: base, None: head, "no-such-ref": None}
    queued = {ref: build_now(server, "app", ref) for ref in wanted}
    for ref, commit in wanted.items():
        job = server.wait_for(queued[ref]["id"])
        number = job["number"]
        assert job["ref"] == ref and job["trigger"] == "api", job
        if commit is None:  # a ref the repository does not have: built nothing else
            assert job["state"] == "error", job
            assert job["message"] == f"checkout failed: ref {ref!r} not found in {repo.path}"
            assert not out.ran("app", number)
            continue
        assert job["state"] == "ok", job
        assert out.head("app", number) == commit, ref
        assert out.env("app", number) == {
            "BASS_BRANCH": "",
            "BASS_COMMIT": commit,
            "BASS_REF": ref or "main",
            "BASS_TAG": "",
        }
    for bad in ("a..b", "--upload-pack=x"):
        status, body = http("POST", f"{server.url}/api/pipelines/app/builds", {"ref": bad})
        assert status == 400, body
    assert len(numbers(server, "app", "")) == len(wanted)

    # from the terminal: bass run --ref, through the server's URL
    ran = bass_run(server, "app", "--ref", "feature")
    assert ran.returncode == 0, ran.stderr
    found = re.fullmatch(r"app #(\d+) queued: (\S+)\n", ran.stdout)
    assert found, ran.stdout
    number = int(found[1])
    assert found[2] == f"{server.url}/pipelines/app/{number}"
    job = server.wait_for(row(server, "app", number)["id"])
    assert (job["state"], job["ref"], job["trigger"]) == ("ok", "feature", "webhook"), job
    assert out.head("app", number) == feature

    waited = bass_run(server, "app", "--ref", "v1", "--wait")
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert waited.stdout.splitlines()[-1] == f"app #{number + 1}: ok", waited.stdout
    assert out.head("app", number + 1) == tagged
    assert out.env("app", number + 1)["BASS_REF"] == "v1"


# -- branch builds -------------------------------------------------------------------


def test_pushes_to_two_branches_build_their_own_commits_and_filter(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    base = repo.commit({"README": "r\n"}, "base")
    main = repo.commit({"src/main.c": "m\n"}, "on main")
    repo.git("checkout", "--quiet", "-b", "feature/x")
    feature = repo.commit({"feature/x.txt": "x\n", "fail-me": ""}, "on feature/x")
    repo.git("checkout", "--quiet", "main")
    out = Out(tmp_path / "out")
    app = pipeline(repo, RECORDING, branches="main|feature/.*")
    server = serve({"app": app}, env_file=out.env_file)
    worker(server)

    on_main = push(server, "app", "main", after=main, before=base)
    on_feature = push(server, "app", "feature/x", after=feature)  # a new branch
    skipped = push(server, "app", "other", after=main)
    assert skipped["queued"] is False
    assert skipped["reason"] == "branch other does not match branches 'main|feature/.*'"
    assert server.wait_for(on_main["id"])["state"] == "ok"
    assert server.wait_for(on_feature["id"])["state"] == "failed"  # its commit has fail-me

    assert (out.head("app", 1), out.head("app", 2)) == (main, feature)
    assert out.env("app", 1)["BASS_BRANCH"] == "main"
    assert out.env("app", 2)["BASS_BRANCH"] == "feature/x"
    assert out.env("app", 2)["BASS_COMMIT"] == feature
    assert out.changeset("app", 1) == ["src/main.c"]  # before..after
    assert out.changeset("app", 2) == ["fail-me", "feature/x.txt"]  # since the merge base
    assert (row(server, "app", 2)["branch"], row(server, "app", 2)["commit_sha"]) == (
        "feature/x",
        feature,
    )

    # the JSON API: by branch, by status, both
    assert numbers(server, "app", "") == [2, 1]
    assert numbers(server, "app", "branch=main") == [1]
    assert numbers(server, "app", "branch=feature/x") == [2]
    assert numbers(server, "app", "status=failed") == [2]
    assert numbers(server, "app", "status=ok") == [1]
    assert numbers(server, "app", "branch=main&status=failed") == []
    assert numbers(server, "app", "branch=other") == []

    # the pipeline page
    status, page = http("GET", f"{server.url}/pipelines/app?branch=feature/x")
    assert status == 200
    assert 'data-build="2"' in page and 'data-build="1"' not in page
    assert feature[:10] in page and main[:10] not in page
    assert "<option selected>feature/x</option>" in page and "<option>main</option>" in page
    status, page = http("GET", f"{server.url}/pipelines/app?branch=main")
    assert 'data-build="1"' in page and 'data-build="2"' not in page
    status, page = http("GET", f"{server.url}/pipelines/app?status=failed")
    assert 'data-build="2"' in page and 'data-build="1"' not in page
    status, page = http("GET", f"{server.url}/pipelines/app?branch=main&status=failed")
    assert status == 200 and "data-build=" not in page
    status, page = http("GET", f"{server.url}/pipelines/app")
    assert 'data-build="1"' in page and 'data-build="2"' in page


# -- cancel-superseded ---------------------------------------------------------------


def test_a_newer_push_cancels_its_branchs_queued_and_running_builds(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    base = repo.commit({"README": "r\n"}, "base")
    repo.git("checkout", "--quiet", "-b", "feature/a")
    a1 = repo.commit({"a.txt": "1\n"}, "a1")
    a2 = repo.commit({"a.txt": "2\n"}, "a2")
    a3 = repo.commit({"a.txt": "3\n"}, "a3")
    repo.git("checkout", "--quiet", "-b", "feature/b", base)
    b1 = repo.commit({"b.txt": "1\n"}, "b1")
    repo.git("checkout", "--quiet", "main")
    out = Out(tmp_path / "out")
    app = pipeline(repo, BLOCKING, branches="feature/.*", **{"cancel-superseded": True})
    server = serve({"app": app}, env_file=out.env_file)
    worker(server)  # one worker: one build runs, the others wait in the queue

    def state(number: int) -> str:
        return row(server, "app", number)["state"]

    assert push(server, "app", "feature/a", after=a1, before=base)["number"] == 1
    pid = out.running(server, "app", 1)
    assert push(server, "app", "feature/b", after=b1, before=base)["number"] == 2
    assert state(2) == "queued"

    # a newer push of feature/a: the running #1 is cancelled, its processes end
    assert push(server, "app", "feature/a", after=a2, before=a1)["number"] == 3
    wait_until(lambda: state(1) == "cancelled", "#1 cancelled", context=server.output)
    assert row(server, "app", 1)["message"] == "cancelled: superseded by #3"
    wait_until(lambda: not alive(pid), f"#1's entry (pid {pid}) to end")
    assert out.head("app", 1) == a1 and not out.done("app", 1)

    # the worker is free: the oldest queued build, feature/b's, runs; #3 waits
    second = out.running(server, "app", 2)
    assert state(3) == "queued"
    # and the next push of feature/a cancels the queued #3 at once, not #2 of feature/b
    assert push(server, "app", "feature/a", after=a3, before=a2)["number"] == 4
    third = row(server, "app", 3)
    assert (third["state"], third["message"]) == ("cancelled", "cancelled: superseded by #4")
    assert third["worker"] is None and not out.ran("app", 3)
    assert state(2) == "running" and alive(second)

    out.release("app", 2)
    assert server.wait_for(row(server, "app", 2)["id"])["state"] == "ok"
    assert out.head("app", 2) == b1
    out.running(server, "app", 4)
    out.release("app", 4)
    assert server.wait_for(row(server, "app", 4)["id"])["state"] == "ok"
    assert out.head("app", 4) == a3
    assert out.changeset("app", 4) == ["a.txt"]
    assert numbers(server, "app", "status=cancelled") == [3, 1]


# -- concurrency ---------------------------------------------------------------------


def test_concurrency_one_runs_a_pipelines_builds_one_after_the_other(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    repo.commit({"README": "r\n"}, "base")
    out = Out(tmp_path / "out")
    pipelines = {
        "one": pipeline(repo, BLOCKING, concurrency=1),
        "free": pipeline(repo, BLOCKING),
    }
    server = serve(pipelines, env_file=out.env_file)
    worker(server, name="w1")
    worker(server, name="w2")

    first, second = build_now(server, "one"), build_now(server, "one")
    out.running(server, "one", 1)
    # the other worker is idle, and one #2 is the oldest queued build; yet it takes
    # free #1, queued after it: one #2 waits for one #1, another pipeline does not
    build_now(server, "free")
    out.running(server, "free", 1)
    assert row(server, "one", 2)["state"] == "queued"
    assert row(server, "one", 1)["worker"] != row(server, "free", 1)["worker"]

    out.release("one", 1)
    assert server.wait_for(first["id"])["state"] == "ok"
    out.running(server, "one", 2)
    one1, one2 = row(server, "one", 1), row(server, "one", 2)
    assert one2["started_at"] >= one1["finished_at"], (one1, one2)
    out.release("one", 2)
    assert server.wait_for(second["id"])["state"] == "ok"
    assert not out.overlapped("one")

    # without a limit two builds of a pipeline run at once (and the overlap shows)
    build_now(server, "free")
    out.running(server, "free", 2)
    assert row(server, "free", 1)["state"] == "running"
    assert out.overlapped("free")
    out.release("free", 1)
    out.release("free", 2)
    for number in (1, 2):
        assert server.wait_for(row(server, "free", number)["id"])["state"] == "ok"


# -- pause and resume ----------------------------------------------------------------


def test_a_paused_pipeline_queues_builds_and_runs_them_once_resumed(
    repo: Repo, serve: Any, worker: Any, tmp_path: Path
) -> None:
    base = repo.commit({"README": "r\n"}, "base")
    head = repo.commit({"src/a.c": "a\n"}, "change")
    out = Out(tmp_path / "out")
    pipelines = {"app": pipeline(repo, RECORDING), "other": pipeline(repo, RECORDING)}
    server = serve(pipelines, env_file=out.env_file)
    worker(server)

    status, body = http("POST", f"{server.url}/api/pipelines/app/pause")
    assert (status, body) == (200, {"pipeline": "app", "paused": True})
    queued = push(server, "app", "main", after=head, before=base)
    assert queued["queued"] is True  # the webhook still queues
    # the worker runs a build queued after it, and leaves the paused pipeline's alone
    assert server.wait_for(build_now(server, "other")["id"])["state"] == "ok"
    paused = row(server, "app", 1)
    assert (paused["state"], paused["worker"], paused["commit_sha"]) == ("queued", None, head)
    assert not out.ran("app", 1)
    status, page = http("GET", f"{server.url}/pipelines/app")
    assert "Paused: builds are queued" in page and "/pipelines/app/resume" in page

    status, body = http("POST", f"{server.url}/api/pipelines/app/resume")
    assert (status, body) == (200, {"pipeline": "app", "paused": False})
    assert server.wait_for(queued["id"])["state"] == "ok"
    assert out.head("app", 1) == head

    # the same from the dashboard's buttons
    status, location = dashboard_post(server, "/pipelines/app", "/pipelines/app/pause")
    assert status == 303 and location.endswith("/pipelines/app"), (status, location)
    second = server.webhook("app")
    assert server.wait_for(build_now(server, "other")["id"])["state"] == "ok"
    assert row(server, "app", 2)["state"] == "queued" and not out.ran("app", 2)
    status, location = dashboard_post(server, "/pipelines/app", "/pipelines/app/resume")
    assert status == 303 and location.endswith("/pipelines/app"), (status, location)
    assert server.wait_for(second["id"])["state"] == "ok"
    assert out.head("app", 2) == head
    status, page = http("GET", f"{server.url}/pipelines/app")
    assert "Paused" not in page and "/pipelines/app/pause" in page
