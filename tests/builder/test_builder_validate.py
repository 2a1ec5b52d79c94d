"""validate_pipeline / assert_pipeline messages, and the exit 2 before anything runs."""

from __future__ import annotations

import re
import sys

import pytest

sys.path.insert(0, str(__import__("builder_testing").BUILDER_DIR))
import bass_builder  # noqa: E402
from bass_builder import PipelineError, assert_pipeline, validate_pipeline  # noqa: E402


def test_a_valid_pipeline_has_no_problems():
    pipeline = {
        "name": "p",
        "order": "unordered",
        "timeout": "10",
        "cwd": "sub",
        "if-changeset-matches": r"^src/.*\.py$",
        "setup": {"name": "s", "exec": ["./setup.sh", "$X"]},
        "steps": [{"name": "a", "exec": "make"}, {"name": "b", "exec": print, "timeout": 1.5}],
        "teardown": {"name": "t", "steps": [{"name": "t1", "exec": ["true"]}]},
    }
    assert validate_pipeline(pipeline) == []
    assert_pipeline(pipeline)


@pytest.mark.parametrize(
    ("pipeline", "problem"),
    [
        ({"exec": "x"}, 'pipeline: missing "name"'),
        ({"name": "", "exec": "x"}, "name: must be a non-empty string"),
        ({"name": "p"}, 'pipeline: needs "exec" or "steps"'),
        (
            {"name": "p", "exec": "x", "steps": [{"name": "a", "exec": "y"}]},
            'pipeline: "exec" and "steps" are exclusive',
        ),
        ({"name": "p", "steps": []}, "steps: must not be empty"),
        ({"name": "p", "steps": {"name": "a"}}, "steps: must be a list of nodes"),
        ({"name": "p", "exec": []}, "exec: must not be empty"),
        ({"name": "p", "exec": ["ls", 3]}, "exec[1]: must be a string, not int"),
        (
            {"name": "p", "exec": 5},
            "exec: must be a list of strings, a command string or a callable, not int",
        ),
        ({"name": "p", "exec": "x", "colour": "red"}, 'pipeline: unknown key "colour"'),
        ({"name": "p", "exec": "x", "timeout": 0}, "timeout: must be a positive number"),
        ({"name": "p", "exec": "x", "timeout": "soon"}, "timeout: must be a positive number"),
        ({"name": "p", "exec": "x", "timeout": True}, "timeout: must be a positive number"),
        ({"name": "p", "exec": "x", "cwd": ""}, "cwd: must be a non-empty path string"),
        (
            {"name": "p", "exec": "x", "if-changeset-matches": 3},
            "if-changeset-matches: must be a string (a regular expression)",
        ),
        ("just a string", "pipeline: a node must be an object, not str"),
    ],
)
def test_each_problem_is_named(pipeline, problem):
    assert validate_pipeline(pipeline) == [problem]


def test_problems_name_the_node_path():
    pipeline = {
        "name": "p",
        "steps": [
            {"exec": "x"},
            {"name": "b", "exec": "x", "timeout": -1},
            {
                "name": "c",
                "steps": [{"name": "c1", "exec": "x"}],
                "setup": {"name": "s", "exec": "x", "steps": [{"name": "z", "exec": "y"}]},
            },
            {"name": "d", "order": "sideways", "steps": [{"name": "d1", "exec": "x"}]},
            {"name": "e", "exec": "x", "if-changeset-matches": "("},
        ],
        "teardown": {"name": "t", "steps": [{"name": "t1", "exec": None}]},
    }
    problems = validate_pipeline(pipeline)
    assert problems[:4] == [
        'steps[0]: missing "name"',
        "steps[1].timeout: must be a positive number",
        'steps[2].setup: "exec" and "steps" are exclusive',
        'steps[3]: unknown order "sideways"',
    ]
    assert problems[4].startswith('steps[4].if-changeset-matches: invalid regex "(": ')
    assert problems[5].startswith("teardown.steps[0].exec: must be a list of strings")
    assert len(problems) == 6


def test_assert_pipeline_raises_one_error_listing_everything():
    with pytest.raises(PipelineError) as info:
        assert_pipeline({"name": "p", "steps": [{"exec": "x"}, {"name": "b"}]})
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, AssertionError)
    assert error.problems == ['steps[0]: missing "name"', 'steps[1]: needs "exec" or "steps"']
    assert 'steps[0]: missing "name"' in str(error) and "steps[1]" in str(error)


def test_run_pipeline_refuses_an_invalid_pipeline():
    with pytest.raises(PipelineError):
        bass_builder.run_pipeline({"name": "p"}, bass_builder.Options(export=False))


def test_build_exits_2_before_running_anything(builder, receiver, tmp_path):
    result = builder.run_script(
        """
        from bass import build
        build({"name": "p", "steps": [
            {"name": "first", "exec": "touch ran"},
            {"name": "bad", "exec": "x", "timeout": "never"},
            {"name": "worse", "order": "sideways", "steps": [{"name": "w", "exec": "x"}]},
        ]})
        """
    )
    assert result.returncode == 2, result
    assert "steps[1].timeout: must be a positive number" in result.stderr
    assert 'steps[2]: unknown order "sideways"' in result.stderr
    assert not (tmp_path / "ran").exists()
    assert receiver.requests == []


def test_main_exits_2_on_unreadable_json(builder, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = builder.run(["-m", "bass_builder", str(bad)])
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
    missing = builder.run(["-m", "bass_builder", str(tmp_path / "missing.json")])
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_every_argument_and_variable_is_documented():
    doc = bass_builder.__doc__
    parser = bass_builder._argument_parser("build", with_pipeline_file=False)
    for action in parser._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert flag in doc, f"{flag} is not documented in the module docstring"
    with open(bass_builder.__file__, encoding="utf-8") as f:
        source = f.read()
    for name in set(re.findall(r"\b((?:OTEL|BASS)_[A-Z_]+)\b", source)):
        assert name in doc, f"{name} is not documented in the module docstring"
