"""bass.ingest.otlp_json: OTLP/JSON requests into span and log rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bass.ingest import otlp_json
from bass.ingest.otlp_json import OTLPDecodeError
from bass.store.telemetry import LOG_COLUMNS
from tests.unit.helpers import as_body, logs_payload, span, traces_payload

DATA = Path(__file__).parent / "data"
TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def decode_one_span(s: dict[str, Any], **kw: Any) -> dict[str, Any]:
    decoded = otlp_json.decode_traces(as_body(traces_payload(s, **kw)))
    assert decoded.rejected == 0, decoded.errors
    (row,) = decoded.spans
    return row


def decode_one_log(record: dict[str, Any], **kw: Any) -> dict[str, Any]:
    decoded = otlp_json.decode_logs(as_body(logs_payload(record, **kw)))
    assert decoded.rejected == 0, decoded.errors
    (row,) = decoded.logs
    return dict(zip(LOG_COLUMNS, row, strict=True))


# -- the specification's examples -----------------------------------------------------


def test_trace_example() -> None:
    decoded = otlp_json.decode_traces((DATA / "otlp-trace.json").read_bytes())
    assert decoded.rejected == 0
    (row,) = decoded.spans
    assert {k: v for k, v in row.items() if k not in ("attributes", "resource")} == {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": "eee19b7ec3c1b173",
        "name": "I'm a server span",
        "kind": 2,
        "start_ns": 1544712660000000000,
        "end_ns": 1544712661000000000,
        "status_code": 0,
        "status_message": "",
        "bass_status": "ok",
        "events": "[]",
        "links": "[]",
        "service_name": "my.service",
        "scope": "my.library 1.0.0",
    }
    assert json.loads(row["attributes"]) == {"my.span.attr": "some value"}
    assert json.loads(row["resource"]) == {"service.name": "my.service"}


def test_logs_example() -> None:
    decoded = otlp_json.decode_logs((DATA / "otlp-logs.json").read_bytes())
    assert decoded.rejected == 0
    (row,) = decoded.logs
    log = dict(zip(LOG_COLUMNS, row, strict=True))
    assert json.loads(log.pop("attributes")) == {
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute": {"some.map.key": "some value"},
    }
    assert log == {
        "trace_id": TRACE,
        "span_id": SPAN,
        "time_ns": 1544712660300000000,
        "severity_number": 10,
        "severity_text": "Information",
        "body": "Example log record",
        "resource": '{"service.name":"my.service"}',
    }


# -- every field of a span ------------------------------------------------------------


def test_every_attribute_value_kind() -> None:
    row = decode_one_span(
        span(
            TRACE,
            SPAN,
            attributes=[
                {"key": "s", "value": {"stringValue": "text"}},
                {"key": "int.string", "value": {"intValue": "-9007199254740993"}},
                {"key": "int.number", "value": {"intValue": 42}},
                {"key": "double", "value": {"doubleValue": 2.5}},
                {"key": "double.integral", "value": {"doubleValue": 3}},
                {"key": "double.nan", "value": {"doubleValue": "NaN"}},
                {"key": "double.inf", "value": {"doubleValue": "-Infinity"}},
                {"key": "bool.true", "value": {"boolValue": True}},
                {"key": "bool.false", "value": {"boolValue": False}},
                {"key": "bytes", "value": {"bytesValue": "aGVsbG8="}},
                {"key": "empty", "value": {}},
                {"key": "absent"},
                {
                    "key": "array",
                    "value": {
                        "arrayValue": {
                            "values": [
                                {"stringValue": "a"},
                                {"intValue": "1"},
                                {"arrayValue": {"values": [{"boolValue": True}]}},
                                {
                                    "kvlistValue": {
                                        "values": [{"key": "k", "value": {"doubleValue": 0.5}}]
                                    }
                                },
                            ]
                        }
                    },
                },
                {"key": "array.empty", "value": {"arrayValue": {}}},
                {
                    "key": "map",
                    "value": {
                        "kvlistValue": {
                            "values": [
                                {"key": "inner", "value": {"stringValue": "v"}},
                                {
                                    "key": "nested",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [{"key": "n", "value": {"intValue": 2}}]
                                        }
                                    },
                                },
                            ]
                        }
                    },
                },
            ],
        )
    )
    attrs = json.loads(row["attributes"])
    # JSON has no NaN or infinities: stored as OTLP/JSON spells them
    assert attrs.pop("double.nan") == "NaN"
    assert attrs == {
        "s": "text",
        "int.string": -9007199254740993,
        "int.number": 42,
        "double": 2.5,
        "double.integral": 3.0,
        "double.inf": "-Infinity",
        "bool.true": True,
        "bool.false": False,
        "bytes": "aGVsbG8=",
        "empty": None,
        "absent": None,
        "array": ["a", 1, [True], {"k": 0.5}],
        "array.empty": [],
        "map": {"inner": "v", "nested": {"n": 2}},
    }


def test_events_links_and_status() -> None:
    row = decode_one_span(
        span(
            TRACE,
            SPAN,
            end=2_000,
            start=1_000,
            events=[
                {
                    "timeUnixNano": "1500",
                    "name": "exception",
                    "attributes": [{"key": "exception.message", "value": {"stringValue": "boom"}}],
                    "droppedAttributesCount": 0,
                },
                {"timeUnixNano": 1600},
            ],
            links=[
                {
                    "traceId": "0AF7651916CD43DD8448EB211C80319C",
                    "spanId": "B7AD6B7169203331",
                    "attributes": [{"key": "why", "value": {"stringValue": "retry of"}}],
                    "traceState": "",
                }
            ],
            status={"code": 2, "message": "it broke"},
        )
    )
    assert json.loads(row["events"]) == [
        {"time_ns": 1500, "name": "exception", "attributes": {"exception.message": "boom"}},
        {"time_ns": 1600, "name": "", "attributes": {}},
    ]
    assert json.loads(row["links"]) == [
        {
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "attributes": {"why": "retry of"},
        }
    ]
    assert row["status_code"] == 2
    assert row["status_message"] == "it broke"
    assert row["bass_status"] == "failed"
    assert (row["start_ns"], row["end_ns"]) == (1000, 2000)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, 0),
        (1, 1),
        (2, 2),
        ("2", 2),
        ("STATUS_CODE_UNSET", 0),
        ("STATUS_CODE_OK", 1),
        ("STATUS_CODE_ERROR", 2),
        (None, 0),
    ],
)
def test_status_codes(code: Any, expected: int) -> None:
    row = decode_one_span(span(TRACE, SPAN, end=5, status={"code": code}))
    assert row["status_code"] == expected
    assert row["bass_status"] == ("failed" if expected == 2 else "ok")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (0, 0),
        (1, 1),
        (5, 5),
        ("3", 3),
        ("SPAN_KIND_UNSPECIFIED", 0),
        ("SPAN_KIND_INTERNAL", 1),
        ("SPAN_KIND_SERVER", 2),
        ("SPAN_KIND_CLIENT", 3),
        ("SPAN_KIND_PRODUCER", 4),
        ("SPAN_KIND_CONSUMER", 5),
    ],
)
def test_span_kinds(kind: Any, expected: int) -> None:
    assert decode_one_span(span(TRACE, SPAN, kind=kind))["kind"] == expected


def test_kind_absent_is_unspecified() -> None:
    s = span(TRACE, SPAN)
    del s["kind"]
    assert decode_one_span(s)["kind"] == 0


@pytest.mark.parametrize(
    ("attribute", "end", "code", "expected"),
    [
        (None, 0, 0, "running"),
        (None, 9, 0, "ok"),
        (None, 9, 1, "ok"),
        (None, 9, 2, "failed"),
        ("skipped", 9, 0, "skipped"),
        ("timeout", 9, 2, "timeout"),
        ("cancelled", 9, 2, "cancelled"),
        ("error", 9, 2, "error"),
        ("running", 0, 0, "running"),
        ("no-such-status", 9, 2, "failed"),
        ("no-such-status", 0, 0, "running"),
    ],
)
def test_bass_status(attribute: str | None, end: int, code: int, expected: str) -> None:
    s = span(TRACE, SPAN, end=end, bass_status=attribute)
    s["status"] = {"code": code}
    assert decode_one_span(s)["bass_status"] == expected


def test_snake_case_field_names() -> None:
    payload = {
        "resource_spans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"string_value": "snake"}}]
                },
                "scope_spans": [
                    {
                        "scope": {"name": "lib", "version": "2"},
                        "spans": [
                            {
                                "trace_id": TRACE.upper(),
                                "span_id": SPAN.upper(),
                                "parent_span_id": "EEE19B7EC3C1B173",
                                "name": "snake span",
                                "start_time_unix_nano": "10",
                                "end_time_unix_nano": 20,
                                "attributes": [
                                    {"key": "i", "value": {"int_value": "7"}},
                                    {"key": "d", "value": {"double_value": 1.25}},
                                    {"key": "b", "value": {"bool_value": True}},
                                    {"key": "y", "value": {"bytes_value": "AA=="}},
                                    {
                                        "key": "a",
                                        "value": {"array_value": {"values": [{"int_value": 1}]}},
                                    },
                                    {
                                        "key": "m",
                                        "value": {
                                            "kvlist_value": {
                                                "values": [
                                                    {"key": "k", "value": {"string_value": "v"}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "events": [{"time_unix_nano": "15", "name": "e"}],
                                "links": [{"trace_id": TRACE, "span_id": SPAN}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    decoded = otlp_json.decode_traces(as_body(payload))
    (row,) = decoded.spans
    assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (
        TRACE,
        SPAN,
        "eee19b7ec3c1b173",
    )
    assert (row["start_ns"], row["end_ns"], row["service_name"]) == (10, 20, "snake")
    assert row["scope"] == "lib 2"
    assert json.loads(row["attributes"]) == {
        "i": 7,
        "d": 1.25,
        "b": True,
        "y": "AA==",
        "a": [1],
        "m": {"k": "v"},
    }
    assert json.loads(row["events"])[0]["time_ns"] == 15
    assert json.loads(row["links"])[0]["trace_id"] == TRACE


@pytest.mark.parametrize("parent", [None, ""])
def test_null_or_empty_parent_is_a_root_span(parent: str | None) -> None:
    assert decode_one_span(span(TRACE, SPAN, parent=parent))["parent_span_id"] == ""  # type: ignore[arg-type]


def test_absent_parent_is_a_root_span() -> None:
    s = span(TRACE, SPAN)
    del s["parentSpanId"]
    assert decode_one_span(s)["parent_span_id"] == ""


def test_unknown_fields_are_ignored() -> None:
    payload = traces_payload(
        span(
            TRACE,
            SPAN,
            end=3,
            traceState="k=v",
            flags=257,
            droppedAttributesCount=2,
            droppedEventsCount=0,
            futureField={"nested": [1, 2]},
        )
    )
    payload["somethingNew"] = True
    payload["resourceSpans"][0]["schemaUrl"] = "https://opentelemetry.io/schemas/1.21.0"
    payload["resourceSpans"][0]["resource"]["droppedAttributesCount"] = 0
    payload["resourceSpans"][0]["scopeSpans"][0]["schemaUrl"] = ""
    payload["resourceSpans"][0]["scopeSpans"][0]["scope"]["attributes"] = []
    (row,) = otlp_json.decode_traces(as_body(payload)).spans
    assert (row["trace_id"], row["span_id"], row["end_ns"]) == (TRACE, SPAN, 3)


def test_bodies_the_fast_parser_refuses_decode_as_the_json_module_reads_them() -> None:
    """orjson refuses integers past 64 bits, NaN, lone surrogates and UTF-16; the
    standard library accepts them, and so does the decoder (a lone surrogate, which no
    UTF-8 text can hold, becomes U+FFFD)."""
    payload = traces_payload(span(TRACE, SPAN, end=3, attributes=[
        {"key": "big", "value": {"intValue": 2**70}},
        {"key": "nan", "value": {"doubleValue": float("nan")}},
        {"key": "lone", "value": {"stringValue": "\ud800"}},
    ]))  # fmt: skip
    body = json.dumps(payload).encode()
    assert "NaN" in body.decode() and "\\ud800" in body.decode()
    for data in (body, body.decode().encode("utf-16")):
        attrs = json.loads(decode_one_span_body(data)["attributes"])
        assert attrs["big"] == float(2**70) and attrs["nan"] == "NaN"
        assert attrs["lone"] == "\ufffd"  # UTF-8 cannot hold it, nor can SQLite
    with pytest.raises(OTLPDecodeError, match="not valid JSON"):
        otlp_json.decode_traces(body[:-1])


def decode_one_span_body(body: bytes) -> dict[str, Any]:
    (row,) = otlp_json.decode_traces(body).spans
    return row


def test_empty_requests_decode_to_nothing() -> None:
    for body in (b"{}", b'{"resourceSpans": []}', b'{"resourceSpans": null}'):
        decoded = otlp_json.decode_traces(body)
        assert (decoded.spans, decoded.rejected) == ([], 0)
    assert otlp_json.decode_logs(b"{}").logs == []


def test_several_resources_keep_their_service_names() -> None:
    payload = traces_payload(span(TRACE, SPAN), service="one")
    payload["resourceSpans"] += traces_payload(span(TRACE, "eee19b7ec3c1b175"), service="two")[
        "resourceSpans"
    ]
    decoded = otlp_json.decode_traces(as_body(payload))
    assert [(s["span_id"], s["service_name"]) for s in decoded.spans] == [
        (SPAN, "one"),
        ("eee19b7ec3c1b175", "two"),
    ]


# -- every field of a log record ------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (0, 0),
        (9, 9),
        (24, 24),
        ("17", 17),
        ("SEVERITY_NUMBER_UNSPECIFIED", 0),
        ("SEVERITY_NUMBER_TRACE", 1),
        ("SEVERITY_NUMBER_TRACE4", 4),
        ("SEVERITY_NUMBER_DEBUG", 5),
        ("SEVERITY_NUMBER_INFO", 9),
        ("SEVERITY_NUMBER_INFO2", 10),
        ("SEVERITY_NUMBER_WARN", 13),
        ("SEVERITY_NUMBER_WARN2", 14),
        ("SEVERITY_NUMBER_ERROR", 17),
        ("SEVERITY_NUMBER_ERROR3", 19),
        ("SEVERITY_NUMBER_FATAL", 21),
        ("SEVERITY_NUMBER_FATAL4", 24),
        (None, 0),
    ],
)
def test_severity_number(severity: Any, expected: int) -> None:
    record = {"timeUnixNano": "1", "severityNumber": severity, "body": {"stringValue": "x"}}
    assert decode_one_log(record)["severity_number"] == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"stringValue": "plain text"}, "plain text"),
        ({"stringValue": ""}, ""),
        ({"intValue": "42"}, "42"),
        ({"intValue": 42}, "42"),
        ({"doubleValue": 2.5}, "2.5"),
        ({"boolValue": True}, "true"),
        ({"boolValue": False}, "false"),
        ({"bytesValue": "AAE="}, "AAE="),
        ({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 1}]}}, '["a", 1]'),
        (
            {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "ü"}}]}},
            '{"k": "ü"}',
        ),
        ({}, ""),
        (None, ""),
    ],
)
def test_log_body_of_every_kind(body: Any, expected: str) -> None:
    record: dict[str, Any] = {"timeUnixNano": "1"}
    if body is not None:
        record["body"] = body
    assert decode_one_log(record)["body"] == expected


def test_log_fields_snake_case_and_context() -> None:
    payload = {
        "resource_logs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]
                },
                "scope_logs": [
                    {
                        "log_records": [
                            {
                                "time_unix_nano": "77",
                                "severity_number": "SEVERITY_NUMBER_WARN",
                                "severity_text": "WARNING",
                                "trace_id": TRACE.upper(),
                                "span_id": SPAN.upper(),
                                "body": {"string_value": "careful"},
                                "attributes": [{"key": "n", "value": {"int_value": "3"}}],
                                "flags": 1,
                                "somethingNew": [],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    (row,) = otlp_json.decode_logs(as_body(payload)).logs
    assert dict(zip(LOG_COLUMNS, row, strict=True)) == {
        "trace_id": TRACE,
        "span_id": SPAN,
        "time_ns": 77,
        "severity_number": 13,
        "severity_text": "WARNING",
        "body": "careful",
        "attributes": '{"n": 3}',
        "resource": '{"service.name":"s"}',
    }


def test_log_without_trace_context_is_kept() -> None:
    log = decode_one_log({"timeUnixNano": "5", "body": {"stringValue": "orphan"}})
    assert (log["trace_id"], log["span_id"], log["attributes"]) == ("", "", "{}")


def test_log_time_falls_back_to_observed_time_then_now() -> None:
    assert decode_one_log({"observedTimeUnixNano": "123"})["time_ns"] == 123
    assert decode_one_log({"timeUnixNano": "0", "observedTimeUnixNano": "124"})["time_ns"] == 124
    before = time.time_ns()
    now = decode_one_log({"body": {"stringValue": "x"}})["time_ns"]
    assert before <= now <= time.time_ns()


# -- bad ids: that record is rejected, the rest kept -----------------------------------


BAD_TRACE_IDS = [
    "5b8efff798038103d269b633813fc60",  # 31 digits
    "5b8efff798038103d269b633813fc60c00",  # 34 digits
    "zb8efff798038103d269b633813fc60c",  # not hex
    "00000000000000000000000000000000",  # all zeros is invalid
    "W4jv95gDgQPSabYzgT_GDA==",  # base64, as in protobuf JSON, not OTLP/JSON
    12345,
]
BAD_SPAN_IDS = ["eee19b7ec3c1b17", "eee19b7ec3c1b1744", "eee19b7ec3c1b17g", "0000000000000000", 7]


@pytest.mark.parametrize(
    "bad",
    [{"traceId": t} for t in BAD_TRACE_IDS]
    + [{"spanId": s} for s in BAD_SPAN_IDS]
    + [{"parentSpanId": s} for s in BAD_SPAN_IDS]
    + [{"traceId": ""}, {"spanId": ""}],
)
def test_span_with_bad_ids_is_rejected_alone(bad: dict[str, Any]) -> None:
    good = span(TRACE, SPAN, name="good")
    rejected = {**span(TRACE, "eee19b7ec3c1b175", name="bad"), **bad}
    decoded = otlp_json.decode_traces(as_body(traces_payload(good, rejected)))
    assert [s["name"] for s in decoded.spans] == ["good"]
    assert decoded.rejected == 1
    assert len(decoded.errors) == 1
    assert "spans[1]" in decoded.errors[0]


def test_rejections_are_all_counted_but_few_messages_kept() -> None:
    bad = [span("xyz", SPAN) for _ in range(7)]
    decoded = otlp_json.decode_traces(as_body(traces_payload(*bad, span(TRACE, SPAN))))
    assert decoded.rejected == 7
    assert len(decoded.spans) == 1
    assert 1 <= len(decoded.errors) <= 5


@pytest.mark.parametrize(
    "bad",
    [{"traceId": t} for t in BAD_TRACE_IDS] + [{"spanId": s} for s in BAD_SPAN_IDS],
)
def test_log_with_bad_ids_is_rejected_alone(bad: dict[str, Any]) -> None:
    good = {"timeUnixNano": "1", "body": {"stringValue": "good"}, "traceId": TRACE}
    rejected = {"timeUnixNano": "1", "body": {"stringValue": "bad"}, "traceId": TRACE, **bad}
    decoded = otlp_json.decode_logs(as_body(logs_payload(good, rejected)))
    assert [r[LOG_COLUMNS.index("body")] for r in decoded.logs] == ["good"]
    assert decoded.rejected == 1
    assert "logRecords[1]" in decoded.errors[0]


# -- structural errors: the whole request is refused -----------------------------------


def _with_span_field(**fields: Any) -> bytes:
    return as_body(traces_payload(span(TRACE, SPAN, **fields)))


STRUCTURAL_TRACE_ERRORS = {
    "not json": b"this is not json",
    "truncated json": b'{"resourceSpans": [',
    "not utf-8": b'{"resourceSpans": "\xff\xfe"}',
    "array at top": b"[]",
    "string at top": b'"resourceSpans"',
    "resourceSpans not a list": b'{"resourceSpans": {}}',
    "resource block not an object": b'{"resourceSpans": [1]}',
    "scopeSpans not a list": b'{"resourceSpans": [{"scopeSpans": "x"}]}',
    "spans not a list": b'{"resourceSpans": [{"scopeSpans": [{"spans": {}}]}]}',
    "span not an object": b'{"resourceSpans": [{"scopeSpans": [{"spans": [5]}]}]}',
    "resource not an object": b'{"resourceSpans": [{"resource": [], "scopeSpans": []}]}',
    "attribute without key": _with_span_field(attributes=[{"value": {"stringValue": "x"}}]),
    "attribute key not a string": _with_span_field(
        attributes=[{"key": 1, "value": {"stringValue": "x"}}]
    ),
    "attributes not a list": _with_span_field(attributes={"k": "v"}),
    "intValue abc": _with_span_field(attributes=[{"key": "k", "value": {"intValue": "abc"}}]),
    "intValue fraction": _with_span_field(attributes=[{"key": "k", "value": {"intValue": 1.5}}]),
    "intValue bool": _with_span_field(attributes=[{"key": "k", "value": {"intValue": True}}]),
    "stringValue number": _with_span_field(attributes=[{"key": "k", "value": {"stringValue": 1}}]),
    "boolValue string": _with_span_field(attributes=[{"key": "k", "value": {"boolValue": "true"}}]),
    "doubleValue text": _with_span_field(
        attributes=[{"key": "k", "value": {"doubleValue": "abc"}}]
    ),
    "bytesValue number": _with_span_field(attributes=[{"key": "k", "value": {"bytesValue": 1}}]),
    "value not an object": _with_span_field(attributes=[{"key": "k", "value": "v"}]),
    "start time text": _with_span_field(startTimeUnixNano="yesterday"),
    "end time bool": _with_span_field(endTimeUnixNano=True),
    "kind unknown name": _with_span_field(kind="SPAN_KIND_SIDEWAYS"),
    "status not an object": _with_span_field(status="ok"),
    "status code unknown name": _with_span_field(status={"code": "STATUS_CODE_MAYBE"}),
    "events not a list": _with_span_field(events={}),
    "event not an object": _with_span_field(events=["e"]),
    "links not a list": _with_span_field(links="x"),
}


@pytest.mark.parametrize("body", STRUCTURAL_TRACE_ERRORS.values(), ids=STRUCTURAL_TRACE_ERRORS)
def test_structural_trace_errors_refuse_the_request(body: bytes) -> None:
    with pytest.raises(OTLPDecodeError):
        otlp_json.decode_traces(body)


def _with_log_field(**fields: Any) -> bytes:
    return as_body(logs_payload({"timeUnixNano": "1", **fields}))


STRUCTURAL_LOG_ERRORS = {
    "not json": b"{nope",
    "array at top": b"[{}]",
    "resourceLogs not a list": b'{"resourceLogs": "x"}',
    "scopeLogs not a list": b'{"resourceLogs": [{"scopeLogs": 3}]}',
    "logRecords not a list": b'{"resourceLogs": [{"scopeLogs": [{"logRecords": {}}]}]}',
    "record not an object": b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [[]]}]}]}',
    "attribute without key": _with_log_field(attributes=[{"value": {"intValue": "1"}}]),
    "body intValue abc": _with_log_field(body={"intValue": "abc"}),
    "body not an AnyValue": _with_log_field(body="text"),
    "severity word": _with_log_field(severityNumber="LOUD"),
    "time text": _with_log_field(timeUnixNano="noon"),
}


@pytest.mark.parametrize("body", STRUCTURAL_LOG_ERRORS.values(), ids=STRUCTURAL_LOG_ERRORS)
def test_structural_log_errors_refuse_the_request(body: bytes) -> None:
    with pytest.raises(OTLPDecodeError):
        otlp_json.decode_logs(body)


def test_a_structural_error_after_good_spans_still_refuses_everything() -> None:
    payload = traces_payload(span(TRACE, SPAN))
    payload["resourceSpans"].append({"scopeSpans": [{"spans": [{"attributes": [{}]}]}]})
    with pytest.raises(OTLPDecodeError, match=r"resourceSpans\[1\]"):
        otlp_json.decode_traces(as_body(payload))


# -- hostile values (issue 9) -------------------------------------------------------------


def test_lone_surrogates_are_scrubbed_at_any_depth_in_keys_and_values() -> None:
    """The scrubber walks with a stack: a document as deep as json.loads goes (or
    deeper) does not reach Python's recursion limit."""
    root: list[Any] = []
    node = root
    for _ in range(5000):
        child: list[Any] = []
        node.append(child)
        node = child
    node.append({"k\udfff": "v\ud800", "ok": "fine"})
    scrubbed = otlp_json._scrub({"top\ud800": root})
    node = scrubbed["top\ufffd"]
    for _ in range(5000):
        (node,) = node
    assert node == [{"k\ufffd": "v\ufffd", "ok": "fine"}]


def test_any_value_nesting_is_bounded() -> None:
    value: dict[str, Any] = {"stringValue": "bottom"}
    for _ in range(otlp_json.MAX_DEPTH):
        value = {"arrayValue": {"values": [value]}}
    assert json.dumps(otlp_json.any_value(value)).count("[") == otlp_json.MAX_DEPTH
    with pytest.raises(OTLPDecodeError, match="nested deeper than 32 levels") as refused:
        otlp_json.any_value({"kvlistValue": {"values": [{"key": "k", "value": value}]}})
    assert refused.value.path.startswith("kvlistValue.values[0].value.arrayValue.values[0]")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_to_json_refuses_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(OTLPDecodeError, match="not representable as JSON"):
        otlp_json.to_json({"x": value})


@pytest.mark.parametrize("status", [["ok"], {"a": "ok"}, 3, None, float("nan"), "bogus"])
def test_a_bass_status_that_is_no_status_word_is_derived(status: Any) -> None:
    assert otlp_json.derive_status(status, 0, 0) == "running"
    assert otlp_json.derive_status(status, 5, 2) == "failed"
    assert otlp_json.derive_status("timeout", 5, 1) == "timeout"
