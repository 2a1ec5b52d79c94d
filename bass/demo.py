"""`bass demo`: the examples of testpipelines/ as a local git repository, built by
`bass serve --local-worker` on this machine, offline."""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import bass
from bass.config import Settings

# pipeline name → the build entry of its example, run from the repository's root
EXAMPLES = {
    "simple": ["job-simple.py"],
    "complex": ["job-complex.py"],
    "setup-teardown": ["job-setup-teardown.py"],
    "changeset": ["job-changeset.py"],
    "cwd": ["job-cwd.py"],
    "json-pipeline": ["-m", "bass_builder", "pipeline.json"],
}
SHELL_EXAMPLE = "job-shell.sh"


def examples_dir() -> Path:
    """testpipelines/ as installed in the package, or beside it in a source checkout."""
    here = Path(bass.__file__).resolve().parent
    for candidate in (here / "testpipelines", here.parent / "testpipelines"):
        if (candidate / "job-simple.py").exists():
            return candidate
    raise FileNotFoundError("the example pipelines (testpipelines/) are not installed")


def prepare(root: Path) -> tuple[Path, dict[str, dict]]:
    """Create the demo repository and the orchestrator's files under `root`."""
    repo = root / "repo"
    if not (repo / ".git").exists():
        shutil.copytree(
            examples_dir(), repo, dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "__init__.py", "*.pyc"),
        )  # fmt: skip
        git = ["git", "-c", "user.name=bass demo", "-c", "user.email=demo@localhost"]
        subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(repo)], check=True)
        subprocess.run([*git, "-C", str(repo), "add", "--all"], check=True)
        subprocess.run(
            [*git, "-C", str(repo), "commit", "--quiet", "-m", "bass examples"], check=True
        )
    pipelines: dict[str, dict] = {}
    for name, entry in EXAMPLES.items():
        if (repo / entry[-1]).exists():
            pipelines[name] = {
                "repository": str(repo),
                "ref": "main",
                "exec": [sys.executable, *entry],
                "description": f"testpipelines/{entry[-1]}",
            }
    if (repo / SHELL_EXAMPLE).exists():
        pipelines["shell"] = {
            "repository": str(repo),
            "ref": "main",
            "exec": ["sh", SHELL_EXAMPLE],
            "description": f"testpipelines/{SHELL_EXAMPLE}: a build entry in plain sh + curl",
        }
    (root / Settings.pipelines_file).write_text(json.dumps(pipelines, indent=2) + "\n")
    env_file = root / Settings.env_file
    if not env_file.exists():
        env_file.write_text(
            "# variables every build gets; values are masked in logs\n"
            "apikey=demo-secret-not-for-production\n"
        )
    keys = root / Settings.worker_keys_file
    if not keys.exists():
        keys.write_text(secrets.token_urlsafe(24) + "\n")
        keys.chmod(0o600)
    return repo, pipelines


def demo(args: argparse.Namespace) -> int:
    from bass.server import refuse_an_open_network, run_server

    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    repo, pipelines = prepare(root)
    settings = Settings(
        pipelines_file=str(root / Settings.pipelines_file),
        env_file=str(root / Settings.env_file),
        worker_keys_file=str(root / Settings.worker_keys_file),
        db=str(root / Settings.db),
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        local_worker=True,
        workspace_root=str(root / "workspace"),
        insecure=args.insecure,
    ).load_files()
    try:
        refuse_an_open_network(settings)
    except ValueError as e:
        print(f"bass demo: {e}", file=sys.stderr)
        return 2
    url = settings.local_url()
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    threading.Thread(target=_trigger_all, args=(url, list(pipelines), head), daemon=True).start()
    print(f"bass demo in {root}: {len(pipelines)} example pipelines", flush=True)
    return run_server(settings)


def _trigger_all(url: str, names: list[str], head: str) -> None:
    """Queue one build of each example once the server answers; say so, or say why not
    (a server that does not come up says why itself)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                print(f"bass demo: {url} did not answer; no builds queued", flush=True)
                return
            time.sleep(0.1)
    try:
        for name in names:
            query = f"pipeline={name}" + (f"&changed-refs={head}" if name == "changeset" else "")
            request = urllib.request.Request(f"{url}/webhook?{query}", method="POST")
            with urllib.request.urlopen(request, timeout=30):
                pass
    except OSError as e:
        print(f"bass demo: queueing the example builds failed: {e}", flush=True)
        return
    print(
        f"\n  bass is running; {len(names)} builds queued.\n"
        f"  Dashboard: {url}/\n  Stop with Ctrl-C.\n",
        flush=True,
    )
