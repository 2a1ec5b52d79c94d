"""Live configuration: `bass serve` reads its files again when they change, or on SIGHUP.

A ConfigWatcher watches the directories of the pipelines, env, worker-keys and
ingest-tokens files (editors save by renaming a new file over the old one, so the file
itself cannot be watched), waits until the edits have settled (`debounce`), reads every
file with bass.config in a thread, and hands the new Config to the `apply` callback the
app gives, on the event loop. Builds keep what they started with: a queued build stores
its pipeline's config.

An edit that does not load changes nothing: the last good configuration stays in force,
and `error` says what is wrong (the ConfigError: file, pipeline, field) until an edit
fixes it. A ConfigError never quotes a value from the files (an env file's bad line is
named by its number), so it is logged and shown as it is.

Starlette knows nothing of this module, and it knows nothing of the app: the app gives
`apply`, runs `watch` as a task and asks `reload_soon` from its SIGHUP handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from bass.config import Config, ConfigError, Settings

log = logging.getLogger("bass.reload")

DEBOUNCE = 0.3  # seconds without a change to the files before they are read


@dataclasses.dataclass(frozen=True)
class _Targets:
    """What to watch: directories (those that exist), and the paths in them that matter."""

    directories: tuple[str, ...]
    paths: frozenset[str]
    unwatched: tuple[str, ...]  # configured files whose directory does not exist


class ConfigWatcher:
    """Reads the configuration files again when they change; see the module's doc."""

    def __init__(
        self,
        settings: Settings,
        apply: Callable[[Config], None],
        *,
        debounce: float = DEBOUNCE,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.apply = apply  # must not call reload(): it runs inside it
        self.debounce = debounce
        self.clock = clock
        self.config: Config = settings.config  # the configuration in force (the last good)
        self.loaded_at: float = clock()  # when it was read (first: at `bass serve`'s start)
        self.error: str | None = None  # why the files, as they are now, are not in force
        self.failed_at: float | None = None  # when `error` was (last) found
        self.reads = 0  # how many times the files were read, with either outcome
        self.ready = threading.Event()  # set while the directories are being watched
        self.watched: tuple[str, ...] = ()  # those directories
        self._lock = threading.Lock()
        self._reads_started = itertools.count(1)
        self._settled = 0  # the newest read whose outcome is in force
        self._targets = _targets(self.files)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._last_change = 0.0
        self._changed: asyncio.Event | None = None
        self._watch_alive = False

    @property
    def files(self) -> list[str]:
        s = self.settings
        return [s.pipelines_file, s.env_file, s.worker_keys_file, s.ingest_tokens_file]

    def status(self) -> dict[str, Any]:
        """For /status and the dashboard."""
        return {
            "ok": self.error is None,
            "error": self.error,
            "failed_at": self.failed_at,
            "loaded_at": self.loaded_at,
            "reads": self.reads,
            "watching": list(self.watched),
            "files": self.files,
        }

    # -- reading ----------------------------------------------------------------------

    def read(self) -> Config:
        """What the files say now, read as at start (bass.config), or ConfigError."""
        return dataclasses.replace(self.settings, config=Config()).load_files().config

    def reload(self) -> bool:
        """Read the files and put what they say in force (apply, in this thread);
        returns whether they are good. Thread-safe."""
        return self._settle(*self._read())

    async def reload_async(self) -> bool:
        """reload(), with the files read in a thread and `apply` called on this loop."""
        return self._settle(*await asyncio.to_thread(self._read))

    def reload_soon(self) -> None:
        """Ask for a reload from any thread, a signal handler's too (SIGHUP): it runs on
        the loop of `watch`. Before `watch` has started, or after it ended, it is
        logged and dropped."""
        loop = self._loop
        if loop is None:
            log.warning("configuration reload asked before the server runs: ignored")
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped
            loop.call_soon_threadsafe(self._spawn_reload)

    def _spawn_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_logged())
        self._pending.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._pending.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload_async()
        except Exception:  # apply's own failure is handled in _settle; this is a bug
            log.exception("reloading the configuration failed")

    def _read(self) -> tuple[int, Config | ConfigError, _Targets]:
        with self._lock:
            number = next(self._reads_started)
        targets = _targets(self.files)  # a symlink may point elsewhere now
        try:
            return number, self.read(), targets
        except ConfigError as e:
            return number, e, targets

    def _settle(self, number: int, outcome: Config | ConfigError, targets: _Targets) -> bool:
        with self._lock:
            if number < self._settled:
                return self.error is None  # a newer read is in force already
            self._settled = number
            self.reads += 1
            self._retarget(targets)
            if isinstance(outcome, ConfigError):
                self.error, self.failed_at = str(outcome), self.clock()
                log.error("%s (the last good configuration stays in force)", outcome)
                return False
            if self.error is not None:
                log.info("configuration files are good again")
            self.error = self.failed_at = None
            if outcome == self.config:
                return True
            try:
                self.apply(outcome)
            except Exception:
                log.exception("applying the new configuration failed")
                self.error = "the new configuration could not be put in force: see the log"
                self.failed_at = self.clock()
                return False
            log.info("configuration reloaded: %s", describe_change(self.config, outcome))
            self.config, self.loaded_at = outcome, self.clock()
            return True

    # -- watching ---------------------------------------------------------------------

    async def watch(self, stop_event: asyncio.Event) -> None:
        """Watch the files' directories until `stop_event` is set: it ends within a
        fraction of a second then. Prefer that to cancelling the task, which waits up
        to a second for the watching thread (and sets `stop_event`: awatch does). Never
        raises: if watching fails, the reason is logged and SIGHUP still reloads."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        settler = asyncio.create_task(self._reload_when_settled(self._changed))
        try:
            while not stop_event.is_set():
                targets = self._targets
                for path in targets.unwatched:
                    log.warning(
                        "%s: its directory does not exist; once it does, SIGHUP reloads", path
                    )
                if not targets.directories:
                    await stop_event.wait()
                    break
                try:
                    await self._watch(targets, stop_event)
                except Exception as e:  # the OS refused (inotify's limit, say)
                    log.error("cannot watch the configuration files (%s); SIGHUP reloads", e)
                    await stop_event.wait()
        finally:
            self.watched = ()
            self.ready.clear()
            settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await settler

    async def _watch(self, targets: _Targets, stop_event: asyncio.Event) -> None:
        """Until stopped, or until the directories to watch change."""
        assert self._loop is not None and self._changed is not None
        changes = awatch(
            *targets.directories,
            watch_filter=self._concerns,
            recursive=False,  # the workspace and the database may live beside the files
            step=50,
            rust_timeout=1000,  # how soon a change of `targets` is seen
            yield_on_timeout=True,
            stop_event=stop_event,
        )
        # awatch sets up the OS watches before it first waits, in the step of this task
        # that starts the iteration: this callback can run only after it.
        self._watch_alive = True
        self._loop.call_soon(self._watching, targets.directories)
        try:
            async with contextlib.aclosing(changes):
                async for batch in changes:
                    if batch:
                        self._last_change = self._loop.time()
                        self._changed.set()
                    if self._targets.directories != targets.directories:
                        log.info("watching %s now", ", ".join(self._targets.directories))
                        return
        finally:
            self._watch_alive = False
            self.watched = ()
            self.ready.clear()

    def _watching(self, directories: tuple[str, ...]) -> None:
        if self._watch_alive:  # not if awatch failed at once (a directory went away)
            self.watched = directories
            self.ready.set()

    def _concerns(self, change: Change, path: str) -> bool:
        return path in self._targets.paths

    async def _reload_when_settled(self, changed: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await changed.wait()
            while (quiet := self._last_change + self.debounce - loop.time()) > 0:
                await asyncio.sleep(quiet)  # an editor may write a file in several steps
            changed.clear()
            await self._reload_logged()

    def _retarget(self, targets: _Targets) -> None:
        if targets != self._targets:
            self._targets = targets  # the filter sees it at once; `_watch` within 1 s


def _targets(files: list[str]) -> _Targets:
    """The directories of `files` and the paths in them whose change may change what a
    file says: the file itself; where it is a symlink, the file it points to, and, for a
    relative link, its first step (Kubernetes swaps a `..data` symlink)."""
    paths: set[str] = set()
    unwatched = []
    for file in files:
        absolute = os.path.abspath(file)
        directory = os.path.realpath(os.path.dirname(absolute))
        if not os.path.isdir(directory):
            unwatched.append(file)
            continue
        paths.add(os.path.join(directory, os.path.basename(absolute)))
        try:
            link = os.readlink(absolute)
        except OSError:  # not a symlink, or not there
            continue
        paths.add(os.path.realpath(absolute))
        first = Path(link).parts[0] if link and not os.path.isabs(link) else None
        if first not in (None, ".", ".."):
            paths.add(os.path.join(directory, first))
    directories = sorted({os.path.dirname(p) for p in paths if os.path.isdir(os.path.dirname(p))})
    return _Targets(tuple(directories), frozenset(paths), tuple(unwatched))


def describe_change(old: Config, new: Config) -> str:
    """What changed, by name (never a value): for the log."""
    parts = []
    for what, before, after in (
        ("pipelines", old.pipelines, new.pipelines),
        ("env variables", old.env, new.env),
    ):
        added = sorted(after.keys() - before.keys())
        removed = sorted(before.keys() - after.keys())
        changed = sorted(k for k in after.keys() & before.keys() if after[k] != before[k])
        for verb, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                parts.append(f"{what} {verb}: {', '.join(names)}")
    for what, before_keys, after_keys in (
        ("worker keys", old.worker_keys, new.worker_keys),
        ("ingest tokens", old.ingest_tokens, new.ingest_tokens),
    ):
        if before_keys != after_keys:
            parts.append(f"{what}: {len(after_keys)}")
    return "; ".join(parts) or "nothing"
