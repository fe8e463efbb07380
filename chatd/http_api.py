"""HTTP transport: bottle routes that parse, call ops and render JSON.

Errors are rendered in one place (`_render_error`): ChatError values from
below, bottle's own 404/405, and anything unexpected (logged with the
request id, answered as 500 `internal` without details).
"""
import ipaddress
import json
import logging
import os
import secrets
import time
from urllib.parse import parse_qsl, urlencode

import bottle

from . import errors, validate
from .errors import ChatError

log = logging.getLogger("chatd.http")
WEB_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
_STATUS_ERRORS = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
                  404: errors.NotFound, 405: errors.MethodNotAllowed,
                  413: errors.PayloadTooLarge}


def json_response(body, status=200, headers=None):
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = bottle.HTTPResponse(data, status=status, headers=headers or {})
    response.content_type = "application/json"
    return response


def _render_error(exc):
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    return json_response(exc.as_dict(), exc.status, headers)


class App(bottle.Bottle):
    """bottle, with its HTML error pages replaced by the JSON error shape."""

    def default_error_handler(self, res):
        exc = _STATUS_ERRORS.get(res.status_code, errors.Internal)
        message = {404: "No such route.", 405: "Method not allowed on this route."}.get(
            res.status_code, "Internal error.")
        if exc is errors.Internal:
            rid = bottle.request.environ.get("chatd.request_id")
            log.error("request %s failed: %s", rid, res.traceback or res.body)
            exc = errors.Internal("Internal error; request id %s." % rid)
        else:
            exc = exc(message)
        res.content_type = "application/json"
        return json.dumps(exc.as_dict())


def api(callback):
    """Wrap a route: ChatError and surprises become JSON answers."""
    def wrapper(*args, **kwargs):
        try:
            result = callback(*args, **kwargs)
        except ChatError as exc:
            return _render_error(exc)
        if isinstance(result, bottle.HTTPResponse):
            return result
        return json_response(result)
    wrapper.__name__ = callback.__name__
    return wrapper


def read_json(request, max_bytes):
    """The request body as a JSON object, with section 1's limits and errors."""
    env = request.environ
    length = env.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in env.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked and length in ("", "0"):
        return {}
    ctype = env.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise errors.UnsupportedMediaType("Send the body as application/json.")
    if not chunked:
        if not length.isdigit():
            raise errors.BadRequest("Invalid Content-Length.")
        if int(length) > max_bytes:
            raise errors.PayloadTooLarge("The body is over %d bytes." % max_bytes)
    data = env["wsgi.input"].read(max_bytes + 1 if chunked else int(length))
    if len(data) > max_bytes:
        raise errors.PayloadTooLarge("The body is over %d bytes." % max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.BadRequest("The body is not valid UTF-8.")
    return validate.json_object(text, "body")


def bearer_token(request):
    header = request.environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() != "bearer ":
        raise errors.Unauthorized("Send Authorization: Bearer <token>.")
    return header[7:].strip()


def _networks(items):
    return [ipaddress.ip_network(item, strict=False) for item in items]


def client_address(environ, trusted):
    """The socket's peer, or the last X-Forwarded-For hop when the peer is a trusted proxy."""
    peer = environ.get("REMOTE_ADDR", "")
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded and _in(peer, trusted):
        hop = forwarded.split(",")[-1].strip()
        if hop:
            return hop
    return peer


def _in(address, networks):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def build(service):
    """The bottle app for one chatd process."""
    chat, settings = service.chat, service.settings
    max_body = settings.limits.max_body_bytes
    trusted = _networks(settings.server.trusted_proxies)
    metrics_readers = _networks(settings.metrics.allowed_networks)
    app = App()
    request = bottle.request

    def body():
        return read_json(request, max_body)

    def user():
        return chat.authenticate(bearer_token(request))

    def same_user(data, field, me):
        value = data.get(field)
        if value is not None and (not isinstance(value, str) or value.lower() != me.username.lower()):
            raise errors.Forbidden("Field '%s' must be your own username." % field)

    @app.post("/api/register")
    @api
    def register():
        data = body()
        result = chat.register(validate.string(data, "username"), validate.string(data, "password"),
                               client_address(request.environ, trusted))
        return json_response({"status": "success", "username": result["username"]}, 201)

    @app.post("/api/login")
    @api
    def login():
        data = body()
        result = chat.login(data.get("username"), data.get("password"),
                            client_address(request.environ, trusted))
        return dict(status="success", **result)

    @app.post("/api/logout")
    @api
    def logout():
        user()
        chat.logout(bearer_token(request))
        return {"status": "success"}

    @app.get("/api/me")
    @api
    def me():
        return chat.me(user())

    @app.post("/api/create-room")
    @api
    def create_room():
        me, data = user(), body()
        same_user(data, "creator", me)
        room = chat.create_room(me, data.get("roomName"))
        return json_response({"status": "success", "roomId": room["roomId"],
                              "roomName": room["roomName"]}, 201)

    @app.get("/api/rooms")
    @api
    def rooms():
        user()
        return chat.list_rooms()

    @app.post("/api/join-room")
    @api
    def join_room():
        me, data = user(), body()
        same_user(data, "username", me)
        name = chat.join_room(me, validate.string(data, "roomId"))
        return {"status": "success", "message": "Joined room %s" % name}

    @app.post("/api/leave-room")
    @api
    def leave_room():
        me, data = user(), body()
        same_user(data, "username", me)
        chat.leave_room(me, validate.string(data, "roomId"))
        return {"status": "success"}

    @app.get("/api/chat-history/<room_id>")
    @api
    def history(room_id):
        me = user()
        query = request.query
        limit = validate.integer(query.get("limit", "50"), "limit", 1, 500)
        before = query.get("before")
        after = query.get("after")
        return chat.history(me, room_id, limit,
                            validate.integer(before, "before") if before is not None else None,
                            validate.integer(after, "after") if after is not None else None)

    @app.get("/api/rooms/<room_id>/members")
    @api
    def members(room_id):
        return chat.room_members(user(), room_id)

    @app.get("/healthz")
    def healthz():
        broker = service.broker.status()
        if chat.ping():
            return json_response({"status": "ok", "database": "ok", "broker": broker})
        return json_response({"status": "error", "error": "unavailable",
                              "message": "The database does not answer.",
                              "database": "down", "broker": broker}, 503)

    @app.get("/metrics")
    def metrics():
        # Behind a trusted proxy the proxy's own address must not open it to all.
        if not _in(client_address(request.environ, trusted), metrics_readers):
            return _render_error(errors.Forbidden("Metrics are not served to this address."))
        data, content_type = service.metrics.render()
        return bottle.HTTPResponse(data, 200, {"Content-Type": content_type})

    @app.get("/chat")
    def chat_socket():  # upgrades never get here: wsproto.Handler hands them to ws.serve
        return _render_error(errors.BadRequest("Use a WebSocket upgrade on /chat."))

    @app.get("/")
    def index():
        return bottle.static_file("index.html", root=WEB_ROOT)

    @app.get("/static/<path:path>")
    def static(path):
        return bottle.static_file(path, root=WEB_ROOT)

    return app


def redact(path_and_query):
    """The request line for logs, with any token in the query string hidden."""
    path, _, query = path_and_query.partition("?")
    if not query:
        return path
    pairs = [(k, "[redacted]" if k.lower() in ("token", "password") else v)
             for k, v in parse_qsl(query, keep_blank_values=True)]
    return path + "?" + urlencode(pairs)


class RequestLog:
    """WSGI middleware: a request id per request and one log line per request."""

    def __init__(self, app, on_request=None):
        self.app = app
        self.on_request = on_request

    def __call__(self, environ, start_response):
        rid = environ["chatd.request_id"] = secrets.token_hex(6)
        started = time.monotonic()
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = status
            headers.append(("X-Request-Id", rid))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            status = seen.get("status", "-")[:3]
            line = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                line += "?" + environ["QUERY_STRING"]
            log.info("%s %s %s %s %.1fms", rid, environ.get("REQUEST_METHOD"), redact(line),
                     status, (time.monotonic() - started) * 1000)
            if self.on_request:
                self.on_request(environ, status)
