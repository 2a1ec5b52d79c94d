"""A password or token given in a repository URL never reaches a log: not the commands
the worker's git step shows, not git's own messages, not the worker's Python log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bass import webhook
from bass.refs import redact_url, redact_urls, url_credentials
from bass.worker import checkout, runner

URLS = [
    ("https://user:pw@host/r.git", "https://user:***@host/r.git"),
    ("https://tok3n@host/r.git", "https://***@host/r.git"),
    ("http://user:p@ss@host:8080/r", "http://user:***@host:8080/r"),
    ("https://user:@host/r", "https://user:***@host/r"),
    ("https://user:p%40w@[::1]:3000/r", "https://user:***@[::1]:3000/r"),
    ("ssh://git@host/r.git", "ssh://git@host/r.git"),
    ("ssh://git:pw@host/r.git", "ssh://git:***@host/r.git"),
    ("https://host/a@b", "https://host/a@b"),
    ("/srv/git/r.git", "/srv/git/r.git"),
    ("git@host:r.git", "git@host:r.git"),
]


@pytest.mark.parametrize(("url", "shown"), URLS)
def test_redact_url_hides_passwords_and_tokens(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert webhook.redact_url(url) == shown  # what /pipelines shows: the same rule
    assert redact_urls(url) == shown  # the same rule inside a text


def test_every_url_in_a_text_is_redacted() -> None:
    text = (
        "fatal: unable to access 'https://user:s3cret@127.0.0.1:1/x.git/': refused\n"
        "$ git remote add origin https://tok3n@host/y.git; see http://host/a@b\n"
        'from "HTTPS://u:p@h/z" and <https://u2:p2@h2>'
    )
    assert redact_urls(text) == (
        "fatal: unable to access 'https://user:***@127.0.0.1:1/x.git/': refused\n"
        "$ git remote add origin https://***@host/y.git; see http://host/a@b\n"
        'from "HTTPS://u:***@h/z" and <https://u2:***@h2>'
    )


def test_the_secret_part_of_a_url_as_written_and_decoded() -> None:
    assert url_credentials("https://user:p%40ss@host/r") == ["p%40ss", "p@ss"]
    assert url_credentials("https://tok3n@host/r") == ["tok3n"]
    assert url_credentials("ssh://git@host/r") == []
    assert url_credentials("/srv/git/r.git") == []


FAKE_GIT = """#!/bin/sh
# a git that succeeds at everything but fetch, whose error echoes the URL with its
# password, as older gits and some remote helpers do
case "$1" in
  fetch) echo "fatal: unable to access 'https://user:s3cret-pw@127.0.0.1:1/x.git/': no" >&2
         echo "remote: https://user:s3cret-pw@127.0.0.1:1/x.git denied"; exit 128 ;;
  *) exit 0 ;;
esac
"""


def test_git_commands_output_and_errors_are_redacted(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(FAKE_GIT)
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    said: list[str] = []
    url = "https://user:s3cret-pw@127.0.0.1:1/x.git"
    with pytest.raises(checkout.CheckoutError) as failed:
        checkout.checkout(url, "main", tmp_path / "work", said.append)
    assert "$ git remote add origin https://user:***@127.0.0.1:1/x.git" in said
    assert "remote: https://user:***@127.0.0.1:1/x.git denied" in said
    assert "fatal: unable to access 'https://user:***@127.0.0.1:1/x.git/': no" in said
    assert "https://user:***@127.0.0.1:1/x.git/" in str(failed.value)
    assert not any("s3cret" in line for line in said), said
    assert "s3cret" not in str(failed.value)
    (tmp_path / "work" / ".git").mkdir()  # the second time: set-url
    with pytest.raises(checkout.CheckoutError):
        checkout.checkout(url, "main", tmp_path / "work", said.append)
    assert "$ git remote set-url origin https://user:***@127.0.0.1:1/x.git" in said
    assert not any("s3cret" in line for line in said), said


def test_the_workers_own_log_is_redacted(caplog) -> None:
    caplog.set_level(logging.INFO, logger="bass.worker")
    runner.log.info("dequeuing from %s", "http://admin:hunter22@ci:8080/dequeue")
    try:
        raise RuntimeError("cannot reach https://tok3n-abc@host/r.git")
    except RuntimeError:
        runner.log.exception("worker error")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "http://admin:***@ci:8080/dequeue" in text
    assert "https://***@host/r.git" in text
    assert "hunter22" not in text and "tok3n-abc" not in text
