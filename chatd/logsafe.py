"""Request text made safe for a log line: no forged lines, no tokens.

Whatever a client sends (a path with %0a, a username with a space, a token
in the query string) ends up in one log field that cannot break the line
or the fields around it, and a token-shaped value never reaches the log.
"""
import re
from urllib.parse import parse_qsl, urlencode

# Control characters, whitespace (a field must stay one field) and lone surrogates.
_UNSAFE = re.compile("[\x00-\x20\x7f-\xa0\u2028\u2029\ud800-\udfff]")
# Query parameters whose value is a secret whatever it looks like.
_SECRET_NAME = re.compile(r"token|key|secret|passw|auth|session|sig", re.IGNORECASE)
# auth.new_token is 43 characters of this alphabet; nothing else chatd puts in
# a URL is as long (usernames stop at 32, room ids at 23).
_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9_\-]{40,}")
REDACTED = "[redacted]"


def _escape(match):
    code = ord(match.group())
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def text(value, limit=128):
    """One log field: escaped, cut at `limit` characters, '-' when empty."""
    if value is None or value == "":
        return "-"
    value = str(value)
    cut = value[:limit]
    return _UNSAFE.sub(_escape, cut) + ("..." if len(value) > limit else "")


def target(path_info, query_string):
    """The request's path and query for the log, with secrets redacted.

    PATH_INFO holds the percent-decoded bytes as latin-1 (WSGI's rule):
    they are read back as UTF-8 so the log shows what the client meant.
    """
    path = path_info.encode("latin-1", "replace").decode("utf-8", "backslashreplace")
    line = _TOKEN_SHAPED.sub(REDACTED, path)
    if query_string:
        pairs = [(_TOKEN_SHAPED.sub(REDACTED, key),
                  REDACTED if _SECRET_NAME.search(key) else _TOKEN_SHAPED.sub(REDACTED, value))
                 for key, value in parse_qsl(query_string, keep_blank_values=True)]
        line += "?" + urlencode(pairs)
    return text(line, 512)
