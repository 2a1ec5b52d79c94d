"""Property-based fuzzing of the OTLP receiver (issue 9), through the real app and its
SQLite file: whatever a client sends to /v1/traces or /v1/logs,

- the answer is never 5xx, except 503 with Retry-After (the client retries);
- a request that is not answered 200 stores nothing;
- after every request, every stored trace reads back through /api/traces/ID (and its
  logs, and the build it belongs to) with 200: nothing stored can break the API.

Deterministic (derandomize) and bounded for CI: a few thousand examples in all, well
under a minute on two cores. BASS_FUZZ_EXAMPLES=N runs N examples per test instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bass.app import create_app
from bass.config import Config, Settings, check_pipeline
from bass.ingest import otlp_json, otlp_proto
from bass.ingest.forward import json_to_protobuf
from tests.fuzz import otlp_strategies as s

EXAMPLES = int(os.environ.get("BASS_FUZZ_EXAMPLES") or 0)
JSON, PROTOBUF = "application/json", "application/x-protobuf"


def fuzz(examples: int) -> Any:
    """Settings for CI: the same examples every run, no deadline (a shared 2-core
    machine is slow at times), no complaint about slow or large generated data."""
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.large_base_example,
            HealthCheck.data_too_large,
        ],
    )


@dataclass
class Target:
    """The app of `bass serve` under TestClient, and a look into its SQLite file."""

    client: TestClient
    conn: sqlite3.Connection
    requests: int = 0
    answers: dict[int, int] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # traces already read back once

    def fingerprint(self) -> tuple:
        """Changes when anything is stored (a span upserted in place included)."""
        spans = self.conn.execute(
            "SELECT COUNT(*), TOTAL(end_ns), TOTAL(length(name) + length(attributes)"
            " + length(events) + length(links) + length(bass_status)) FROM spans"
        ).fetchone()
        logs = self.conn.execute("SELECT TOTAL(n), MAX(id) FROM log_blocks").fetchone()
        return (*spans, *logs)

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and check the properties; the status."""
        before = self.fingerprint()
        (last_log,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM log_blocks").fetchone()
        response = self.client.post(path, content=body, headers=headers)
        status = response.status_code
        self.requests += 1
        self.answers[status] = self.answers.get(status, 0) + 1
        assert status < 500 or (status == 503 and response.headers.get("retry-after") == "1"), (
            status,
            response.text[:300],
        )
        if status != 200:
            assert self.fingerprint() == before, f"a {status} stored something"
            return status
        # the traces this request may have written to: the ones examples share, any new one
        traces = set(s.TRACES)
        traces.update(t for (t,) in self.conn.execute("SELECT DISTINCT trace_id FROM spans"))
        traces -= self.known - set(s.TRACES)
        traces.update(
            t
            for (t,) in self.conn.execute(
                "SELECT trace_id FROM log_blocks WHERE id > ?", (last_log,)
            )
        )
        traces.discard("")  # log records sent without a trace
        for trace in traces:
            self.check_trace(trace)
        self.known |= traces
        return status

    def check_trace(self, trace: str) -> None:
        get = self.client.get
        answer = get(f"/api/traces/{trace}")
        assert answer.status_code in (200, 404), answer.text[:300]
        assert get(f"/api/traces/{trace}/logs").status_code == 200
        for pipeline, number in self.conn.execute(
            "SELECT pipeline, number FROM builds WHERE trace_id = ?", (trace,)
        ):
            assert get(f"/api/pipelines/{pipeline}/builds/{number}").status_code == 200


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One app for all examples (a fresh one each would dominate the run time); stored
    data accumulates, so later examples upsert into what earlier ones stored."""
    home: Path = tmp_path_factory.mktemp("fuzz")
    pipeline = {"repository": "https://example.com/demo.git", "exec": ["./build.py"]}
    config = Config(pipelines={"demo": check_pipeline(pipeline, "fuzz")}, env={}, worker_keys=["k"])
    settings_ = Settings(
        db=str(home / "bass.db"),
        config=config,
        max_body=256 << 10,  # small limits, so that 413s (either kind) come up too
        max_inflight=3 << 20,
        allowed_hosts=["testserver"],  # TestClient's Host
    )
    with TestClient(create_app(settings_)) as client:
        with contextlib.closing(sqlite3.connect(home / "bass.db")) as conn:
            target = Target(client, conn)
            yield target
            for (trace,) in conn.execute("SELECT DISTINCT trace_id FROM spans").fetchall():
                target.check_trace(trace)
            print(f"\nfuzz: {target.requests} requests, answers {sorted(target.answers.items())}")


json_body = s.json_body


@pytest.mark.parametrize("kind", ["traces", "logs"])
@fuzz(500)
@given(data=st.data())
def test_json_requests(target: Target, kind: str, data: st.DataObject) -> None:
    payload = data.draw(s.payloads[kind], "payload")
    body = json_body(
        payload,
        snake=data.draw(st.booleans(), "snake_case"),
        ascii_only=data.draw(st.booleans(), "ascii"),
        utf16=data.draw(st.sampled_from([False, False, False, True]), "utf16"),
    )
    body = data.draw(s.mangles, "mangle")(body)
    body, headers = s.compress(body, data.draw(s.compressions, "compression"))
    content_type = data.draw(st.sampled_from([JSON, JSON, "Application/JSON; charset=utf-8"]))
    path = data.draw(st.sampled_from([f"/v1/{kind}", f"/v1/{kind}", "/v1/traces", "/v1/logs"]))
    target.send(path, body, {"Content-Type": content_type, **headers})


@pytest.mark.parametrize("kind", ["traces", "logs"])
@fuzz(250)
@given(data=st.data())
def test_protobuf_requests(target: Target, kind: str, data: st.DataObject) -> None:
    if data.draw(st.booleans(), "from JSON"):
        try:  # what an exporter would send for the JSON payload, when it has a form
            body = json_to_protobuf(
                kind, json_body(data.draw(s.payloads[kind]), False, True, False)
            )
        except Exception:
            body = data.draw(st.binary(max_size=300), "bytes")
    else:
        body = s.protobuf_body(kind, data.draw(s.pb_requests[kind], "request"))
    body = data.draw(s.mangles, "mangle")(body)
    body, headers = s.compress(body, data.draw(s.compressions, "compression"))
    target.send(f"/v1/{kind}", body, {"Content-Type": PROTOBUF, **headers})


@fuzz(400)
@given(
    body=st.one_of(st.binary(max_size=2000), st.sampled_from([b"", b"{}", b"[]", b"null"])),
    content_type=st.sampled_from(
        [JSON, PROTOBUF, "application/json; charset=utf-16", "text/plain"]
    ),
    compression=s.compressions,
    path=st.sampled_from(["/v1/traces", "/v1/logs", "/v1/metrics"]),
)
def test_arbitrary_bytes(
    target: Target, body: bytes, content_type: str, compression: str, path: str
) -> None:
    body, headers = s.compress(body, compression)
    target.send(path, body, {"Content-Type": content_type, **headers})


def check_rows(decoded: otlp_json.Decoded) -> None:
    """What would be stored is JSON both parsers read back."""
    for row in decoded.spans:
        for column in ("attributes", "events", "links", "resource"):
            assert json.loads(row[column]) == orjson.loads(row[column])
        assert row["bass_status"] in otlp_json.BASS_STATUSES
    for record in decoded.logs:
        for text in (record[6], record[7]):
            assert json.loads(text) == orjson.loads(text)


@pytest.mark.parametrize("kind", ["traces", "logs"])
@fuzz(250)
@given(data=st.data())
def test_decoders_raise_only_decode_errors(kind: str, data: st.DataObject) -> None:
    """The decoders alone, faster than through HTTP: rows or OTLPDecodeError."""
    body = json_body(data.draw(s.payloads[kind]), data.draw(st.booleans()), True, False)
    decode = otlp_json.decode_traces if kind == "traces" else otlp_json.decode_logs
    with contextlib.suppress(otlp_json.OTLPDecodeError):
        check_rows(decode(body))
    proto = s.protobuf_body(kind, data.draw(s.pb_requests[kind]))
    decode = otlp_proto.decode_traces if kind == "traces" else otlp_proto.decode_logs
    with contextlib.suppress(otlp_json.OTLPDecodeError):
        check_rows(decode(proto))
