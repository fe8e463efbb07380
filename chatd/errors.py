"""Errors are values: a status, a stable code and one human sentence.

Raised anywhere below the transports; rendered once by http_api (JSON body)
and once by ws (an `error` event).
"""


class ChatError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def as_dict(self):
        return {"status": "error", "error": self.code, "message": self.message}


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
