"""E-mail notifications through a real SMTP server (aiosmtpd) when builds end."""

from __future__ import annotations

import sys
from email import message_from_bytes
from email.message import Message

import pytest

from tests.conftest import free_port
from tests.e2e.waiting import wait_until

aiosmtpd = pytest.importorskip("aiosmtpd.controller")

PASS = "#!/usr/bin/env python3\nfrom bass import build\nbuild({'name': 'p', 'exec': ['true']})\n"
FAIL = (
    "#!/usr/bin/env python3\nfrom bass import build\n"
    "build({'name': 'p', 'exec': ['sh', '-c', 'exit 1']})\n"
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _pipeline(repo, script: str, notifications: dict) -> dict:
    return {"repository": str(repo.path), "ref": "main", "exec": [sys.executable, script],
            "notifications": notifications}  # fmt: skip


def test_failure_and_success_mail_with_substitutions(repo, serve, worker, smtp):
    controller, inbox = smtp
    repo.commit({"pass.py": PASS, "fail.py": FAIL})
    notify = {
        "onFailure": {"email": {"to": "team@example.com", "subject": "Build $PIPELINE_NAME failed",
                                "body": "Build: <b>$TRACEID</b> $STATUS <i>$MESSAGE</i>"}},
        "onSuccess": {"email": {"to": ["a@example.com", "b@example.com"],
                                "subject": "$PIPELINE_NAME #$BUILD_NUMBER ok",
                                "body": "See $BUILD_URL"}},
    }  # fmt: skip
    server = serve(
        {"red": _pipeline(repo, "fail.py", notify), "green": _pipeline(repo, "pass.py", notify)},
        extra=["--smtp-host", "127.0.0.1", "--smtp-port", str(controller.port),
               "--smtp-from", "ci@example.com", "--public-url", "https://ci.example.com"],
    )  # fmt: skip
    worker(server)
    red = server.wait_for(server.webhook("red")["id"])
    green = server.wait_for(server.webhook("green")["id"])
    assert (red["state"], green["state"]) == ("failed", "ok")
    wait_until(
        lambda: len(inbox.messages) >= 2,
        "two mails",
        context=lambda: f"{[m['Subject'] for _, m in inbox.messages]}\n{server.output()}",
    )
    by_subject = {m["Subject"]: (rcpt, m) for rcpt, m in inbox.messages}
    assert set(by_subject) == {"Build red failed", "green #1 ok"}

    rcpt, failure = by_subject["Build red failed"]
    assert rcpt == ["team@example.com"] and failure["From"] == "ci@example.com"
    assert failure.get_content_type() == "text/html"
    body = failure.get_payload(decode=True).decode()
    # the build's message is escaped: only the template's own markup is markup
    assert f"Build: <b>{red['trace_id']}</b> failed" in body
    assert "<i>build entry exited with code 1</i>" in body

    rcpt, success = by_subject["green #1 ok"]
    assert rcpt == ["a@example.com", "b@example.com"]
    assert success.get_content_type() == "text/plain"
    text = success.get_payload(decode=True).decode()
    assert "See https://ci.example.com/pipelines/green/1" in text


def test_a_dead_mail_server_never_affects_builds(repo, serve, worker):
    repo.commit({"fail.py": FAIL})
    notify = {"onFailure": {"email": {"to": "team@example.com"}}}
    server = serve({"red": _pipeline(repo, "fail.py", notify)},
                   extra=["--smtp-host", "127.0.0.1", "--smtp-port", str(free_port())])  # fmt: skip
    worker(server)
    assert server.wait_for(server.webhook("red")["id"])["state"] == "failed"
    second = server.wait_for(server.webhook("red")["id"])
    assert second["state"] == "failed" and second["number"] == 2
    wait_until(
        lambda: "notification to team@example.com not sent" in server.output(),
        "bass serve to log the mail it could not send",
        context=server.output,
    )
