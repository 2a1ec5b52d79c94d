"""A Python entry (`python3 job.py`) started warm: its own interpreter starts in the
entry's environment, with the builder imported, while the checkout runs, and then runs
the script exactly as `python3 job.py` would — or execs it when it could not be the
same. Each case runs the same script both ways, in real processes, and compares what
the script saw and did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bass_builder
from bass.worker import cleanup, procs

pytestmark = pytest.mark.skipif(not cleanup.SUPPORTED, reason="Linux /proc, prctl")

PYTHON = os.path.realpath(sys.executable)  # the program itself, as warm_python finds it
BUILDER = str(Path(bass_builder.__file__).parent)  # on PYTHONPATH, as the worker's shim

# What a script sees of how it was run; `preloaded`: whether the builder came ahead.
FACTS = """\
import json, os, subprocess, sys
preloaded = "bass_builder" in sys.modules
import __main__
facts = {
    "name": __name__, "file": __file__, "argv": sys.argv, "path0": sys.path[0],
    "main_is_this": __main__.__dict__ is globals(), "spec": repr(__spec__),
    "package": __package__, "doc": __doc__, "cwd": os.getcwd(),
    "commit": os.environ["BASS_COMMIT"],
    "child_commit": subprocess.run(
        ["sh", "-c", "echo $BASS_COMMIT"], capture_output=True, text=True
    ).stdout.strip(),
    "loader": type(__loader__).__name__ if "__loader__" in globals() else None,
}
print(json.dumps({"facts": facts, "preloaded": preloaded}))
"""


def _env(tmp_path: Path, commit: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": BUILDER,
        "BASS_COMMIT": commit,
        "HOME": str(tmp_path),
    }


def _both(
    tmp_path: Path, files: dict[str, str], argv: list[str], *, changed: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """(warm run, plain run) of `python3 ARGV…`."""
    work = tmp_path / "ws"
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    final = {**_env(tmp_path, "c0ffee"), **(changed or {})}
    launcher = procs.Launcher(PYTHON, _env(tmp_path, ""))
    proc = launcher.start([PYTHON, *argv], cwd=work, env=final)
    out, err = proc.communicate(timeout=60)
    warm = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
    plain = subprocess.run(
        [PYTHON, *argv], cwd=work, env=final, capture_output=True, text=True, timeout=60
    )
    return warm, plain


def _facts(run: subprocess.CompletedProcess) -> tuple[dict, bool]:
    answer = json.loads(run.stdout)
    return answer["facts"], answer["preloaded"]


def test_a_python_entry_runs_warm_as_the_interpreter_would_run_it(tmp_path: Path) -> None:
    warm, plain = _both(tmp_path, {"ci/job.py": FACTS}, ["ci/job.py", "--trace-id", "a b"])
    assert warm.returncode == plain.returncode == 0, warm.stderr + plain.stderr
    assert _facts(warm) == (_facts(plain)[0], True)  # the same, the builder ahead
    assert _facts(plain)[1] is False
    facts = _facts(warm)[0]
    assert facts["argv"] == ["ci/job.py", "--trace-id", "a b"]
    assert facts["path0"] == str(tmp_path / "ws" / "ci")
    assert facts["commit"] == facts["child_commit"] == "c0ffee"  # told after the start


@pytest.mark.parametrize(
    "body",
    [
        "import sys\nprint('out')\nsys.exit(3)\n",
        "def f():\n    raise ValueError('no')\nprint('before', flush=True)\nf()\n",
        "x = (\n",  # a syntax error
        "import sys\nsys.exit('a message')\n",
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('late'))).start()\n",
        "import atexit\natexit.register(print, 'at exit')\n",
    ],
)
def test_exit_status_output_and_tracebacks_are_the_interpreters(tmp_path: Path, body: str) -> None:
    # the first line tells (in a file) whether the builder was there before the script
    side = tmp_path / "preloaded"
    first = f"import sys; open({str(side)!r}, 'a').write(str('bass_builder' in sys.modules))\n"
    warm, plain = _both(tmp_path, {"job.py": first + body}, ["job.py"])
    if body != "x = (\n":  # a syntax error runs no line
        assert side.read_text() == "TrueFalse"  # warm, then plain
    assert (warm.returncode, warm.stdout, warm.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )


@pytest.mark.parametrize(
    ("files", "changed"),
    [
        # a module of a name imported ahead, where the script's directory shadows it
        ({"json.py": "LOCAL = True\n"}, None),
        ({"bass_builder.py": "LOCAL = True\n"}, None),
        # an environment that changed otherwise than its commit
        ({}, {"EXTRA": "1"}),
    ],
)
def test_where_it_could_differ_the_entry_is_execd_instead(
    tmp_path: Path, files: dict[str, str], changed: dict[str, str] | None
) -> None:
    script = (
        "import json, sys\nprint(getattr(json, 'LOCAL', False), 'bass_builder' in sys.modules)\n"
    )
    warm, plain = _both(tmp_path, {"job.py": script, **files}, ["job.py"], changed=changed)
    assert warm.returncode == plain.returncode == 0, warm.stderr
    assert warm.stdout == plain.stdout  # not preloaded: a fresh interpreter


def test_a_syntax_error_of_an_imported_module_keeps_its_traceback(tmp_path: Path) -> None:
    files = {"job.py": "import broken\n", "broken.py": "x = (\n"}
    warm, plain = _both(tmp_path, files, ["job.py"])
    assert (warm.returncode, warm.stderr) == (plain.returncode, plain.stderr)
    assert 'File "' in warm.stderr and "import broken" in warm.stderr


def test_a_missing_script_fails_as_the_interpreter_says(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    warm, plain = _both(tmp_path, {}, ["missing.py"])
    assert warm.returncode == plain.returncode == 2
    assert warm.stderr == plain.stderr


def test_a_warm_launcher_let_go_exits_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    launcher = procs.Launcher(PYTHON, _env(tmp_path, ""))
    launcher.discard()
    assert launcher.proc.returncode == 0
    dead = procs.Launcher("/bin/false", _env(tmp_path, ""))  # not Python: exits at once
    dead.proc.wait()
    (tmp_path / "job.py").write_text("print('ran')\n")
    proc = dead.start([PYTHON, "job.py"], cwd=tmp_path, env=_env(tmp_path, "c"))
    assert proc.communicate(timeout=60)[0] == b"ran\n"


def test_an_interpreter_that_ends_before_it_is_ready_is_not_used(tmp_path: Path) -> None:
    """Not a Python 3 (a Python 2 fails on launch.py's syntax), or one that crashes at
    start: it never says it is ready, so the entry starts the plain way, whenever the
    interpreter ends — before or after the entry is handed over."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nsleep 0.3\necho 'SyntaxError' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "job.py").write_text("import sys\nprint('ran', 'bass_builder' in sys.modules)\n")
    launcher = procs.Launcher(str(fake), _env(tmp_path, ""))
    proc = launcher.start([PYTHON, "job.py"], cwd=tmp_path, env=_env(tmp_path, "c"))
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"ran False\n"), err  # a fresh interpreter ran it


def test_a_warm_interpreter_hanging_at_start_is_killed_when_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkout failed while the interpreter was still starting (a site hook on a
    dead network share, say): letting it go must not hold the worker."""
    monkeypatch.setattr(procs.Launcher, "DISCARD_SECONDS", 0.5)
    hung = tmp_path / "python3"
    hung.write_text("#!/bin/sh\nexec sleep 300\n")
    hung.chmod(0o755)
    launcher = procs.Launcher(str(hung), _env(tmp_path, ""))
    launcher.discard()
    assert launcher.proc.returncode is not None  # killed, not waited on for 300 s


def test_which_entries_start_warm(tmp_path: Path) -> None:
    work = tmp_path / "ws"
    work.mkdir()
    env = {"PATH": f"{Path(PYTHON).parent}:/usr/bin:/bin"}
    name = Path(PYTHON).name
    assert procs.warm_python([name, "job.py"], env, work) == PYTHON
    assert procs.warm_python([PYTHON, "ci/job.py", "--x"], env, work) == PYTHON
    assert procs.warm_python([name, "-m", "pkg"], env, work) is None  # options: not a script
    assert procs.warm_python([name], env, work) is None
    assert procs.warm_python(["./job.py"], env, work) is None  # not an interpreter's name
    assert procs.warm_python(["make", "job.py"], env, work) is None
    assert procs.warm_python([name, "job.py"], {**env, "PYTHONPATH": "src"}, work) is None
    # an empty element (PYTHONPATH=/x:$PYTHONPATH with none set) is the start's directory
    assert procs.warm_python([name, "job.py"], {**env, "PYTHONPATH": "/x:"}, work) is None
    assert procs.warm_python([name, "job.py"], {"PATH": f"bin:{env['PATH']}"}, work) is None
    # a directory of the workspace on PATH: the checkout may put another python there
    assert procs.warm_python([name, "job.py"], {"PATH": f"{work}/bin:{env['PATH']}"}, work) is None
    shim = tmp_path / "shims"
    shim.mkdir()
    (shim / "python3").write_text(f'#!/bin/sh\nexec {PYTHON} "$@"\n')  # a script, not it
    (shim / "python3").chmod(0o755)
    assert procs.warm_python(["python3", "job.py"], {"PATH": str(shim)}, work) is None
    inside = work / ".venv" / "bin"  # made by the build: the checkout may remove it
    inside.mkdir(parents=True)
    os.symlink(PYTHON, inside / "python3")
    assert procs.warm_python([str(inside / "python3"), "job.py"], env, work) is None
