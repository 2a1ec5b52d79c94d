"""bass.config: the pipelines file, the env file and the worker keys file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bass import config
from bass.config import ConfigError


def write_pipelines(tmp_path: Path, pipelines: Any) -> str:
    path = tmp_path / "orchestrator-pipelines.json"
    path.write_text(json.dumps(pipelines, indent=2))
    return str(path)


def minimal(**fields: Any) -> dict[str, Any]:
    return {"repository": "https://example.com/r.git", "exec": ["./build.py"], **fields}


# -- the pipelines file ---------------------------------------------------------------


def test_missing_pipelines_file_names_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="not found") as e:
        config.load_pipelines(path)
    assert path in str(e.value)


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{\n  "demo": {\n    "repository": "x",,\n  }\n}\n')
    with pytest.raises(ConfigError) as e:
        config.load_pipelines(str(path))
    message = str(e.value)
    assert str(path) in message
    assert "line 3" in message
    assert "column 23" in message


@pytest.mark.parametrize("content", ["[]", '"demo"', "42", "null"])
def test_pipelines_file_must_be_an_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="must be a JSON object") as e:
        config.load_pipelines(str(path))
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "name", ["", "has space", "-leading-dash", ".hidden", "a/b", "x" * 101, "ünï", "trailing\n"]
)
def test_bad_pipeline_name_is_refused(tmp_path: Path, name: str) -> None:
    path = write_pipelines(tmp_path, {name: minimal()})
    with pytest.raises(ConfigError, match="the name may use") as e:
        config.load_pipelines(path)
    assert path in str(e.value)


@pytest.mark.parametrize("name", ["a", "demo", "My.pipe_line-2", "0day", "x" * 100])
def test_good_pipeline_names_load(tmp_path: Path, name: str) -> None:
    assert list(config.load_pipelines(write_pipelines(tmp_path, {name: minimal()}))) == [name]


def test_pipeline_must_be_an_object(tmp_path: Path) -> None:
    path = write_pipelines(tmp_path, {"demo": ["repository"]})
    with pytest.raises(ConfigError, match='pipeline "demo": must be a JSON object'):
        config.load_pipelines(path)


BAD_FIELDS = [
    # (field named in the message, the pipeline's fields)
    ("repository", {"exec": ["x"]}),
    ("repository", {"repository": 5, "exec": ["x"]}),
    ("repository", {"repository": "   ", "exec": ["x"]}),
    ("exec", {"repository": "r"}),
    ("exec", minimal(exec=[])),
    ("exec", minimal(exec="  ")),
    ("exec", minimal(exec=["ok", 1])),
    ("exec", minimal(exec={"argv": ["x"]})),
    ("ref", minimal(ref=1)),
    ("cwd", minimal(cwd=3)),
    ("cwd", minimal(cwd="../outside")),
    ("cwd", minimal(cwd="sub/../../outside")),
    ("cwd", minimal(cwd="sub/..")),
    ("cwd", minimal(cwd="/etc")),
    ("worker-tags", minimal(**{"worker-tags": "linux"})),
    ("worker-tags", minimal(**{"worker-tags": ["linux", 3]})),
    ("worker-tags", minimal(**{"worker-tags": [""]})),
    ("tag-pattern", minimal(**{"tag-pattern": "v(\\d+"})),
    ("tag-pattern", minimal(**{"tag-pattern": "*"})),
    ("tag-pattern", minimal(**{"tag-pattern": 1})),
    ("poll", minimal(poll="5m")),
    ("poll", minimal(poll={})),
    ("poll.interval", minimal(poll={"interval": "soon"})),
    ("poll.interval", minimal(poll={"interval": 0})),
    ("poll.interval", minimal(poll={"interval": -5})),
    ("poll.interval", minimal(poll={"interval": "0s"})),
    ("poll.interval", minimal(poll={"interval": True})),
    ("poll.interval", minimal(poll={"interval": "5 minutes"})),
    ("timeout", minimal(timeout="a while")),
    ("timeout", minimal(timeout=0)),
    ("timeout", minimal(timeout=False)),
    ("timeout", minimal(timeout=[30])),
    ("notifications", minimal(notifications=["x"])),
    ("notifications.onFailure", minimal(notifications={"onFailure": "me@example.com"})),
    ("notifications.onFailure", minimal(notifications={"onFailure": {"slack": {}}})),
    ("notifications.onFinish", minimal(notifications={"onFinish": {"email": {"to": "a@b"}}})),
    ("notifications.onFailure.email.to", minimal(notifications={"onFailure": {"email": {}}})),
    (
        "notifications.onFailure.email.to",
        minimal(notifications={"onFailure": {"email": {"to": ""}}}),
    ),
    (
        "notifications.onFailure.email.to",
        minimal(notifications={"onFailure": {"email": {"to": []}}}),
    ),
    (
        "notifications.onFailure.email.to",
        minimal(notifications={"onFailure": {"email": {"to": ["a@b", 7]}}}),
    ),
    (
        "notifications.onSuccess.email.subject",
        minimal(notifications={"onSuccess": {"email": {"to": "a@b", "subject": 1}}}),
    ),
    (
        "notifications.onSuccess.email.body",
        minimal(notifications={"onSuccess": {"email": {"to": "a@b", "body": ["x"]}}}),
    ),
    ("description", minimal(description=5)),
]


@pytest.mark.parametrize(("field", "pipeline"), BAD_FIELDS)
def test_field_error_names_file_pipeline_and_field(
    tmp_path: Path, field: str, pipeline: dict[str, Any]
) -> None:
    path = write_pipelines(tmp_path, {"good": minimal(), "demo": pipeline})
    with pytest.raises(ConfigError) as e:
        config.load_pipelines(path)
    message = str(e.value)
    assert message.startswith(f'{path}: pipeline "demo": field "{field}": '), message


def test_defaults_and_durations(tmp_path: Path) -> None:
    path = write_pipelines(
        tmp_path,
        {
            "plain": minimal(),
            "null-tags": minimal(**{"worker-tags": None}),
            "full": minimal(
                exec="./build.sh --all",
                ref="main",
                cwd="sub/dir",
                timeout="1.5m",
                poll={"interval": "5m"},
                notifications={
                    "onFailure": {"email": {"to": ["a@example.com"], "subject": "$PIPELINE_NAME"}},
                    "onSuccess": {"email": {"to": "b@example.com"}},
                },
                **{"worker-tags": ["linux"], "tag-pattern": "^v\\d+$"},
            ),
            "numbers": minimal(timeout=30, poll={"interval": 90}),
            "units": minimal(timeout="2h", poll={"interval": "1d"}),
            "bare": minimal(timeout="45", poll={"interval": " 10s "}),
        },
    )
    pipelines = config.load_pipelines(path)
    assert pipelines["plain"]["worker-tags"] == []
    assert pipelines["null-tags"]["worker-tags"] == []
    assert pipelines["full"]["worker-tags"] == ["linux"]
    assert pipelines["full"]["timeout"] == 90.0
    assert pipelines["full"]["poll"] == {"interval": 300.0}
    assert pipelines["full"]["exec"] == "./build.sh --all"
    assert pipelines["numbers"]["timeout"] == 30.0
    assert pipelines["numbers"]["poll"]["interval"] == 90.0
    assert pipelines["units"]["timeout"] == 7200.0
    assert pipelines["units"]["poll"]["interval"] == 86400.0
    assert pipelines["bare"]["timeout"] == 45.0
    assert pipelines["bare"]["poll"]["interval"] == 10.0
    assert "timeout" not in pipelines["plain"]


def test_unknown_fields_only_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_pipelines(tmp_path, {"demo": minimal(colour="blue", retries=3)})
    with caplog.at_level(logging.WARNING, logger="bass.config"):
        pipelines = config.load_pipelines(path)
    assert pipelines["demo"]["repository"] == "https://example.com/r.git"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "colour, retries" in warnings[0].getMessage()
    assert 'pipeline "demo"' in warnings[0].getMessage()


def test_an_empty_pipelines_object_is_no_pipelines(tmp_path: Path) -> None:
    assert config.load_pipelines(write_pipelines(tmp_path, {})) == {}


# -- the env file ---------------------------------------------------------------------


def test_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASS_TEST_HOME", "/home/tester")
    monkeypatch.delenv("BASS_TEST_UNSET", raising=False)
    path = tmp_path / "orchestrator.env"
    path.write_text(
        "# secrets for the builds\n"
        "\n"
        "PLAIN=value\n"
        "   \n"
        "  # an indented comment\n"
        "export EXPORTED=yes\n"
        "SPACED = padded value  \n"
        "EXPANDED=$BASS_TEST_HOME/cache\n"
        "BRACED=${BASS_TEST_HOME}-x\n"
        "UNSET=$BASS_TEST_UNSET\n"
        "WITH_EQUALS=a=b=c\n"
        "EMPTY=\n"
        "PLAIN=second wins\n"
    )
    assert config.load_env(str(path)) == {
        "PLAIN": "second wins",
        "EXPORTED": "yes",
        "SPACED": "padded value",
        "EXPANDED": "/home/tester/cache",
        "BRACED": "/home/tester-x",
        "UNSET": "$BASS_TEST_UNSET",  # like the prototype (os.path.expandvars)
        "WITH_EQUALS": "a=b=c",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    "bad_line", ["just words", "=value", "1ST=x", "MY-VAR=x", "export", "A B=c"]
)
def test_bad_env_line_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "orchestrator.env"
    path.write_text(f"# comment\nGOOD=1\n\n{bad_line}\nLATER=2\n")
    with pytest.raises(ConfigError) as e:
        config.load_env(str(path))
    assert str(e.value).startswith(f"{path}:4: ")


def test_missing_env_and_keys_files_are_fine(tmp_path: Path) -> None:
    assert config.load_env(str(tmp_path / "orchestrator.env")) == {}
    assert config.load_worker_keys(str(tmp_path / "worker-keys")) == []


# -- the worker keys file -------------------------------------------------------------


def test_worker_keys_skip_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "worker-keys"
    path.write_text("key-1\n\n   \n# retired: old-key\n  key-2  \n\tkey-3\n")
    assert config.load_worker_keys(str(path)) == ["key-1", "key-2", "key-3"]


def test_load_reads_all_three(tmp_path: Path) -> None:
    pipelines = write_pipelines(tmp_path, {"demo": minimal()})
    (tmp_path / "env").write_text("A=1\n")
    (tmp_path / "keys").write_text("k\n")
    loaded = config.load(pipelines, str(tmp_path / "env"), str(tmp_path / "keys"))
    assert list(loaded.pipelines) == ["demo"]
    assert loaded.env == {"A": "1"}
    assert loaded.worker_keys == ["k"]


def test_a_config_error_in_one_file_stops_load(tmp_path: Path) -> None:
    pipelines = write_pipelines(tmp_path, {"demo": minimal()})
    (tmp_path / "env").write_text("not a pair\n")
    with pytest.raises(ConfigError, match=r"env:1: "):
        config.load(pipelines, str(tmp_path / "env"), str(tmp_path / "keys"))
