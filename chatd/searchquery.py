"""Search queries and cursors: what a user typed, as the words a message must hold.

Pure functions (no database): both search engines get the same words.
A word is a run of letters and digits in any script (what SQLite FTS5's
unicode61 tokenizer calls a token); everything else separates words.
Words are lower-cased; the last one also matches as a prefix (`hel` finds
`hello`). Folding accents is left to the engines (see storage.search_*).
"""
import base64
import collections
import re
import unicodedata

from .errors import BadRequest

MAX_CHARS = 200
_WORD = re.compile(r"[^\W_]+")
_LEFTOVER_MARKS = re.compile("[\u0300-\u036f]")
_CURSOR_PREFIX = "m"

Query = collections.namedtuple("Query", "words prefix")  # words: whole words; prefix: the last


def parse(text, field="q"):
    """The Query of `text`: 1-200 characters holding at least one word, else BadRequest."""
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_CHARS:
        raise BadRequest("Parameter '%s' must be 1-%d characters." % (field, MAX_CHARS))
    found = words(text)
    if not found:
        raise BadRequest("Parameter '%s' must hold at least one word." % field)
    prefix = found[-1]
    whole = tuple(dict.fromkeys(word for word in found[:-1] if word != prefix))
    return Query(whole, prefix)


def words(text):
    """The lower-cased words of `text`, in order.

    Composed before and after lower-casing, so `e` + a combining accent is
    one letter `é`; a combining mark left over (`İ` lower-cases to `i` + dot)
    is dropped rather than splitting its word in two.
    """
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).lower())
    return _WORD.findall(_LEFTOVER_MARKS.sub("", folded))


def encode_cursor(key):
    """The opaque `next` cursor after the message whose search key is `key` (an int)."""
    raw = ("%s%d" % (_CURSOR_PREFIX, key)).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text, field="cursor"):
    """The key a cursor from encode_cursor holds, else BadRequest."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (ValueError, TypeError):
        raw = ""
    if not re.fullmatch(r"%s[0-9]{1,18}" % _CURSOR_PREFIX, raw):
        raise BadRequest("Parameter '%s' is not a cursor this server gave." % field)
    return int(raw[len(_CURSOR_PREFIX):])
