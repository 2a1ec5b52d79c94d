"""Fixtures of the unit tests: a real SQLite file per test and the app under TestClient."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bass.app import create_app
from bass.config import Config, Settings, check_pipeline
from tests.unit.helpers import KEY, as_body, count, logs_payload, rows, traces_payload


@dataclass
class App:
    """The app of `bass serve` under TestClient (lifespan running), and its SQLite file."""

    client: TestClient
    db_path: Path

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return rows(self.db_path, sql, *params)

    def count(self, table: str) -> int:
        return count(self.db_path, table)

    def job(self, job_id: int) -> dict[str, Any]:
        (job,) = self.rows("SELECT * FROM builds WHERE id = ?", job_id)
        return job

    def send_spans(
        self, *spans: dict[str, Any], service: str = "bass:pipeline:demo", scope: str = "bass"
    ):
        response = self.client.post(
            "/v1/traces",
            content=as_body(traces_payload(*spans, service=service, scope=scope)),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        return response

    def send_logs(self, *records: dict[str, Any], service: str = "bass:pipeline:demo"):
        response = self.client.post(
            "/v1/logs",
            content=as_body(logs_payload(*records, service=service)),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        return response

    def webhook(self, pipeline: str = "demo", **params: str) -> Any:
        query = {"pipeline": pipeline, **{k.replace("_", "-"): v for k, v in params.items()}}
        return self.client.post("/webhook", params=query)

    def form_post(self, path: str, **fields: str) -> Any:
        """POST a dashboard form as a browser on the dashboard does: with the CSRF
        token the dashboard gave it (in a cookie, and in the form)."""
        self.client.get("/healthz")  # any answer sets the cookie
        token = self.client.cookies.get("bass_csrf", "")
        return self.client.post(path, data={"csrf": token, **fields}, follow_redirects=False)

    def dequeue(self, body: Any = None, key: str | None = KEY) -> Any:
        headers = {"X-API-KEY": key} if key is not None else {}
        if body is None:
            return self.client.post("/dequeue", headers=headers)
        return self.client.post("/dequeue", json=body, headers=headers)


DEFAULT_PIPELINES: dict[str, dict[str, Any]] = {
    "demo": {"repository": "https://example.com/demo.git", "exec": ["./build.py"]},
}


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    """make_app(pipelines=..., keys=[...], env={...}, **settings) → a running App."""
    with contextlib.ExitStack() as stack:
        started: list[App] = []

        def start(
            pipelines: dict[str, dict[str, Any]] | None = None,
            *,
            keys: list[str] | None = None,
            env: dict[str, str] | None = None,
            **settings: Any,
        ) -> App:
            checked = {
                name: check_pipeline(dict(p), f'test: pipeline "{name}"')
                for name, p in (DEFAULT_PIPELINES if pipelines is None else pipelines).items()
            }
            config = Config(
                pipelines=checked, env=env or {}, worker_keys=[KEY] if keys is None else keys
            )
            db_path = tmp_path / f"bass{len(started)}.db"
            settings.setdefault("allowed_hosts", ["testserver"])  # TestClient's Host
            settings.setdefault("users_file", str(tmp_path / f"users{len(started)}.json"))
            # the files the config watcher looks at: here, never the working directory
            for name in ("pipelines_file", "env_file", "worker_keys_file", "ingest_tokens_file"):
                settings.setdefault(name, str(tmp_path / f"{name}{len(started)}"))
            app = create_app(Settings(db=str(db_path), config=config, **settings))
            client = stack.enter_context(TestClient(app))
            started.append(App(client, db_path))
            return started[-1]

        yield start


@pytest.fixture
def app(make_app: Any) -> App:
    """The app with the one pipeline `demo` and the worker key KEY."""
    return make_app()
