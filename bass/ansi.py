"""Terminal escape sequences in log lines (stored as received, escapes included): kept
safe for a terminal (`terminal_safe`), gone for search and summaries (`plain`), HTML for
the dashboard (`to_html`); progress lines collapsed to what a terminal finally shows
(`collapse_cr`: `\\r`, `\\b`, `ESC[nG` move the cursor back, `ESC[K`/`1K`/`2K` erase; one
character is one column, even a wide one; a newline starts a new line). Other control
sequences are dropped; a C1 control (`\\x9b`) is dropped alone, as `terminal_safe` does.

`to_html`'s classes, all in CSS_CLASSES: `ansi-fg-N`, `ansi-bright-fg-N`, `ansi-bg-N`,
`ansi-bright-bg-N` for the 16 basic colours (N: 0 black, 1 red, 2 green, 3 yellow, 4 blue,
5 magenta, 6 cyan, 7 white; 38;5;N and 48;5;N for N < 16 too); `ansi-bold`, `ansi-dim`,
`ansi-italic`, `ansi-underline`, `ansi-strike`; with inverse (7) the colours swap, and a
swapped default is `ansi-inverse-fg` (text in the default background colour) or
`ansi-inverse-bg` (background in the default text colour). 256 colours (16-255, the xterm
palette) and truecolour are inline: `style="color:#rrggbb;background-color:#rrggbb"`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import groupby

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


# What follows ESC, read for display: CSI `ESC [ params between final` (cut short at the end
# of a line: `ESC [ 3 8`), OSC (titles, OSC 8 links) to BEL or ST, DCS/SOS/PM/APC strings to
# ST (neither past a newline), any other escape (`ESC ( B`, `ESC 7`) or a lone ESC.
_AFTER_ESC = (
    r"\[([0-?]*)([ -/]*)([@-~]?)"
    r"|\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|[ -/]*[0-~]?"
)
# A control character (tab is text) and, after ESC, the rest of its sequence: starting
# with a character class lets the regex engine skip plain text fast.
_TOKEN = re.compile(r"([\x00-\x08\x0a-\x1f\x7f-\x9f])(?:(?<=\x1b)(?:" + _AFTER_ESC + "))?")
_ESCAPES = re.compile(r"\x1b(?:" + _AFTER_ESC + ")")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what is left once escapes are gone
_SPECIAL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # all that is not text (tab is)
_MOVES = re.compile(r"\x1b\[(?:[12]K|[0-9]*G)")  # with \r and \b, what can overwrite text

Colour = int | tuple[int, int, int] | None  # palette index, (r, g, b), or the default
Style = tuple[Colour, Colour, int]  # foreground, background, flags
Run = tuple[Style, str]
BOLD, DIM, ITALIC, UNDERLINE, INVERSE, STRIKE = 1, 2, 4, 8, 16, 32
_DEFAULT: Style = (None, None, 0)
_MARK: Style = (None, None, -1)  # a run of this style is a cursor move or an erase
_BLANK: Run = (_DEFAULT, " ")
_ON = {1: BOLD, 2: DIM, 3: ITALIC, 4: UNDERLINE, 7: INVERSE, 9: STRIKE, 21: UNDERLINE}
_OFF = {22: BOLD | DIM, 23: ITALIC, 24: UNDERLINE, 27: INVERSE, 29: STRIKE}
_CODE = {flag: code for code, flag in _ON.items() if code != 21}
_CLASS = {BOLD: "bold", DIM: "dim", ITALIC: "italic", UNDERLINE: "underline", STRIKE: "strike"}
_LEVELS = (0, 95, 135, 175, 215, 255)  # the steps of xterm's 6x6x6 colour cube

CSS_CLASSES: tuple[str, ...] = (
    *(f"ansi-{b}{k}-{n}" for k in ("fg", "bg") for b in ("", "bright-") for n in range(8)),
    *("ansi-inverse-fg", "ansi-inverse-bg", *(f"ansi-{name}" for name in _CLASS.values())),
)


def plain(text: str) -> str:
    """`text` as a terminal finally shows it, without escape sequences or control
    characters (tab is kept): what search and failure summaries read. The lines of a
    text holding newlines are joined with a space, empty ones left out."""
    if text.isprintable():
        return text
    if _moves(text):
        lines = ["".join(part for _, part in line) for line in _lines(text)]
        return lines[0] if len(lines) == 1 else " ".join(filter(None, lines))
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    if text.isprintable() or not _SPECIAL.search(text):
        return text
    text = _CONTROLS.sub("", text)
    return " ".join(filter(None, text.split("\n"))) if "\n" in text else text


def collapse_cr(text: str) -> str:
    """`text`, escapes or not, as a terminal finally shows it: `"10%\\r50%\\r100%"` is
    `"100%"`, `"abcdef\\rXY"` is `"XYcdef"`, `"done\\r"` is `"done"`, `"done\\r\\n"` is
    `"done\\n"`. Colours are written anew, `ESC[0;…m` where the style changes and `ESC[0m`
    at the end; other control sequences are dropped. A text that moves no cursor back
    and erases nothing is returned as it is."""
    if not _moves(text):
        return text
    out = []
    for line in _lines(text):
        shown, current = [], _DEFAULT
        for style, part in line:
            if style != current:
                shown.append(_sgr_text(style))
                current = style
            shown.append(part)
        out.append("".join(shown) + ("\x1b[0m" if current != _DEFAULT else ""))
    return "\n".join(out)


def to_html(text: str) -> Markup:
    """A log line as escaped HTML, styled with `<span>`s (see the module's docstring) and
    collapsed as `collapse_cr` does; a text holding newlines gives lines (but for a last
    empty one: "done\\r\\n" is one line)."""
    if text.isprintable() or not _SPECIAL.search(text):
        return escape(text)
    lines = _lines(text)
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    html = []
    for line in lines:  # escaped in one call: runs hold no NUL
        escaped = str.split(escape("\0".join(part for _, part in line)), "\0")
        html.append(
            "".join(
                f"<span{_attrs(style)}>{part}</span>" if style != _DEFAULT else part
                for (style, _), part in zip(line, escaped, strict=False)  # [] gives [""]
            )
        )
    return Markup("\n".join(html))


def _moves(text: str) -> bool:
    """Whether `text` moves the cursor back or erases (fast looks first)."""
    if "\r" in text or "\b" in text:
        return True
    return ("K" in text or "G" in text) and _MOVES.search(text) is not None


def _lines(text: str) -> list[list[Run]]:
    """The lines of `text` as (style, text) runs, as a terminal finally shows them."""
    lines: list[list[Run]] = []
    runs: list[Run] = []
    style, moved = _DEFAULT, False
    parts = iter(_TOKEN.split(text + "\n"))  # text, a token's first character, CSI's parts
    for part, first, params, between, final in zip(*[parts] * 5, strict=False):
        if part:  # joined to the run before if of the same style
            if runs and runs[-1][0] == style:
                runs[-1] = (style, runs[-1][1] + part)
            else:
                runs.append((style, part))
        if first == "\n":
            lines.append(_overwrite(runs) if moved else runs)
            runs, moved = [], False
        elif first == "\r" or first == "\b":
            runs.append((_MARK, first))
            moved = True
        elif not final or between:
            pass  # not a CSI, or none read here
        elif final == "m":  # cached, but for long (hostile) ones
            style = _sgr(params, style) if len(params) < 32 else _sgr.__wrapped__(params, style)
        elif final == "K" and (params in ("1", "2") or moved and params in ("", "0")):
            runs.append((_MARK, "K" + (params or "0")))  # (before a move the cursor is at
            moved = True  # the end of the line, where ESC[K erases nothing)
        elif final == "G" and (params.isdigit() and len(params) < 6 or not params):
            runs.append((_MARK, "G" + str(min(max(int(params or 1), 1), 1000) - 1)))
            moved = True
    return lines


def _overwrite(runs: list[Run]) -> list[Run]:
    """`runs`, with the moves and erases among them, played on a line of cells."""
    cells: list[Run] = []
    col = 0
    for style, part in runs:
        if style != _MARK:
            cells += [_BLANK] * (col - len(cells))  # after ESC[nG past the end
            cells[col : col + len(part)] = [(style, char) for char in part]
            col += len(part)
        elif part == "\r" or part == "\b":
            col = 0 if part == "\r" else max(col - 1, 0)
        elif part == "K0":
            del cells[col:]
        elif part == "K1":
            cells[: col + 1] = [_BLANK] * len(cells[: col + 1])
        elif part == "K2":
            cells = []
        else:
            col = int(part[1:])
    return [(s, "".join(c for _, c in cs)) for s, cs in groupby(cells, key=lambda c: c[0])]


@lru_cache(maxsize=4096)
def _sgr(params: str, style: Style) -> Style:
    """`style` after `ESC[params m`; past what it cannot read, the sequence is ignored."""
    fg, bg, flags = style
    if params.strip("0123456789;:"):
        return style  # a private sequence (ESC[?…m), not SGR
    codes = params.split(";")
    i = 0
    while i < len(codes):
        code, *sub = codes[i].split(":")
        i += 1
        n = int(code) if 0 < len(code) < 6 else -1 if code else 0
        if n in (38, 48, 58):
            if sub:  # ITU T.416's own form: 38:5:N, 38:2:R:G:B or 38:2:<space id>:R:G:B
                args = ["2", *sub[1 + (len(sub) == 5) :]] if sub[0] == "2" else sub
            else:
                args = codes[i : i + (2 if codes[i : i + 1] == ["5"] else 4)]
                i += len(args)
            colour = _extended(args)
            if colour is None:
                break
            fg, bg = (colour, bg) if n == 38 else (fg, colour) if n == 48 else (fg, bg)
        elif n == 0:
            fg, bg, flags = _DEFAULT
        elif 30 <= n <= 37 or 90 <= n <= 97:
            fg = n - 30 if n < 90 else n - 82
        elif 40 <= n <= 47 or 100 <= n <= 107:
            bg = n - 40 if n < 100 else n - 92
        elif n == 39 or n == 49:
            fg, bg = (None, bg) if n == 39 else (fg, None)
        elif n == 4 and sub and sub[0] in ("", "0"):
            flags &= ~UNDERLINE  # 4:0; 4:1 to 4:5 are kinds of underline
        elif n in _ON or n in _OFF:
            flags = flags | _ON[n] if n in _ON else flags & ~_OFF[n]
    return fg, bg, flags


def _extended(args: list[str]) -> Colour:
    """The colour `5;N` (palette) or `2;R;G;B` (truecolour) names; None if malformed."""
    values = [int(a) if a.isdigit() and len(a) < 4 else 256 for a in args[1:]]
    if not args or any(v > 255 for v in values):
        return None
    if args[0] == "5" and len(values) == 1:
        return values[0]
    if args[0] == "2" and len(values) == 3:
        return values[0], values[1], values[2]
    return None


@lru_cache(maxsize=4096)
def _attrs(style: Style) -> str:
    """The attributes of a `<span>` of `style`: its classes and inline colours."""
    fg, bg, flags = style
    if flags & INVERSE:
        fg, bg = bg, fg
    classes, css = [], []
    for colour, kind, prop in ((fg, "fg", "color"), (bg, "bg", "background-color")):
        if colour is None:
            if flags & INVERSE:
                classes.append(f"ansi-inverse-{kind}")
        elif isinstance(colour, int) and colour < 16:
            classes.append(f"ansi-{'bright-' if colour > 7 else ''}{kind}-{colour % 8}")
        else:
            css.append(f"{prop}:#{bytes(_rgb(colour)).hex()}")
    classes += [f"ansi-{name}" for flag, name in _CLASS.items() if flags & flag]
    attrs = f' class="{" ".join(classes)}"' if classes else ""
    return attrs + (f' style="{";".join(css)}"' if css else "")


def _rgb(colour: int | tuple[int, int, int]) -> tuple[int, int, int]:
    """An xterm palette colour (16-231 the 6x6x6 cube, 232-255 greys) as (r, g, b)."""
    if isinstance(colour, tuple):
        return colour
    if colour >= 232:
        grey = 8 + 10 * (colour - 232)
        return grey, grey, grey
    n = colour - 16
    return _LEVELS[n // 36], _LEVELS[n // 6 % 6], _LEVELS[n % 6]


def _sgr_text(style: Style) -> str:
    """The SGR sequence that sets `style`, whatever was set before."""
    fg, bg, flags = style
    codes = ["0", *(str(code) for flag, code in _CODE.items() if flags & flag)]
    for colour, base in ((fg, 30), (bg, 40)):
        if isinstance(colour, tuple):
            codes.append(f"{base + 8};2;{colour[0]};{colour[1]};{colour[2]}")
        elif colour is not None:
            code = base + colour if colour < 8 else base + 52 + colour
            codes.append(str(code) if colour < 16 else f"{base + 8};5;{colour}")
    return f"\x1b[{';'.join(codes)}m"


def plain_lines(text: str) -> str:
    """Multi-line text (a stack trace, a status message) as it reads: each line plain,
    the lines kept."""
    return "\n".join(plain(line) for line in text.splitlines())
