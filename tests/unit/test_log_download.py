"""The plain-text log download is safe to print in a terminal: colours stay, every other
control sequence (cursor moves, clearing, OSC titles and hyperlinks, C1 controls,
carriage returns) is gone."""

from __future__ import annotations

import pytest

from bass.ansi import terminal_safe
from tests.unit.conftest import App
from tests.unit.helpers import post_logs, record, start_build, trace_of

HOSTILE = [
    ("\x1b[31mred\x1b[0m", "\x1b[31mred\x1b[0m"),
    ("a\x1b[2J\x1b[Hb", "ab"),
    ("\x1b]0;owned\x07title", "title"),
    ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),
    ("over\rwrite", "overwrite"),
    ("c1\x9b2Jcsi", "c12Jcsi"),
    ("\x1bPdcs\x1b\\after", "after"),
    ("keep\ttabs é", "keep\ttabs é"),
]


@pytest.mark.parametrize(("text", "safe"), HOSTILE)
def test_terminal_safe(text: str, safe: str) -> None:
    assert terminal_safe(text) == safe


def test_the_log_download_is_terminal_safe(app: App) -> None:
    job = start_build(app)
    trace, root = trace_of(job), job["otel"]["root-span-id"]
    post_logs(app, *(record(trace, root, text) for text, _ in HOSTILE))
    response = app.client.get("/pipelines/demo/1/log")
    assert response.status_code == 200
    assert response.text == "".join(safe + "\n" for _, safe in HOSTILE)
    # the stored lines, and the JSON API, keep what was sent
    bodies = [r["body"] for r in app.client.get("/api/pipelines/demo/builds/1/logs").json()["logs"]]
    assert bodies == [text for text, _ in HOSTILE]
