"""What bass answers OTLP/protobuf clients without loading the protobuf library: the
content type and google.rpc.Status encoded by hand. The message classes
(`otlp_proto`) load at the first OTLP/protobuf request, not at start: they are ~3 MB
of an idle server's memory that a server fed only by the builder (OTLP/JSON) never
needs."""

from __future__ import annotations

PROTOBUF = "application/x-protobuf"


def status(code: int, message: str) -> bytes:
    """A google.rpc.Status message (code = 1, message = 2), encoded by hand: two fields
    do not justify a dependency on googleapis-common-protos."""
    text = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
