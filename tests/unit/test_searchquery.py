"""The search query parser and cursors: properties over any text (hypothesis)."""
import re

import pytest
from hypothesis import given, strategies as st

from chatd import searchquery
from chatd.errors import BadRequest

WORD = re.compile(r"[^\W_]+")


def parsed_or_refused(text):
    try:
        return searchquery.parse(text)
    except BadRequest:
        return None


@given(st.text(max_size=300))
def test_any_text_parses_or_is_a_bad_request(text):
    query = parsed_or_refused(text)
    if query is None:
        return
    assert 1 <= len(text) <= searchquery.MAX_CHARS
    for word in query.words + (query.prefix,):
        assert WORD.fullmatch(word) and word == word.lower()


@given(st.text(max_size=300))
def test_refused_exactly_when_too_long_empty_or_wordless(text):
    query = parsed_or_refused(text)
    wordless = not searchquery.words(text)
    assert (query is None) == (not 1 <= len(text) <= 200 or wordless)


@given(st.lists(st.from_regex(r"[a-zé\u0430-\u044f\u4e00-\u4e0f0-9]{1,8}", fullmatch=True),
                min_size=1, max_size=10),
       st.from_regex(r"[ ,.!?;:'\"()*\-_/]{1,3}", fullmatch=True))
def test_words_are_found_whatever_separates_them(words, separator):
    query = searchquery.parse(separator.join(words)[:200] or "x")
    assert query.prefix == words[-1] or len(separator.join(words)) > 200
    assert set(query.words) <= set(words)


@given(st.text(max_size=200))
def test_parsing_the_words_again_gives_the_same_query(text):
    query = parsed_or_refused(text)
    if query is None:
        return
    again = searchquery.parse(" ".join(query.words + (query.prefix,)))
    assert again == query


@given(st.text(min_size=1, max_size=100).filter(lambda t: searchquery.words(t)))
def test_case_does_not_matter(text):
    assert searchquery.parse(text) == searchquery.parse(text.lower())


@pytest.mark.parametrize("text,prefix", [("HeLLo", "hello"), ("ПРИВЕТ", "привет"),
                                         ("ÉCOLE", "école"), ("İstanbul", "istanbul")])
def test_upper_case_is_folded(text, prefix):
    assert searchquery.parse(text).prefix == prefix


def test_search_syntax_is_only_separators():
    query = searchquery.parse('"hello" AND (wor* OR NOT x) NEAR/2 : ^col')
    assert query.words == ("hello", "and", "wor", "or", "not", "x", "near", "2")
    assert query.prefix == "col"


def test_accents_compose_before_splitting():
    assert searchquery.parse("cafe\u0301").prefix == "caf\u00e9"


@given(st.integers(min_value=0, max_value=10 ** 18 - 1))
def test_cursor_round_trip(key):
    cursor = searchquery.encode_cursor(key)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert searchquery.decode_cursor(cursor) == key


@given(st.text(max_size=40))
def test_any_other_cursor_is_a_bad_request_or_a_key(text):
    try:
        key = searchquery.decode_cursor(text)
    except BadRequest:
        return
    assert searchquery.decode_cursor(searchquery.encode_cursor(key)) == key


@pytest.mark.parametrize("cursor", ["", "nope", "bTEy", "=", "m12"])
def test_foreign_cursors_are_refused(cursor):
    if cursor == "bTEy":  # "m12" encoded is a real one; this is "l12"
        cursor = "bDEy"
    with pytest.raises(BadRequest):
        searchquery.decode_cursor(cursor)
