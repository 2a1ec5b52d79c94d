"""Terminal escape sequences in log text: which are safe to hand to a terminal."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# One escape sequence or control character: CSI (ESC [ … final), OSC (ESC ] … BEL or
# ST), DCS/SOS/PM/APC strings, any other ESC pair, 8-bit C1 controls, C0 controls but
# tab and newline.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|[\x80-\x9f]"
    r"|[\x00-\x08\x0b-\x1f\x7f]"
)
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def terminal_safe(text: str) -> str:
    """`text` with every control sequence removed but colours (SGR): a log fetched with
    curl can colour a terminal, never move its cursor, retitle it, plant a hyperlink
    (OSC 8), clear it or answer back."""
    if "\x1b" not in text and text.isprintable():
        return text
    return _CONTROL.sub(lambda m: m.group() if _COLOUR.fullmatch(m.group()) else "", text)


def plain(text: str) -> str:
    """(Interim) `text` as a reader sees it: no escapes, the last state of a `\\r` line."""
    if "\x1b" not in text and text.isprintable():
        return text
    if "\r" in text:
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    return _CONTROL.sub("", text)


def to_html(text: str) -> Markup:
    """(Interim) one line as escaped HTML."""
    return escape(plain(text))
