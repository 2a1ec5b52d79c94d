"""What a log search asks, in two forms: a query for the full-text index, which finds the
blocks of lines that hold every word somewhere (FTS5 with `detail=none` keeps only which
blocks hold a token: small, and fast to write), and a test of one line, which says
whether the line itself holds every word.

Words are cut into tokens as FTS5's unicode61 tokenizer cuts them: runs of letters and
digits, case and diacritics folded. A word of several tokens ("foo.bar", "E501:")
matches them consecutively, as an FTS5 phrase does; a word ending in `*` matches its
last token as a prefix. A word without letters or digits ("-", "*") is left out unless
there is nothing else to search for, and then nothing matches.
"""

from __future__ import annotations

import re
import unicodedata

from bass import ansi

_TOKEN = re.compile(r"[^\W_]+")
SPECIAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what bass.ansi.plain may change, \n aside


def tokens(text: str) -> list[str]:
    """The tokens of `text`, folded."""
    if text.isascii():
        return _TOKEN.findall(text.lower())
    return [_fold(token) for token in _TOKEN.findall(text.lower())]


def _fold(token: str) -> str:
    if token.isascii():
        return token
    decomposed = unicodedata.normalize("NFD", token)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Query:
    """Every word of `text` must be in a line. `fts` is the index query (None: the text
    can match nothing); `matches(body)` tests one line as it was sent (escapes and all)."""

    def __init__(self, text: str) -> None:
        words = [word.replace("\x00", "") for word in text.split()]
        # (" tok1 tok2 " to find in a line's " tok … " for a whole word, without the
        # trailing space for a prefix; and the plain substrings every match holds)
        self._needles: list[str] = []
        self._substrings: list[str] = []
        terms: list[str] = []
        for word in words:
            prefix = word.endswith("*") and len(word) > 1
            found = tokens(word.rstrip("*") if prefix else word)
            if not found:
                continue
            self._needles.append(" " + " ".join(found) + ("" if prefix else " "))
            self._substrings += found
            for i, token in enumerate(found):
                star = "*" if prefix and i == len(found) - 1 else ""
                terms.append(f'"{token}"{star}')
        self.fts: str | None = " AND ".join(dict.fromkeys(terms)) or None
        self._ascii = all(s.isascii() for s in self._substrings)

    def lines(self, text: str, plain: bool = False) -> list[int]:
        """The numbers (0, 1, …) of the lines of `text` that match, in order (`plain`:
        the text is known to be as a reader sees it). The longest word is looked for in
        the whole text at once (C's speed), and only the lines holding it are tested."""
        if self.fts is None:
            return []
        if not plain and SPECIAL.search(text) is not None:  # as a reader sees the lines
            text = "\n".join(map(ansi.plain, text.split("\n")))
        if not self._ascii or not text.isascii():  # folded accents: "café" holds "cafe"
            return [i for i, line in enumerate(text.split("\n")) if self.matches(line)]
        low = text.lower()
        anchor = max(self._substrings, key=len)
        found: list[int] = []
        line, counted = 0, 0
        at = low.find(anchor)
        while at >= 0:
            line += low.count("\n", counted, at)
            start = low.rfind("\n", 0, at) + 1
            end = low.find("\n", at)
            end = len(low) if end < 0 else end
            if self.matches(text[start:end]):
                found.append(line)
            counted = end
            at = low.find(anchor, end)
        return found

    def matches(self, body: str) -> bool:
        if self.fts is None:
            return False
        text = ansi.plain(body)
        if self._ascii and text.isascii():  # a cheap test first: most lines hold no word
            low = text.lower()
            if not all(s in low for s in self._substrings):
                return False
        line = " " + " ".join(tokens(text)) + " "
        return all(needle in line for needle in self._needles)


GROUP_MARKERS = '"group" OR "endgroup"'  # the index query for group markers' lines


def is_marker(body: str) -> bool:
    """Whether a line holds the word `group` or `endgroup` (where group markers are)."""
    if "group" not in body.lower():
        return False
    found = tokens(ansi.plain(body))
    return "group" in found or "endgroup" in found
