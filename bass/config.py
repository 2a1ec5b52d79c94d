"""How `bass serve` is set up: its Settings (every default of its flags lives here) and
the orchestrator's three files: pipelines (JSON), environment (key=value), worker keys.

File names and defaults are the prototype's. Every problem is a ConfigError whose
message names the file, the pipeline and the field, so `bass serve` can exit with it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bass_builder import parse_duration

log = logging.getLogger("bass.config")

PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
KNOWN_FIELDS = {
    "repository",
    "ref",
    "cwd",
    "exec",
    "worker-tags",
    "tag-pattern",
    "poll",
    "notifications",
    "timeout",
    "description",
    "keep-builds",
    "webhook-secret",
    "branches",
    "concurrency",
    "cancel-superseded",
}


class ConfigError(Exception):
    """A configuration file is missing or wrong; the message says where and what."""


@dataclass
class Config:
    """What the three files say."""

    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    worker_keys: list[str] = field(default_factory=list)
    ingest_tokens: list[str] = field(default_factory=list)  # for other services' OTLP


@dataclass
class Destination:
    """Where the receiver also sends what it stores (`--forward-traces/-logs`)."""

    kind: str  # "traces" or "logs"
    url: str
    headers: dict[str, str]


@dataclass
class Settings:
    """Everything `bass serve` runs with. The defaults here are the defaults of its
    flags (the CLI reads them from this class) and of `bass demo`."""

    pipelines_file: str = "orchestrator-pipelines.json"
    env_file: str = "orchestrator.env"
    worker_keys_file: str = "worker-keys"
    users_file: str = "users.json"  # people who may log in; none: nobody has to
    ingest_tokens_file: str = "ingest-tokens"  # other services' OTLP senders
    db: str = "bass.db"
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 4317  # OTLP/gRPC, on the same address; 0: none
    config: Config = field(default_factory=Config)  # what the three files say
    local_worker: bool = False
    local_worker_tags: list[str] = field(default_factory=list)
    workspace_root: str = ".bass-workspace"
    traces_endpoint: str | None = None  # None: this server's own /v1/traces
    logs_endpoint: str | None = None
    lease_seconds: float = 60
    max_body: int = 64 << 20  # bytes of an OTLP request, after decompression
    max_inflight: int = 256 << 20  # bytes of OTLP requests held at once (bodies, decoded)
    forward: list[Destination] = field(default_factory=list)
    forward_queue_bytes: int = 64 << 20  # what waits to be forwarded, kept in the database
    retention_days: float | None = None
    keep_builds: int | None = None
    smtp_host: str | None = None  # None: no e-mail
    smtp_port: int = 25
    smtp_from: str = ""  # "": bass@THIS-HOST
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # from the environment
    public_url: str | None = None  # None: local_url()
    allowed_hosts: list[str] = field(default_factory=list)  # Host names besides ours
    forwarded_allow_ips: str | None = None  # proxies whose X-Forwarded-* are believed
    insecure: bool = False  # serve a network without users or worker keys
    log_level: str = "info"
    reap_interval: float = 5.0  # how often lost workers are looked for
    prune_interval: float = 600.0  # how often retention runs

    def local_url(self) -> str:
        """How a process on this machine reaches the server."""
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def secret_file(self) -> str:
        """The server's secret key (signs sessions): beside the database."""
        return f"{self.db}.key"

    def loopback_only(self) -> bool:
        """Whether only this machine can reach the server: bound to loopback, and no
        proxy in front (`--forwarded-allow-ips`: the proxy lets other machines in)."""
        if self.forwarded_allow_ips:
            return False
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def load_files(self) -> Settings:
        """These settings with `config` read from the three files (ConfigError)."""
        self.config = load(self.pipelines_file, self.env_file, self.worker_keys_file)
        self.config.ingest_tokens = load_worker_keys(self.ingest_tokens_file, "ingest tokens")
        return self


def load(pipelines_file: str, env_file: str, worker_keys_file: str) -> Config:
    return Config(
        pipelines=load_pipelines(pipelines_file),
        env=load_env(env_file),
        worker_keys=load_worker_keys(worker_keys_file),
    )


def load_pipelines(path: str) -> dict[str, dict[str, Any]]:
    """Read and check the pipelines file; returns the pipelines keyed by name."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: pipelines file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read pipelines file: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a JSON object of pipelines keyed by name")
    pipelines = {}
    for name, pipeline in data.items():
        where = f'{path}: pipeline "{name}"'
        if not PIPELINE_NAME.fullmatch(name):
            raise ConfigError(
                f"{where}: the name may use letters, digits, '.', '_' and '-' "
                "(starting with a letter or digit, at most 100 characters)"
            )
        pipelines[name] = check_pipeline(pipeline, where)
    return pipelines


def check_pipeline(pipeline: Any, where: str) -> dict[str, Any]:
    """Check one pipeline's fields; returns it with defaults filled in."""
    if not isinstance(pipeline, dict):
        raise ConfigError(f"{where}: must be a JSON object")

    def fail(name: str, problem: str) -> ConfigError:
        return ConfigError(f'{where}: field "{name}": {problem}')

    if not isinstance(pipeline.get("repository"), str) or not pipeline["repository"].strip():
        raise fail("repository", "required, the URL or path of a git repository")
    exec_ = pipeline.get("exec")
    argv_ok = isinstance(exec_, list) and exec_ and all(isinstance(a, str) for a in exec_)
    if not argv_ok and not (isinstance(exec_, str) and exec_.strip()):
        raise fail("exec", "required, a non-empty list of strings (argv) or a string")
    for name in ("ref", "cwd", "tag-pattern", "description", "webhook-secret", "branches"):
        if pipeline.get(name) is not None and not isinstance(pipeline[name], str):
            raise fail(name, "must be a string")
    cwd = pipeline.get("cwd")
    if cwd is not None and (os.path.isabs(cwd) or ".." in Path(cwd).parts):
        raise fail("cwd", "must be a path inside the repository (relative, no '..')")
    tags = pipeline.setdefault("worker-tags", [])
    if tags is None:
        tags = pipeline["worker-tags"] = []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise fail("worker-tags", "must be a list of non-empty strings")
    for name in ("tag-pattern", "branches"):
        if pipeline.get(name) is not None:
            try:
                re.compile(pipeline[name])
            except re.error as e:
                raise fail(name, f"invalid regular expression: {e}") from None
    concurrency = pipeline.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise fail("concurrency", "must be a whole number of builds, at least 1")
    if not isinstance(pipeline.get("cancel-superseded", False), bool):
        raise fail("cancel-superseded", "must be true or false")
    if pipeline.get("timeout") is not None:
        pipeline["timeout"] = _seconds(pipeline["timeout"], fail, "timeout")
    keep = pipeline.get("keep-builds")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise fail("keep-builds", "must be a whole number of builds, at least 1")
    poll = pipeline.get("poll")
    if poll is not None:
        if not isinstance(poll, dict) or "interval" not in poll:
            raise fail("poll", 'must be null or {"interval": "5m"}')
        poll["interval"] = _seconds(poll["interval"], fail, "poll.interval")
    _check_notifications(pipeline.get("notifications"), fail)
    unknown = sorted(set(pipeline) - KNOWN_FIELDS)
    if unknown:
        log.warning("%s: ignoring unknown field(s): %s", where, ", ".join(unknown))
    return pipeline


def _seconds(value: Any, fail: Any, name: str) -> float:
    seconds = parse_duration(value)  # the builder's grammar: one for node and pipeline
    if seconds is None:
        raise fail(name, 'must be a positive duration: seconds, or "30s", "5m", "1h", "1d"')
    return seconds


def _check_notifications(notifications: Any, fail: Any) -> None:
    if notifications is None:
        return
    if not isinstance(notifications, dict):
        raise fail("notifications", "must be an object with onSuccess and/or onFailure")
    for event, target in notifications.items():
        name = f"notifications.{event}"
        if event not in ("onSuccess", "onFailure"):
            raise fail(name, "unknown event (use onSuccess or onFailure)")
        if not isinstance(target, dict) or not isinstance(target.get("email"), dict):
            raise fail(name, 'must be {"email": {"to": ..., "subject": ..., "body": ...}}')
        email = target["email"]
        to = email.get("to")
        if not (isinstance(to, str) and to) and not (
            isinstance(to, list) and to and all(isinstance(t, str) and t for t in to)
        ):
            raise fail(f"{name}.email.to", "required, an address or a list of addresses")
        for part in ("subject", "body"):
            if email.get(part) is not None and not isinstance(email[part], str):
                raise fail(f"{name}.email.{part}", "must be a string")


def load_env(path: str) -> dict[str, str]:
    """Read `key=value` lines (with `$VAR` expansion); a missing file is no variables."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        log.info("%s: no env file, builds get no extra variables", path)
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read env file: {e}") from None
    env = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"{path}:{number}: expected key=value with a variable name as key")
        env[key] = os.path.expandvars(value.strip())
    return env


_KEY_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\s*:\s*(\S.*)$")


def named_keys(lines: list[str]) -> list[tuple[str, str]]:
    """(name, key) of each worker-keys line: `NAME: KEY`, or a bare key, whose name is
    then `key-` and the start of its SHA-256 (so it never shows the key itself)."""
    out = []
    for line in lines:
        match = _KEY_NAME.match(line)
        if match:
            out.append((match.group(1), match.group(2).strip()))
        else:
            out.append((f"key-{hashlib.sha256(line.encode()).hexdigest()[:8]}", line))
    return out


def load_worker_keys(path: str, what: str = "worker keys") -> list[str]:
    """Read the worker keys (or ingest tokens), one per line (`NAME: KEY` names it); a
    missing file is none."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        log.info("%s: no %s file", path, what)
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what} file: {e}") from None
    return [k.strip() for k in lines if k.strip() and not k.strip().startswith("#")]
