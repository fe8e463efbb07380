"""Field rules, each in one place; every failure names the field."""
import json
import re

from .errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from .keys import user_key

USERNAME_RE = re.compile(r"[A-Za-z0-9_.\-]{3,32}\Z")
ROOM_ID_RE = re.compile(r"room_([1-9][0-9]{0,17})\Z")


# Unicode categories Cc (C0, DEL, C1) and Cs (lone surrogates), as regexes:
# a per-character loop would cost microseconds on every message.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_NEWLINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control(text, allow_newlines=False):
    """Control characters or lone surrogates (newline and tab allowed in messages)."""
    return (_CONTROL_BUT_NEWLINES if allow_newlines else _CONTROL).search(text) is not None


def string(body, field, required=True):
    value = body.get(field)
    if value is None:
        if required:
            raise BadRequest("Field '%s' is required." % field)
        return None
    if not isinstance(value, str):
        raise BadRequest("Field '%s' must be a string." % field)
    return value


def username(value, field="username"):
    if not isinstance(value, str) or not USERNAME_RE.match(value):
        raise BadRequest("Field '%s' must be 3-32 characters of A-Z a-z 0-9 _ . -." % field)
    return value


def password(value, field="password"):
    if not isinstance(value, str) or not 8 <= len(value) <= 1024:
        raise BadRequest("Field '%s' must be 8-1024 characters." % field)
    if has_control(value):
        raise BadRequest("Field '%s' must not contain control characters." % field)
    return value


def room_name(value, field="roomName"):
    if not isinstance(value, str):
        raise BadRequest("Field '%s' must be a string." % field)
    value = value.strip()
    if not 1 <= len(value) <= 64:
        raise BadRequest("Field '%s' must be 1-64 characters after trimming." % field)
    if has_control(value):
        raise BadRequest("Field '%s' must not contain control characters." % field)
    return value


def token_name(value, field="name"):
    """An access token's label: a room name's rule (1-64 characters after trimming)."""
    return room_name(value, field)


def room_id(value, field="roomId"):
    """'room_12' -> 12, in a record that must be well-formed (an import file)."""
    match = ROOM_ID_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise BadRequest("Field '%s' must be a room id like room_12." % field)
    return int(match.group(1))


def room_ref(value, field="roomId"):
    """'room_12' -> 12, from a client: ids are opaque, so any other string names no room."""
    if not isinstance(value, str):
        raise BadRequest("Field '%s' must be a string." % field)
    match = ROOM_ID_RE.match(value)
    if not match:
        raise NotFound("No room %s; expected a room id like room_12." % value[:64])
    return int(match.group(1))


def user_ref(value):
    """A username from a client, to look up: one holding control characters (NUL,
    lone surrogates) names no user, and is answered so before any query, which
    PostgreSQL could not even run (its text holds no NUL)."""
    if has_control(value):
        raise NotFound("No user has that name: usernames hold no control characters.")
    return value


def message_text(value, max_chars, field="message"):
    if not isinstance(value, str):
        raise BadRequest("Field '%s' must be a string." % field)
    if not value.strip():
        raise BadRequest("Field '%s' must not be empty." % field)
    if len(value) > max_chars:
        raise PayloadTooLarge("Field '%s' is over %d characters." % (field, max_chars))
    if has_control(value, allow_newlines=True):
        raise BadRequest("Field '%s' must not contain control characters." % field)
    return value


def client_msg_id(value, field="clientMsgId"):
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or has_control(value):
        raise BadRequest("Field '%s' must be a string of 1-64 characters." % field)
    return value


MAX_INTEGER = 10 ** 18 - 1  # what a query string may spell; fits every database's BIGINT


def integer(value, field, low=-MAX_INTEGER, high=MAX_INTEGER, text=False):
    """A JSON integer within bounds; with text, a URL's (query or path) digits.

    A JSON string of digits is the wrong type, as any other: "5" is not 5.
    """
    if isinstance(value, bool):
        raise BadRequest("Field '%s' must be an integer." % field)
    if text and isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]{1,18}", value):
            raise BadRequest("Parameter '%s' must be an integer." % field)
        value = int(value)
    if not isinstance(value, int):
        raise BadRequest("Field '%s' must be an integer." % field)
    if not low <= value <= high:
        raise BadRequest("Field '%s' must be between %d and %d." % (field, low, high))
    return value


# JSON can spell what no field may hold: NUL (PostgreSQL text cannot store it)
# and lone surrogates (they cannot even be encoded back to UTF-8, so an error
# echoing one could not be sent). Raw, both are invalid in JSON text: only a
# \u escape makes them, which the cheap search finds before any walk.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f])", re.IGNORECASE)
_UNSTORABLE_ESCAPE_BYTES = re.compile(rb"\\u(?:0000|d[89a-f])", re.IGNORECASE)  # frames
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_object(text, what):
    """A JSON object from a request body (str) or a frame (bytes); `what` names it in errors."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # 30,000 '[' must be a 400, not a crash
        raise BadRequest("The %s is not valid JSON." % what)
    if not isinstance(body, dict):
        raise BadRequest("The %s must be a JSON object." % what)
    escape = _UNSTORABLE_ESCAPE_BYTES if isinstance(text, bytes) else _UNSTORABLE_ESCAPE
    if escape.search(text):
        for field, value in body.items():
            if _unstorable(field):
                raise BadRequest("A field name in the %s holds NUL or a lone surrogate." % what)
            if _unstorable(value):
                raise BadRequest("Field '%s' must not hold NUL or lone surrogates." % field[:64])
    return body


def _unstorable(value):
    """NUL or a lone surrogate anywhere in this JSON value (keys of nested objects too)."""
    stack = [value]
    while stack:  # not recursive: nesting as deep as json.loads accepts is fine here
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_EMOJI_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def emoji(value, field="emoji"):
    """1-32 characters, no whitespace or control characters ('👍', ':shipit:')."""
    if not isinstance(value, str) or not 1 <= len(value) <= 32 or _EMOJI_FORBIDDEN.search(value):
        raise BadRequest("Field '%s' must be 1-32 characters without whitespace or control "
                         "characters." % field)
    return value


def short_text(value, field, max_chars):
    """An optional line of text (a topic, a ban's reason): '' when absent."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_chars or has_control(value):
        raise BadRequest("Field '%s' must be a string of at most %d characters "
                         "without control characters." % (field, max_chars))
    return value


def own_username(value, field, username):
    """Forbidden unless the optional field `value` names `username` (ignoring case).

    A request may name its user in a field (creator, username); the name
    must be the caller's own.
    """
    if value is not None and (not isinstance(value, str) or
                              user_key(value) != user_key(username)):
        raise Forbidden("Field '%s' must be your own username." % field)
