"""Property-based fuzzing of every route but OTLP (tests/fuzz/test_fuzz_otlp.py has
those), through the real app and its SQLite file: the webhook, the worker API, the JSON
query API, the dashboard's pages and forms, with hostile paths, query strings, headers
and bodies. Whatever a caller sends, the answer is never 5xx, and afterwards every page
and API answer of what is stored is 200.

Deterministic (derandomize) and bounded for CI; BASS_FUZZ_EXAMPLES=N runs N examples per
test instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bass.app import create_app
from bass.config import Config, Settings, check_pipeline

EXAMPLES = int(os.environ.get("BASS_FUZZ_EXAMPLES") or 0)
KEY = "fuzz-key"
PIPELINES = {
    "demo": {"repository": "/srv/git/demo.git", "exec": ["./b"]},
    "tagged": {"repository": "/srv/git/t.git", "exec": "make", "tag-pattern": "^v[0-9]"},
    "signed": {"repository": "/srv/git/s.git", "exec": "make", "webhook-secret": "hook-secret"},
}


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("fuzz-http")
    config = Config(
        pipelines={n: check_pipeline(dict(p), n) for n, p in PIPELINES.items()},
        env={"SECRET": "env-secret"},
        worker_keys=[f"fuzzer: {KEY}"],
    )
    settings_ = Settings(
        db=str(home / "bass.db"),
        config=config,
        allowed_hosts=["testserver"],
        users_file=str(home / "users.json"),
    )
    with TestClient(create_app(settings_)) as c:
        yield c


def never_5xx(response: Any, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:500])


# -- building blocks -------------------------------------------------------------------

text = st.text(max_size=40)
hostile_text = st.one_of(
    text,
    st.sampled_from(["", " ", "\x00", "\ud800", "%00", "../../etc/passwd", "a" * 5000,
                     "NaN", "1e400", "-1", "99999999999999999999", "²", "٣", "0x10",
                     "<script>", "'; DROP TABLE builds; --", "*", '"', "\\", "\r\n"]),
)  # fmt: skip
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_leaf = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)
json_object = st.dictionaries(
    st.sampled_from(["pipeline", "changed-refs", "tags", "commits", "ref", "wait", "worker",
                     "heartbeat", "status", "message", "zen"]) | text,
    json_value,
    max_size=6,
)  # fmt: skip
raw_body = st.one_of(
    json_object.map(lambda o: json.dumps(o, allow_nan=True).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[]", b"null", b"1e400", b"\xff\xfe", b'"\\ud800"',
                     b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}", b"pipeline=demo&csrf=x"]),
)  # fmt: skip
headers = st.dictionaries(
    st.sampled_from(["content-type", "origin", "x-github-event", "x-gitea-event",
                     "x-hub-signature-256", "x-gitlab-token", "authorization", "x-api-key",
                     "sec-fetch-site", "content-encoding", "cookie"]),
    st.sampled_from(["application/json", "text/plain", "ping", "push", "null",
                     "http://[::1", "https://evil.example", "cross-site", "gzip",
                     "Bearer x", "sha256=00", KEY, "bass_csrf=x", "\t"]) | st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    max_size=4,
)  # fmt: skip


def wire(value: str) -> str:
    """Percent-encoded as it goes on the wire; a lone surrogate becomes the invalid UTF-8
    bytes a hostile client could send."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def query_string(query: dict[str, str]) -> str:
    return "&".join(f"{wire(k)}={wire(v)}" for k, v in query.items())


segment = hostile_text.map(wire)


# -- the properties -----------------------------------------------------------------------


@fuzz(400)
@given(query=st.dictionaries(st.sampled_from(["pipeline", "changed-refs", "tags"]) | text,
                             hostile_text, max_size=3),
       body=raw_body, extra=headers)  # fmt: skip
def test_webhook(client: TestClient, query: dict[str, str], body: bytes, extra: dict) -> None:
    response = client.post(f"/webhook?{query_string(query)}", content=body, headers=extra)
    never_5xx(response, ("webhook", query, body[:100], extra))


@fuzz(300)
@given(path=st.sampled_from(["/dequeue", "/jobs/1/heartbeat", "/jobs/1/result"])
       | segment.map(lambda s: f"/jobs/{s}/result"),
       body=raw_body, key=st.sampled_from([KEY, "", "wrong"]), extra=headers)  # fmt: skip
def test_worker_api(client: TestClient, path: str, body: bytes, key: str, extra: dict) -> None:
    response = client.post(path, content=body, headers={"x-api-key": key, **extra})
    never_5xx(response, (path, body[:100], extra))


QUERY_PATHS = [
    "/api/builds/{n}", "/api/jobs/{n}", "/api/pipelines/{p}/builds",
    "/api/pipelines/{p}/builds/{n}", "/api/pipelines/{p}/builds/{n}/logs",
    "/api/traces/{t}", "/api/traces/{t}/logs", "/api/search", "/api/status",
    "/", "/pipelines/{p}", "/pipelines/{p}/{n}", "/pipelines/{p}/{n}/log",
    "/pipelines/{p}/{n}/steplog", "/pipelines/{p}/{n}/timeline", "/traces/{t}", "/search",
    "/status", "/login", "/pipelines",
]  # fmt: skip


@fuzz(600)
@given(template=st.sampled_from(QUERY_PATHS),
       p=st.sampled_from(["demo", "nope"]) | segment, n=st.sampled_from(["1", "0"]) | segment,
       t=st.sampled_from(["ab" * 16]) | segment,
       query=st.dictionaries(st.sampled_from(["limit", "before", "after", "tail", "span",
                                              "severity", "q", "pipeline", "number", "lines",
                                              "next"]) | text,
                             hostile_text, max_size=4),
       extra=headers)  # fmt: skip
def test_pages_and_the_query_api(
    client: TestClient, template: str, p: str, n: str, t: str, query: dict, extra: dict
) -> None:
    path = template.format(p=p, n=n, t=t)
    response = client.get(f"{path}?{query_string(query)}", headers=extra, follow_redirects=False)
    never_5xx(response, (path, query, extra))


@fuzz(300)
@given(path=st.sampled_from(["/pipelines/demo/trigger", "/pipelines/demo/1/cancel", "/login",
                             "/logout"]) | segment.map(lambda s: f"/pipelines/{s}/trigger"),
       form=st.dictionaries(st.sampled_from(["csrf", "user", "password", "next"]) | text,
                            hostile_text, max_size=4),
       body=raw_body, use_form=st.booleans(), extra=headers)  # fmt: skip
def test_dashboard_forms(
    client: TestClient, path: str, form: dict, body: bytes, use_form: bool, extra: dict
) -> None:
    if use_form:
        body = query_string(form).encode()
        form_headers = {"content-type": "application/x-www-form-urlencoded", **extra}
        response = client.post(path, content=body, headers=form_headers, follow_redirects=False)
    else:
        response = client.post(path, content=body, headers=extra, follow_redirects=False)
    never_5xx(response, (path, form, body[:100], extra))


def test_afterwards_everything_stored_reads_back(client: TestClient) -> None:
    """Runs after the fuzzing above (file order): whatever was queued or stored, every
    page and answer about it is 200."""
    status = client.get("/api/status")
    assert status.status_code == 200
    for name in PIPELINES:
        builds = client.get(f"/api/pipelines/{name}/builds").json()["builds"]
        assert client.get(f"/pipelines/{name}").status_code == 200
        for build in builds:
            for path in (f"/pipelines/{name}/{build['number']}",
                         f"/api/pipelines/{name}/builds/{build['number']}",
                         f"/pipelines/{name}/{build['number']}/timeline"):  # fmt: skip
                assert client.get(path).status_code == 200, path
    assert client.get("/").status_code == 200
