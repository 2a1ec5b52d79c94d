"""Timeouts and cancellation kill whole process trees; cwd confinement."""

from __future__ import annotations

import os
import signal

import pytest
from builder_testing import kill_if_alive, pid_alive, wait_for

# A step that leaves a grandchild (a background sleep) and blocks; the pids go to files.
SPAWNER = "sleep 60 & echo $! > {name}.grandchild; echo $$ > {name}.child; echo started; sleep 60"


def read_pid(path):
    assert wait_for(lambda: path.exists() and path.read_text().strip()), f"{path} never written"
    return int(path.read_text())


def test_leaf_timeout_kills_the_process_tree(builder, receiver, tmp_path):
    result = builder.run_json(
        {
            "name": "p",
            "steps": [{"name": "slow", "exec": SPAWNER.format(name="slow"), "timeout": 0.5}],
        }
    )
    grandchild = read_pid(tmp_path / "slow.grandchild")
    try:
        assert result.returncode == 4, result
        assert wait_for(lambda: not pid_alive(grandchild), 5), "grandchild survived the timeout"
        span = receiver.span("slow")
        assert span["attrs"]["bass.status"] == "timeout"
        assert span["attrs"]["bass.timeout"] == 0.5
        assert span["status"] == {"code": 2, "message": "timeout after 0.5s"}
        assert receiver.bodies("slow", "stdout") == ["started"]
        assert receiver.status("p") == "timeout"
    finally:
        kill_if_alive(grandchild)


def test_group_timeout_kills_running_children_and_skips_the_rest(builder, receiver, tmp_path):
    result = builder.run_json(
        {
            "name": "p",
            "steps": [
                {
                    "name": "group",
                    "timeout": "0.6",  # numeric strings are accepted, as the prototype did
                    "steps": [
                        {"name": "quick", "exec": "true"},
                        {"name": "slow", "exec": SPAWNER.format(name="slow")},
                        {"name": "later", "exec": "touch ran-later"},
                    ],
                    "teardown": {"name": "clean", "exec": "touch ran-clean"},
                },
            ],
        }
    )
    grandchild = read_pid(tmp_path / "slow.grandchild")
    try:
        assert result.returncode == 4, result
        assert wait_for(lambda: not pid_alive(grandchild), 5), "grandchild survived the timeout"
        assert receiver.status("quick") == "ok"
        assert receiver.status("slow") == "timeout"
        assert receiver.span("slow")["status"]["message"] == "timeout: p/group exceeded 0.6s"
        assert receiver.status("later") == "skipped"
        assert receiver.span("later")["attrs"]["bass.skip_reason"] == "timeout"
        assert receiver.status("clean") == "ok"  # teardowns run even after a timeout
        assert (tmp_path / "ran-clean").exists() and not (tmp_path / "ran-later").exists()
        group = receiver.span("group")
        assert group["attrs"]["bass.status"] == "timeout"
        assert group["status"]["message"] == "timeout after 0.6s"
    finally:
        kill_if_alive(grandchild)


def test_unordered_group_timeout_skips_steps_waiting_for_a_slot(builder, receiver):
    result = builder.run_json(
        {
            "name": "p",
            "order": "unordered",
            "timeout": 0.4,
            "steps": [{"name": f"s{i}", "exec": "sleep 5"} for i in range(3)],
        },
        ["-j", "1"],
    )
    assert result.returncode == 4, result
    statuses = sorted(receiver.status(f"s{i}") for i in range(3))
    assert statuses == ["skipped", "skipped", "timeout"]
    assert receiver.status("p") == "timeout"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_cancels_runs_teardown_and_exits_5(builder, receiver, tmp_path, signum):
    pipeline = builder.write_json(
        {
            "name": "p",
            "steps": [
                {"name": "slow", "exec": SPAWNER.format(name="slow")},
                {"name": "later", "exec": "touch ran-later"},
            ],
            "teardown": {"name": "clean", "exec": "touch ran-clean"},
        }
    )
    proc, _ = builder.start(["-m", "bass_builder", str(pipeline)])
    grandchild = child = None
    try:
        grandchild = read_pid(tmp_path / "slow.grandchild")
        child = read_pid(tmp_path / "slow.child")
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 5, (stdout, stderr)
        assert wait_for(lambda: not pid_alive(grandchild) and not pid_alive(child), 5)
        assert (tmp_path / "ran-clean").exists() and not (tmp_path / "ran-later").exists()
        assert receiver.status("slow") == "cancelled"
        assert receiver.status("later") == "skipped"
        assert receiver.span("later")["attrs"]["bass.skip_reason"] == "cancelled"
        assert receiver.status("clean") == "ok"
        assert receiver.status("p") == "cancelled"
        assert "cancelled" in stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in (grandchild, child):
            if pid:
                kill_if_alive(pid)


def test_a_second_signal_stops_the_teardowns_too(builder, receiver, tmp_path):
    pipeline = builder.write_json(
        {
            "name": "p",
            "steps": [{"name": "slow", "exec": "touch slow-started; sleep 60"}],
            "teardown": {"name": "clean", "exec": "touch clean-started; sleep 60"},
        }
    )
    proc, _ = builder.start(["-m", "bass_builder", str(pipeline)])
    try:
        assert wait_for(lambda: (tmp_path / "slow-started").exists())
        proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: (tmp_path / "clean-started").exists())
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 5, (stdout, stderr)
        assert receiver.status("slow") == "cancelled"
        assert receiver.status("clean") == "cancelled"
        assert "second signal" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cwd_inside_root(builder, receiver, tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    result = builder.run_json(
        {
            "name": "p",
            "cwd": "sub",
            "steps": [
                {"name": "here", "exec": "pwd"},
                {"name": "deeper", "cwd": "deeper/..//deeper", "exec": ["pwd"]},
            ],
        },
        ["-r", str(tmp_path)],
    )
    assert result.returncode == 0, result
    real = os.path.realpath(tmp_path)
    assert receiver.bodies("here") == [f"{real}/sub"]
    assert receiver.bodies("deeper") == [f"{real}/sub/deeper"]
    assert receiver.span("here")["attrs"]["bass.cwd"] == "sub"
    assert receiver.span("deeper")["attrs"]["bass.cwd"] == "sub/deeper"


def test_a_leading_slash_in_cwd_means_the_build_root(builder, receiver, tmp_path):
    """As in the prototype (docs/contracts.md, "Pipeline nodes"): "/sub" is the build
    root's sub, wherever the parent node is; "/" is the root itself, never the file
    system's."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    result = builder.run_json(
        {
            "name": "p",
            "cwd": "a/b",
            "steps": [
                {"name": "sub", "cwd": "/sub", "exec": "pwd"},
                {"name": "root", "cwd": "/", "exec": ["pwd"]},
            ],
        },
        ["-r", str(tmp_path)],
    )
    assert result.returncode == 0, result
    real = os.path.realpath(tmp_path)
    assert receiver.bodies("sub") == [f"{real}/sub"]
    assert receiver.bodies("root") == [real]
    assert receiver.span("sub")["attrs"]["bass.cwd"] == "sub"


def test_cwd_escaping_root_with_dotdot_is_an_error(builder, receiver, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    result = builder.run_json(
        {"name": "p", "steps": [{"name": "escape", "cwd": "..", "exec": "touch escaped"}]},
        cwd=root,
    )
    assert result.returncode == 3, result
    span = receiver.span("escape")
    assert span["attrs"]["bass.status"] == "error"
    assert span["status"] == {"code": 2, "message": "cwd escapes root: .."}
    assert receiver.bodies("escape") == ["bass: cwd escapes root: .."]
    assert not (tmp_path / "escaped").exists()
    assert receiver.status("p") == "error"


def test_cwd_escaping_root_through_a_symlink_is_an_error(builder, receiver, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    result = builder.run_json(
        {"name": "p", "steps": [{"name": "escape", "cwd": "link", "exec": "touch escaped"}]},
        ["-r", str(root)],
        cwd=root,
    )
    assert result.returncode == 3, result
    assert receiver.span("escape")["status"]["message"] == "cwd escapes root: link"
    assert not (outside / "escaped").exists()
