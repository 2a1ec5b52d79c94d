"""The worker's loop: take jobs from the orchestrator, check out, run the build entry,
report.

One job at a time. The build entry gets the standard arguments (docs/contracts.md), the
env file's variables, `BASS_*`, `OTEL_EXPORTER_OTLP_*` and `TRACEPARENT`; its own
output becomes log records of the build's root span, which the worker exports at start
and at end with the build's status. With a server that grants leases the worker
heartbeats, learns of cancels, and reports the result; with a prototype server it only
dequeues.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bass
import bass_builder
from bass import logfmt, states
from bass.refs import redact_urls, url_credentials
from bass.worker import api, changes, checkout, cleanup, procs, runs
from bass.worker.procs import run_streaming
from bass_builder import Backoff

log = logging.getLogger("bass.worker")


class _Redacting(logging.Filter):
    """The worker's own log shows no password or token given in a URL (a repository's,
    the dequeue endpoint's), in its messages or in the tracebacks they carry."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if redact_urls(message) != message:
            record.msg, record.args = redact_urls(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_urls(logging.Formatter().formatException(record.exc_info))
        return True


log.addFilter(_Redacting())


class Worker:
    def __init__(
        self,
        *,
        dequeue_endpoint: str,
        api_key: str | None,
        tags: list[str],
        workspace_root: str,
        name: str | None = None,
        stop: threading.Event | None = None,
        wait: float = 20.0,
        kill_grace: float = 15.0,
    ):
        bass_builder.Endpoint(dequeue_endpoint, {})  # ValueError: not an http(s) URL to use
        self.dequeue_endpoint = dequeue_endpoint
        self.api_key = api_key
        self.tags = tags
        self.workspace_root = Path(workspace_root).resolve()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stop = stop or threading.Event()
        self.wait = wait
        self.kill_grace = kill_grace
        self.guard = runs.Guard(self.workspace_root)

    # -- the loop ---------------------------------------------------------------------

    def run_forever(self) -> None:
        """Dequeue and run jobs until `stop` is set."""
        log.info(
            "worker %s: dequeuing from %s, tags %s",
            self.name,
            self.dequeue_endpoint,
            self.tags or "(none)",
        )
        lock = self._lock_workspace()
        try:
            self._reap_leftovers()
            self.guard.start_watchdog()
            try:
                self._loop()
            finally:
                self.guard.close()
        finally:
            lock.close()
        log.info("worker %s stopped", self.name)

    def _lock_workspace(self) -> Any:
        """Two workers must not share a workspace root: they would check out over each
        other. The lock is held while the worker runs (and released if it dies)."""
        (self.workspace_root / ".bass").mkdir(parents=True, exist_ok=True)
        lock = open(self.workspace_root / ".bass" / "worker.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise WorkspaceBusy(
                f"another worker uses the workspace root {self.workspace_root}; "
                "give each worker its own --workspace-root"
            ) from None
        return lock

    def _reap_leftovers(self) -> None:
        """Kill what the builds of a worker that died on this workspace root left
        running, before a checkout reuses the workspace (we hold its lock)."""
        for record, killed, left in self.guard.reap_leftovers():
            build = f"{record.get('pipeline', '?')} #{record.get('number', '?')}"
            dead = {"name": record.get("pipeline", "?"), "number": record.get("number"),
                    "id": record.get("job")}  # fmt: skip
            with logfmt.about_job(dead):
                log.warning(
                    "worker %s: %d process(es) left running by %s (run %s) killed%s",
                    self.name,
                    killed,
                    build,
                    record["run-id"],
                    f"; {len(left)} would not die: {left}" if left else "",
                )

    def _loop(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while not self.stop.is_set():
            try:
                job = self._dequeue_unless_stopped()
                backoff.reset()
            except Exception as e:  # server down, restarting, refusing: keep trying
                delay = backoff.delay()
                log.warning("dequeue failed (%s); retrying in %.1f s", e, delay)
                self.stop.wait(delay)
                continue
            if job is not None:
                self.run_job(job)

    def _dequeue_unless_stopped(self) -> dict[str, Any] | None:
        """A long-poll dequeue that a stop does not wait for: the request is left to
        its thread, and the server does not hand a job to a connection that closed."""
        result: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                result["job"] = self.dequeue()
            except BaseException as e:  # handed to the loop below
                result["error"] = e
            finally:
                done.set()

        threading.Thread(target=call, name="bass-dequeue", daemon=True).start()
        while not done.wait(0.2):
            if self.stop.is_set():
                return None
        if "error" in result:
            raise result["error"]
        return result["job"]

    def dequeue(self) -> dict[str, Any] | None:
        body = {"tags": self.tags, "worker": self.name, "wait": self.wait, "heartbeat": True}
        status, payload = self._post(self.dequeue_endpoint, body, timeout=self.wait + 15)
        if status == 200:
            return json.loads(payload)
        if status == 204:
            return None
        raise DequeueRefused(f"HTTP {status}: {payload[:200].decode('utf-8', 'replace')}")

    # -- one job ----------------------------------------------------------------------

    def run_job(self, job: dict[str, Any]) -> str:
        """Run one job to its end; returns its status. Never raises."""
        with logfmt.about_job(job):  # every line logged meanwhile is about this build
            return self._run_job(job)

    def _run_job(self, job: dict[str, Any]) -> str:
        otel = job["otel"]
        label = f"{job['name']} #{job.get('number', '?')}"
        log.info("%s: starting", label)
        # the env file's values, and a password or token in the repository's URL
        secrets = [v for v in (job.get("env") or {}).values() if len(v) >= 4]
        secrets += url_credentials(job["pipeline"].get("repository") or "")
        headers = api.otlp_headers(
            os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""), job.get("job-token")
        )
        telemetry = bass_builder.Reporter(
            otel["traces-endpoint"],
            otel["logs-endpoint"],
            otel["service-name"],
            otel["trace-id"],
            secrets=secrets,
            environ={**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": headers},
        )
        root = telemetry.start_span(
            label,
            span_id=otel["root-span-id"],
            attributes={
                "bass.pipeline": job["name"],
                "bass.build.number": job.get("number", 0),
                "bass.worker": self.name,
            },
        )
        heartbeat = api.Heartbeat(self._job_post(job), job)
        logfmt.start_in_context(heartbeat)  # its lines are about this build too
        status, message = states.ERROR, None
        try:
            status, message = self._build(job, telemetry, root, heartbeat)
        except Exception as e:  # the worker must outlive any one build
            log.exception("%s: worker error", label)
            status, message = states.ERROR, f"worker error: {e}"
        finally:
            heartbeat.stop()
            if message:
                telemetry.log(root, message, "stderr")
            telemetry.end_span(root, status, message or "")
            dropped = telemetry.close()
            if dropped:
                log.warning("%s: %s", label, dropped)
            self._report(job, status, message)
        shown = f" ({telemetry.mask(message)})" if message else ""
        log.info("%s: %s%s", label, status, shown)
        self._maintain(job)
        return status

    def _maintain(self, job: dict[str, Any]) -> None:
        """The clone's `git maintenance run --auto`, which the checkout's fetch left out
        so as not to delay the build: now that its result is reported (not on the way
        out of a worker that was stopped)."""
        if self.stop.is_set():
            return
        try:
            workdir = checkout.workspace_dir(
                self.workspace_root, job["name"], job["pipeline"]["repository"]
            )
            failed = checkout.maintain(workdir)
        except Exception as e:  # never the worker's end
            failed = str(e)
        if failed:
            log.debug("%s: git maintenance: %s", job["name"], failed)

    def _build(
        self,
        job: dict[str, Any],
        telemetry: bass_builder.Reporter,
        root: Any,
        heartbeat: api.Heartbeat,
    ) -> tuple[str, str | None]:
        workdir = checkout.workspace_dir(
            self.workspace_root, job["name"], job["pipeline"]["repository"]
        )
        changeset = self.workspace_root / ".bass" / f"changeset-{job.get('id', os.getpid())}"
        argv = entry_argv(job, workdir, changeset)
        record = {"pipeline": job["name"], "number": job.get("number"), "job": job.get("id")}
        # the run (its marker in every process's environment) ends with everything it
        # started killed, whether the entry left something behind or not
        with self.guard.run(record) as run:
            # the entry's environment but for its commit, which the checkout tells
            shim = python_shim(self.workspace_root / ".bass" / "python")
            env = entry_environment(job, workdir, "", changeset, run.id, shim)
            # the process that becomes the entry starts now, while the checkout runs
            entry = _Entry(argv, env, workdir, changeset, run, _launcher(argv, env, workdir))
            try:
                status = self._check_out_and_run(job, telemetry, root, heartbeat, entry)
            finally:
                if entry.launcher is not None:
                    entry.launcher.discard()  # unless the entry ran
        if run.record.get("killed"):
            log.info("%s: %d process(es) it left running killed", job["name"], run.record["killed"])
        return status

    def _check_out_and_run(
        self,
        job: dict[str, Any],
        telemetry: bass_builder.Reporter,
        root: Any,
        heartbeat: api.Heartbeat,
        entry: _Entry,
    ) -> tuple[str, str | None]:
        pipeline, workdir = job["pipeline"], entry.workdir
        wanted = checkout.Wanted.from_job(job)
        step = telemetry.start_span(
            "checkout", root.span_id, attributes={"bass.ref": wanted.asked_ref or "HEAD"}
        )
        workspace = checkout.Workspace(
            pipeline["repository"], workdir, lambda line: telemetry.log(step, line, "stdout")
        )
        try:
            commit = checkout.check_out(wanted, workspace)
            changed = changes.changeset(wanted, workspace, commit)
        except checkout.CheckoutError as e:
            telemetry.end_span(step, states.ERROR, str(e))
            return states.ERROR, f"checkout failed: {e}"
        telemetry.end_span(step, states.OK, "", wanted.attributes(commit))
        entry.env["BASS_COMMIT"] = commit

        cwd = (workdir / pipeline.get("cwd", ".")).resolve()
        if not cwd.is_relative_to(workdir) or not cwd.is_dir():
            return states.ERROR, f"cwd {pipeline.get('cwd')!r} is not a directory in the repository"
        entry.changeset.parent.mkdir(parents=True, exist_ok=True)
        entry.changeset.write_text("".join(p + "\n" for p in changed), encoding="utf-8")
        try:
            return self._run_entry(job, telemetry, root, heartbeat, entry, cwd)
        finally:
            entry.changeset.unlink(missing_ok=True)

    def _run_entry(
        self,
        job: dict[str, Any],
        telemetry: bass_builder.Reporter,
        root: Any,
        heartbeat: api.Heartbeat,
        entry: _Entry,
        cwd: Path,
    ) -> tuple[str, str | None]:
        pipeline = job["pipeline"]
        timeout = pipeline.get("timeout")
        deadline = time.monotonic() + timeout if timeout else None

        def stop_reason() -> str | None:
            if self.stop.is_set():
                return "cancelled: the worker was stopped"
            if heartbeat.cancel.is_set():
                return heartbeat.why or "cancelled"
            if deadline is not None and time.monotonic() > deadline:
                return f"timeout: the build ran longer than {timeout:g} s"
            return None

        command = pipeline["exec"]
        telemetry.log(root, f"$ {' '.join(command if isinstance(command, list) else [command])}")
        try:
            code, reason = run_streaming(
                entry.argv,
                cwd=cwd,
                env=entry.env,
                on_line=lambda stream, line: telemetry.log(root, line, stream),
                stop_reason=stop_reason,
                grace=self.kill_grace,
                mask=telemetry.mask,
                longest_secret=max(map(len, telemetry.mask.values), default=0),
                on_start=entry.run.entry_started,
                launcher=entry.launcher,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            return states.ERROR, f"build entry cannot be run: {e}"
        if reason is not None:
            return reason.split(":")[0], reason
        status = states.status_of_exit_code(code)
        if status == states.OK:
            return states.OK, None
        return status, f"build entry exited with code {code}"

    # -- talking to the orchestrator --------------------------------------------------

    def _post(self, url: str, body: dict[str, Any], timeout: float) -> tuple[int, bytes]:
        return api.post(url, body, self.api_key, timeout)

    def _job_post(self, job: dict[str, Any]) -> api.Post:
        """POST as the holder of `job`: the worker key and the build's job token."""
        token = job.get("job-token")
        return lambda url, body, timeout: api.post(url, body, self.api_key, timeout, token)

    def _report(self, job: dict[str, Any], status: str, message: str | None) -> None:
        api.report(self._job_post(job), job, status, message, retry=not self.stop.is_set())


def entry_argv(job: dict[str, Any], workdir: Path, changeset: Path) -> list[str]:
    """The build entry's command line: the pipeline's `exec` and the standard arguments
    (docs/contracts.md, "Build entry"). `bass run --local` and `bass watch` run the same."""
    otel = job["otel"]
    standard = [
        "--service-name", otel["service-name"],
        "--trace-id", otel["trace-id"],
        "--root-span-id", otel["root-span-id"],
        "--traces-endpoint", otel["traces-endpoint"],
        "--logs-endpoint", otel["logs-endpoint"],
        "--changeset", str(changeset),
        "--root", str(workdir),
    ]  # fmt: skip
    entry = job["pipeline"]["exec"]
    if isinstance(entry, str):  # a shell command; the arguments follow as "$@"
        return ["/bin/sh", "-c", entry + ' "$@"', "sh", *standard]
    return [*entry, *standard]


def entry_environment(
    job: dict[str, Any], workdir: Path, commit: str, changeset: Path, run_id: str, shim: Path
) -> dict[str, str]:
    """The build entry's environment (docs/contracts.md, "Build entry"), with `shim`
    (see `python_shim`) first on its PYTHONPATH."""
    otel = job["otel"]
    wanted = checkout.Wanted.from_job(job)
    env = {k: v for k, v in os.environ.items() if k != "BASS_API_KEY"}
    env.update(job.get("env") or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), env.get("PYTHONPATH")) if p)
    env.update(
        {
            "BASS_PIPELINE": job["name"],
            "BASS_BUILD_NUMBER": str(job.get("number", "")),
            "BASS_JOB_ID": str(job.get("id", "")),
            "BASS_TRACE_ID": otel["trace-id"],
            "BASS_ROOT_SPAN_ID": otel["root-span-id"],
            "BASS_WORKSPACE": str(workdir),
            "BASS_COMMIT": commit,
            "BASS_REF": wanted.asked_ref or "",  # what was asked: the job's, or the pipeline's
            "BASS_BRANCH": wanted.branch or "",
            "BASS_TAG": wanted.tag or "",
            "BASS_CHANGESET": str(changeset),
            "BASS_BUILD_URL": job.get("build-url", ""),
            "BASS_SECRET_NAMES": ",".join(sorted(job.get("env") or {})),
            # what cleanup.sweep finds every process of this build by (cleanup.MARKER)
            "BASS_RUN_ID": cleanup.marker_value(run_id, os.environ),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otel["traces-endpoint"],
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": otel["logs-endpoint"],
            "OTEL_SERVICE_NAME": otel["service-name"],
            # OTLP/HTTP URLs: an SDK used by the entry itself must not try gRPC there
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": api.otlp_headers(
                env.get("OTEL_EXPORTER_OTLP_HEADERS", ""), job.get("job-token")
            ),
            "TRACEPARENT": f"00-{otel['trace-id']}-{otel['root-span-id']}-01",
        }
    )
    return env


def python_shim(shim: Path) -> Path:
    """`shim`, a directory with the builder as `bass`, put first on the build's
    PYTHONPATH, so `from bass import build` works in any Python the entry runs with."""
    (shim / "bass").mkdir(parents=True, exist_ok=True)
    _install(Path(bass_builder.__file__), shim / "bass_builder.py")
    # bass's own __init__ is the shim: it imports the builder and nothing else
    _install(Path(bass.__file__), shim / "bass" / "__init__.py")
    return shim


@dataclass
class _Entry:
    """A build's entry, made ready before its checkout: its command line, environment
    (BASS_COMMIT set once the checkout tells), workspace and changeset file, its run,
    and the launcher started ahead (None where there is none)."""

    argv: list[str]
    env: dict[str, str]
    workdir: Path
    changeset: Path
    run: runs.Run
    launcher: procs.Launcher | None


def _launcher(argv: list[str], env: dict[str, str], workdir: Path) -> procs.Launcher | None:
    """The entry's launcher, started ahead (Linux): a Python entry's own interpreter,
    warm, where it can be (procs.warm_python), else the plain launcher."""
    if not cleanup.SUPPORTED:
        return None
    python = procs.warm_python(argv, env, workdir)
    if python is not None:
        try:
            return procs.Launcher(python, env)
        except OSError as e:  # it cannot be started after all: the entry will say why
            log.debug("the entry's interpreter %s did not start ahead: %s", python, e)
    return procs.Launcher()


def _install(source: Path, target: Path) -> None:
    """Copy `source` to `target` unless it is there already, with the source's mtime:
    a copy made on every build would be newer than the bytecode Python cached for it,
    and every build entry would compile the builder again. Replaced whole (a rename),
    so an entry never imports a half-written file."""
    try:
        have, want = target.stat(), source.stat()
        if have.st_size == want.st_size and have.st_mtime_ns == want.st_mtime_ns:
            return
    except FileNotFoundError:
        pass
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copy2(source, partial)
    os.replace(partial, target)


class DequeueRefused(Exception):
    pass


class WorkspaceBusy(Exception):
    pass
