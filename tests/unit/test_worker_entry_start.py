"""What lies between a job handed out and its build's first command, made short: the
entry's launcher started ahead of the checkout (and let go when no entry runs), the
builder's shim copied once (its bytecode stays valid), the clone not re-pointed at the
URL it was last fetched from, git's automatic maintenance moved after the build, and
the builder's standard arguments read without argparse. Real processes, real git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bass_builder
from bass.worker import checkout, cleanup, procs
from bass.worker.runner import _install
from tests.conftest import Repo

needs_launcher = pytest.mark.skipif(not cleanup.SUPPORTED, reason="Linux /proc, prctl")
ENV = {"PATH": os.environ["PATH"]}


# -- the launcher ----------------------------------------------------------------------


@needs_launcher
def test_a_launcher_started_ahead_becomes_the_entry_given_later(tmp_path: Path) -> None:
    launcher = procs.Launcher()
    (tmp_path / "here").mkdir()
    script = "import os; print(os.getpid(), os.getsid(0), os.getcwd(), os.environ['X'])"
    proc = launcher.start(
        [sys.executable, "-c", script], cwd=tmp_path / "here", env={**ENV, "X": "a=b c"}
    )
    out, _ = proc.communicate(timeout=30)
    # the launcher's own process, in a session of its own, in the entry's directory
    pid = str(proc.pid)
    assert out.decode().split() == [pid, pid, str(tmp_path / "here"), "a=b", "c"]
    assert proc.returncode == 0
    launcher.discard()  # a no-op once the entry ran


@needs_launcher
def test_a_launcher_that_runs_no_entry_exits_when_let_go() -> None:
    launcher = procs.Launcher()
    launcher.discard()
    assert launcher.proc.returncode == 0
    launcher.discard()  # twice: nothing more


@needs_launcher
def test_a_launcher_reports_an_entry_that_cannot_run_as_popen_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        procs.Launcher().start(["./does-not-exist"], cwd=tmp_path, env=ENV)
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        procs.Launcher().start(["true"], cwd=tmp_path / "no-such-dir", env=ENV)
    with pytest.raises(ValueError):
        procs.Launcher().start(["tr\0ue"], cwd=tmp_path, env=ENV)


@needs_launcher
def test_a_launcher_killed_before_its_entry_came_is_replaced(tmp_path: Path) -> None:
    launcher = procs.Launcher()
    launcher.proc.kill()
    launcher.proc.wait()
    proc = launcher.start([sys.executable, "-c", "print('ran')"], cwd=tmp_path, env=ENV)
    out, _ = proc.communicate(timeout=30)
    assert out == b"ran\n"
    assert proc is not launcher.proc


@needs_launcher
def test_an_environment_larger_than_a_pipe_reaches_the_entry(tmp_path: Path) -> None:
    big = {f"BIG_{i}": "x" * 2000 for i in range(100)}  # 200 KB, a pipe holds 64
    script = "import os; print(sum(len(v) for k, v in os.environ.items() if k[:4] == 'BIG_'))"
    proc = procs.Launcher().start([sys.executable, "-c", script], cwd=tmp_path, env={**ENV, **big})
    out, _ = proc.communicate(timeout=30)
    assert int(out) == 200_000


# -- the builder's shim ----------------------------------------------------------------


def test_the_shim_is_copied_once_with_its_sources_mtime(tmp_path: Path) -> None:
    source = Path(bass_builder.__file__)
    target = tmp_path / "bass_builder.py"
    _install(source, target)
    first = target.stat()
    assert target.read_bytes() == source.read_bytes()
    assert first.st_mtime_ns == source.stat().st_mtime_ns
    _install(source, target)
    assert target.stat().st_ino == first.st_ino  # not written again: its .pyc stays valid
    changed = tmp_path / "changed.py"
    changed.write_text("x = 1\n")
    _install(changed, target)
    assert target.read_text() == "x = 1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_entrys_python_imports_the_shims_cached_bytecode(tmp_path: Path) -> None:
    shim = tmp_path / "python"
    shim.mkdir()
    env = {**ENV, "PYTHONPATH": str(shim)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(2):  # two builds: the second finds the first one's bytecode valid
        _install(Path(bass_builder.__file__), shim / "bass_builder.py")
        subprocess.run([sys.executable, "-c", "import bass_builder"], env=env, check=True)
    cached = list((shim / "__pycache__").glob("bass_builder.*.pyc"))
    assert len(cached) == 1
    verbose = subprocess.run(
        [sys.executable, "-v", "-c", "import bass_builder"], env=env, capture_output=True, text=True
    ).stderr
    assert f"matches {shim / 'bass_builder.py'}" in verbose


# -- git -------------------------------------------------------------------------------


def _git_commands(said: list[str]) -> list[str]:
    """The git commands run, but the clean every checkout starts beside its fetch."""
    commands = [" ".join(line.split()[1:3]) for line in said if line.startswith("$ git ")]
    return [c for c in commands if c != "git clean"]


def test_the_clone_is_repointed_only_when_its_url_changed(tmp_path: Path) -> None:
    upstream = Repo(tmp_path / "upstream")
    head = upstream.commit({"a": "1"})
    workdir = tmp_path / "ws"

    def build(url: str) -> list[str]:
        said: list[str] = []
        wanted = checkout.Wanted(url, "main")
        assert checkout.check_out(wanted, checkout.Workspace(url, workdir, said.append)) == head
        return _git_commands(said)

    assert build(str(upstream.path))[:2] == ["git init", "git remote"]
    assert build(str(upstream.path))[0] == "git fetch"  # fetched from there last time
    # the same clone, another URL of the same repository: re-pointed, then not again
    other = f"file://{upstream.path}"
    assert build(other)[:2] == ["git remote", "git fetch"]
    assert build(other)[0] == "git fetch"


def test_a_failed_fetch_leaves_the_url_to_be_set_again(tmp_path: Path) -> None:
    upstream = Repo(tmp_path / "upstream")
    upstream.commit({"a": "1"})
    workdir = tmp_path / "ws"
    said: list[str] = []
    missing = str(tmp_path / "missing")
    with pytest.raises(checkout.CheckoutError):
        checkout.check_out(
            checkout.Wanted(missing, "main"), checkout.Workspace(missing, workdir, said.append)
        )
    said.clear()
    url = str(upstream.path)
    checkout.check_out(checkout.Wanted(url, "main"), checkout.Workspace(url, workdir, said.append))
    assert _git_commands(said)[:2] == ["git remote", "git fetch"]
    assert "$ git remote set-url origin " + url in said


def test_git_maintenance_is_kept_out_of_the_fetch_and_run_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = checkout.git_environment({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b"})
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_0"] == "a.b"  # the environment's own setting stays
    assert (env["GIT_CONFIG_KEY_1"], env["GIT_CONFIG_VALUE_1"]) == ("maintenance.auto", "false")
    upstream = Repo(tmp_path / "upstream")
    upstream.commit({"a": "1"})
    workdir = tmp_path / "ws"
    url = str(upstream.path)
    trace = tmp_path / "trace2.json"
    for n in range(2):  # a new clone, then a fetch of a new commit into it
        upstream.commit({"a": str(n)})  # (a commit runs maintenance too: not traced)
        monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
        checkout.check_out(checkout.Wanted(url, "main"), checkout.Workspace(url, workdir, print))
        monkeypatch.delenv("GIT_TRACE2_EVENT")
    started = trace.read_text()
    assert '"child_start"' in started and '"fetch"' in started  # the trace sees fetch's children
    assert '"maintenance","run"' not in started and '"gc","--auto"' not in started
    assert "[maintenance" not in (workdir / ".git" / "config").read_text()  # not the clone's

    # enough loose objects for a `gc --auto` (git samples objects/17: 600 blobs put
    # two there), made in the clone itself, where no fetch packed them
    clone = Repo.__new__(Repo)
    clone.path = workdir
    clone.commit({f"f/{i}": f"x{i}\n" for i in range(600)})
    clone.git("config", "gc.auto", "100")  # after the commit, which would gc itself
    clone.git("config", "gc.autoDetach", "false")

    def loose() -> int:
        return int(clone.git("count-objects").split()[0])

    assert loose() > 600
    assert checkout.maintain(workdir) is None  # after the build: the gc fetch would make
    assert loose() == 0
    assert checkout.maintain(tmp_path / "not-a-clone") is None


# -- the builder's arguments -----------------------------------------------------------

TRACE, SPAN = "0123456789abcdef0123456789abcdef", "0123456789abcdef"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--service-name", "bass:pipeline:p", "--trace-id", TRACE, "--root-span-id", SPAN,
         "--traces-endpoint", "http://h:1/v1/traces", "--logs-endpoint", "http://h:1/v1/logs",
         "--changeset", "/nonexistent", "--root", "/r"],
        ["-s", "s", "-i", TRACE.upper(), "-d", SPAN, "-t", "http://t", "-l", "http://l", "-g"],
        ["--trace-id=" + TRACE, "--service-name=", "-j", "3", "--max-parallel", "2"],
        ["--root", "a b", "--generate-root-span", "-r", "c"],
    ],
)  # fmt: skip
def test_the_standard_arguments_parse_as_argparse_parses_them(argv: list[str]) -> None:
    plain = bass_builder._parse_plainly(argv, False)
    assert plain is not None
    assert vars(plain) == vars(bass_builder._parse_with_argparse(argv, False))
    with_file = bass_builder._parse_plainly(["pipeline.json", *argv], True)
    assert with_file is not None and with_file.pipeline == "pipeline.json"


@pytest.mark.parametrize(
    "argv",
    [
        ["-h"],
        ["--trace-id", "-x"],
        ["--trace-id", "00" * 16],
        ["--trace-id"],
        ["--unknown", "1"],
        ["--trace"],
        ["-sX"],
        ["-j", "0"],
        ["-j", "²"],
        ["-g=1"],
        ["--", "x"],
        ["extra"],
        [""],
    ],
)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert bass_builder._parse_plainly(argv, False) is None


def test_bad_arguments_still_exit_2_and_unknown_ones_are_still_ignored(capfd) -> None:
    with pytest.raises(SystemExit) as exited:
        bass_builder.parse_arguments(["--trace-id", "xyz"])
    assert exited.value.code == 2
    assert "--trace-id must be 32 hex digits" in capfd.readouterr().err
    options, _ = bass_builder.parse_arguments(["--unknown", "-s", "svc"])
    assert options.service_name == "svc"
    assert "ignoring unknown arguments: --unknown" in capfd.readouterr().err


def test_a_dequeue_endpoint_with_credentials_stops_the_worker_at_once(tmp_path: Path) -> None:
    url = "http://user:secret@bass.example.com:8080/dequeue"
    done = subprocess.run(
        [sys.executable, "-m", "bass", "worker", "-d", url, "-w", str(tmp_path / "ws")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--dequeue-endpoint: not an http(s) URL without credentials" in done.stderr
    assert "secret" not in done.stderr + done.stdout
