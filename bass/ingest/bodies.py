"""An OTLP request's body, read within bounds whatever the client sends.

- Size: at most `max_body` bytes, as received and after decompression (413).
- Memory: every byte an OTLP request holds (its body as it streams in, the decompressed
  body, an estimate of its decoded form) is charged to one `Budget` shared by all
  requests in flight; a request that would go past it answers 503 with Retry-After and
  gives back what it held, and every request gives all back when it ends, however it
  ends. So the receiver's memory stays bounded by the budget (plus the estimate's error)
  however many clients send at once.
- Time: decompression runs in a worker thread, never on the event loop, and takes time
  linear in the body's size, however many gzip members it is made of.
"""

from __future__ import annotations

import ctypes
import threading
import zlib
from types import TracebackType

from anyio import to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request

RETRY_LATER = {"Retry-After": "1"}
LARGE_BUFFER = 1 << 20


def give_large_buffers_back() -> bool:
    """Have glibc's malloc map every block of LARGE_BUFFER bytes or more on its own, and
    unmap it when freed; False where there is no glibc (nothing to do there).

    By default glibc raises that threshold to the size of the last such block freed (up
    to 32 MiB), after which request bodies of up to 32 MiB come from the arenas of the
    worker threads that decompress and decode them, and what an arena frees stays in
    the process: measured, a peak RSS of twice the budget, where with a fixed threshold
    it stays at the budget. Blocks this large cost an mmap each: nothing, next to
    reading and decoding a megabyte."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, LARGE_BUFFER))


class Budget:
    """The bytes all OTLP requests in flight may hold together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()  # charged from the event loop and worker threads

    def hold(self) -> Hold:
        """A new request's share of the budget (nothing held yet)."""
        return Hold(self)


class Hold:
    """What one request holds of a Budget: `charge` takes more (503 if the budget has
    no room), `release` gives some back, leaving the `with` block gives back the rest."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.held = 0

    def charge(self, size: int) -> None:
        """Take `size` more bytes, or raise HTTPException(503) taking nothing."""
        budget = self.budget
        with budget._lock:
            if budget.used + size > budget.limit:
                raise HTTPException(
                    503,
                    f"the server holds {budget.used} bytes of OTLP requests, {budget.limit} "
                    "at most: retry later",
                    RETRY_LATER,
                )
            budget.used += size
            self.held += size

    def release(self, size: int) -> None:
        """Give back `size` bytes (no more than are held)."""
        with self.budget._lock:
            size = min(size, self.held)
            self.budget.used -= size
            self.held -= size

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release(self.held)


async def read_body(request: Request, max_body: int, hold: Hold) -> bytes:
    """The request body, decompressed (gzip, deflate), never more than `max_body` bytes
    as received or after decompression (413); what it holds is charged to `hold`."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "deflate"):
        raise HTTPException(415, f"unsupported Content-Encoding {encoding!r}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and (len(length) > 18 or int(length) > max_body):
        raise HTTPException(413, f"body larger than {max_body} bytes")  # before reading it
    received = bytearray()
    size = 0
    refused: HTTPException | None = None
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise HTTPException(413, f"body larger than {max_body} bytes")
        if refused is not None:
            continue  # read and dropped, so that the client gets to read the 503
        try:
            hold.charge(len(chunk))
        except HTTPException as e:
            refused = e
            hold.release(hold.held)
            received = bytearray()
            continue
        received += chunk
    if refused is not None:
        raise refused
    raw = as_bytes(received, hold)
    if encoding in ("", "identity"):
        return raw
    body = await to_thread.run_sync(inflate, raw, encoding, max_body, hold)
    del raw  # the compressed body is not needed any more: its bytes go back
    hold.release(size)
    return body


def as_bytes(buffer: bytearray, hold: Hold | None) -> bytes:
    """`buffer`'s bytes, emptying it: for a moment both are held, and charged.

    Bodies are gathered in one growing bytearray rather than a list of chunks: large
    reallocations are remapped in place and given back whole, where many chunks freed
    by one worker thread stay in its malloc arena (measured: twice the bytes held)."""
    size = len(buffer)
    if hold is not None:
        hold.charge(size)
    try:
        return bytes(buffer)
    finally:
        buffer.clear()
        if hold is not None:
            hold.release(size)


GZIP, ZLIB, RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
# Input is fed to zlib in slices: when a member ends inside a slice, zlib copies the rest
# of the slice (`unused_data`), so each member's first slice is small and the next ones
# double. A member of n bytes then costs O(n + FIRST_SLICE) bytes of copying, and a body
# of many tiny members time linear in its size (the whole rest of the body copied at
# every member made 8 MB of empty gzip members take minutes).
FIRST_SLICE, MAX_SLICE = 256, 64 << 10
OUTPUT_STEP = 256 << 10  # bytes out of zlib per call: the caps are checked between calls


def inflate(data: bytes, encoding: str, limit: int, hold: Hold | None = None) -> bytes:
    """Decompress a gzip body (any number of concatenated members) or a deflate one
    (zlib format, or a raw deflate stream), at most `limit` bytes out (413 past it),
    charging what it produces to `hold`. Corrupt or truncated data: 400."""
    try:
        try:
            return _members(data, GZIP if encoding == "gzip" else ZLIB, limit, hold)
        except zlib.error:
            if encoding != "deflate":
                raise
            return _members(data, RAW_DEFLATE, limit, hold)
    except zlib.error as e:
        raise HTTPException(400, f"body is not valid {encoding}: {e}") from None


def _members(data: bytes, wbits: int, limit: int, hold: Hold | None) -> bytes:
    view = memoryview(data)
    out = bytearray()
    charged = 0
    position = 0
    try:
        while True:  # one compressed member (stream) after another
            inflater = zlib.decompressobj(wbits)
            step = FIRST_SLICE
            while not inflater.eof:
                if inflater.unconsumed_tail:  # output was capped: go on with the input
                    chunk = inflater.decompress(inflater.unconsumed_tail, OUTPUT_STEP)
                elif position < len(data):
                    piece = view[position : position + step]
                    position += len(piece)
                    step = min(step * 2, MAX_SLICE)
                    chunk = inflater.decompress(piece, OUTPUT_STEP)
                else:  # all input given: what zlib still has, or the stream is cut short
                    chunk = inflater.decompress(b"", OUTPUT_STEP)
                    if not chunk and not inflater.eof:
                        raise zlib.error("truncated stream")
                if chunk:
                    if len(out) + len(chunk) > limit:
                        raise HTTPException(413, f"decompressed body larger than {limit} bytes")
                    if hold is not None:
                        hold.charge(len(chunk))
                        charged += len(chunk)
                    out += chunk
            position -= len(inflater.unused_data)  # the next member starts there
            if position >= len(data):
                return as_bytes(out, hold)
    except BaseException:
        out.clear()  # now, not when the traceback that refers to it goes
        if hold is not None:
            hold.release(charged)
        raise


# What decoding a body takes beyond the body itself, estimated before decoding from bytes
# that open a value: in JSON `{ [ , :` (each makes one Python object at most: a dict, a
# list, a string, a number), in protobuf the tag bytes of length-delimited fields 1-15
# (every sub-message of OTLP's traces and logs has one; text and random ids make some
# more). Measured (CPython 3.11, orjson 3.13, upb) on typical batches, on minimal records
# and on bodies made only of empty objects: JSON takes 44-80 bytes a structural byte
# (typical batches ~75, ~180 for records of two ids each, whose rows outweigh their text),
# protobuf 60-175 (an empty Span costs upb ~170 bytes). Text is copied once into str,
# up to 4 bytes a character when a string has one character past Latin-1.
JSON_PER_VALUE, PROTOBUF_PER_MESSAGE = 100, 175
JSON_STRUCTURE = b"{[,:"
PROTOBUF_TAGS = bytes((field << 3) | 2 for field in range(1, 16))


def decoded_size(body: bytes, protobuf: bool) -> int:
    """An estimate of the bytes decoding `body` holds beyond the body (the parsed tree
    or messages and the rows made of them), in time linear in its size."""
    if protobuf:
        return 4 * len(body) + PROTOBUF_PER_MESSAGE * _count(body, PROTOBUF_TAGS)
    # ASCII text without \u escapes decodes to 1-byte strings; anything else may widen.
    width = 1 if body.isascii() and b"\\u" not in body else 4
    return width * len(body) + JSON_PER_VALUE * _count(body, JSON_STRUCTURE)


def _count(body: bytes, which: bytes) -> int:
    """How many bytes of `body` are among `which` (1 MiB at a time: no copy of it all)."""
    found = 0
    for start in range(0, len(body), 1 << 20):
        piece = body[start : start + (1 << 20)]
        found += len(piece) - len(piece.translate(None, which))
    return found
