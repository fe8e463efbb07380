"""Errors are values: a status, a stable code and one human sentence.

Raised anywhere below the transports. Their two wire shapes are built here
only: the HTTP body (as_dict, and error_body for code that writes bytes
itself) and the WebSocket `error` event (as_event).
"""
import json

# Section 3 lists the WebSocket codes; others (unavailable) are internal there.
WS_ERROR_CODES = {"bad_request", "unauthorized", "forbidden", "not_found", "not_joined",
                  "rate_limited", "payload_too_large", "internal"}


class ChatError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def as_dict(self):
        return {"status": "error", "error": self.code, "message": self.message}

    def as_event(self, ref=None):
        event = {"action": "error", "code": self.code if self.code in WS_ERROR_CODES
                 else "internal", "message": self.message}
        if ref is not None:
            event["ref"] = ref
        if self.retry_after is not None:
            event["retryAfter"] = self.retry_after
        return event


def error_body(exc):
    """as_dict as the bytes of a JSON body, for code below bottle (the upgrade gate)."""
    return json.dumps(exc.as_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(name, status, code):
    return type(name, (ChatError,), {"status": status, "code": code})


BadRequest = _error("BadRequest", 400, "bad_request")
Unauthorized = _error("Unauthorized", 401, "unauthorized")
Forbidden = _error("Forbidden", 403, "forbidden")
NotFound = _error("NotFound", 404, "not_found")
MethodNotAllowed = _error("MethodNotAllowed", 405, "method_not_allowed")
RequestTimeout = _error("RequestTimeout", 408, "request_timeout")
Conflict = _error("Conflict", 409, "conflict")
PayloadTooLarge = _error("PayloadTooLarge", 413, "payload_too_large")
URITooLong = _error("URITooLong", 414, "uri_too_long")
UnsupportedMediaType = _error("UnsupportedMediaType", 415, "unsupported_media_type")
RateLimited = _error("RateLimited", 429, "rate_limited")
NotJoined = _error("NotJoined", 409, "not_joined")
Unavailable = _error("Unavailable", 503, "unavailable")
Internal = ChatError
