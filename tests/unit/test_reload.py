"""bass.reload: the configuration files read again when they change (and on request),
with real files in a temporary directory and a real watcher on a loop of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from watchfiles import Change

from bass.config import Config, Settings
from bass.reload import ConfigWatcher, describe_change
from tests.unit.helpers import wait_until

TIMEOUT = 30.0  # generous: on a healthy machine a change is seen in well under a second


def pipeline(**fields: Any) -> dict[str, Any]:
    return {"repository": "https://example.com/r.git", "exec": ["./build.py"], **fields}


class Files:
    """The four files of `bass serve`, in a directory of their own."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.pipelines = root / "orchestrator-pipelines.json"
        self.env = root / "orchestrator.env"
        self.keys = root / "worker-keys"
        self.tokens = root / "ingest-tokens"
        self.write_pipelines({"demo": pipeline()})
        self.env.write_text("GREETING=hello\n")
        self.keys.write_text("alpha: key-alpha\n")
        self.tokens.write_text("")

    def write_pipelines(self, pipelines: dict[str, Any]) -> None:
        self.pipelines.write_text(json.dumps(pipelines, indent=2))

    def replace(self, path: Path, text: str) -> None:
        """Save as editors do: write a new file beside it, rename it over the old one."""
        new = path.with_name(f".{path.name}.new")
        new.write_text(text)
        os.replace(new, path)

    def settings(self) -> Settings:
        return Settings(
            pipelines_file=str(self.pipelines),
            env_file=str(self.env),
            worker_keys_file=str(self.keys),
            ingest_tokens_file=str(self.tokens),
        ).load_files()


class Applied:
    """The `apply` callback: records every configuration it was given, and its thread."""

    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.threads: list[str] = []

    def __call__(self, config: Config) -> None:
        self.threads.append(threading.current_thread().name)
        self.configs.append(config)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path / "etc")


@pytest.fixture
def applied() -> Applied:
    return Applied()


@pytest.fixture
def watcher(files: Files, applied: Applied) -> ConfigWatcher:
    return ConfigWatcher(files.settings(), applied)


@contextlib.contextmanager
def watching(watcher: ConfigWatcher) -> Iterator[asyncio.AbstractEventLoop]:
    """`watcher.watch` running on a loop in a thread of its own (as in `bass serve`),
    and watching, until the block ends; then it must stop promptly."""
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = stop = asyncio.Event()
        started.set()
        await watcher.watch(stop)

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="bass-serve")
    thread.start()
    try:
        assert started.wait(TIMEOUT)
        wait_until(watcher.ready.is_set, timeout=TIMEOUT, what="the watcher to watch")
        yield state["loop"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "watch() did not end when asked to stop"
    assert not watcher.ready.is_set()


def until(condition: Callable[[], Any], what: str) -> Any:
    return wait_until(condition, timeout=TIMEOUT, what=what)


# -- reload(), called directly ---------------------------------------------------------


def test_reload_with_nothing_changed_applies_nothing(
    watcher: ConfigWatcher, applied: Applied
) -> None:
    assert watcher.reload() is True
    assert applied.configs == []
    assert watcher.error is None
    assert watcher.reads == 1


def test_reload_applies_an_edit(files: Files, watcher: ConfigWatcher, applied: Applied) -> None:
    loaded_at = watcher.loaded_at
    files.write_pipelines({"demo": pipeline(), "new": pipeline(description="added")})
    assert watcher.reload() is True
    (config,) = applied.configs
    assert sorted(config.pipelines) == ["demo", "new"]
    assert config.pipelines["new"]["worker-tags"] == []  # checked and filled in as at start
    assert config.env == {"GREETING": "hello"}
    assert config.worker_keys == ["alpha: key-alpha"]
    assert watcher.config is config
    assert watcher.loaded_at >= loaded_at
    assert watcher.error is None


def test_an_invalid_edit_keeps_the_last_good_config_until_fixed(
    files: Files, watcher: ConfigWatcher, applied: Applied, caplog: pytest.LogCaptureFixture
) -> None:
    good = watcher.config
    files.pipelines.write_text('{\n  "demo": {\n    "repository": "x",,\n  }\n}\n')
    with caplog.at_level(logging.ERROR, logger="bass.reload"):
        assert watcher.reload() is False
    assert watcher.error is not None
    assert str(files.pipelines) in watcher.error
    assert "line 3" in watcher.error
    assert watcher.error in caplog.text
    assert watcher.failed_at is not None
    assert watcher.config is good
    assert applied.configs == []
    assert watcher.status()["ok"] is False

    files.write_pipelines({"demo": pipeline(), "fixed": pipeline()})
    assert watcher.reload() is True
    assert watcher.error is None
    assert watcher.failed_at is None
    assert sorted(applied.configs[-1].pipelines) == ["demo", "fixed"]
    assert watcher.status()["ok"] is True


def test_a_bad_field_is_named_with_its_file_and_pipeline(
    files: Files, watcher: ConfigWatcher
) -> None:
    files.write_pipelines({"demo": pipeline(timeout="soon")})
    assert watcher.reload() is False
    assert watcher.error is not None
    assert str(files.pipelines) in watcher.error
    assert 'pipeline "demo"' in watcher.error
    assert 'field "timeout"' in watcher.error


def test_fixing_back_to_what_is_in_force_clears_the_error(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    before = files.pipelines.read_text()
    files.pipelines.write_text("{")
    assert watcher.reload() is False
    files.pipelines.write_text(before)
    assert watcher.reload() is True
    assert watcher.error is None
    assert applied.configs == []  # nothing to apply: it is what is in force


@pytest.mark.parametrize(
    "env",
    [
        "TOKEN=s3cr3t-value-1\ns3cr3t-value-2\n",  # a value pasted alone on a line
        "TOKEN=s3cr3t-value-1\nmy-key=s3cr3t-value-2\n",  # not a variable name
        "TOKEN=s3cr3t-value-1\n=s3cr3t-value-2\n",
    ],
)
def test_an_env_file_error_never_shows_a_value(
    files: Files, watcher: ConfigWatcher, caplog: pytest.LogCaptureFixture, env: str
) -> None:
    files.env.write_text(env)
    with caplog.at_level(logging.DEBUG):
        assert watcher.reload() is False
    assert watcher.error == f"{files.env}:2: expected key=value with a variable name as key"
    assert "s3cr3t" not in caplog.text


def test_a_missing_pipelines_file_is_an_error_and_the_rest_stays(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    files.pipelines.unlink()
    assert watcher.reload() is False
    assert watcher.error == f"{files.pipelines}: pipelines file not found"
    assert list(watcher.config.pipelines) == ["demo"]
    assert applied.configs == []


def test_missing_env_keys_and_tokens_files_are_none(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    files.tokens.write_text("grafana: t-1\n")
    assert watcher.reload() is True
    assert applied.configs[-1].ingest_tokens == ["grafana: t-1"]
    for path in (files.env, files.keys, files.tokens):
        path.unlink()
    assert watcher.reload() is True
    config = applied.configs[-1]
    assert (config.env, config.worker_keys, config.ingest_tokens) == ({}, [], [])


def test_apply_failing_keeps_the_config_and_says_so(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    def apply(config: Config) -> None:
        raise RuntimeError("boom")

    watcher = ConfigWatcher(files.settings(), apply)
    good = watcher.config
    files.write_pipelines({"other": pipeline()})
    with caplog.at_level(logging.ERROR, logger="bass.reload"):
        assert watcher.reload() is False
    assert watcher.config is good
    assert watcher.error is not None and "could not be put in force" in watcher.error
    assert "boom" in caplog.text


def test_a_read_older_than_the_one_in_force_is_dropped(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    """Two reloads at once: the one that read the files first must not win."""
    older = watcher._read()
    files.write_pipelines({"newer": pipeline()})
    assert watcher.reload() is True
    assert watcher._settle(*older) is True
    assert list(watcher.config.pipelines) == ["newer"]
    assert len(applied.configs) == 1


def test_reload_soon_before_watching_is_dropped(
    watcher: ConfigWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bass.reload"):
        watcher.reload_soon()
    assert "ignored" in caplog.text
    assert watcher.reads == 0


def test_describe_change_names_what_changed_and_never_a_value() -> None:
    old = Config(
        pipelines={"a": pipeline(), "b": pipeline()},
        env={"KEEP": "1", "GONE": "v-gone", "EDITED": "v-old"},
        worker_keys=["k-1"],
    )
    new = Config(
        pipelines={"a": pipeline(ref="dev"), "c": pipeline()},
        env={"KEEP": "1", "EDITED": "v-new", "ADDED": "v-added"},
        worker_keys=["k-1", "k-2"],
        ingest_tokens=["t-1"],
    )
    text = describe_change(old, new)
    assert text == (
        "pipelines added: c; pipelines removed: b; pipelines changed: a; "
        "env variables added: ADDED; env variables removed: GONE; "
        "env variables changed: EDITED; worker keys: 2; ingest tokens: 1"
    )
    assert "v-" not in text and "k-" not in text and "t-1" not in text
    assert describe_change(old, old) == "nothing"


def test_only_the_configured_files_concern_the_watcher(
    files: Files, watcher: ConfigWatcher
) -> None:
    root = os.path.realpath(files.root)
    for name in ("orchestrator-pipelines.json", "orchestrator.env", "worker-keys"):
        assert watcher._concerns(Change.modified, os.path.join(root, name))
    for name in ("bass.db", "bass.db-wal", ".orchestrator-pipelines.json.new", "serve.log"):
        assert not watcher._concerns(Change.modified, os.path.join(root, name))


# -- watching: edits take effect by themselves ---------------------------------------


def test_editing_the_pipelines_file_adds_a_pipeline(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.write_pipelines({"demo": pipeline(), "added": pipeline()})
        until(lambda: applied.configs, "the edit to be applied")
    assert "added" in applied.configs[-1].pipelines
    assert applied.threads[-1] == "bass-serve"  # on the loop, never in a worker thread


def test_an_edit_saved_by_rename_is_seen(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.replace(files.pipelines, json.dumps({"renamed": pipeline()}))
        until(lambda: "renamed" in watcher.config.pipelines, "the renamed-over file")
        files.replace(files.pipelines, json.dumps({"renamed": pipeline(), "again": pipeline()}))
        until(lambda: "again" in watcher.config.pipelines, "a second rename")
    assert list(applied.configs[-1].pipelines) == ["renamed", "again"]


def test_an_invalid_edit_shows_an_error_until_an_edit_fixes_it(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.pipelines.write_text('{\n  "demo": {\n    "repository": "x",,\n  }\n}\n')
        error = until(lambda: watcher.error, "the error to be found")
        assert str(files.pipelines) in error and "line 3" in error
        assert list(watcher.config.pipelines) == ["demo"]  # the last good one
        files.write_pipelines({"demo": pipeline(), "fixed": pipeline()})
        until(lambda: watcher.error is None, "the error to clear")
        until(lambda: "fixed" in watcher.config.pipelines, "the fix to be applied")
    assert all("fixed" in c.pipelines for c in applied.configs)


def test_an_env_file_edit_takes_effect(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.replace(files.env, "GREETING=hello\nDEPLOY_TARGET=staging\n")
        until(lambda: "DEPLOY_TARGET" in watcher.config.env, "the new variable")
    assert applied.configs[-1].env == {"GREETING": "hello", "DEPLOY_TARGET": "staging"}


def test_a_worker_keys_edit_takes_effect(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.keys.write_text("beta: key-beta\n")
        until(lambda: watcher.config.worker_keys == ["beta: key-beta"], "the new key")
    assert applied.configs[-1].worker_keys == ["beta: key-beta"]


def test_an_ingest_tokens_file_created_takes_effect(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    files.tokens.unlink()
    watcher = ConfigWatcher(files.settings(), applied)
    with watching(watcher):
        files.tokens.write_text("grafana: t-1\n")
        until(lambda: watcher.config.ingest_tokens == ["grafana: t-1"], "the new token")


def test_deleting_the_env_file_means_no_variables(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.env.unlink()
        until(lambda: watcher.config.env == {}, "the variables to go")
    assert applied.configs[-1].env == {}
    assert watcher.error is None


def test_deleting_the_pipelines_file_keeps_the_pipelines_and_says_so(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        files.pipelines.unlink()
        until(lambda: watcher.error, "the error to be found")
        assert watcher.error == f"{files.pipelines}: pipelines file not found"
        files.write_pipelines({"back": pipeline()})
        until(lambda: "back" in watcher.config.pipelines, "the file to be back")
    assert watcher.error is None


def test_many_quick_edits_end_in_the_last_one(
    files: Files, watcher: ConfigWatcher, applied: Applied
) -> None:
    with watching(watcher):
        for n in range(20):
            files.write_pipelines({f"p{i}": pipeline() for i in range(n + 1)})
        until(lambda: "p19" in watcher.config.pipelines, "the last edit")
    assert len(watcher.config.pipelines) == 20
    assert len(applied.configs) < 20  # the edits were read together, not one by one


def test_a_symlink_swapped_as_kubernetes_does_is_seen(
    files: Files, applied: Applied, tmp_path: Path
) -> None:
    """A ConfigMap volume: each file is a symlink through `..data`, a symlink to a
    directory of the current version, and an update swaps `..data`."""
    mount = tmp_path / "configmap"
    (mount / "v1").mkdir(parents=True)
    (mount / "v1" / "orchestrator.env").write_text("VERSION=1\n")
    (mount / "..data").symlink_to("v1")
    (mount / "orchestrator.env").symlink_to("..data/orchestrator.env")
    settings = files.settings()
    settings.env_file = str(mount / "orchestrator.env")
    watcher = ConfigWatcher(settings.load_files(), applied)
    assert watcher.config.env == {"VERSION": "1"}
    with watching(watcher):
        (mount / "v2").mkdir()
        (mount / "v2" / "orchestrator.env").write_text("VERSION=2\n")
        (mount / "..data_tmp").symlink_to("v2")
        os.replace(mount / "..data_tmp", mount / "..data")
        until(lambda: watcher.config.env == {"VERSION": "2"}, "the swapped version")


def test_a_symlink_to_a_file_elsewhere_is_watched_where_it_points(
    files: Files, applied: Applied, tmp_path: Path
) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "keys").write_text("alpha: key-alpha\n")
    files.keys.unlink()
    files.keys.symlink_to(dotfiles / "keys")
    watcher = ConfigWatcher(files.settings(), applied)
    with watching(watcher):
        (dotfiles / "keys").write_text("gamma: key-gamma\n")
        until(lambda: watcher.config.worker_keys == ["gamma: key-gamma"], "the edit there")


def test_reload_soon_from_another_thread_reloads_and_watches_a_new_directory(
    files: Files, applied: Applied, tmp_path: Path
) -> None:
    """SIGHUP: what no watch can see (the env file's directory did not exist at start)
    is read on request, and from then on its directory is watched too."""
    later = tmp_path / "later"
    settings = files.settings()
    settings.env_file = str(later / "orchestrator.env")
    watcher = ConfigWatcher(settings.load_files(), applied)
    assert watcher.config.env == {}
    with watching(watcher):
        later.mkdir()
        (later / "orchestrator.env").write_text("LATER=1\n")
        threading.Thread(target=watcher.reload_soon).start()  # as a signal handler would
        until(lambda: watcher.config.env == {"LATER": "1"}, "the requested reload")
        until(lambda: os.path.realpath(later) in watcher.watched, "its directory to be watched")
        (later / "orchestrator.env").write_text("LATER=2\n")
        until(lambda: watcher.config.env == {"LATER": "2"}, "the edit in the new directory")
