"""Attacks a web page can make on a bass serve it can reach, in real Chromium: a page on
another origin posting to bass (CSRF), and a page on a DNS name that points at bass
(DNS rebinding). Nothing may be queued, read or changed."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.browser.pages import chromium
from tests.e2e.waiting import wait_until

pytestmark = pytest.mark.browser

REBOUND = "rebound.attacker.test"  # resolves to 127.0.0.1 in this browser only


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium that resolves the rebound name to this machine, as a DNS rebinding
    attacker's would."""
    with chromium(f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1") as b:
        yield b


class AttackerSite:
    """Another origin on loopback serving one page."""

    def __init__(self, html: str) -> None:
        page = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PIPELINES = {"p": {"repository": "/srv/git/p.git", "exec": [sys.executable, "-c", "0"]}}


def test_a_page_on_another_origin_cannot_queue_steal_or_forge(serve, browser) -> None:
    server = serve(PIPELINES, keys=[])  # no worker keys: loopback workers may dequeue
    server.webhook("p")  # one queued build to steal
    target = server.url
    site = AttackerSite(f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/pipelines/p/trigger">
  <input name="csrf" value="guess"></form>
<script>
const opts = (body, type) => ({{method: "POST", mode: "no-cors", body,
                                 headers: {{"Content-Type": type}}}});
Promise.allSettled([
  fetch("{target}/webhook?pipeline=p", opts("pipeline=p", "text/plain")),
  fetch("{target}/dequeue", opts('{{"tags": []}}', "text/plain")),
  fetch("{target}/jobs/1/result", opts('{{"status": "ok"}}', "text/plain")),
  fetch("{target}/v1/traces", opts('{{"resourceSpans": []}}', "text/plain")),
]).then(() => document.getElementById("f").submit());
</script></body></html>""")
    page = browser.new_page()
    try:
        page.goto(site.url)
        # the fetches settled, then the form went: the browser is on bass's answer to it
        page.wait_for_url(f"{target}/pipelines/p/trigger")
        assert "cross-site request refused" in page.content()
        rows = server.query("SELECT number, state FROM builds ORDER BY number")
        assert rows == [(1, "queued")], server.output()  # not triggered, not stolen, not ended
        assert server.query("SELECT COUNT(*) FROM spans") == [(0,)]
    finally:
        page.close()
        site.close()


def test_a_rebound_dns_name_reads_and_drives_nothing(serve, browser) -> None:
    server = serve(PIPELINES, env_file="SECRET=do-not-leak-me\n", keys=[])
    rebound = f"http://{REBOUND}:{server.port}"
    page = browser.new_page()
    try:
        response = page.goto(f"{rebound}/pipelines")
        assert response is not None and response.status == 400
        assert "do-not-leak-me" not in page.content()
        # same origin as far as the browser knows: a script there reads and posts freely
        result = page.evaluate(
            """async () => {
                const d = await fetch("/dequeue", {method: "POST", body: "{}"});
                const w = await fetch("/webhook?pipeline=p", {method: "POST"});
                return [d.status, await d.text(), w.status];
            }"""
        )
        assert result[0] == 400 and result[2] == 400
        assert "do-not-leak-me" not in result[1]
        assert server.query("SELECT COUNT(*) FROM builds") == [(0,)]
    finally:
        page.close()
    # the same server, reached by its own address, works
    wait_until(lambda: server.webhook("p")["queued"], "a webhook by the real address")
