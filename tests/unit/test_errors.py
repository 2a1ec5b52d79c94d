"""One path for HTTP errors (bass.errors): every route raises HTTPException, and the
answer takes the caller's form: a google.rpc.Status for OTLP, `{"error"}` for the JSON
APIs, the styled page for the dashboard."""

from __future__ import annotations

import json

import pytest

from bass.ingest import wire
from tests.unit.conftest import App


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/pipelines/nope", 404, "no pipeline named &#39;nope&#39;"),
        ("/pipelines/demo/7", 404, "no build demo #7"),
        ("/pipelines/demo/7/log", 404, "no build demo #7"),
        ("/pipelines/demo/7/timeline", 404, "no build demo #7"),
        ("/no/such/page", 404, "There is no page at /no/such/page."),
    ],
)
def test_dashboard_errors_are_the_styled_page(app: App, path: str, status: int, says: str):
    response = app.client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.template.name == "error.html"  # type: ignore[attr-defined]
    assert says in response.text
    assert '<a href="http://testserver/search">search</a>' in response.text  # the header


def test_a_cross_site_dashboard_action_is_refused_with_the_page(app: App):
    response = app.client.post(
        "/pipelines/demo/trigger", headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert response.template.name == "error.html"  # type: ignore[attr-defined]
    assert "cross-site request refused" in response.text
    assert app.count("builds") == 0


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("GET", "/api/builds/7", 404, "no such build"),
        ("GET", "/api/jobs/7", 404, "no such build"),
        ("GET", "/api/pipelines/demo/builds/7", 404, "no build demo #7"),
        ("GET", "/api/pipelines/demo/builds?limit=x", 400, "limit must be"),
        ("GET", "/api/search", 400, "say what to search for"),
        ("GET", "/api/nothing-here", 404, "Not Found"),
        ("GET", "/webhook", 405, "Method Not Allowed"),
        ("POST", "/webhook", 400, "pipeline"),
        ("POST", "/jobs/7/result", 401, "X-API-KEY"),
        ("GET", "/dequeue", 405, "Method Not Allowed"),
    ],
)
def test_json_api_errors_are_json(app: App, method: str, path: str, status: int, says: str):
    response = app.client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert says in response.json()["error"]


def test_a_wrong_method_keeps_its_allow_header(app: App):
    response = app.client.get("/dequeue")
    assert response.headers["allow"] == "POST"


def test_otlp_errors_are_a_status_in_the_request_encoding(app: App):
    response = app.client.get("/v1/traces")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content) == {"code": 12, "message": "Method Not Allowed"}

    response = app.client.put(
        "/v1/logs", content=b"", headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/x-protobuf"
    assert response.content == wire.status(12, "Method Not Allowed")

    response = app.client.post("/v1/traces", content=b"x", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415
    assert json.loads(response.content)["code"] == 3
