"""The OpenTelemetry JS SDK's OTLP/HTTP JSON exporters (tests/exporters/js/export.js,
run by Node.js) pointed at a real `bass serve`: what the script reports as sent must
come back from the JSON API exactly. OTLP/JSON as a real SDK writes it: hex ids,
timestamps as decimal strings, integers as bare JSON numbers, enums as numbers, bytes
as base64."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.exporters.readback import assert_same, trace_logs, trace_spans

JS = Path(__file__).parent / "js"
SCRIPT = JS / "export.js"


@pytest.fixture(scope="module", params=["none", "gzip"])
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, dict]]:
    """One bass serve, and what export.js sent it (its stdout, parsed), uncompressed or
    with Content-Encoding: gzip."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (CI has Node.js 20)")
    if not (JS / "node_modules" / "@opentelemetry" / "exporter-trace-otlp-http").is_dir():
        pytest.skip("no tests/exporters/js/node_modules: run `npm ci` there (.ci/run does)")
    server = Server(tmp_path_factory.mktemp("js-sdk") / "serve", {}).start()
    try:
        proc = subprocess.run(
            [node, str(SCRIPT), server.url, request.param],
            cwd=JS, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 0, f"{proc.stderr}\n--- bass serve:\n{server.output()}"
        yield server, json.loads(proc.stdout)
    finally:
        server.stop()


def stored_trace(server: Server, sent: dict) -> tuple[str, dict[str, dict], dict[str, dict]]:
    """(trace id of the request trace, sent spans by name, stored spans by span id)."""
    by_name = {s["name"]: s for s in sent["spans"]}
    assert sorted(by_name) == ["GET /orders", "SELECT orders", "decode rows", "publish",
                               "queued job"]  # fmt: skip
    trace_id = by_name["GET /orders"]["trace_id"]
    other = by_name["queued job"]["trace_id"]
    assert other != trace_id
    stored = trace_spans(server, trace_id, 4)
    stored.update(trace_spans(server, other, 1))
    return trace_id, by_name, stored


def test_js_spans_round_trip(exported: tuple[Server, dict]) -> None:
    server, sent = exported
    trace_id, by_name, stored = stored_trace(server, sent)

    for span in sent["spans"]:
        got = stored[span["span_id"]]
        for key in ("trace_id", "span_id", "parent_span_id", "name", "kind", "status_code",
                    "status_message", "scope"):  # fmt: skip
            assert got[key] == span[key], key
        # ns timestamps travel as decimal strings: all 19 digits must survive
        assert (got["start_ns"], got["end_ns"]) == (int(span["start_ns"]), int(span["end_ns"]))
        assert_same(got["attributes"], span["attributes"])
        assert_same(
            got["events"],
            [{**e, "time_ns": int(e["time_ns"])} for e in span["events"]],
        )
        assert_same(got["links"], span["links"])
        assert_same(got["resource"], span["resource"])
        assert got["service_name"] == "bass-exporter-test-js"

    # …and literal values, so a change in the script or the SDK cannot weaken the test.
    root = stored[by_name["GET /orders"]["span_id"]]
    client = stored[by_name["SELECT orders"]["span_id"]]
    decode = stored[by_name["decode rows"]["span_id"]]
    publish = stored[by_name["publish"]["span_id"]]
    target = stored[by_name["queued job"]["span_id"]]
    assert root["trace_id"] == trace_id and root["parent_span_id"] == ""
    # children in start order (span id breaks a tie: the JS SDK's start times are in ms)
    assert sorted(c["name"] for c in root["children"]) == ["SELECT orders", "publish"]
    assert root["children"] == sorted(root["children"], key=lambda c: (c["start_ns"], c["span_id"]))
    assert [c["name"] for c in client["children"]] == ["decode rows"]
    assert client["parent_span_id"] == root["span_id"]
    assert decode["parent_span_id"] == client["span_id"]
    assert [root["kind"], client["kind"], decode["kind"], target["kind"], publish["kind"]] == [
        2, 3, 1, 4, 5,
    ]  # fmt: skip
    assert root["start_ns"] % 10**9 == 123_456_789
    assert root["scope"] == "bass.tests.exporters.js 4.5.6"
    assert (root["status_code"], root["status_message"], root["bass_status"]) == (1, "", "ok")
    assert (client["status_code"], client["status_message"], client["bass_status"]) == (
        2, "database is locked", "failed",
    )  # fmt: skip
    assert (decode["status_code"], decode["bass_status"]) == (0, "ok")
    assert_same(
        root["attributes"],
        {
            "str": 'héllo ✓ "quoted"\nsecond line',
            "str.empty": "",
            "bool.true": True,
            "bool.false": False,
            "int": 42,
            "int.zero": 0,
            "int.negative": -7,
            "int.max_safe": 2**53 - 1,
            "int.min_safe": -(2**53 - 1),
            "float": 3.25,
            "float.tenth": 0.1,
            "float.tiny": -1e-300,
            "float.big": 1500000000000000.5,
            "strs": ["a", "b", ""],
            "bools": [True, False, True],
            "ints": [1, -2, 2**53 - 1],
            "floats": [0.5, -2.25, 1e-100],
        },
    )
    assert_same(publish["attributes"], {"empty.strs": []})
    assert_same(client["attributes"], {"db.system": "sqlite"})
    assert_same(
        root["events"],
        [{"time_ns": root["start_ns"] + 1_000_001, "name": "request received",
          "attributes": {"http.method": "GET", "body.bytes": 512, "ratio": 0.75,
                         "retry": False, "headers": ["accept", "x-trace"]}}],
    )  # fmt: skip
    assert [(e["name"], e["attributes"]) for e in client["events"]] == [
        ("retry", {"attempt": 2}),
        ("no attributes", {}),
    ]
    assert client["links"] == [
        {"trace_id": target["trace_id"], "span_id": target["span_id"],
         "attributes": {"link.reason": "follows", "link.n": 2}},
    ]  # fmt: skip
    assert_same(
        root["resource"],
        {"service.name": "bass-exporter-test-js", "service.version": "0.9.0", "res.int": 7,
         "res.bool": True, "res.float": 0.25, "res.strs": ["x", "y"]},
    )  # fmt: skip


def test_js_logs_round_trip(exported: tuple[Server, dict]) -> None:
    server, sent = exported
    trace_id, by_name, _ = stored_trace(server, sent)
    logs = trace_logs(server, trace_id, 6)
    assert len(sent["logs"]) == 6

    for got, record in zip(logs, sent["logs"], strict=True):
        assert (got["trace_id"], got["span_id"]) == (record["trace_id"], record["span_id"])
        assert got["time_ns"] == int(record["time_ns"])
        assert got["severity_number"] == record["severity_number"]
        assert got["severity_text"] == record["severity_text"]
        assert_same(got["attributes"], record["attributes"])
        if record["body_type"] in ("string", "bytes"):
            # a bytes body is kept as its base64 text, like a bytes attribute value
            assert got["body"] == record["body"]
        else:  # any other body is kept as its JSON text
            assert_same(json.loads(got["body"]), record["body"])

    info, error, warn, debug, trace, fatal = logs
    root, client, decode = (by_name[n]["span_id"] for n in ("GET /orders", "SELECT orders",
                                                             "decode rows"))  # fmt: skip
    assert info["span_id"] == root and error["span_id"] == client
    assert {warn["span_id"], debug["span_id"], trace["span_id"], fatal["span_id"]} == {decode}
    assert info["time_ns"] == int(by_name["GET /orders"]["start_ns"]) + 2_000_003
    assert [(r["severity_number"], r["severity_text"]) for r in logs] == [
        (9, "INFO"), (17, "ERROR"), (14, "warning"), (5, ""), (4, ""), (21, "FATAL"),
    ]  # fmt: skip
    assert info["body"] == "request received: GET /orders"
    assert_same(
        info["attributes"],
        {
            **by_name["GET /orders"]["attributes"],
            "bytes": "AP9iaW4=",
            "map": {"k": "v", "n": 1, "inner": {"deep": True, "list": ["x", 2]}},
            "mixed": ["a", 1, 2.5, False],
        },
    )
    assert_same(
        json.loads(error["body"]),
        {"error": "database is locked", "code": 5, "retryable": True,
         "tables": ["orders", "items"], "detail": {"wait.s": 1.5}},
    )  # fmt: skip
    assert_same(error["attributes"], {"db.system": "sqlite", "attempt": 2})
    assert_same(json.loads(warn["body"]), ["partial", 3, 0.5, False])
    assert (debug["body"], trace["body"], fatal["body"]) == ("404", "true", "AP9iaW4=")
