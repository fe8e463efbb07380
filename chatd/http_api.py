"""HTTP transport: bottle routes that parse, call ops and render JSON.

Errors are rendered in one place (`_render_error`): ChatError values from
below, bottle's own 404/405, and anything unexpected (logged with the
request id, answered as 500 `internal` without details).
"""
import ipaddress
import json
import logging
import os
import re
import secrets
import time

import bottle

from . import errors, logsafe, openapi, validate
from .errors import ChatError

log = logging.getLogger("chatd.http")
WEB_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
_STATUS_ERRORS = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
                  404: errors.NotFound, 405: errors.MethodNotAllowed,
                  413: errors.PayloadTooLarge}
# bottle's own answers (no route, wrong method, static_file's refusals) in our words.
_STATUS_MESSAGES = {403: "This file may not be read.", 404: "No such route or file.",
                    405: "Method not allowed on this route."}
# The web page: its own files only, never framed, no Referer to other sites.
# 'self' covers ws:/wss: to the same host in CSP 3; older browsers need them named.
_PAGE_POLICY = ("default-src 'self'; connect-src 'self' %s; img-src 'self' data:; "
                "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HOST = re.compile(r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?\Z")


def json_response(body, status=200, headers=None):
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = bottle.HTTPResponse(data, status=status, headers=headers or {})
    response.content_type = "application/json"
    # API answers are one user's data, a login's carries a token: never stored.
    response.set_header("Cache-Control", "no-store")
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
        message = _STATUS_MESSAGES.get(res.status_code, "Internal error.")
        if exc is errors.Internal:
            rid = bottle.request.environ.get("chatd.request_id")
            log.error("request %s failed: %s", rid, res.traceback or res.body)
            exc = errors.Internal("Internal error; request id %s." % rid)
        else:
            exc = exc(message)
        res.content_type = "application/json"
        return errors.error_body(exc)


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
    try:
        data = env["wsgi.input"].read(max_bytes + 1 if chunked else int(length))
    except OSError:  # pywsgi's _InvalidClientInput: broken chunked framing (or a peer gone)
        raise errors.BadRequest("The request body is not valid chunked encoding.")
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


def path_id(text):
    """A message id in the URL path, as the integer the JSON actions carry (ops checks its range)."""
    return validate.integer(text, "id", text=True)


def networks(items):
    return [ipaddress.ip_network(item, strict=False) for item in items]


def client_address(environ, trusted):
    """The socket's peer, or the last X-Forwarded-For hop when the peer is a trusted proxy."""
    peer = environ.get("REMOTE_ADDR", "")
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded and in_networks(peer, trusted):
        hop = forwarded.split(",")[-1].strip()
        if hop:
            return hop
    return peer


def in_networks(address, nets):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # A dual-stack IPv6 listener (systemd's ListenStream=8080, say) reports IPv4
    # peers as ::ffff:a.b.c.d: the proxy at 127.0.0.1 is still 127.0.0.1.
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in net for net in nets)


def web_file(path, environ):
    """A file of the web client, with the page's security headers; errors in JSON."""
    response = bottle.static_file(path, root=WEB_ROOT)
    if isinstance(response, bottle.HTTPError):
        # static_file's own refusals: a path outside the root or unreadable (403),
        # missing (404), an unsatisfiable Range (416: answered as a missing file).
        error = errors.Forbidden if response.status_code == 403 else errors.NotFound
        return _render_error(error(_STATUS_MESSAGES[error.status]))
    host = environ.get("HTTP_HOST", "")
    sockets = "ws://%s wss://%s" % (host, host) if _HOST.match(host) else ""
    response.set_header("Content-Security-Policy", _PAGE_POLICY % sockets)
    response.set_header("Referrer-Policy", "no-referrer")
    return response


def build(service):
    """The bottle app for one chatd process."""
    chat, settings = service.chat, service.settings
    max_body = settings.limits.max_body_bytes
    trusted = networks(settings.server.trusted_proxies)
    metrics_readers = networks(settings.metrics.allowed_networks)
    app = App()
    request = bottle.request

    def body():
        return read_json(request, max_body)

    def user():
        me = chat.authenticate(bearer_token(request))
        request.environ["chatd.user"] = me.username  # for the log line
        return me

    def credentials():
        """(username, password, client address) of a register or login body."""
        data = body()
        # The name tried goes to the log line, so failed logins can be traced.
        name = request.environ["chatd.user"] = validate.string(data, "username")
        return name, validate.string(data, "password"), client_address(request.environ, trusted)

    @app.post("/api/register")
    @api
    def register():
        result = chat.register(*credentials())
        return json_response({"status": "success", "username": result["username"]}, 201)

    @app.post("/api/login")
    @api
    def login():
        return dict(status="success", **chat.login(*credentials()))

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
        validate.own_username(data.get("creator"), "creator", me.username)
        room = chat.create_room(me, data.get("roomName"), data.get("kind"), data.get("topic"))
        return json_response(dict(status="success", **room), 201)

    @app.get("/api/rooms")
    @api
    def rooms():
        return chat.rooms_with_unread(user())

    @app.post("/api/join-room")
    @api
    def join_room():
        me, data = user(), body()
        validate.own_username(data.get("username"), "username", me.username)
        name = chat.join_room(me, validate.string(data, "roomId"))
        return {"status": "success", "message": "Joined room %s" % name}

    @app.post("/api/leave-room")
    @api
    def leave_room():
        me, data = user(), body()
        validate.own_username(data.get("username"), "username", me.username)
        chat.leave_room(me, validate.string(data, "roomId"))
        return {"status": "success"}

    @app.get("/api/chat-history/<room_id>")
    @api
    def history(room_id):
        me = user()
        query = request.query
        limit = validate.integer(query.get("limit", "50"), "limit", 1, 500, text=True)
        before = query.get("before")
        after = query.get("after")
        return chat.history(me, room_id, limit,
                            validate.integer(before, "before", text=True) if before is not None else None,
                            validate.integer(after, "after", text=True) if after is not None else None)

    @app.get("/api/rooms/<room_id>/members")
    @api
    def members(room_id):
        return chat.room_members(user(), room_id)

    # -- access tokens (PROTOCOL section 10) ----------------------------------------
    @app.post("/api/tokens")
    @api
    def create_token():
        me, data = user(), body()
        created = chat.create_token(me, data.get("name"), data.get("expiresInDays"))
        return json_response(created, 201)

    @app.get("/api/tokens")
    @api
    def list_tokens():
        return chat.list_tokens(user())

    @app.delete("/api/tokens/<token_id>")
    @api
    def revoke_token(token_id):
        chat.revoke_token(user(), token_id)
        return {"status": "success"}

    walls_routes(app, chat, user, body)

    # -- the room's log for scripts (PROTOCOL section 7) ------------------------------
    @app.post("/api/rooms/<room_id>/messages")
    @api
    def post_message(room_id):
        me, data = user(), body()
        event, new = chat.post_message(me, validate.room_ref(room_id), data.get("message"),
                                       data.get("clientMsgId"), data.get("replyTo"), echo=True)
        return json_response(event, 201 if new else 200)

    @app.route("/api/rooms/<room_id>/messages/<message_id>", method="PATCH")
    @api
    def edit_message(room_id, message_id):
        me, data = user(), body()
        return chat.edit_message(me, room_id, path_id(message_id), data.get("message"))

    @app.delete("/api/rooms/<room_id>/messages/<message_id>")
    @api
    def delete_message(room_id, message_id):
        chat.delete_message(user(), room_id, path_id(message_id))
        return {"status": "success"}

    @app.put("/api/rooms/<room_id>/messages/<message_id>/reactions/<emoji>")
    @api
    def react(room_id, message_id, emoji):
        chat.react(user(), room_id, path_id(message_id), emoji)
        return {"status": "success"}

    @app.delete("/api/rooms/<room_id>/messages/<message_id>/reactions/<emoji>")
    @api
    def unreact(room_id, message_id, emoji):
        chat.unreact(user(), room_id, path_id(message_id), emoji)
        return {"status": "success"}

    @app.get("/api/rooms/<room_id>/events")
    @api
    def room_events(room_id):
        """The log after `after`; with `wait`, held (a greenlet, no database
        connection) until there is an event or the wait is over."""
        me, query = user(), request.query
        after = validate.integer(query.get("after", "0"), "after", 0, text=True)
        limit = validate.integer(query.get("limit", "100"), "limit", 1, 500, text=True)
        wait = validate.integer(query.get("wait", "0"), "wait", 0, 30, text=True)
        room_pk, page = chat.room_events(me, room_id, after, limit)
        if page["events"] or not wait:
            return page
        service.hub.wait_after(room_pk, after, wait)
        return chat.room_events(me, room_id, after, limit)[1]

    # -- read markers and search (PROTOCOL.md sections 8 and 9) -------------------
    @app.post("/api/rooms/<room_id>/read")
    @api
    def read(room_id):
        me, data = user(), body()
        return {"status": "success", "readUpTo": chat.mark_read(me, room_id, data.get("upTo"))}

    @app.get("/api/search")
    @api
    def search():
        me, query = user(), request.query
        return chat.search(me, query.getunicode("q"), query.getunicode("roomId"),
                           query.getunicode("limit"), query.getunicode("cursor"))

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
        if not in_networks(client_address(request.environ, trusted), metrics_readers):
            return _render_error(errors.Forbidden("Metrics are not served to this address."))
        data, content_type = service.metrics.render()
        return bottle.HTTPResponse(data, 200, {"Content-Type": content_type})

    @app.get("/chat")
    def chat_socket():  # upgrades never get here: wsproto.Handler hands them to ws.serve
        return _render_error(errors.BadRequest("Use a WebSocket upgrade on /chat."))

    @app.get("/")
    def index():
        return web_file("index.html", request.environ)

    @app.get("/static/<path:path>")
    def static(path):
        return web_file(path, request.environ)

    return described(app)


def walls_routes(app, chat, user, body):
    """Rooms with walls (PROTOCOL section 6) and the user's own password."""
    request = bottle.request
    success = {"status": "success"}

    @app.post("/api/password")
    @api
    def change_password():
        me, data = user(), body()
        chat.change_password(me, bearer_token(request), validate.string(data, "currentPassword"),
                             validate.string(data, "newPassword"))
        return success

    @app.post("/api/direct")
    @api
    def open_direct():
        me, data = user(), body()
        room, made = chat.open_direct(me, validate.string(data, "username"))
        return json_response(dict(status="success", **room), 201 if made else 200)

    @app.route("/api/rooms/<room_id>", method="PATCH")
    @api
    def update_room(room_id):
        me, data = user(), body()
        return chat.update_room(me, room_id, data.get("roomName"), data.get("topic"))

    @app.post("/api/rooms/<room_id>/members")
    @api
    def add_member(room_id):
        me, data = user(), body()
        chat.add_member(me, room_id, validate.string(data, "username"))
        return success

    @app.delete("/api/rooms/<room_id>/members/<username>")
    @api
    def remove_member(room_id, username):
        chat.remove_member(user(), room_id, username)
        return success

    @app.route("/api/rooms/<room_id>/members/<username>", method="PATCH")
    @api
    def set_role(room_id, username):
        me, data = user(), body()
        chat.set_role(me, room_id, username, validate.string(data, "role"))
        return success

    @app.post("/api/rooms/<room_id>/bans")
    @api
    def ban(room_id):
        me, data = user(), body()
        chat.remove_member(me, room_id, validate.string(data, "username"), ban=True,
                           reason=data.get("reason"))
        return success

    @app.delete("/api/rooms/<room_id>/bans/<username>")
    @api
    def lift_ban(room_id, username):
        chat.lift_ban(user(), room_id, username)
        return success

    @app.get("/api/rooms/<room_id>/bans")
    @api
    def bans(room_id):
        return chat.room_bans(user(), room_id)


def described(app):
    """Serve GET /api/openapi.json, built once from the app's routes: last, so that
    every route is there, and chatd does not start while one lacks a description."""
    @app.get("/api/openapi.json")
    def openapi_json():
        return json_response(document)

    document = openapi.document(app)
    return app


class RequestLog:
    """WSGI middleware: a request id per request and one log line per request.

    The line: request id, client address (as for the login throttle), method,
    path and query (escaped, secrets redacted: see logsafe), status, time,
    and user= the authenticated user, or the username a login or
    registration tried ('-' when none).
    """

    def __init__(self, app, trusted_proxies, on_request=None):
        self.app = app
        self.trusted = networks(trusted_proxies)
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
            seconds = time.monotonic() - started
            status = seen.get("status", "-")[:3]
            log.info("%s %s %s %s %s %.1fms user=%s", rid,
                     logsafe.text(client_address(environ, self.trusted)),
                     logsafe.text(environ.get("REQUEST_METHOD"), 16),
                     logsafe.target(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING")),
                     status, seconds * 1000, logsafe.text(environ.get("chatd.user"), 64))
            if self.on_request:
                self.on_request(environ, status, seconds)
