"""A search's test of a block of lines (bass.store.logmatch): the lines it picks out of a
block at once are exactly those it says match one by one, and a line matches as FTS5
would match it alone (every word, as whole tokens, case and accents folded)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bass import ansi
from bass.store.logmatch import Query, is_marker, tokens

WORDS = ["error", "E501", "foo.bar", "Straße", "café", "ERR*", "-", "x", "line2", "ok"]
PIECES = ["error", "E501", "foo", "bar", ".", " ", "\x1b[31m", "\x1b[0m", "\r", "\n", "é",
          "cafe", "café", "straße", "İ", "line", "2", "errors", "ok", "\t", "-"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), max_size=30),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
)
def test_a_blocks_lines_are_picked_as_one_by_one(bodies: list[str], text: str) -> None:
    query = Query(text)
    lines = "\n".join(map(ansi.plain, bodies))  # a line each, as a block's text
    expected = [i for i, body in enumerate(bodies) if query.matches(body)]
    assert query.lines(lines) == expected
    if all("\n" not in body for body in bodies):
        assert query.lines("\n".join(bodies)) == expected  # as a block keeps plain bodies


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ("E501", "src/a.py:1:80: E501 line too long", True),
        ("e501", "\x1b[31mE501\x1b[0m", True),  # colours are not text
        ("E501", "E5012 other", False),  # a whole token, not a part
        ("E50*", "E5012 other", True),  # unless asked as a prefix
        ("foo.bar", "call foo.bar()", True),  # a phrase of two tokens
        ("foo.bar", "bar foo", False),  # in that order, together
        ("error line", "line with an error", True),  # every word, anywhere in the line
        ("error line", "an error", False),
        ("cafe", "Café ouvert", True),  # accents folded
        ("straße", "STRASSE", False),  # as FTS5's unicode61 folds it (ß is kept)
        ("straße", "Straße", True),
        ("-", "a - b", False),  # a word of no letters matches nothing
        ("10%", "10%\r100% done", False),  # what a terminal finally shows
        ("100%", "10%\r100% done", True),
    ],
)
def test_a_line_matches_as_a_reader_reads_it(text: str, line: str, found: bool) -> None:
    assert Query(text).matches(line) is found
    assert Query(text).lines(ansi.plain(line)) == ([0] if found else [])


def test_the_index_query_names_every_token() -> None:
    assert Query('foo.bar E50* "x"').fts == '"foo" AND "bar" AND "e50"* AND "x"'
    assert Query("- *").fts is None
    assert tokens("Ça va, Straße_1") == ["ca", "va", "straße", "1"]


def test_group_markers() -> None:
    assert is_marker("::group::Build") and is_marker("##[endgroup]")
    assert not is_marker("grouping things")
