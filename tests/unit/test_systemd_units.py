"""The service units in deploy/systemd: `systemd-analyze verify` finds nothing wrong in
them (and does find a bad directive: a broken copy is checked too), `systemd-analyze
security` rates them, and what they rely on holds — `bass serve` and `bass worker`,
started with the units' command lines and the shipped environment files, exit 0 on
SIGTERM, and a build running then leaves no process behind.

systemd-analyze runs offline (no systemd needed): Debian's `systemd` package."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Repo, free_port, http
from tests.e2e.test_worker_kill import (  # the build that starts processes of every kind
    _setup,
    _survivors,
    _wait_running,
    leftovers,  # noqa: F401 (a fixture)
)
from tests.e2e.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
UNITS = ROOT / "deploy" / "systemd"
SHIPPED_BASS = "/opt/bass/bin/bass"  # where the units expect bass (README)
BASS = str(Path(sys.executable).parent / "bass")  # this environment's
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
# what systemd-analyze security rated the units at when they were written (0 safest, 10)
EXPOSURE = {"bass.service": 1.6, "bass-worker@1.service": 2.6}


def _install(directory: Path, text_of: dict[str, str] | None = None) -> Path:
    """The units in `directory`, running this environment's bass."""
    directory.mkdir(exist_ok=True)
    for unit in ("bass.service", "bass-worker@.service"):
        text = (text_of or {}).get(unit) or (UNITS / unit).read_text()
        assert SHIPPED_BASS in text, unit
        (directory / unit).write_text(text.replace(SHIPPED_BASS, BASS))
    return directory


def _verify(path: Path) -> list[str]:
    """What `systemd-analyze verify` says about the unit at `path`: its exit code
    stays 0 for a directive it cannot parse (it ignores it), so its words count too."""
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60
    )
    said = (done.stdout + done.stderr).splitlines()
    template = path.name.split("@")[0]  # bass-worker@1.service is read from its template
    problems = [line for line in said if template in line]
    if done.returncode != 0:
        problems.append(f"exit code {done.returncode}: {said}")
    return problems


@needs_analyze
@pytest.mark.parametrize("unit", ["bass.service", "bass-worker@1.service"])
def test_the_units_verify(tmp_path: Path, unit: str) -> None:
    assert _verify(_install(tmp_path / "units") / unit) == []


@needs_analyze
@pytest.mark.parametrize(
    ("directive", "broken"),
    [
        ("KillMode=mixed", "KillMode=mixd"),
        ("Restart=on-failure", "Restart=on-failure\nRestartSecs=5s"),
        (f"{SHIPPED_BASS} worker", f"{SHIPPED_BASS}-missing worker"),
    ],
)
def test_verify_finds_a_bad_directive(tmp_path: Path, directive: str, broken: str) -> None:
    """The check above would catch a typo in a shipped unit."""
    text = (UNITS / "bass-worker@.service").read_text()
    assert directive in text
    units = _install(tmp_path / "units", {"bass-worker@.service": text.replace(directive, broken)})
    assert _verify(units / "bass-worker@1.service")
    assert _verify(units / "bass.service") == []


@needs_analyze
@pytest.mark.parametrize("unit", sorted(EXPOSURE))
def test_the_units_exposure(tmp_path: Path, unit: str) -> None:
    """`systemd-analyze security --offline` rates the sandbox (0 safest, 10 unsafe):
    not worse than when the units were written."""
    assert ANALYZE is not None
    units = _install(tmp_path / "units")
    done = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(units / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= EXPOSURE[unit], done.stdout


# -- what the units rely on ------------------------------------------------------------


def _environment_file(name: str) -> dict[str, str]:
    """The `KEY=value` lines of a shipped environment file (as EnvironmentFile= reads
    the ones shipped: no quotes, no continuations)."""
    found = {}
    for line in (UNITS / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def _exec_start(unit: str, instance: str, environment: dict[str, str]) -> list[str]:
    """The unit's ExecStart as systemd runs it: specifiers replaced, `$VAR` split into
    words (none when unset), this environment's bass."""
    (line,) = [x for x in (UNITS / unit).read_text().splitlines() if x.startswith("ExecStart=")]
    line = line.removeprefix("ExecStart=").replace("%i", instance)
    line = line.replace("%H", socket.gethostname())
    assert "%" not in line, f"a specifier this test does not know: {line}"
    argv: list[str] = []
    for word in shlex.split(line):
        if re.fullmatch(r"\$[A-Z_]+", word):
            argv += environment.get(word[1:], "").split()
        else:
            argv.append(word)
    assert argv[0] == SHIPPED_BASS
    return [BASS, *argv[1:]]


def _systemd_environment(home: Path, environment: dict[str, str]) -> dict[str, str]:
    """What a service gets: a clean environment, its user's HOME, the file's lines."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **environment}


def test_serve_and_a_worker_as_the_units_run_them_stop_on_sigterm(
    tmp_path: Path,
    leftovers: list,  # noqa: F811 (the fixture imported above)
) -> None:
    repo = Repo(tmp_path / "repo")
    pids, pipelines = _setup(repo, tmp_path)
    port = free_port()

    # bass.service: WorkingDirectory=/var/lib/bass, bass.env
    state = tmp_path / "var-lib-bass"
    state.mkdir()
    (state / "orchestrator-pipelines.json").write_text(json.dumps(pipelines))
    worker_env = _environment_file("bass-worker.env")
    (state / "worker-keys").write_text(f"worker-1: {worker_env['BASS_API_KEY']}\n")
    serve_env = _environment_file("bass.env")
    serve_env["BASS_SERVE_ARGS"] += f" --port {port} --grpc-port 0"  # free ports, in a test
    serve_log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    serve = subprocess.Popen(
        _exec_start("bass.service", "", serve_env),
        cwd=state,
        env=_systemd_environment(state, serve_env),
        stdout=serve_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    # bass-worker@1.service: /var/lib/bass-worker/1, worker.env (its server here)
    worker_home = tmp_path / "var-lib-bass-worker"
    workspace = worker_home / "1"
    workspace.mkdir(parents=True)
    worker_env["BASS_WORKER_ARGS"] = worker_env["BASS_WORKER_ARGS"].replace(
        "127.0.0.1:8080", f"127.0.0.1:{port}"
    )
    argv = _exec_start("bass-worker@.service", "1", worker_env)
    argv[argv.index("--workspace-root") + 1] = str(workspace)
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        argv,
        cwd=workspace,
        env=_systemd_environment(worker_home, worker_env),
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def output() -> str:
        return "\n".join(
            f"{name}:\n{(tmp_path / name).read_text(errors='replace')}"
            for name in ("serve.log", "worker.log")
        )

    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), "bass serve to listen", context=output)
        status, queued = http("POST", f"{url}/webhook?pipeline=kill")
        assert status == 200, queued
        procs = _wait_running(pids, output)
        leftovers.append(procs)

        worker.send_signal(signal.SIGTERM)  # systemctl stop, KillMode=mixed: the worker alone
        assert worker.wait(60) == 0, output()  # a bound against a hang, not a timing claim
        # Every process that carries the build's BASS_RUN_ID is gone once the worker has
        # exited. One that cleared its environment and left its process group, but not
        # its step's session, can be left: the builder killed its session-mates first,
        # so no marked process shares its session when the worker sweeps. That one is
        # KillMode=mixed's: systemd kills what is left in the unit's cgroup.
        assert set(_survivors(procs)) <= {"scrubbed"}, (_survivors(procs), output())
        _, ended = http("GET", f"{url}/api/builds/{queued['id']}")
        assert ended["state"] == "cancelled", (ended, output())

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, output()
        for name in ("serve.log", "worker.log"):  # bass.env's --log-format json: for journald
            for line in (tmp_path / name).read_text().splitlines():
                assert isinstance(json.loads(line), dict), line
    finally:
        for proc in (worker, serve):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        serve_log.close()
        worker_log.close()


def _answers(url: str) -> bool:
    try:
        return http("GET", url, timeout=1)[0] == 200
    except OSError:
        return False
