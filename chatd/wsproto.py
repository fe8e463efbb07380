"""Our one wrapper of gevent's pywsgi and gevent-websocket: the HTTP side.

pywsgi serves HTTP and the library does the WebSocket upgrade; this module
holds what chatd adds there: a deadline for each request's head, a cap per
client address, JSON answers where pywsgi would send empty text, the gate
before the 101, and the hand-over of the upgraded socket to our own
Connection (wsconn), which does everything after the 101.
"""
import base64
import logging
import binascii
import json
import socket
from http import HTTPStatus

import gevent
import gevent.event
from gevent.pool import Pool
from gevent.pywsgi import MAX_REQUEST_LINE, WSGIServer
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import WebSocket

from . import errors, httpheaders, logsafe
from .wsconn import Connection, Flusher

log = logging.getLogger("chatd.wsproto")

class HeadTimeout(Exception):
    """The request line and headers did not all arrive within the server's header_timeout."""


# On every answer, the application's and pywsgi's own alike.
SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff")]

# What pywsgi answers with an empty text body, as ours: status -> error.
_HEAD_ERRORS = {
    "400": lambda: errors.BadRequest("The request line or headers are not valid HTTP."),
    "408": lambda: errors.RequestTimeout("The request headers did not arrive in time."),
    "414": lambda: errors.URITooLong("The request line is over %d bytes." % MAX_REQUEST_LINE),
    400: lambda: errors.BadRequest("The request body is not valid HTTP framing."),
    500: lambda: errors.Internal("Internal error."),
}


def error_parts(exc):
    """(status line, headers, body) of a ChatError answered below the bottle app."""
    body = json.dumps(exc.as_dict(), separators=(",", ":")).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if exc.retry_after is not None:
        headers.append(("Retry-After", str(int(exc.retry_after))))
    return "%d %s" % (exc.status, HTTPStatus(exc.status).phrase), headers, body


def raw_error(exc):
    """A whole HTTP response for a connection that is then closed."""
    status, headers, body = error_parts(exc)
    head = ["HTTP/1.1 " + status] + ["%s: %s" % h for h in headers + SECURITY_HEADERS]
    return ("\r\n".join(head + ["Connection: close", "", ""])).encode("latin-1") + body


class PeerLimit:
    """Connections open per socket peer address, capped (cap 0: no cap)."""

    def __init__(self, cap, exempt, on_refuse):
        self.cap = cap
        self.exempt = exempt  # address -> bool: trusted proxies carry many clients
        self.on_refuse = on_refuse
        self.open = {}

    def enter(self, address):
        count = self.open.get(address, 0)
        if self.cap and count >= self.cap and not self.exempt(address):
            self.on_refuse(address)
            return False
        self.open[address] = count + 1
        return True

    def leave(self, address):
        count = self.open.pop(address) - 1
        if count:
            self.open[address] = count


class Handler(WebSocketHandler):
    """gevent-websocket's handler with our gate before the 101 and bytes bodies.

    Its server is a ChatServer: ws_gate, header_timeout and peer_limit there.
    """

    def MessageClass(self, fp, *args):
        return httpheaders.parse(fp)

    def handle(self):
        # pywsgi writes a response's headers and body in two sends: with
        # Nagle's algorithm the second waits for the client's delayed ACK,
        # 40 ms on every keep-alive request. WebSockets coalesce themselves.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.client_address[0] if isinstance(self.client_address, tuple) else ""
        limit = self.server.peer_limit
        if not limit.enter(peer):
            self._refuse_connection()
            return
        try:
            super().handle()
        finally:
            limit.leave(peer)

    def _refuse_connection(self):
        sock = self.socket
        try:
            sock.sendall(raw_error(errors.Unavailable(
                "Too many connections from your address.", retry_after=1)))
            # Non-blocking: the request already sent must not turn the close into a reset.
            sock._sock.recv(16384)
        except OSError:
            pass
        finally:
            sock.close()

    def handle_one_request(self):
        # pywsgi has no deadline for a request's head: without one, sockets
        # that never finish their request line would hold every slot.
        self._head_deadline = gevent.Timeout.start_new(self.server.header_timeout, HeadTimeout())
        try:
            result = super().handle_one_request()
        except HeadTimeout:
            return None  # no request line in time (or an idle keep-alive): just close
        finally:
            self._head_deadline.close()
        if isinstance(result, tuple):  # pywsgi refused the head: answer in our JSON
            error = _HEAD_ERRORS[result[0]]()
            self._log_refused_head(result[0], error)
            return result[0], raw_error(error)
        return result

    def _log_refused_head(self, status, error):
        """A line like http_api's (no request id: the app never saw it)."""
        words = (self.requestline or "").split()
        path, _, query = (words[1] if len(words) > 1 else "").partition("?")
        log.info("- %s %s %s %s %s", logsafe.text(self.client_address[0]),
                 logsafe.text(words[0] if words else "", 16), logsafe.target(path, query),
                 status, error.message)

    def handle_one_response(self):
        self._head_deadline.close()  # the head is in; the deadline was for it alone
        super().handle_one_response()

    def _handle_client_error(self, ex):
        return ("408" if isinstance(ex, HeadTimeout) else "400"), b""

    def _send_error_response_if_possible(self, error_code):
        if self.response_length:
            self.close_connection = True
            return
        status, headers, body = error_parts(_HEAD_ERRORS[error_code]())
        try:
            self.start_response(status, headers + [("Connection", "close")])
            self.write(body)
        except socket.error:
            self.close_connection = True

    def start_response(self, status, headers, exc_info=None):
        return super().start_response(status, list(headers) + SECURITY_HEADERS, exc_info)

    def upgrade_websocket(self):
        env = self.environ
        if env.get("REQUEST_METHOD") != "GET" or \
                env.get("HTTP_UPGRADE", "").lower() != "websocket":
            return None
        refusal = self._refuse()
        if refusal:
            status, headers, body = error_parts(refusal)
            self.start_response(status, headers + [("Sec-WebSocket-Version", "13")])
            return [body]
        result = super().upgrade_websocket()
        return [part.encode() if isinstance(part, str) else part for part in result or []] or None

    def _refuse(self):
        """The library answers these in plain text: check them first, then the server's gate."""
        env = self.environ
        if self.request_version != "HTTP/1.1":
            return errors.BadRequest("A WebSocket upgrade needs HTTP/1.1.")
        if env.get("HTTP_SEC_WEBSOCKET_VERSION") not in self.SUPPORTED_VERSIONS:
            return errors.BadRequest("Use WebSocket version 13.")
        key = env.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError()
        except (binascii.Error, ValueError):
            return errors.BadRequest("Invalid Sec-WebSocket-Key.")
        return self.server.ws_gate(env)

    def run_websocket(self):
        # Straight to our session (server.ws_app), not through the WSGI app:
        # every idle connection keeps this greenlet's stack, so it is kept
        # shallow. The library must not send its code-less close frame after.
        try:
            self.server.ws_app(self)
        finally:
            self.close_connection = True
            self.websocket = None
            self.environ["wsgi.websocket"] = None

    def run_application(self):
        super().run_application()
        # pywsgi would read the rest of an oversized body to keep the
        # connection alive: forever for an endless chunked one. After broken
        # chunked framing it cannot find the next request either. Hang up.
        if self.code == 413 or getattr(self.wsgi_input, "_chunked_input_error", False):
            self.wsgi_input = _NO_INPUT
            self.close_connection = True

    def read_requestline(self):
        # A keep-alive connection waiting here has no request in flight: the
        # server may close it at once on shutdown (see close_idle).
        if self.requestline is not None and self.server.closed:
            return None  # shutting down: the request just answered was the last
        idle = self.server.idle_handlers
        idle.add(self)
        try:
            return super().read_requestline()
        finally:
            idle.discard(self)

    def log_request(self):
        pass  # http_api logs every request itself, with its request id


class ChatServer(WSGIServer):
    """gevent's WSGIServer with chatd's knobs as attributes (see __init__).

    It owns the Flusher that writes every WebSocket's queued frames, and
    knows the keep-alive connections waiting between requests, which
    shutdown may close at once (close_idle).
    """

    handler_class = Handler
    # gevent accepts at most 100 connections per turn of its loop, and every
    # connection it accepts runs its handshake before the next turn: accepting
    # went no faster than handshakes, so after a restart the listen queue
    # overflowed and the kernel dropped clients' connection attempts, which
    # they retry only 1 s, 3 s, 7 s later (bench/storm.py, 19,000 clients:
    # ~20,000 listen drops per storm). Taking more per turn moves the queue
    # into the process, where handshakes wait their turn instead.
    max_accept = 1000

    def __init__(self, listener, app, ws_app, ws_gate, peer_limit, header_timeout,
                 max_connections, backlog):
        """ws_app(handler): a WebSocket's whole life after the 101; ws_gate(environ):
        None to accept an upgrade, or the ChatError that refuses it; peer_limit: a
        PeerLimit; header_timeout: seconds for each request's line and headers;
        backlog: the listen queue (gevent's default, 128, overflows in a storm of
        reconnects: the kernel drops SYNs and clients retry 1 s, 3 s later)."""
        super().__init__(listener, app, log=None, error_log=None, spawn=Pool(max_connections),
                         backlog=backlog)
        self.ws_app = ws_app
        self.ws_gate = ws_gate
        self.peer_limit = peer_limit
        self.header_timeout = header_timeout
        self.flusher = Flusher()
        self.idle_handlers = set()

    def start(self):
        self.flusher.start()
        super().start()

    def stop(self, timeout=None):
        super().stop(timeout)
        self.flusher.stop()

    def close_idle(self):
        """Shut the keep-alive connections that wait between requests."""
        for handler in tuple(self.idle_handlers):
            try:
                handler.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _NoInput:
    """What pywsgi finds as the request body once our Connection owns the socket."""

    def _discard(self):
        pass


_NO_INPUT = _NoInput()


class _RetiredWebSocket(WebSocket):
    """The library's WebSocket once our Connection owns the socket.

    Its __del__ would close it: send a close frame of its own (without a
    code) on a socket it no longer owns, and on the way build a throwaway
    class twice to find an app to tell. That was 5% of chatd's CPU in a
    reconnect storm (bench/storm.py --profile). Retired, it is left alone.
    """
    __slots__ = ()  # the library's layout, so an instance can be switched to this class

    def __del__(self):
        pass


def take_over(handler, max_bytes, max_fragments, max_queue, write_timeout, send_buffer=0):
    """Turn the library's upgraded socket into our Connection.

    Bytes the client sent right after its handshake may already sit in
    pywsgi's buffered reader: they are taken over, and the reader (with its
    8 KiB buffer), the library's WebSocket object and the request's environ
    and headers are let go (an idle connection: 23.8 KiB before the last
    two, 19.8 after, bench/hold.py at 5,000). Read what the session needs
    of the environ first.
    """
    sock = handler.socket
    if send_buffer:
        # Loopback and LAN sockets autotune up to megabytes: a reader that
        # stops would otherwise hold that much before its queue even fills.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.settimeout(0.0)  # peek must not wait for bytes that are not there
    try:
        pending = handler.rfile.peek(1 << 16)
    except (BlockingIOError, OSError):
        pending = b""
    finally:
        sock.settimeout(None)
    if pending:
        handler.rfile.read(len(pending))
    handler.websocket.__class__ = _RetiredWebSocket
    handler.rfile = None
    handler.wsgi_input = _NO_INPUT  # pywsgi discards leftover input after the route
    # The request's environ, its parsed headers and the 101's headers (3-4
    # KiB of strings) would live as long as the connection: all was read or sent.
    handler.environ.clear()
    handler.headers = handler.response_headers = handler.websocket = None
    return Connection(sock, bytes(pending), handler.server.flusher, max_bytes, max_fragments,
                      max_queue, write_timeout)
