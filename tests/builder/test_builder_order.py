"""ordered/unordered groups, the parallel limit, setup/teardown and changesets."""

from __future__ import annotations


def interval(span):
    return int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])


def max_overlap(spans):
    """The most spans running at the same instant."""
    events = []
    for span in spans:
        start, end = interval(span)
        events += [(start, 1), (end, -1)]
    running = peak = 0
    for _, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    return peak


def test_ordered_stops_at_the_first_failure_and_skips_the_rest(builder, receiver, tmp_path):
    result = builder.run_json(
        {
            "name": "p",
            "steps": [
                {"name": "one", "exec": "true"},
                {"name": "two", "exec": "exit 2"},
                {"name": "three", "exec": "touch ran-three"},
                {"name": "four", "steps": [{"name": "four-a", "exec": "touch ran-four"}]},
            ],
        }
    )
    assert result.returncode == 1, result
    assert [receiver.status(n) for n in ("one", "two", "three", "four", "four-a")] == [
        "ok",
        "failed",
        "skipped",
        "skipped",
        "skipped",
    ]
    for name in ("three", "four", "four-a"):
        assert receiver.span(name)["attrs"]["bass.skip_reason"] == "earlier step failed"
        assert receiver.span(name)["status"] == {"code": 0}
    assert receiver.status("p") == "failed"
    assert not (tmp_path / "ran-three").exists() and not (tmp_path / "ran-four").exists()
    assert "⊘ p/three skipped (earlier step failed)" in result.stdout


def test_unordered_steps_run_in_parallel_and_all_run(builder, receiver):
    result = builder.run_json(
        {
            "name": "p",
            "order": "unordered",
            "steps": [
                {"name": "a", "exec": "sleep 0.4"},
                {"name": "b", "exec": "sleep 0.4; exit 1"},
                {"name": "c", "exec": "sleep 0.4"},
            ],
        },
        ["-j", "3"],
    )
    assert result.returncode == 1, result
    spans = [receiver.span(n) for n in "abc"]
    assert [s["attrs"]["bass.status"] for s in spans] == ["ok", "failed", "ok"]
    assert max_overlap(spans) == 3
    assert receiver.span("p")["attrs"]["bass.order"] == "unordered"


def test_max_parallel_limits_running_leaf_steps(builder, receiver):
    steps = [{"name": f"s{i}", "exec": "sleep 0.2"} for i in range(5)]
    result = builder.run_json({"name": "p", "order": "unordered", "steps": steps}, ["-j", "2"])
    assert result.returncode == 0, result
    assert max_overlap([receiver.span(f"s{i}") for i in range(5)]) == 2


def test_nested_unordered_groups_do_not_deadlock_with_one_slot(builder, receiver):
    groups = [
        {
            "name": f"g{g}",
            "order": "unordered",
            "steps": [
                {
                    "name": f"g{g}-inner",
                    "order": "unordered",
                    "steps": [{"name": f"g{g}-{i}", "exec": "true"} for i in range(3)],
                },
                {"name": f"g{g}-leaf", "exec": "true"},
            ],
        }
        for g in range(3)
    ]
    result = builder.run_json(
        {"name": "p", "order": "unordered", "steps": groups}, ["-j", "1"], timeout=20
    )
    assert result.returncode == 0, result
    leaves = [receiver.span(f"g{g}-{i}") for g in range(3) for i in range(3)]
    assert all(s["attrs"]["bass.status"] == "ok" for s in leaves)
    assert max_overlap(leaves) == 1


def test_setup_failure_skips_the_steps_and_runs_the_teardown(builder, receiver, tmp_path):
    result = builder.run_json(
        {
            "name": "p",
            "setup": {"name": "prepare", "exec": "exit 1"},
            "steps": [{"name": "work", "exec": "touch ran-work"}],
            "teardown": {"name": "clean", "exec": "touch ran-clean"},
        }
    )
    assert result.returncode == 1, result
    assert receiver.status("prepare") == "failed"
    assert receiver.span("prepare")["attrs"]["bass.role"] == "setup"
    assert receiver.status("work") == "skipped"
    assert receiver.span("work")["attrs"]["bass.skip_reason"] == "setup failed"
    assert receiver.status("clean") == "ok"
    assert receiver.span("clean")["attrs"]["bass.role"] == "teardown"
    assert (tmp_path / "ran-clean").exists() and not (tmp_path / "ran-work").exists()
    assert receiver.status("p") == "failed"


def test_teardown_runs_after_a_failing_step(builder, receiver, tmp_path):
    result = builder.run_json(
        {
            "name": "p",
            "steps": [{"name": "work", "exec": "exit 1"}],
            "teardown": {"name": "clean", "exec": "touch ran-clean"},
        }
    )
    assert result.returncode == 1, result
    assert (tmp_path / "ran-clean").exists()
    assert receiver.status("clean") == "ok"


def test_failing_teardown_fails_the_node(builder, receiver):
    result = builder.run_json(
        {
            "name": "p",
            "steps": [
                {
                    "name": "group",
                    "steps": [{"name": "work", "exec": "true"}],
                    "teardown": {"name": "clean", "exec": "exit 3"},
                },
            ],
        }
    )
    assert result.returncode == 1, result
    assert receiver.status("work") == "ok"
    assert receiver.status("clean") == "failed"
    assert receiver.status("group") == "failed"
    assert receiver.status("p") == "failed"


CHANGESET_PIPELINE = {
    "name": "p",
    "order": "unordered",
    "steps": [
        {"name": "src", "exec": "true", "if-changeset-matches": r"^src/.*\.py$"},
        {"name": "docs", "exec": "true", "if-changeset-matches": "^docs/"},
        {
            "name": "docs-group",
            "if-changeset-matches": "^docs/",
            "steps": [{"name": "docs-inner", "exec": "true"}],
        },
        {"name": "always", "exec": "true"},
    ],
}


def test_changeset_runs_matching_steps_and_skips_the_others(builder, receiver, tmp_path):
    changes = tmp_path / "changes.txt"
    changes.write_text("README.md\n\nsrc/bass/app.py\n")
    result = builder.run_json(CHANGESET_PIPELINE, ["-c", str(changes)])
    assert result.returncode == 0, result
    assert receiver.status("src") == "ok"
    assert receiver.status("always") == "ok"
    for name in ("docs", "docs-group", "docs-inner"):
        assert receiver.status(name) == "skipped"
        assert receiver.span(name)["attrs"]["bass.skip_reason"] == "changeset"


def test_empty_changeset_runs_everything(builder, receiver, tmp_path):
    changes = tmp_path / "changes.txt"
    changes.write_text("\n  \n")
    result = builder.run_json(CHANGESET_PIPELINE, ["-c", str(changes)])
    assert result.returncode == 0, result
    assert {receiver.status(n) for n in ("src", "docs", "docs-inner", "always")} == {"ok"}


def test_missing_changeset_file_warns_and_runs_everything(builder, receiver, tmp_path):
    result = builder.run_json(CHANGESET_PIPELINE, ["-c", str(tmp_path / "nope.txt")])
    assert result.returncode == 0, result
    assert "changeset file not found" in result.stderr
    assert receiver.status("docs") == "ok"


def test_group_whose_children_are_all_skipped_is_skipped(builder, receiver, tmp_path):
    changes = tmp_path / "changes.txt"
    changes.write_text("other/file\n")
    pipeline = {
        "name": "p",
        "steps": [
            {"name": "a", "exec": "true", "if-changeset-matches": "^src/"},
            {"name": "b", "exec": "true", "if-changeset-matches": "^docs/"},
        ],
    }
    result = builder.run_json(pipeline, ["-c", str(changes)])
    assert result.returncode == 0, result
    assert receiver.status("p") == "skipped"
    assert receiver.span("p")["status"] == {"code": 0}
