"""The builder's log requests read directly (bass.ingest.builder_logs) decode to exactly
the rows the general OTLP/JSON decoder makes of them; anything laid out otherwise is left
to the general decoder, which answers as it always did."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bass.ingest import builder_logs, otlp_json

TRACE, SPAN = "ab" * 16, "cd" * 8
RESOURCE = '{"attributes":[{"key":"service.name","value":{"stringValue":"bass:pipeline:x"}}]}'
SCOPE = '{"name":"bass_builder","version":"1.0"}'


def record(
    body: str,
    *,
    stream: str | None = "stdout",
    severity: int = 9,
    text: str = "INFO",
    time_ns: str = "1750000000000000001",
    trace: str = TRACE,
    span: str = SPAN,
) -> str:
    """One record as bass_builder writes it (its key order, no spaces, ASCII escapes)."""
    attributes = (
        f',"attributes":[{{"key":"log.iostream","value":{{"stringValue":"{stream}"}}}}]'
        if stream
        else ""
    )
    return (
        f'{{"traceId":"{trace}","spanId":"{span}","severityNumber":{severity},'
        f'"severityText":"{text}"{attributes},"timeUnixNano":"{time_ns}",'
        f'"body":{{"stringValue":{encode_basestring_ascii(body)}}}}}'
    )


def request(*records: str) -> bytes:
    return (
        f'{{"resourceLogs":[{{"resource":{RESOURCE},"scopeLogs":[{{"scope":{SCOPE},'
        f'"logRecords":[{",".join(records)}]}}]}}]}}'
    ).encode()


def general(body: bytes, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(builder_logs, "decode", lambda body, resource_of: None)
        return otlp_json.decode_logs(body)


def test_the_builders_layout_is_read_directly_as_the_general_decoder_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = request(
        record("plain line"),
        record(
            '\x1b[31merror\x1b[0m: "quoted" \\ back\tslash ünïcödé 🎉',
            stream="stderr",
            severity=13,
            text="WARN",
        ),  # fmt: skip
        record("", stream=None),
        record("x" * 70_000, time_ns="9223372036854775807"),
    )
    fast = builder_logs.decode(body, otlp_json._resource_of)
    assert fast is not None and len(fast) == 4
    assert fast == general(body, monkeypatch).logs
    assert fast[1][5] == '\x1b[31merror\x1b[0m: "quoted" \\ back\tslash ünïcödé 🎉'
    assert fast[1][6] == '{"log.iostream": "stderr"}' and fast[2][6] == "{}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_text_reads_alike(lines: list[str]) -> None:
    body = request(*(record(line) for line in lines))
    fast = builder_logs.decode(body, otlp_json._resource_of)
    builder_logs_decode = builder_logs.decode
    try:
        builder_logs.decode = lambda body, resource_of: None  # type: ignore[assignment]
        slow = otlp_json.decode_logs(body)
    finally:
        builder_logs.decode = builder_logs_decode  # type: ignore[assignment]
    if fast is None:  # a lone surrogate: the general decoder's to judge
        assert any("\ud800" <= c <= "\udfff" for line in lines for c in line)
    else:
        assert fast == slow.logs


@pytest.mark.parametrize(
    "body",
    [
        request(record("a"), record("b", trace="0" * 32)),  # an invalid id: rejected, and said
        request(record("a", time_ns="9223372036854775808")),  # past the largest time: 400
        request(record("a").replace('"1750', '"01750')),  # a leading zero
        request(record("a", span="CD" * 8)),  # upper case ids are read (lowered)
        request(record("a", stream="stdin")),
        request(record("a")).replace(b'"severityText"', b' "severityText"'),
        request(record("a")).replace(b',"body":{"stringValue":"a"}', b',"body":{"intValue":"5"}'),
        request(record("a")).replace(b"]}]}]}", b"]}]},{}]}"),
        request(record("a"))[:-1],
        request(),
    ],
)
def test_anything_else_is_left_to_the_general_decoder(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert builder_logs.decode(body, otlp_json._resource_of) is None
    try:
        expected: Any = general(body, monkeypatch)
    except otlp_json.OTLPDecodeError as e:
        expected = str(e)
    try:
        got: Any = otlp_json.decode_logs(body)
    except otlp_json.OTLPDecodeError as e:
        got = str(e)
    assert got == expected


def test_a_request_of_the_real_builder_is_read_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records made by bass_builder's own code for a step's output (plain lines, and
    lines that need escaping), in a request as its exporter sends one."""
    import bass_builder

    run = SimpleNamespace(trace_id=TRACE, telemetry=None, mask=SimpleNamespace(values=[]))
    fragments = []
    for stream, text in (("stdout", "one\ntwo\n"), ("stderr", '\x1b[1mbold\x1b[0m "q" é\n')):
        log = bass_builder._LogStream(run, SPAN, stream)  # type: ignore[arg-type]
        fragments += [f for _, f in log.fragments("1750000000000000000", text.rstrip("\n"))]
    head = (  # as bass_builder._Telemetry writes it
        f'{{"resourceLogs":[{{"resource":{RESOURCE},"scopeLogs":[{{"scope":{SCOPE},"logRecords":['
    ).encode()
    body = head + b",".join(fragments) + b"]}]}]}"
    fast = builder_logs.decode(body, otlp_json._resource_of)
    assert fast is not None
    assert [(row[5], row[6]) for row in fast] == [
        ("one", '{"log.iostream": "stdout"}'),
        ("two", '{"log.iostream": "stdout"}'),
        ('\x1b[1mbold\x1b[0m "q" é', '{"log.iostream": "stderr"}'),
    ]
    assert fast == general(body, monkeypatch).logs
