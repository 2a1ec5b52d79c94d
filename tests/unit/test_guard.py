"""The gate in front of every route (bass.guard): Host allowlist, cross-site refusal,
security headers, the dashboard's CSRF token. Attacks as a browser page on another
origin or a rebound DNS name would make them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bass.config import Config, Settings
from bass.server import refuse_an_open_network
from tests.unit.conftest import App
from tests.unit.helpers import KEY, as_body, span, traces_payload

TRACE, ROOT = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


@pytest.mark.parametrize("host", ["evil.example", "attacker.test:8080", "bass.attacker.net"])
def test_a_host_that_is_not_ours_is_refused(app: App, host: str) -> None:
    """DNS rebinding: a page on evil.example, whose name now points at 127.0.0.1, reads
    nothing (not /dequeue with the env file's secrets, not /pipelines) and does nothing."""
    for method, path in (("GET", "/pipelines"), ("POST", "/dequeue"), ("GET", "/"),
                         ("POST", "/webhook?pipeline=demo"), ("GET", "/api/status")):  # fmt: skip
        response = app.client.request(method, path, headers={"Host": host, "X-API-KEY": KEY})
        assert response.status_code == 400, (method, path)
        assert "unknown host" in response.text
    assert app.count("builds") == 0


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "[::1]:8080", "10.1.2.3", "localhost:9"])
def test_our_names_and_any_ip_address_are_let_in(app: App, host: str) -> None:
    assert app.client.get("/healthz", headers={"Host": host}).status_code == 200


CROSS_SITE: list[dict[str, str]] = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_browser_on_another_site_changes_nothing(app: App, headers: dict[str, str]) -> None:
    """Queue a build through /webhook (a no-cors text/plain form), steal a queued build
    through /dequeue, forge a result, post telemetry: all refused, nothing changed."""
    posts: list[tuple[str, Any]] = [
        ("/webhook?pipeline=demo", b"pipeline=demo"),
        ("/dequeue", b'{"tags": []}'),
        ("/jobs/1/result", b'{"status": "ok"}'),
        ("/v1/traces", as_body(traces_payload(span(TRACE, ROOT, end=5)))),
        ("/pipelines/demo/trigger", b""),
    ]
    app.webhook("demo")  # one queued build to steal
    for path, body in posts:
        response = app.client.post(
            path,
            content=body,
            headers={"Content-Type": "text/plain", "X-API-KEY": KEY, **headers},
        )
        assert response.status_code == 403, (path, response.status_code)
    (build,) = app.rows("SELECT state FROM builds")
    assert build["state"] == "queued"
    assert app.count("spans") == 0


def test_forges_workers_and_sdks_send_no_origin_and_pass(app: App) -> None:
    assert app.webhook("demo").status_code == 200
    assert app.dequeue({"tags": []}).status_code == 200


def test_a_same_origin_form_passes_the_origin_check(app: App) -> None:
    response = app.client.get("/")
    token = app.client.cookies["bass_csrf"]
    response = app.client.post(
        "/pipelines/demo/trigger",
        data={"csrf": token},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert app.count("builds") == 1


@pytest.mark.parametrize("token", [None, "", "x" * 43, "wrong"])
def test_a_dashboard_form_without_its_csrf_token_is_refused(app: App, token: str | None) -> None:
    app.client.get("/")  # the browser has its cookie ...
    data = {} if token is None else {"csrf": token}
    response = app.client.post("/pipelines/demo/trigger", data=data, follow_redirects=False)
    assert response.status_code == 403  # ... but the form does not carry it
    assert "form is stale" in response.text
    assert app.count("builds") == 0


def test_every_answer_carries_the_security_headers(app: App) -> None:
    for path in ("/", "/pipelines/demo", "/api/status", "/healthz", "/nope", "/static/bass.css"):
        headers = app.client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["x-frame-options"] == "DENY"
    refused = app.client.get("/", headers={"Host": "evil.example"}).headers
    assert refused["x-frame-options"] == "DENY"


def test_the_csrf_cookie_is_http_only_and_strict(app: App) -> None:
    cookie = app.client.get("/").headers["set-cookie"]
    assert cookie.startswith("bass_csrf=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


def test_public_url_builds_the_links_and_secure_cookies(make_app: Any) -> None:
    app = make_app(public_url="https://ci.example.com")
    response = app.client.get("/")
    assert 'href="https://ci.example.com/search"' in response.text
    assert "Secure" in response.headers["set-cookie"]
    # machines get URLs on the host they used
    app.webhook("demo")
    job = app.dequeue({"tags": []}).json()
    assert job["heartbeat-url"].startswith("http://testserver/")
    assert job["build-url"] == "https://ci.example.com/pipelines/demo/1"
    assert app.webhook("demo").json()["url"] == "https://ci.example.com/pipelines/demo/2"
    # the public host is allowed, and its browser origin is ours
    token = app.client.cookies["bass_csrf"]  # Secure: the test client sends it by hand
    posted = app.client.post(
        "/pipelines/demo/trigger",
        data={"csrf": token},
        headers={"Host": "ci.example.com", "Origin": "https://ci.example.com",
                 "Cookie": f"bass_csrf={token}"},
        follow_redirects=False,
    )  # fmt: skip
    assert posted.status_code == 303
    assert posted.headers["location"] == "https://ci.example.com/pipelines/demo/3"


def test_a_password_in_a_repository_url_is_never_on_a_page(make_app: Any) -> None:
    app = make_app(
        {"demo": {"repository": "https://ci:hunter2-secret@git.example.com/d.git", "exec": "x"}}
    )
    for path in ("/", "/pipelines/demo", "/pipelines"):
        text = app.client.get(path).text
        assert "hunter2-secret" not in text, path
    assert "ci:***@git.example.com" in app.client.get("/pipelines/demo").text


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_proxied_request_to_a_bass_serving_this_machine_alone_is_refused(
    app: App, header: str
) -> None:
    """Bound to loopback with no proxy declared, every request looks like this machine's
    own: one a proxy forwarded from elsewhere must not pass as such (no login, no worker
    key, no telemetry token)."""
    value = "for=203.0.113.7" if header == "Forwarded" else "203.0.113.7"
    for method, path in [("GET", "/"), ("POST", "/dequeue"), ("POST", "/v1/traces")]:
        response = app.client.request(method, path, headers={header: value})
        assert response.status_code == 403, (method, path)
        assert "--forwarded-allow-ips" in response.text
    assert app.client.get("/").status_code == 200  # the machine's own requests pass


def test_a_declared_proxy_means_a_network_server(tmp_path: Path) -> None:
    """--forwarded-allow-ips: other machines come in through the proxy, so bass asks for
    people and worker keys as on a network address."""
    behind = Settings(host="127.0.0.1", forwarded_allow_ips="127.0.0.1")
    assert not behind.loopback_only()
    assert Settings(host="127.0.0.1").loopback_only()
    behind.users_file = str(tmp_path / "users.json")
    behind.config = Config(pipelines={}, env={}, worker_keys=[])
    with pytest.raises(ValueError, match="users file.*worker keys"):
        refuse_an_open_network(behind)
