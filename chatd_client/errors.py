"""Typed errors: what the server said, as an exception a script can catch.

Every failure of the client is a ChatError with `.status` (the HTTP status,
None when there was no answer), `.code` (the contract's error code),
`.message` (the server's one sentence) and `.retry_after` (seconds, on
RateLimited). One subclass per error code, so `except NotFound` reads as it
should; an unknown code keeps the class of its status.
"""


class ChatError(Exception):
    status = None
    code = "internal"

    def __init__(self, message, status=None, code=None, retry_after=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def __str__(self):
        return "%s (%s)" % (self.message, self.code)


def _error(name, status, code, doc):
    return type(name, (ChatError,), {"status": status, "code": code, "__doc__": doc})


BadRequest = _error("BadRequest", 400, "bad_request", "Malformed request or invalid field.")
Unauthorized = _error("Unauthorized", 401, "unauthorized",
                      "No token, a bad/expired/revoked one, or a wrong username/password.")
Forbidden = _error("Forbidden", 403, "forbidden", "Authenticated but not allowed.")
NotFound = _error("NotFound", 404, "not_found", "Unknown room, message, user or route.")
MethodNotAllowed = _error("MethodNotAllowed", 405, "method_not_allowed", "Wrong method.")
Conflict = _error("Conflict", 409, "conflict", "Username or room name already taken.")
NotJoined = _error("NotJoined", None, "not_joined", "WebSocket: send or typing before join.")
PayloadTooLarge = _error("PayloadTooLarge", 413, "payload_too_large", "Body or message too big.")
UnsupportedMediaType = _error("UnsupportedMediaType", 415, "unsupported_media_type",
                              "Body not application/json.")
RateLimited = _error("RateLimited", 429, "rate_limited",
                     "Too many requests; .retry_after says how many seconds to wait.")
Internal = _error("Internal", 500, "internal", "A server bug.")
Unavailable = _error("Unavailable", 503, "unavailable", "The server or its database is down.")
Unreachable = _error("Unreachable", None, "unreachable",
                     "No answer at all: connection refused, reset or timed out.")

_BY_CODE = {cls.code: cls for cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, NotJoined,
    PayloadTooLarge, UnsupportedMediaType, RateLimited, Internal, Unavailable)}
_BY_STATUS = {cls.status: cls for cls in _BY_CODE.values() if cls.status is not None}


def error_class(code, status=None):
    """The subclass for a code; else for the status (5xx: Unavailable); else ChatError."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status is not None and status >= 500:
        return Unavailable
    return ChatError


def from_http(status, body, retry_after_header=None):
    """The error an HTTP answer stands for; `body` is its parsed JSON (or None)."""
    body = body if isinstance(body, dict) else {}
    code = body.get("error") if isinstance(body.get("error"), str) else None
    message = body.get("message") if isinstance(body.get("message"), str) else None
    cls = error_class(code, status)
    retry_after = _seconds(retry_after_header)
    if retry_after is None:
        retry_after = _seconds(body.get("retryAfter"))
    return cls(message or "HTTP %d" % status, status=status, code=code or cls.code,
               retry_after=retry_after)


def from_event(event):
    """The error a WebSocket `error` event stands for."""
    code = event.get("code") if isinstance(event.get("code"), str) else "internal"
    cls = error_class(code)
    return cls(event.get("message") or code, code=code,
               retry_after=_seconds(event.get("retryAfter")))


def transient(exc):
    """Whether trying again later may succeed: no answer, or the server's own failure."""
    return isinstance(exc, (Unreachable, Unavailable, Internal)) or (
        isinstance(exc, ChatError) and exc.status is not None and exc.status >= 500)


def _seconds(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
