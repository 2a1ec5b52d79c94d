"""`bass watch`: the pipeline as a local feedback loop. Edit a file, and the steps it
affects run again.

The build entry runs once with the standard arguments (its changeset: everything, or
`git diff --name-only REF` with `--since REF`), then the working copy is watched
(watchfiles; what git ignores, `.git/` and watchfiles' own list of caches are left
out) and, once the edits have settled (`--debounce`), it runs again with a changeset of
exactly the paths changed since the previous run: a step guarded by
`if-changeset-matches` runs only when a path it cares about changed. A change during a
run stops it (its steps' teardowns run; see bass.run_local) and starts the next, whose
changeset then holds the stopped run's paths too. Ctrl-C stops the run and exits 0.

Each run is a `bass.run_local.LocalRun`: what a worker would run, reported as a local
build when a `bass serve` answers, its root span naming the previous run's trace.
"""

from __future__ import annotations

import argparse
import logging
import queue
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bass.run_local import (
    DEFAULT_ENTRY,
    LocalError,
    LocalRun,
    changed_since,
    entry_cwd,
    find_server,
    git_root,
    local_job,
    read_env,
    read_pipeline,
    shown_paths,
    stop_on_signals,
)


def main(args: argparse.Namespace) -> int:
    try:
        root = git_root(Path.cwd())
        name, pipeline, cwd = _entry(args, root)
        env = read_env(args.env_file)
        changed = changed_since(root, args.since) if args.since else []
    except LocalError as e:
        print(f"bass watch: {e}", file=sys.stderr)
        return 2
    server = None if args.offline else find_server(args.server)
    where = f"reporting to {server}" if server else "offline"
    stop = threading.Event()
    stop_on_signals(stop)
    changes: queue.Queue[list[str]] = queue.Queue()
    ready = threading.Event()
    watcher = threading.Thread(
        target=_watch_files,
        args=(root, changes, stop, ready, args.debounce),
        name="bass-watch",
        daemon=True,
    )
    watcher.start()
    ready.wait(10)  # edits from here on are seen
    print(f"bass watch: {name} in {root} ({where}); Ctrl-C stops", flush=True)
    previous: str | None = None
    number = 0
    with tempfile.TemporaryDirectory(prefix="bass-watch-") as work:
        while not stop.is_set():
            number += 1
            attributes: dict[str, Any] = {"bass.watch.run": number}
            if previous:
                attributes["bass.previous_trace_id"] = previous
            job = local_job(name, pipeline, env, server)
            run = LocalRun(job, root, cwd, Path(work), changed, server, attributes)
            print(f"── run {number} · changed: {shown_paths(changed)}", flush=True)
            run.start()
            pending: set[str] = set()
            while run.running():
                if _take_edits(root, changes, pending, stop, 0.1):
                    run.stop()  # an edit, or Ctrl-C: this run is out of date
            status = run.finish()
            # what the run wrote near its end is still coming (the debounce): its own too
            _take_edits(root, changes, pending, stop, (args.debounce + 200) / 1000)
            print(f"── run {number} {run.summary(status)}", flush=True)
            previous = run.trace_id
            if pending:  # stopped by a change: what it did not finish counts again
                changed = [] if not changed else sorted(pending.union(changed))
                continue
            while not stop.is_set() and not pending:
                _take(changes, pending, stop, 0.2)
            changed = sorted(pending)
    stop.set()
    watcher.join(5)
    print("bass watch: stopped", flush=True)
    return 0


def _take(changes: queue.Queue[list[str]], pending: set[str], stop: threading.Event,
          timeout: float) -> bool:  # fmt: skip
    """Wait up to `timeout` for changed paths (added to `pending`); True when there
    were some, or when `stop` is set."""
    try:
        pending.update(changes.get(timeout=timeout))
    except queue.Empty:
        return stop.is_set()
    while True:  # and whatever else has come meanwhile
        try:
            pending.update(changes.get_nowait())
        except queue.Empty:
            return True


def _take_edits(root: Path, changes: queue.Queue[list[str]], pending: set[str],
                stop: threading.Event, timeout: float) -> bool:  # fmt: skip
    """`_take` while a run is going: paths git does not track are the run's own
    outputs (a report, a build directory git does not ignore) and are left out, or a
    build that writes one would start over for ever; True for an edit, or `stop`."""
    batch: set[str] = set()
    if not _take(changes, batch, stop, timeout):
        return False
    edits = batch & _tracked(root, batch)
    pending.update(edits)
    return bool(edits) or stop.is_set()


def _tracked(root: Path, paths: set[str]) -> set[str]:
    """Those of `paths` that git tracks (or all, if git cannot tell)."""
    if not paths:
        return set()
    done = subprocess.run(
        ["git", "--literal-pathspecs", "ls-files", "-z", "--", *sorted(paths)],
        cwd=root,
        capture_output=True,
    )
    if done.returncode != 0:
        return set(paths)
    return set(done.stdout.decode(errors="replace").split("\0")) & paths


def _entry(args: argparse.Namespace, root: Path) -> tuple[str, dict[str, Any], Path]:
    """(pipeline name, pipeline, cwd): ENTRY as given, else the pipeline of the
    pipelines file (its `exec` and `cwd`), else `python3 job.py` here."""
    if args.entry:
        argv = list(args.entry)
        if len(argv) == 1 and argv[0].endswith(".py"):
            argv = ["python3", *argv]
        return args.pipeline or _name(root), {"repository": str(root), "exec": argv}, Path.cwd()
    if Path(args.pipelines_file).is_file():
        name, pipeline = read_pipeline(args.pipelines_file, args.pipeline)
        return name, pipeline, entry_cwd(root, pipeline)
    if not Path("job.py").is_file():
        raise LocalError(f"no {args.pipelines_file} and no job.py here: name the build entry")
    pipeline = {"repository": str(root), "exec": list(DEFAULT_ENTRY)}
    return args.pipeline or _name(root), pipeline, Path.cwd()


def _name(root: Path) -> str:
    """The working copy's directory name, as a pipeline name may be written."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", root.name).lstrip("._-")[:100]
    return name or "local"


def _watch_files(
    root: Path,
    out: queue.Queue[list[str]],
    stop: threading.Event,
    ready: threading.Event,
    debounce_ms: int,
) -> None:
    """Put each settled batch of changed paths (relative to `root`, none that git
    ignores) on `out` until `stop` is set; `ready` once the watcher sees changes."""
    import watchfiles  # here: nothing else of bass needs it at start

    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # not a line per batch

    for batch in watchfiles.watch(
        root,
        debounce=debounce_ms,
        step=50,
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=True,  # the first (empty) batch says the watcher is there
        raise_interrupt=False,
    ):
        ready.set()
        paths = sorted({Path(path).relative_to(root).as_posix() for _, path in batch} - {"."})
        kept = _not_ignored(root, paths)
        if kept:
            out.put(kept)


def _not_ignored(root: Path, paths: list[str]) -> list[str]:
    """The paths git does not ignore (a tracked file is never ignored)."""
    if not paths:
        return []
    done = subprocess.run(
        ["git", "check-ignore", "--stdin", "-z"],
        cwd=root,
        input="\0".join(paths).encode(),
        capture_output=True,
    )
    if done.returncode not in (0, 1):  # 1: none ignored; else git failed: keep them all
        return paths
    ignored = set(done.stdout.decode(errors="replace").split("\0"))
    return [p for p in paths if p not in ignored]
