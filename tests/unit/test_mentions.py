"""Mention parsing: the rule of `@name`, by examples and by properties."""
import re

import pytest
from hypothesis import given, strategies as st

from chatd import mentions

MEMBERS = {"bob": "Bob", "carol.x": "carol.x", "d-e": "d-e", "alice": "alice"}


@pytest.mark.parametrize("text, expected", [
    ("hi @bob", ["Bob"]),
    ("@BOB and @bob again", ["Bob"]),
    ("thanks @bob.", ["Bob"]),
    ("thanks @bob-.", ["Bob"]),
    ("@carol.x, and @d-e!", ["carol.x", "d-e"]),
    ("@alice @bob", ["alice", "Bob"]),
    ("@bob @alice @bob", ["Bob", "alice"]),
    ("mail bob@example.com", []),
    ("@@bob", ["Bob"]),
    ("(@bob)", ["Bob"]),
    ("@nobody here", []),
    ("@ bob", []),
    ("@bobby", []),
    ("", []),
])
def test_resolve(text, expected):
    assert mentions.resolve(text, MEMBERS) == expected


NAME = re.compile(r"[a-z0-9_.\-]+\Z")


@given(st.text())
def test_candidates_are_unique_lowercase_names_without_trailing_dots_or_dashes(text):
    found = mentions.candidates(text)
    assert len(found) == len(set(found))
    for key in found:
        assert NAME.match(key) and not key.endswith((".", "-"))
        assert "@" + key in text.lower()


@given(st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,30}[A-Za-z0-9_]", fullmatch=True),
                min_size=1, max_size=5),
       st.sampled_from([" ", ", ", "! ", "\n"]))
def test_every_written_mention_is_found_in_order(names, separator):
    text = separator.join("@" + name for name in names)
    expected = list(dict.fromkeys(name.lower() for name in names))
    assert mentions.candidates(text) == expected
