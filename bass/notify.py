"""E-mail notifications: a pipeline's `notifications.onSuccess|onFailure.email`, sent
over SMTP when one of its builds ends.

`$PIPELINE_NAME`, `$TRACEID`, `$BUILD_NUMBER`, `$STATUS`, `$BUILD_URL` and `$MESSAGE`
are substituted in `to`, `subject` and `body` (values are HTML-escaped in a body that
contains markup). onFailure covers failed, timeout and error builds; a cancelled build
sends nothing.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from string import Template
from typing import Any

from bass import states

log = logging.getLogger("bass.notify")

_MARKUP = re.compile(r"<[a-zA-Z/][^>]*>")


@dataclass
class Mailer:
    host: str
    port: int = 25
    sender: str = ""
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    timeout: float = 30.0

    def message_for(self, build: dict[str, Any]) -> EmailMessage | None:
        """The e-mail a build's end calls for under its pipeline's notifications, if any."""
        notifications = (build.get("config") or {}).get("notifications") or {}
        if build["state"] == states.OK:
            target = notifications.get("onSuccess")
        elif build["state"] in states.FAILURES:
            target = notifications.get("onFailure")
        else:
            target = None
        if not target or not target.get("email"):
            return None
        email = target["email"]
        base = self.public_url.rstrip("/")
        values = {
            "PIPELINE_NAME": build["pipeline"],
            "TRACEID": build["trace_id"],
            "BUILD_NUMBER": str(build["number"]),
            "STATUS": build["state"],
            "BUILD_URL": f"{base}/pipelines/{build['pipeline']}/{build['number']}",
            "MESSAGE": build.get("message") or "",
        }
        to = email["to"] if isinstance(email["to"], list) else [email["to"]]
        subject = email.get("subject") or "$PIPELINE_NAME #$BUILD_NUMBER: $STATUS"
        body = email.get("body") or "$PIPELINE_NAME #$BUILD_NUMBER: $STATUS\n$BUILD_URL\n"
        message = EmailMessage()
        message["From"] = self.sender or f"bass@{socket.getfqdn()}"
        message["To"] = ", ".join(_one_line(Template(t).safe_substitute(values)) for t in to)
        message["Subject"] = _one_line(Template(subject).safe_substitute(values))
        if _MARKUP.search(body):
            escaped = {k: html.escape(v) for k, v in values.items()}
            message.set_content(Template(body).safe_substitute(escaped), subtype="html")
        else:
            message.set_content(Template(body).safe_substitute(values))
        return message

    def send(self, message: EmailMessage) -> None:
        import smtplib  # here: most servers never send mail

        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)

    async def on_finished(self, build: dict[str, Any]) -> None:
        """The orchestrator's callback: send, in a thread; a failure is logged, never
        raised (a mail server that is down must not affect builds)."""
        message = self.message_for(build)
        if message is None:
            return
        try:
            await asyncio.to_thread(self.send, message)
        except OSError as e:  # smtplib's errors (SMTPException) are OSErrors
            log.warning("%s #%s: notification to %s not sent: %s", build["pipeline"],
                        build["number"], message["To"], e)  # fmt: skip
            return
        log.info("%s #%s: notified %s", build["pipeline"], build["number"], message["To"])


def _one_line(text: str) -> str:
    """Header values never carry line breaks (no header injection through a value)."""
    return " ".join(text.split())
